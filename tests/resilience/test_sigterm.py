"""SIGTERM under load: a worker stops claiming, lets its running jobs finish, exits within the
job timeout plus 5 s, and leaves the rest queued for other workers — nothing is lost."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from bot.core.models import Identity, JobStatus, NewJob
from bot.store import SqlStore
from tests.integration.test_queue_processes import executions, start_workers, stop_workers
from tests.support.waiting import wait_until

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
    worker.communicate(timeout=TIMEOUT_S + 10)
    elapsed = time.monotonic() - started
    assert worker.returncode == 0
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
