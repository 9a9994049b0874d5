"""How long a cancel takes to stop a running local job: from `cancel` returning to the job
recorded `cancelled` (with its output so far), asked in the worker's own process (the pool is
woken at once) and through another store, as another process asks (the pool finds the request
at its next poll, JOBBOT_POLL_INTERVAL). Beside them, in the same run, the baseline: the
executor's own stop (`Executor.stop` to the run's RunResult), with no store and no worker.

    .venv/bin/python -m bench.cancel_latency     # as root (the job's marker is read via /proc)

Prints p50 and the range per path, and each path's p50 as a ratio of the baseline's.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.stats import ms, table
from bot.app.environment import load_settings
from bot.app.wiring.runtime import Runtime
from bot.core.clock import SystemClock
from bot.core.models import Identity, JobStatus, RunRequest
from bot.core.service import JobService
from bot.executors.local import LocalExecutor
from bot.store import SqlStore, make_engine

SAMPLES = int(os.environ.get("JOBBOT_BENCH_CANCEL", "15"))
UID_BASE = 63100
JOB = 'import time\nprint("started", flush=True)\nopen("running", "w").close()\ntime.sleep(60)\n'
ALICE = Identity("local", "bench", "alice")


def code_runs(uids: tuple[int, ...]) -> bool:
    """A process of the job's uids has written its marker (its code runs)."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.stat(f"/proc/{name}").st_uid in uids and os.path.exists(
                f"/proc/{name}/cwd/running"
            ):
                return True
        except OSError:
            continue
    return False


def wait(predicate: Callable[[], bool], step: float = 0.001) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark's job did not get there")
        time.sleep(step)


def direct(executor: LocalExecutor) -> list[float]:
    """Executor.stop on a running job, to the run's result."""
    times = []
    for n in range(SAMPLES):
        request = RunRequest(10_000 + n, "b.py", JOB, "{}", 60.0, 256, 1 << 20)
        done = threading.Event()
        box: list[float] = []

        def run(
            request: RunRequest = request, box: list[float] = box, done: threading.Event = done
        ) -> None:
            result = executor.run(request)
            box.append(time.perf_counter())
            assert result.stdout == "started\n", result
            done.set()

        thread = threading.Thread(target=run)
        thread.start()
        wait(lambda: code_runs(executor.uids))
        start = time.perf_counter()
        executor.stop(request.job_id)
        done.wait(30)
        thread.join()
        times.append(box[0] - start)
        wait(lambda: not code_runs(executor.uids))
    return times


def through_the_store(runtime: Runtime, service: JobService) -> list[float]:
    """service.cancel of a running job, to its `cancelled` row."""
    times = []
    actor = service.actor(ALICE)
    executor = runtime.executor
    assert isinstance(executor, LocalExecutor)
    for _ in range(SAMPLES):
        job, _ = runtime.service.submit(actor, "b.py", JOB.encode(), "{}")
        wait(lambda: code_runs(executor.uids))
        start = time.perf_counter()
        service.cancel(actor, job.id)
        job_id = job.id
        wait(lambda j=job_id: service.get(j).status is JobStatus.CANCELLED)  # type: ignore[misc,union-attr]
        times.append(time.perf_counter() - start)
        wait(lambda: runtime.pool is not None and runtime.pool.busy == 0)
    return times


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = load_settings(
            {"DATABASE_URL": url, "JOBBOT_WORKERS": "1", "JOBBOT_JOB_TIMEOUT": "60",
             "JOBBOT_SANDBOX_UID_BASE": str(UID_BASE)},
            env_file=None,
        )  # fmt: skip
        runtime = Runtime(settings, store=SqlStore(make_engine(url)))
        runtime.migrate()
        runtime.start_workers()
        executor = runtime.executor
        assert isinstance(executor, LocalExecutor)
        other = SqlStore(make_engine(url))
        elsewhere = JobService(other, SystemClock(), runtime.service.limits)
        try:
            results = {
                "Executor.stop (baseline)": direct(executor),
                "cancel in the worker's process": through_the_store(runtime, runtime.service),
                "cancel from another process": through_the_store(runtime, elsewhere),
            }
        finally:
            runtime.stop(grace_s=5)
            other.close()
    base = statistics.median(results["Executor.stop (baseline)"])
    rows = [["path", "p50", "min", "max", "p50 / baseline"]]
    for name, values in results.items():
        p50 = statistics.median(values)
        rows.append([name, ms(p50), ms(min(values)), ms(max(values)), f"{p50 / base:.1f}"])
    print(f"{SAMPLES} cancels each, SQLite, JOBBOT_POLL_INTERVAL={settings.poll_interval:g} s")
    print(table(rows))


if __name__ == "__main__":
    main()
