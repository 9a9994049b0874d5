"""`kill -9` of `serve` and of `worker` at each point of a job's life, end to end: jobs come in
as signed `/job run` requests to a real serve process on MariaDB, run in the real local sandbox,
and are reported through the Slack stand-in. The process SIGKILLs itself at the point (see
testbed/worker_process.py); a surviving process with the Slack settings brings every job
to a final state and tells its owner exactly once, and no job's code runs twice. The last
test shows the one documented repeat (a kill between Slack's answer and the outbox's record).

Engine-level versions (no Slack) are in tests/integration/test_crash_recovery.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import JobStatus
from bot.slack.budget import POST, buckets
from bot.store import SqlStore
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import Submitter, assert_told_once, settled, slack_env, told
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers

JOBS = 3
# A 3 s lease (2 s timeout + 1 s margin) so recovery is quick; one slot, so the crash point is
# reached by exactly one job (the oldest) and the others are still waiting.
CRASHER = {"JOBBOT_JOB_TIMEOUT": "2", "JOBBOT_LEASE_MARGIN": "1", "JOBBOT_WORKERS": "1"}
SURVIVOR = {"JOBBOT_JOB_TIMEOUT": "2", "JOBBOT_LEASE_MARGIN": "1", "JOBBOT_WORKERS": "2"}
# The crasher's delivery lease: a result recorded before the kill (after-result) is leased to
# the crasher in the very transaction that stores it, and the survivor may deliver it only when
# that lease has run out (60 s in production; 3 s here, so the test does not wait a minute).
CRASHER_DELIVERY = ["--delivery-lease", "3"]
POINTS = [
    # point, what becomes of the job at the point, how often its code ran in all
    ("before-claim", JobStatus.DONE, 1),  # still waiting: the survivor runs it
    ("after-claim", JobStatus.DONE, 1),  # never invoked: requeued, run once by the survivor
    ("after-invoked", JobStatus.ERROR, 0),  # may have started: "interrupted", never re-run
    ("after-result", JobStatus.DONE, 1),  # stored before the kill: kept, the survivor notifies
]


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """A fresh Slack stand-in per test, so its records are this test's alone."""
    with SlackStandIn() as fake:
        yield fake


def submit_jobs(server: ServeProcess, standin: SlackStandIn, store: SqlStore) -> list[int]:
    """JOBS `/job run` requests through Slack; their job ids, oldest first."""
    person = Submitter(standin, store)
    person.share(server)
    for n in range(JOBS):
        sent = person.run(server, f'{{"n": {n}}}')
        assert sent.status == 200 and sent.body == "", "acknowledged at once, nothing to show"
    jobs = wait_until(
        lambda: len(found := person.jobs()) == JOBS and found, message=f"{JOBS} jobs stored"
    )
    return [job.id for job in jobs]


def check_outcome(
    store: SqlStore,
    standin: SlackStandIn,
    ids: list[int],
    log: Path,
    status: JobStatus,
    runs: int,
) -> None:
    jobs = settled(store, ids, timeout=60)
    first, *rest = jobs
    assert first.status is status
    if status is JobStatus.ERROR:
        assert first.error_message == "interrupted: the worker stopped while the job was running"
    assert [job.status for job in rest] == [JobStatus.DONE] * (JOBS - 1)
    for job in jobs if status is JobStatus.DONE else rest:
        assert job.result == json.loads(job.input_json)["n"] + 1
    counts = executions(log)
    assert counts[first.id] == runs
    assert all(counts[job.id] == 1 for job in rest), counts
    for job in jobs:
        assert_told_once(standin, job)


@pytest.mark.mariadb
@pytest.mark.slow
@pytest.mark.parametrize(("point", "status", "runs"), POINTS)
def test_kill_9_of_serve_at_each_point_then_a_worker_finishes_and_tells_each_owner_once(
    mariadb_store: SqlStore,
    mariadb_url: str,
    standin: SlackStandIn,
    tmp_path: Path,
    point: str,
    status: JobStatus,
    runs: int,
) -> None:
    log, hold = tmp_path / "executions.log", tmp_path / "hold"
    hold.touch()
    crasher = ServeProcess(
        standin,
        mariadb_url,
        tmp_path,
        entry=[str(log), "--crash-at", point, "--hold-claims", str(hold), *CRASHER_DELIVERY],
        **CRASHER,
    ).start()
    try:
        ids = submit_jobs(crasher, standin, mariadb_store)
        hold.unlink()  # now the crasher claims, and dies at the point
        assert crasher.wait_exit(timeout=60) == -9
    finally:
        crasher.kill()
    survivors = start_workers(1, mariadb_url, log, env={**SURVIVOR, **slack_env(standin)})
    try:
        check_outcome(mariadb_store, standin, ids, log, status, runs)
    finally:
        assert stop_workers(survivors) == [0]


@pytest.mark.mariadb
@pytest.mark.slow
@pytest.mark.parametrize(("point", "status", "runs"), POINTS)
def test_kill_9_of_worker_at_each_point_then_serve_finishes_and_tells_each_owner_once(
    mariadb_store: SqlStore,
    mariadb_url: str,
    standin: SlackStandIn,
    tmp_path: Path,
    point: str,
    status: JobStatus,
    runs: int,
) -> None:
    log = tmp_path / "executions.log"
    hold_serve, hold_worker = tmp_path / "hold-serve", tmp_path / "hold-worker"
    hold_serve.touch()
    hold_worker.touch()
    server = ServeProcess(
        standin,
        mariadb_url,
        tmp_path,
        entry=[str(log), "--hold-claims", str(hold_serve)],
        **SURVIVOR,
    ).start()
    try:
        [crasher] = start_workers(
            1,
            mariadb_url,
            log,
            ["--crash-at", point, "--hold-claims", str(hold_worker), *CRASHER_DELIVERY],
            env={**CRASHER, **slack_env(standin)},
        )
        ids = submit_jobs(server, standin, mariadb_store)
        hold_worker.unlink()  # the worker claims, and dies at the point
        crasher.communicate(timeout=60)
        assert crasher.returncode == -9
        hold_serve.unlink()  # serve is the survivor
        check_outcome(mariadb_store, standin, ids, log, status, runs)
    finally:
        assert server.stop() == 0, server.log()[-3000:]


@pytest.mark.mariadb
@pytest.mark.slow
def test_kill_9_of_serve_right_after_it_stored_a_job_claimed_as_submitted(
    mariadb_store: SqlStore, mariadb_url: str, standin: SlackStandIn, tmp_path: Path
) -> None:
    """Claim-on-submit: serve's free slot takes the job in the very transaction that stores
    it, and serve dies right after that commit. The job was never invoked: once its lease
    runs out it goes back to the queue, and a worker runs it once and tells its owner once."""
    log = tmp_path / "executions.log"
    crasher = ServeProcess(
        standin, mariadb_url, tmp_path, entry=[str(log), "--crash-at", "after-claim"], **CRASHER
    ).start()
    try:
        person = Submitter(standin, mariadb_store)
        person.share(crasher)
        assert person.run(crasher, '{"n": 41}').status == 200
        assert crasher.wait_exit(timeout=60) == -9
    finally:
        crasher.kill()
    [stored] = person.jobs()
    assert stored.status is JobStatus.RUNNING and stored.invoked_at is None  # claimed, not run
    survivors = start_workers(1, mariadb_url, log, env={**SURVIVOR, **slack_env(standin)})
    try:
        [job] = settled(mariadb_store, [stored.id], timeout=60)
    finally:
        assert stop_workers(survivors) == [0]
    assert job.status is JobStatus.DONE and job.result == 42 and job.attempts == 2
    assert executions(log)[job.id] == 1
    assert_told_once(standin, job)


@pytest.mark.mariadb
@pytest.mark.slow
def test_kill_9_of_serve_between_slacks_answer_and_the_outbox_record_posts_the_outcome_twice(
    mariadb_store: SqlStore, mariadb_url: str, standin: SlackStandIn, tmp_path: Path
) -> None:
    """The one documented repeat: Slack took the outcome messages, then the process died before
    the outbox recorded them. After the delivery's lease (60 s; 10 s here, so the test does not
    wait a minute) a survivor delivers again, so the outcome reply appears twice; the job still
    ran once and its status message is one."""
    log, hold = tmp_path / "executions.log", tmp_path / "hold"
    hold.touch()
    entry = [str(log), "--crash-at", "after-post", "--hold-claims", str(hold)]
    crasher = ServeProcess(
        standin, mariadb_url, tmp_path, entry=[*entry, "--delivery-lease", "10"], **CRASHER
    ).start()
    try:
        person = Submitter(standin, mariadb_store)
        person.share(crasher)
        assert person.run(crasher, '{"n": 41}').status == 200
        job_id = wait_until(lambda: person.jobs() and person.jobs()[0].id, message="stored")
        hold.unlink()
        assert crasher.wait_exit(timeout=60) == -9
    finally:
        crasher.kill()
    assert len(told(standin, job_id).finals) == 1, "the outcome went out before the kill"
    survivors = start_workers(1, mariadb_url, log, env={**SURVIVOR, **slack_env(standin)})
    try:
        [job] = settled(mariadb_store, [job_id], timeout=120)
    finally:
        assert stop_workers(survivors) == [0]
    assert job.status is JobStatus.DONE and job.result == 42
    assert executions(log)[job_id] == 1
    seen = told(standin, job_id)
    assert seen.parents == [] and seen.updates == [], "a fast job: its outcome is its one message"
    assert len(seen.finals) == 2, "posted again, as the README says it can be"
    assert seen.finals[0]["text"] == seen.finals[1]["text"]


@pytest.mark.mariadb
@pytest.mark.slow
def test_kill_9_of_serve_while_a_result_waits_for_its_turn_then_a_worker_tells_it_once(
    mariadb_store: SqlStore, mariadb_url: str, standin: SlackStandIn, tmp_path: Path
) -> None:
    """The result's delivery reserved a turn seconds ahead in its channel's full bucket (the
    outbox recorded the turn with the delivery) and serve dies while it waits. A worker
    delivers it once, in that turn, with no 429."""
    log = tmp_path / "executions.log"
    crasher = ServeProcess(
        standin, mariadb_url, tmp_path, entry=[str(log), "--crash-at", "after-held"], **CRASHER
    ).start()
    try:
        person = Submitter(standin, mariadb_store)
        person.share(crasher)
        # Other deliveries have taken the channel's turns for the next few seconds.
        for _ in range(8):
            mariadb_store.take_turn(buckets(POST, person.channel), time.time(), wait=True)
        assert person.run(crasher, '{"n": 41}').status == 200
        assert crasher.wait_exit(timeout=60) == -9
    finally:
        crasher.kill()
    [stored] = person.jobs()
    assert stored.status is JobStatus.DONE and stored.origin.get("slack_turn")
    assert told(standin, stored.id).finals == [], "it waited for its turn: nothing sent"
    survivors = start_workers(1, mariadb_url, log, env={**SURVIVOR, **slack_env(standin)})
    try:
        [job] = settled(mariadb_store, [stored.id], timeout=60)
    finally:
        assert stop_workers(survivors) == [0]
    assert job.result == 42 and executions(log)[job.id] == 1
    assert_told_once(standin, job)
    assert job.origin.get("slack_turn") is None, "the reserved turn was used"
    assert standin.rate_limited() == []
