"""`kill -9` of `serve` right after it acknowledged a `/job run` to Slack, before the job was
stored: the request is in the intake journal, so another serve — or a `worker` with the Slack
settings — takes it up once its lease runs out: the job is stored and runs once, and its owner
is told once. Slack does not resend a request it got an answer to, so without the journal this
submission would be lost."""

from __future__ import annotations

import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.core.models import JobStatus
from bot.store import SqlStore
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import Submitter, assert_told_once, settled, slack_env
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers

FAST = {"JOBBOT_INTAKE_LEASE": "2", "JOBBOT_JOB_TIMEOUT": "3"}


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """A fresh Slack stand-in per test, so its records are this test's alone."""
    with SlackStandIn() as fake:
        yield fake


@pytest.mark.mariadb
@pytest.mark.slow
@pytest.mark.parametrize("survivor_kind", ["serve", "worker"])
def test_kill_9_after_the_ack_loses_nothing(
    mariadb_store: SqlStore,
    mariadb_url: str,
    standin: SlackStandIn,
    tmp_path: Path,
    survivor_kind: str,
) -> None:
    log = tmp_path / "executions.log"
    crasher = ServeProcess(
        standin, mariadb_url, tmp_path, entry=[str(log), "--crash-at", "after-ack"], **FAST
    ).start()
    person = Submitter(standin, mariadb_store)
    try:
        person.share(crasher)
        try:
            # The ack may or may not leave before the process dies: both are covered.
            person.run(crasher, '{"n": 41}')
        except (urllib.error.URLError, ConnectionError):
            pass
        assert crasher.wait_exit(timeout=60) == -9
    finally:
        crasher.kill()
    assert person.jobs() == [], "the crash came before the job was stored"
    stop_survivor: Callable[[], object]
    if survivor_kind == "serve":
        survivor = ServeProcess(standin, mariadb_url, tmp_path, entry=[str(log)], **FAST).start()
        stop_survivor = survivor.stop
    else:
        workers = start_workers(1, mariadb_url, log, env={**slack_env(standin), **FAST})
        stop_survivor = lambda: stop_workers(workers)[0]  # noqa: E731
    try:
        [job] = wait_until(person.jobs, timeout=60, message="the orphaned request taken up")
        [done] = settled(mariadb_store, [job.id], timeout=60)
    finally:
        assert stop_survivor() == 0
    assert done.status is JobStatus.DONE
    assert done.result == 42
    assert executions(log)[job.id] == 1
    assert_told_once(standin, done)
