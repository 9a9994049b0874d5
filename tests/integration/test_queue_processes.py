"""Several worker processes share one MariaDB queue: every job runs exactly once, counted by
executions (not rows), and SIGTERM stops each process cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.models import Identity, JobStatus, NewJob
from bot.store import SqlStore
from testbed.waiting import wait_until
from testbed.workers import executions, start_workers, stop_workers

JOBS = 200  # enough for four processes to contend for every claim


@pytest.mark.mariadb
@pytest.mark.slow
def test_four_worker_processes_run_200_jobs_exactly_once(
    mariadb_store: SqlStore, mariadb_url: str, tmp_path: Path
) -> None:
    users = [mariadb_store.ensure_user(Identity("local", "h", f"u{i}")) for i in range(50)]
    code = "def main(n):\n    return n * n\n"
    ids = [
        mariadb_store.submit(NewJob(users[i % 50].id, "sq.py", code, "0" * 64, f'{{"n": {i}}}'))[
            0
        ].id
        for i in range(JOBS)
    ]
    log = tmp_path / "executions.log"
    procs = start_workers(4, mariadb_url, log)
    try:
        wait_until(
            lambda: mariadb_store.count_by_status()[JobStatus.DONE] == JOBS,
            timeout=240,
            interval=0.25,
            message=f"{JOBS} jobs done",
        )
    finally:
        codes = stop_workers(procs)
    counts = executions(log)
    assert set(counts) == set(ids)
    assert max(counts.values()) == 1
    assert codes == [0, 0, 0, 0]
    sample = mariadb_store.get(ids[7])
    assert sample is not None and sample.result == 49
    pids = {line.split()[1] for line in log.read_text().splitlines()}
    assert len(pids) == 4, "every worker process took part"
