"""B1 (overhead) and B2 (throughput) of the job engine: MariaDB store, in-process workers and
the local sandbox executor, beside a bare `python -I -S -c pass` measured in the same run.

    .venv/bin/python -m bench.engine             # JOBBOT_BENCH_MYSQL_URL, default local root
B1: a trivial job end to end (submit until its result is stored), p50, alternating with the
    bare spawn so both see the same machine; JOBBOT_BENCH_RUNS runs (5) of JOBBOT_BENCH_B1
    jobs (100); the median and range of the runs' ratios; target median ratio <= 1.0.
B2: 1,000 trivial jobs submitted at once, jobs per second; target >= 40 jobs/s on 2 cores.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.databases import drop_database, fresh_database
from bench.stats import median_range, ms, summary, table, verdict
from bot.app.environment import load_settings
from bot.app.wiring.parts import build_executor, worker_config
from bot.app.wiring.runtime import Runtime
from bot.core.models import Actor, Identity, JobStatus
from bot.core.worker import WorkerPool

DATABASE = "jobbot_bench_engine"
RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
B1_SAMPLES = int(os.environ.get("JOBBOT_BENCH_B1", "100"))
B2_JOBS = int(os.environ.get("JOBBOT_BENCH_B2", "1000"))
TRIVIAL = b"print(a + b)\n"
INTERPRETER = str(Path(sys.executable).resolve())


def bare_interpreter(samples: int) -> list[float]:
    """Wall time of `python -I -S -c pass` with the real interpreter (no shim)."""
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        subprocess.run([INTERPRETER, "-I", "-S", "-c", "pass"], check=True)
        out.append(time.perf_counter() - start)
    return out


class Engine:
    """The engine as `serve` runs it (MariaDB, a worker pool in process, the local sandbox),
    with a hook to wait for each job to settle; its database is dropped on close. With
    `offer` False the pool is not offered each job as it is submitted: the job waits for a
    claim, as one from another process does."""

    def __init__(self, database: str, workers: int = 4, *, offer: bool = True, **more: str) -> None:
        self.database = database
        settings = load_settings(
            {
                "DATABASE_URL": fresh_database(database),
                "JOBBOT_WORKERS": str(workers),
                "JOBBOT_MAX_JOBS_PER_USER": str(workers),
                **more,
            },
            env_file=None,
        )
        self.settings = settings
        self.runtime = Runtime(settings)
        self.runtime.migrate()
        self.executor = build_executor(settings)
        self.settled = threading.Event()
        self.pool = WorkerPool(
            self.runtime.store, self.executor, worker_config(settings), on_settled=self._settled
        )
        self.runtime.pool = self.pool  # submit() wakes this pool in-process, as in `serve`
        self.pool.start()
        if offer:
            self.runtime.service.run_here(self.pool)  # and offers it the job first, as `serve`
        service = self.runtime.service
        self.actors: list[Actor] = [
            service.actor(Identity("local", "bench", f"user{i}")) for i in range(10)
        ]

    def _settled(self) -> None:
        self.settled.set()
        self.runtime.service.settled()  # as `serve` does: wakes requests waiting for a job

    def one(self, i: int, name: str, code: bytes, input_json: str = "{}") -> tuple[float, int]:
        """Submit one job and wait until its result is stored: (seconds, job id)."""
        self.settled.clear()
        start = time.perf_counter()
        job, _ = self.runtime.service.submit(self.actors[i % 10], name, code, input_json)
        if not self.settled.wait(60):
            raise SystemExit(f"job {job.id} did not settle")
        return time.perf_counter() - start, job.id

    def result(self, job_id: int) -> str | None:
        """The stored result of a finished job (None if it did not finish done)."""
        done = self.runtime.store.get(job_id)
        return done.result if done is not None and done.status is JobStatus.DONE else None

    def close(self) -> None:
        self.pool.stop(15)
        self.executor.close()
        self.runtime.store.close()  # type: ignore[attr-defined]
        drop_database(self.database)


def b1_run(engine: Engine, samples: int) -> tuple[list[float], list[float]]:
    """One run of B1: (job seconds, bare interpreter seconds), alternating."""
    jobs: list[float] = []
    bare: list[float] = []
    for i in range(samples):
        took, job_id = engine.one(i, "add.py", TRIVIAL, '{"a": 5, "b": 3}')
        if engine.result(job_id) != "8":
            raise SystemExit(f"job {job_id} did not give 8")
        jobs.append(took)
        bare.extend(bare_interpreter(1))
    return jobs, bare


def b2(engine: Engine) -> tuple[float, dict[JobStatus, int], float]:
    """(jobs/s, final counts, bare spawns/s) for B2_JOBS trivial jobs submitted at once."""
    store, service = engine.runtime.store, engine.runtime.service
    start = time.perf_counter()
    for i in range(B2_JOBS):
        service.submit(engine.actors[i % 10], "add.py", TRIVIAL, f'{{"a": {i}, "b": 1}}')
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        counts = store.count_by_status()
        if not counts[JobStatus.WAITING] + counts[JobStatus.RUNNING]:
            break
        time.sleep(0.05)
    rate = B2_JOBS / (time.perf_counter() - start)
    spawn_start = time.perf_counter()
    bare_interpreter(200)
    return rate, store.count_by_status(), 200 / (time.perf_counter() - spawn_start)


def main() -> None:
    engine = Engine(DATABASE)
    rows = [["run", "job p50", "job p95", "bare p50", "ratio p50 / bare"]]
    ratios = []
    try:
        for i in range(20):  # warm-up: the zygote, the connection pool, the statement caches
            engine.one(i, "add.py", TRIVIAL, '{"a": 5, "b": 3}')
        for run in range(1, RUNS + 1):
            jobs, bare = b1_run(engine, B1_SAMPLES)
            job_stats, bare_stats = summary(jobs), summary(bare)
            ratios.append(job_stats["p50"] / bare_stats["p50"])
            rows.append(
                [
                    str(run),
                    ms(job_stats["p50"]),
                    ms(job_stats["p95"]),
                    ms(bare_stats["p50"]),
                    f"{ratios[-1]:.2f}",
                ]
            )
        rate, counts, spawn_rate = b2(engine)
    finally:
        engine.close()
    print(
        f"B1 trivial job end to end (submit -> result stored), MariaDB + local sandbox, "
        f"{RUNS} runs of {B1_SAMPLES} sequential jobs, each beside `python -I -S -c pass`"
    )
    print(table(rows))
    print(f"B1 ratio: {median_range(ratios)}; {verdict(ratios, 1.0)}")
    print(
        f"\nB2 throughput: {B2_JOBS} trivial jobs submitted at once, {engine.settings.workers} "
        f"worker slots, {os.cpu_count()} cores: {rate:.1f} jobs/s "
        f"(done={counts[JobStatus.DONE]})"
    )
    print(
        f"  beside {spawn_rate:.1f} bare `python -I -S -c pass` spawns/s sequentially "
        f"(ratio {rate / spawn_rate:.2f})"
    )
    print(f"target >= 40 jobs/s: {'met' if rate >= 40 else 'MISSED'}")


if __name__ == "__main__":
    main()
