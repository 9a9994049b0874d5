"""`kill -9` of a worker at each point of a job's life: the lease settles the job as specified
— requeued and run once if it never started, `error` ("interrupted") and never re-run if it
may have started, and an already stored result is kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.models import Identity, JobStatus, NewJob
from bot.store import SqlStore
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers

FAST_LEASE = {"JOBBOT_JOB_TIMEOUT": "2", "JOBBOT_LEASE_MARGIN": "1"}


def submit(store: SqlStore) -> int:
    owner = store.ensure_user(Identity("local", "h", "crash"))
    job, _ = store.submit(NewJob(owner.id, "ok.py", "print('survived')\n", "0" * 64, "{}"))
    return job.id


@pytest.mark.mariadb
@pytest.mark.slow
@pytest.mark.parametrize(
    ("point", "status", "runs"),
    [
        ("before-claim", JobStatus.DONE, 1),  # nothing happened yet: the survivor runs it
        ("after-claim", JobStatus.DONE, 1),  # never invoked: requeued, run once by the survivor
        ("after-invoked", JobStatus.ERROR, 0),  # may have started: interrupted, not re-run
        ("after-result", JobStatus.DONE, 1),  # result stored before the crash: kept as is
    ],
)
def test_kill_9_at_each_point_settles_the_job_as_specified(
    mariadb_store: SqlStore,
    mariadb_url: str,
    tmp_path: Path,
    point: str,
    status: JobStatus,
    runs: int,
) -> None:
    log = tmp_path / "executions.log"
    [crasher] = start_workers(1, mariadb_url, log, ["--crash-at", point], env=FAST_LEASE)
    job_id = submit(mariadb_store)
    crasher.communicate(timeout=60)
    assert crasher.returncode == -9
    survivors = start_workers(1, mariadb_url, log, env=FAST_LEASE)
    try:
        job = wait_until(
            lambda: (j := mariadb_store.get(job_id)) and j.status.is_final and j,
            timeout=60,
            interval=0.1,
            message=f"job settled after {point}",
        )
    finally:
        assert stop_workers(survivors) == [0]
    assert job.status is status
    assert executions(log)[job_id] == runs
    if status is JobStatus.ERROR:
        assert job.error_message == "interrupted: the worker stopped while the job was running"
    else:
        assert job.result == "survived"
