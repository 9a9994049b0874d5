"""`/job cancel` of a running job, end to end on both executors and both databases: the cancel
is asked through a service of its own (another store, as another process would), and the
worker running the job finds it in the database.

Local: the job's processes are killed and it ends `cancelled` with what it printed so far.
Lambda: the invoke cannot be stopped, so the job ends `cancelled` at once and the result that
comes back later is discarded (the job's code provably ran on: it reports to a beacon)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app.environment import load_settings
from bot.app.wiring.runtime import Runtime
from bot.core.clock import SystemClock
from bot.core.models import (
    STOPPED_UNSTOPPABLE_MESSAGE,
    Identity,
    Job,
    JobStatus,
    NotificationEvent,
)
from bot.core.service import JobService
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.local import LocalExecutor
from bot.store import SqlStore, make_engine
from testbed.lambda_setup import lambda_settings
from testbed.lambda_standin import LambdaStandIn
from testbed.waiting import wait_until
from tests.integration.executor.conftest import IS_ROOT, processes_of
from tests.integration.lambda_executor.conftest import aws_env

__all__ = ["aws_env"]  # the Lambda fixtures' AWS environment, used here too

ALICE = Identity("local", "test", "alice")
BOB = Identity("local", "test", "bob")
ADMIN = Identity("local", "test", "admin")

# prints, says it runs (a file in its working directory), then would go on for long
LOCAL_JOB = """\
import subprocess, time
print("started", flush=True)
subprocess.Popen(["sleep", "60"])
open("running", "w").close()
time.sleep(60)
print("never")
"""


@pytest.fixture(params=["mariadb", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each kind."""
    if request.param == "mariadb":
        request.getfixturevalue("mariadb_store")  # cleans the session's database
        return str(request.getfixturevalue("mariadb_url"))
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    SqlStore(make_engine(url)).migrate()
    return url


@pytest.fixture
def elsewhere(database_url: str) -> Iterator[JobService]:
    """A service on its own store, as in the process that receives the cancel: it shares
    nothing with the worker's process but the database."""
    store = SqlStore(make_engine(database_url))
    yield JobService(
        store,
        SystemClock(),
        Runtime(load_settings({}, env_file=None), store=store).service.limits,
        admins=frozenset({ADMIN.external_id}),
    )
    store.close()


def start(runtime: Runtime) -> Runtime:
    runtime.migrate()
    runtime.start_workers()
    return runtime


def final(service: JobService, job_id: int) -> Job:
    job: Job = wait_until(
        lambda: (j := service.get(job_id)) is not None and j.status.is_final and j,
        timeout=30,
        message="the job to end",
    )
    return job


def finished_notes(runtime: Runtime, job_id: int) -> int:
    events = runtime.store.notification_events(job_id)
    return [event for event, _ in events].count(NotificationEvent.FINISHED)


def code_runs(executor: LocalExecutor) -> bool:
    """True once a process of the job's uids has written its `running` marker."""
    for pid in processes_of(executor.uids):
        try:
            if os.path.exists(f"/proc/{pid}/cwd/running"):
                return True
        except OSError:
            continue
    return False


@pytest.mark.skipif(not IS_ROOT, reason="the job's files are watched through /proc")
def test_a_local_run_is_killed_and_ends_cancelled_with_its_output_so_far(
    database_url: str, elsewhere: JobService
) -> None:
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "JOBBOT_WORKERS": "1",
            "JOBBOT_JOB_TIMEOUT": "30",
            "JOBBOT_POLL_INTERVAL": "0.05",
            "JOBBOT_SANDBOX_UID_BASE": "62700",
        },
        env_file=None,
    )
    runtime = start(Runtime(settings, store=SqlStore(make_engine(database_url))))
    try:
        job, _ = runtime.service.submit(
            runtime.service.actor(ALICE), "long.py", LOCAL_JOB.encode(), "{}", route="r"
        )
        executor = runtime.executor
        assert isinstance(executor, LocalExecutor)
        wait_until(lambda: code_runs(executor), timeout=30, message="the job's code to run")

        with pytest.raises(Exception, match="not yours"):
            elsewhere.cancel(elsewhere.actor(BOB), job.id)
        asked = elsewhere.cancel(elsewhere.actor(ALICE), job.id)
        assert asked.status is JobStatus.RUNNING and asked.stop_requested_at is not None

        ended = final(elsewhere, job.id)
        assert ended.status is JobStatus.CANCELLED
        assert ended.stdout == "started\n"
        assert ended.error_type == "Cancelled" and not ended.never_ran
        wait_until(lambda: not processes_of(executor.uids), message="the job's processes to go")
        assert finished_notes(runtime, job.id) == 1
        with pytest.raises(Exception, match="already finished"):
            elsewhere.cancel(elsewhere.actor(ALICE), job.id)
    finally:
        runtime.stop(grace_s=10)


def test_a_lambda_run_ends_cancelled_at_once_and_its_late_result_is_dropped(
    database_url: str,
    elsewhere: JobService,
    aws_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = lambda_settings(
        DATABASE_URL=database_url,
        JOBBOT_JOB_TIMEOUT="10",
        JOBBOT_LAMBDA_NETWORK="on",  # the job reports to the stand-in's beacons
        JOBBOT_POLL_INTERVAL="0.05",
    )
    with LambdaStandIn(timeout_s=function_timeout_s(settings.job_timeout)) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        host, port, _ = standin.beacon_url("")

        def beacon(key: str) -> str:
            return (
                f"s = socket.create_connection(({host!r}, {port}))\n"
                f"s.sendall(b'GET /beacon/{key} HTTP/1.0\\r\\n\\r\\n')\ns.recv(10)\ns.close()\n"
            )

        code = (
            "import socket, time\nprint('started', flush=True)\n"
            + beacon("running")
            + "time.sleep(3)\n"
            + beacon("ran-on")
            + "print('late')\n"
        )
        runtime = start(Runtime(settings, store=SqlStore(make_engine(database_url))))
        try:
            job, _ = runtime.service.submit(
                runtime.service.actor(ALICE), "long.py", code.encode(), "{}", route="r"
            )
            wait_until(lambda: standin.beacons["running"] == 1, message="the job's code to run")

            asked = elsewhere.cancel(elsewhere.actor(ADMIN), job.id)  # an admin may, too
            assert asked.status is JobStatus.RUNNING

            ended = final(elsewhere, job.id)
            assert ended.status is JobStatus.CANCELLED
            assert ended.error_message == STOPPED_UNSTOPPABLE_MESSAGE
            # the invoke ran on to its end, and what it returned changed nothing
            wait_until(lambda: standin.beacons["ran-on"] == 1, message="the invoke to run on")
            wait_until(lambda: runtime.pool is not None and runtime.pool.busy == 0)
            assert elsewhere.get(job.id) == ended
            assert not ended.stdout and ended.result_json is None
            assert standin.executions == 1
            assert finished_notes(runtime, job.id) == 1
        finally:
            runtime.stop(grace_s=10)
