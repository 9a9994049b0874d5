"""SIGTERM under load: a worker, or serve with Slack requests still arriving, stops claiming,
lets its running jobs finish, exits within the job timeout plus 5 s, and leaves the rest queued
for other processes — nothing is lost."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bot.core.models import Identity, JobStatus, NewJob
from bot.store import SqlStore
from testbed.serve_process import ServeProcess
from testbed.slack_ledger import Submission, Submitter, assert_told_once, settled
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers

SLEEPY = "import time\ntime.sleep(2)\nprint('slept')\n"
TIMEOUT_S = 6


@pytest.mark.mariadb
@pytest.mark.slow
def test_sigterm_drains_running_jobs_and_keeps_the_rest_queued(
    mariadb_store: SqlStore, mariadb_url: str, tmp_path: Path
) -> None:
    ids = []
    for i in range(12):
        owner = mariadb_store.ensure_user(Identity("local", "h", f"s{i}"))
        ids.append(
            mariadb_store.submit(NewJob(owner.id, "sleepy.py", SLEEPY, "0" * 64, "{}"))[0].id
        )
    log = tmp_path / "executions.log"
    env = {"JOBBOT_JOB_TIMEOUT": str(TIMEOUT_S)}
    [worker] = start_workers(1, mariadb_url, log, env=env)
    wait_until(
        lambda: mariadb_store.count_by_status()[JobStatus.RUNNING] == 4,
        timeout=30,
        message="four jobs running",
    )
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    _, err = exit_or_dump(worker, TIMEOUT_S + 10)
    elapsed = time.monotonic() - started
    assert worker.returncode == 0, err
    assert elapsed <= TIMEOUT_S + 5
    counts = mariadb_store.count_by_status()
    assert counts[JobStatus.RUNNING] == 0, "running jobs finished before the exit"
    assert counts[JobStatus.DONE] == 4
    assert counts[JobStatus.WAITING] == 8, "the rest stay queued"
    survivors = start_workers(1, mariadb_url, log, env=env)
    try:
        wait_until(
            lambda: mariadb_store.count_by_status()[JobStatus.DONE] == 12,
            timeout=60,
            message="the rest done by another worker",
        )
    finally:
        assert stop_workers(survivors) == [0]
    runs = executions(log)
    assert sorted(runs) == sorted(ids)
    assert max(runs.values()) == 1


def exit_or_dump(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """The worker's output once it exits; if it has not within `timeout`, fail with every
    thread's stack (faulthandler on SIGUSR1) and its log."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGUSR1)
        try:  # faulthandler writes at once; read it while the process hangs on
            process.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
        _, err = process.communicate(timeout=30)
        pytest.fail(f"the worker had not exited {timeout} s after SIGTERM:\n{err}")


SLOW = "import time\n\n\ndef main(n):\n    time.sleep(3)\n    return n + 1\n"


@pytest.mark.mariadb
@pytest.mark.slow
def test_sigterm_of_serve_under_slack_load_exits_in_time_and_a_restart_finishes_the_rest(
    mariadb_store: SqlStore, mariadb_url: str, tmp_path: Path
) -> None:
    """serve with 4 jobs of 3 s running, 12 more queued and `/job run` requests still arriving:
    SIGTERM stops it within the job timeout + 5 s, with no job left running; every request it
    acknowledged is stored or answered; a restarted serve runs the rest, each job once, and
    each owner is told once."""
    log = tmp_path / "executions.log"
    settings = {"JOBBOT_JOB_TIMEOUT": str(TIMEOUT_S), "JOBBOT_WORKERS": "4"}
    with SlackStandIn() as standin:
        first = ServeProcess(standin, mariadb_url, tmp_path, entry=[str(log)], **settings).start()
        people = [Submitter(standin, mariadb_store) for _ in range(8)]
        for person in people:
            person.share(first, SLOW)
        sent = [p.run(first, f'{{"n": {i}}}') for i in range(2) for p in people]
        wait_until(
            lambda: mariadb_store.count_by_status()[JobStatus.RUNNING] == 4,
            timeout=30,
            message="four jobs running",
        )
        late = LateRequests(first, people)
        late.start()
        wait_until(lambda: len(late.sent) >= 3, message="requests arriving")
        started = time.monotonic()
        assert first.process is not None
        ran_at_signal = executions(log)
        first.process.send_signal(signal.SIGTERM)
        code = first.wait_exit(timeout=TIMEOUT_S + 15)
        elapsed = time.monotonic() - started
        late.stop()
        counts = mariadb_store.count_by_status()
        ran_before = executions(log)
        second = ServeProcess(standin, mariadb_url, tmp_path, entry=[str(log)], **settings).start()
        try:
            acked = [s for s in [*sent, *late.sent] if s.status == 200]
            stored = {job.idempotency_key: job.id for p in people for job in p.jobs()}
            for s in acked:
                assert s.key in stored or s.private_replies(), f"{s.key} acknowledged, then lost"
            jobs = settled(mariadb_store, stored.values(), timeout=90)
        finally:
            assert second.stop() == 0
    assert code == 0, first.log()[-3000:]
    assert "exception in trigger thunk" not in first.log(), "the HTTP server stopped cleanly"
    assert elapsed <= TIMEOUT_S + 5, f"exit took {elapsed:.1f} s"
    assert counts[JobStatus.RUNNING] == 0, "running jobs finished (or were released) first"
    assert ran_before == ran_at_signal, "nothing started after the SIGTERM"
    assert counts[JobStatus.DONE] == len(ran_at_signal) >= 4, "those running finished"
    assert counts[JobStatus.WAITING] == len(stored) - len(ran_at_signal), "the rest queued"
    runs = executions(log)
    assert sorted(runs) == sorted(stored.values()) and max(runs.values()) == 1
    assert len(ran_before) == counts[JobStatus.DONE]
    for job in jobs:
        assert job.status is JobStatus.DONE
        assert_told_once(standin, job)
    print(
        f"\nSIGTERM with {len(ran_at_signal)} running, {counts[JobStatus.WAITING]} waiting: "
        f"exit 0 after "
        f"{elapsed:.1f} s (limit {TIMEOUT_S + 5} s); {len(late.sent)} late requests acknowledged "
        f"(each stored), {late.refused} refused at the closed port; {len(jobs)} jobs, "
        "each run once and told once after the restart"
    )


class LateRequests(threading.Thread):
    """Keeps sending `/job run` (one every 100 ms) until stopped; refused connections count."""

    def __init__(self, server: ServeProcess, people: list[Submitter]) -> None:
        super().__init__(name="late-requests", daemon=True)
        self.server = server
        self.people = people
        self.sent: list[Submission] = []
        self.refused = 0
        self._halt = threading.Event()

    def run(self) -> None:
        i = 100
        while not self._halt.wait(0.1):
            person = self.people[i % len(self.people)]
            try:
                self.sent.append(person.run(self.server, f'{{"n": {i}}}', timeout=5))
            except OSError:
                self.refused += 1  # the listener closed: Slack shows the user an error
            i += 1

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
