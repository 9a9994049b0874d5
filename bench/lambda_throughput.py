"""L2: jobs per second with JOBBOT_LAMBDA_CONCURRENCY=64 and 1-second jobs (target ≥ 50 jobs/s).

    .venv/bin/python -m bench.lambda_throughput      # JOBBOT_BENCH_L2=<jobs>, default 640

What it measures, exactly: jobbot's side of Lambda at concurrency 64. The stand-in simulates
the function (runtime="simulated": every invocation sleeps 1 s in the stand-in's HTTP thread
and answers a canned protocol-v1 response, up to 64 at once), so no interpreters are started
and the figure is how fast jobbot can keep 64 one-second invokes in flight: real boto3
clients with SigV4, real HTTP on loopback, the executor's semaphore and result mapping, and in
the engine figure also the worker pool claiming from and finishing into a SQLite store.

- executor: 64 threads call LambdaExecutor.run() back to back (what the worker slots do);
- engine: the jobs are submitted to a Runtime (SQLite file, JOBBOT_WORKERS=64) at once and
  the clock stops when the last one is stored as done;
- baseline, same run: 64 threads POSTing the same request with bare http.client (no SDK), the
  ceiling the stand-in itself allows. The ideal is 64 jobs/s.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from bench.lambda_overhead import REGION, aws_environment
from bench.stats import table
from bot.app.environment import load_settings
from bot.app.wiring.runtime import Runtime
from bot.core.models import Identity, JobStatus, Outcome, RunRequest
from bot.executors.aws_lambda.executor import build_lambda_executor, encode_request
from bot.store import SqlStore, make_engine
from testbed.lambda_standin import LambdaStandIn

CONCURRENCY = 64
JOB_S = 1.0
JOBS = int(os.environ.get("JOBBOT_BENCH_L2", "640"))
CODE = "import time\ntime.sleep(1)\n"  # what the simulated function stands for

# What both measurements run with (the executor alone, and the engine around it).
SETTINGS = {
    "JOBBOT_EXECUTOR": "lambda",
    "JOBBOT_JOB_TIMEOUT": "10",
    "AWS_REGION": REGION,
    "JOBBOT_LAMBDA_CONCURRENCY": str(CONCURRENCY),
    "JOBBOT_MAX_JOBS_PER_USER": str(CONCURRENCY),
}


def in_threads(work: Callable[[], None], jobs: int, threads: int) -> float:
    """Run `work` `jobs` times on `threads` threads; jobs per second."""
    left = [jobs]
    lock = threading.Lock()

    def loop() -> None:
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            work()

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return jobs / (time.perf_counter() - started)


def main() -> None:
    """Measure and print L2."""
    settings = load_settings({**SETTINGS, "JOBBOT_LOG_LEVEL": "WARNING"}, env_file=None)
    request = RunRequest(1, "sleep.py", CODE, "{}", settings.job_timeout, 256, 1 << 20)
    with LambdaStandIn(
        runtime="simulated", simulated_s=JOB_S, max_concurrency=CONCURRENCY
    ) as standin:
        aws_environment(standin.endpoint_url)
        url = urlsplit(standin.endpoint_url)
        payload = encode_request(request)
        local = threading.local()

        def bare() -> None:
            if not hasattr(local, "conn"):
                local.conn = http.client.HTTPConnection(url.hostname or "", url.port)
            local.conn.request(
                "POST",
                "/2015-03-31/functions/jobbot-runner/invocations",
                body=payload,
                headers={"X-Amz-Tenant-Id": "bench"},  # the function is per-tenant, as deployed
            )
            response = local.conn.getresponse()
            assert response.status == 200, response.read()
            json.loads(response.read())

        baseline = in_threads(bare, JOBS, CONCURRENCY)

        executor = build_lambda_executor(settings)

        def invoke() -> None:
            assert executor.run(request).outcome is Outcome.OK

        direct = in_threads(invoke, JOBS, CONCURRENCY)
        executor.close()

        engine_rate = engine(standin)
        throttled = standin.counters["throttled"]

    ideal = CONCURRENCY / JOB_S
    rows = [
        ["", "jobs/s", "of ideal", "of baseline"],
        ["ideal (64 in flight, 1 s each)", f"{ideal:.1f}", "1.00", ""],
        ["baseline: bare http.client", f"{baseline:.1f}", f"{baseline / ideal:.2f}", "1.00"],
        [
            "LambdaExecutor.run (64 threads)",
            f"{direct:.1f}",
            f"{direct / ideal:.2f}",
            f"{direct / baseline:.2f}",
        ],
        [
            "engine: submit -> done (SQLite)",
            f"{engine_rate:.1f}",
            f"{engine_rate / ideal:.2f}",
            f"{engine_rate / baseline:.2f}",
        ],
    ]
    print(
        f"L2: {JOBS} one-second jobs, JOBBOT_LAMBDA_CONCURRENCY={CONCURRENCY}, "
        f"{os.cpu_count()} CPUs"
    )
    print(table(rows))
    print(f"throttled invokes: {throttled}")
    best = min(direct, engine_rate)
    verdict = "met" if best >= 50 else "NOT met"
    print(
        f"L2 {engine_rate:.1f} jobs/s end to end, {direct:.1f} through the executor "
        f"(target >= 50: {verdict})"
    )


def engine(standin: LambdaStandIn) -> float:
    """Jobs per second through the worker pool (on the stand-in the AWS environment points
    at): all submitted at once, until all are done."""
    directory = tempfile.mkdtemp(prefix="bench-l2-")
    values = {
        **SETTINGS,
        "JOBBOT_WORKERS": str(CONCURRENCY),
        "JOBBOT_POLL_INTERVAL": "0.05",
        "DATABASE_URL": f"sqlite:///{directory}/jobs.db",
    }
    settings = load_settings(values, env_file=None)
    store = SqlStore(make_engine(settings.database_url, pool_size=CONCURRENCY + 8))
    runtime = Runtime(settings, store=store)
    runtime.migrate()
    actor = runtime.service.actor(Identity("local", "bench", "l2"))
    before = standin.executions
    started = time.perf_counter()
    jobs = [
        runtime.service.submit(actor, "sleep.py", CODE.encode(), "{}")[0].id for _ in range(JOBS)
    ]
    runtime.start_workers()
    try:
        while True:
            counts = store.count_by_status()
            if counts.get(JobStatus.DONE, 0) + counts.get(JobStatus.ERROR, 0) >= len(jobs):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        runtime.stop(grace_s=5)
    assert store.count_by_status().get(JobStatus.DONE, 0) == len(jobs)
    assert standin.executions - before == len(jobs)
    return len(jobs) / elapsed


if __name__ == "__main__":
    main()
