"""Engine flows with JOBBOT_EXECUTOR=lambda against the stand-in: the CLI gives the same jobs as
with the local executor, and a throttling storm delays jobs without running any twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app.config import Settings
from bot.app.wiring.runtime import Runtime
from bot.core.models import Identity, Job, JobStatus
from bot.executors.aws_lambda.client import build_lambda_client, function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor
from bot.store import SqlStore, make_engine
from testbed.lambda_setup import lambda_settings
from testbed.lambda_standin import LambdaStandIn
from testbed.waiting import wait_until

REPO = Path(__file__).resolve().parents[3]
JOB_TIMEOUT = "1.5"  # slow.py ticks each second: the kill lands between ticks
EXAMPLES = {
    "soma.py": '{"a": 5, "b": 3}',
    "fails.py": '{"items": [1, 2, 0]}',
    "stats.py": '{"numbers": [3, 1, 4, 1, 5, 9, 2, 6]}',
    "stdin_echo.py": '{"name": "Ada"}',
    "report.py": '{"rows": 200}',
    "slow.py": '{"seconds": 30}',
}
VARYING = {"id", "created_at", "started_at", "finished_at", "duration_ms", "executor"}


def cli_run(executor: str, example: str, cwd: Path, extra_env: dict[str, str]) -> dict:
    """`python -m bot run examples/<example> --json` in a fresh process; the job as JSON."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("JOBBOT_", "SLACK_"))},
        **extra_env,
        "PYTHONPATH": str(REPO),
        "DATABASE_URL": f"sqlite:///{cwd / (executor + '.db')}",
        "JOBBOT_EXECUTOR": executor,
        "JOBBOT_JOB_TIMEOUT": JOB_TIMEOUT,
        "JOBBOT_WORKERS": "1",
        "JOBBOT_SANDBOX_UID_BASE": "62600",  # clear of other tests' sandbox uids
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            str(REPO / "examples" / example),
            "--json",
            "--input",
            EXAMPLES[example],
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_cli_gives_the_same_job_on_lambda_as_locally(
    standin: LambdaStandIn, tmp_path: Path, example: str
) -> None:
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}

    local = cli_run("local", example, tmp_path, {})
    remote = cli_run("lambda", example, tmp_path, aws)

    assert (local["executor"], remote["executor"]) == ("local", "lambda")
    assert {k: v for k, v in local.items() if k not in VARYING} == {
        k: v for k, v in remote.items() if k not in VARYING
    }
    assert standin.executions == 1


@dataclass
class Storm:
    """What a throttling storm did to four jobs: their final state and every status seen."""

    final: list[Job]
    seen: dict[int, list[tuple[float, JobStatus]]]  # job id -> (monotonic time, status)
    runtime: Runtime


def storm_settings(**values: str) -> Settings:
    """Settings for the storm: two invokes in flight (as many as the stand-in's environments),
    all four jobs of one user allowed to run at once, and the network on (the jobs report to
    the stand-in's beacons)."""
    return lambda_settings(
        JOBBOT_JOB_TIMEOUT="2",
        JOBBOT_LAMBDA_NETWORK="on",
        JOBBOT_LAMBDA_CONCURRENCY="2",
        JOBBOT_MAX_JOBS_PER_USER="4",
        JOBBOT_POLL_INTERVAL="0.05",
        **values,
    )


def run_storm(
    standin: LambdaStandIn,
    runtime: Runtime,
    throttle: Callable[[LambdaStandIn], None],
    timeout: float = 30.0,
) -> Storm:
    """Submit four beacon jobs, throttle, start the workers, and watch until all are final."""
    runtime.migrate()
    actor = runtime.service.actor(Identity("local", "test", "storm"))
    host, port, _ = standin.beacon_url("")
    jobs = [
        runtime.service.submit(
            actor,
            f"job{n}.py",
            (
                "import socket\n"
                f"s = socket.create_connection(({host!r}, {port}))\n"
                f"s.sendall(b'GET /beacon/job{n} HTTP/1.0\\r\\n\\r\\n')\n"
                f"s.recv(10)\nprint({n})\n"
            ).encode(),
            "{}",
        )[0]
        for n in range(4)
    ]
    seen: dict[int, list[tuple[float, JobStatus]]] = {job.id: [] for job in jobs}

    def watch() -> bool:
        for job in jobs:
            found = runtime.store.get(job.id)
            assert found is not None
            if not seen[job.id] or seen[job.id][-1][1] is not found.status:
                seen[job.id].append((time.monotonic(), found.status))
        return all(history[-1][1].is_final for history in seen.values())

    throttle(standin)
    runtime.start_workers()
    try:
        wait_until(watch, timeout=timeout, interval=0.05, message="every job to finish")
        final = [runtime.store.get(job.id) for job in jobs]
    finally:
        runtime.stop(grace_s=5)
    return Storm([j for j in final if j is not None], seen, runtime)


def assert_each_ran_once(storm: Storm, standin: LambdaStandIn) -> None:
    """Every job done with its own result, its code run exactly once (beacons, executions)."""
    assert [j.status for j in storm.final] == [JobStatus.DONE] * 4
    assert [j.result for j in storm.final] == ["0", "1", "2", "3"]
    assert {key: standin.beacons[key] for key in (f"job{n}" for n in range(4))} == {
        f"job{n}": 1 for n in range(4)
    }
    assert standin.executions == 4  # events handed to the handler: none ran twice


def test_a_throttling_storm_delays_jobs_but_runs_each_exactly_once(
    standin: LambdaStandIn, tmp_path: Path
) -> None:
    settings = storm_settings()
    assert standin.timeout_s == function_timeout_s(settings.job_timeout)
    store = SqlStore(make_engine(f"sqlite:///{tmp_path / 'jobs.db'}"))
    runtime = Runtime(
        settings,
        store=store,
        # as wiring builds it, with the requeue back-off scaled down to test speed
        executor_factory=lambda s: LambdaExecutor(
            build_lambda_client(s),
            s.lambda_function,
            concurrency=s.lambda_concurrency,
            network=s.lambda_network == "on",
            requeue_backoff_s=0.1,
            requeue_cap_s=0.5,
        ),
    )

    # more throttles than 4 jobs can absorb with in-process retries
    storm = run_storm(standin, runtime, lambda s: s.throttle(times=16))

    assert_each_ran_once(storm, standin)
    assert standin.counters["throttled"] == 16
    assert max(j.attempts for j in storm.final) > 1  # some went back to the queue and returned


def test_the_per_user_limit_still_holds_on_lambda(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = lambda_settings(
        JOBBOT_LAMBDA_CONCURRENCY="4", JOBBOT_MAX_JOBS_PER_USER="2", JOBBOT_POLL_INTERVAL="0.05"
    )
    with LambdaStandIn(
        timeout_s=function_timeout_s(settings.job_timeout), max_concurrency=4
    ) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        standin.warm_up(4)
        runtime = Runtime(settings, store=SqlStore(make_engine(f"sqlite:///{tmp_path / 'j.db'}")))
        runtime.migrate()
        actor = runtime.service.actor(Identity("local", "test", "busy"))
        code = b"import time\ntime.sleep(0.4)\n"
        ids = [runtime.service.submit(actor, "s.py", code, "{}")[0].id for _ in range(6)]
        runtime.start_workers()
        try:
            wait_until(
                lambda: all(
                    (j := runtime.service.get(i)) is not None and j.status.is_final for i in ids
                ),
                timeout=30,
                message="every job to finish",
            )
        finally:
            runtime.stop(grace_s=5)

        assert standin.executions == 6
        assert standin.peak_busy == 2  # 4 invokes allowed, but one user gets 2 at a time
