"""B1 (overhead) and B2 (throughput) of the job engine: MariaDB store, in-process workers and
the local sandbox executor, beside a bare `python -I -S -c pass` measured in the same run.

    .venv/bin/python -m bench.engine             # JOBBOT_BENCH_MYSQL_URL, default local root
B1: a trivial job end to end (submit until its result is stored), p50/p95, alternating with the
    bare spawn so both see the same machine; target ratio <= 2.0.
B2: 1,000 trivial jobs submitted at once, jobs per second; target >= 40 jobs/s on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.stats import ms, summary, table
from bot.app.config import load_settings
from bot.app.wiring import Runtime, build_executor, worker_config
from bot.core.models import Identity, JobStatus
from bot.core.worker import WorkerPool

BASE = os.environ.get("JOBBOT_BENCH_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
DATABASE = "jobbot_bench_engine"
B1_SAMPLES = int(os.environ.get("JOBBOT_BENCH_B1", "200"))
B2_JOBS = int(os.environ.get("JOBBOT_BENCH_B2", "1000"))
TRIVIAL = b"print(a + b)\n"
INTERPRETER = str(Path(sys.executable).resolve())


def fresh_database() -> str:
    server = create_engine(BASE)
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        conn.execute(text(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4"))
    server.dispose()
    return make_url(BASE).set(database=DATABASE).render_as_string(hide_password=False)


def bare_interpreter(samples: int) -> list[float]:
    """Wall time of `python -I -S -c pass` with the real interpreter (no shim)."""
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run([INTERPRETER, "-I", "-S", "-c", "pass"], check=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    url = fresh_database()
    settings = load_settings(
        {"DATABASE_URL": url, "JOBBOT_WORKERS": "4", "JOBBOT_MAX_JOBS_PER_USER": "4"}, env_file=None
    )
    runtime = Runtime(settings)
    runtime.migrate()
    executor = build_executor(settings)
    settled = threading.Event()
    pool = WorkerPool(
        runtime.store,
        executor,
        worker_config(settings),  # JOBBOT_MAX_JOBS_PER_USER=4 above
        on_settled=settled.set,
    )
    runtime.pool = pool  # submit() wakes this pool in-process, as in `serve`
    pool.start()
    service = runtime.service
    actors = [service.actor(Identity("local", "bench", f"user{i}")) for i in range(10)]
    try:
        # Warm-up: the zygote, the connection pool, the statement caches.
        for _ in range(20):
            settled.clear()
            job, _ = service.submit(actors[0], "add.py", TRIVIAL, '{"a": 5, "b": 3}')
            settled.wait(30)
        # Job and baseline alternate, so both see the same machine (a shared 2-core box drifts).
        b1: list[float] = []
        baseline: list[float] = []
        for i in range(B1_SAMPLES):
            settled.clear()
            start = time.perf_counter()
            job, _ = service.submit(actors[i % 10], "add.py", TRIVIAL, '{"a": 5, "b": 3}')
            settled.wait(30)
            b1.append(time.perf_counter() - start)
            done = runtime.store.get(job.id)
            if done is None or done.status is not JobStatus.DONE or done.result != "8":
                raise SystemExit(f"job {job.id} did not give 8: {done}")
            baseline.extend(bare_interpreter(1))

        # B2: everything submitted at once, then the clock runs until the last is stored.
        start = time.perf_counter()
        for i in range(B2_JOBS):
            service.submit(actors[i % 10], "add.py", TRIVIAL, f'{{"a": {i}, "b": 1}}')
        deadline = time.monotonic() + 600
        while (
            runtime.store.count_by_status()[JobStatus.WAITING]
            + runtime.store.count_by_status()[JobStatus.RUNNING]
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        b2_s = time.perf_counter() - start
        counts = runtime.store.count_by_status()
        spawn_start = time.perf_counter()
        bare_interpreter(200)
        spawn_rate = 200 / (time.perf_counter() - spawn_start)
    finally:
        pool.stop(15)
        executor.close()
        runtime.store.close()  # type: ignore[attr-defined]
    job_stats, base_stats = summary(b1), summary(baseline)
    print(
        f"B1 trivial job end to end (submit -> result stored), MariaDB + local sandbox, "
        f"{B1_SAMPLES} sequential jobs"
    )
    print(
        table(
            [
                ["", "p50", "p95", "ratio p50 / bare"],
                [
                    "python -I -S -c pass (baseline)",
                    ms(base_stats["p50"]),
                    ms(base_stats["p95"]),
                    "1.00",
                ],
                [
                    "jobbot trivial job",
                    ms(job_stats["p50"]),
                    ms(job_stats["p95"]),
                    f"{job_stats['p50'] / base_stats['p50']:.2f}",
                ],
            ]
        )
    )
    print(
        f"target ratio <= 2.0: {'met' if job_stats['p50'] <= 2 * base_stats['p50'] else 'MISSED'}"
    )
    rate = B2_JOBS / b2_s
    print(
        f"\nB2 throughput: {B2_JOBS} trivial jobs submitted at once, {settings.workers} worker "
        f"slots, {os.cpu_count()} cores: {rate:.1f} jobs/s ({b2_s:.1f} s; "
        f"done={counts[JobStatus.DONE]})"
    )
    print(
        f"  beside {spawn_rate:.1f} bare `python -I -S -c pass` spawns/s sequentially "
        f"(ratio {rate / spawn_rate:.2f})"
    )
    print(f"target >= 40 jobs/s: {'met' if rate >= 40 else 'MISSED'}")


if __name__ == "__main__":
    main()
