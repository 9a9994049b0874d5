"""The engine rides out a database outage: submissions during it are refused with a clear
"nothing was saved" (never silently dropped), workers recover by themselves without a restart,
and every accepted job runs exactly once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.core.models import Identity, JobStatus
from bot.errors import TemporarilyUnavailable
from bot.wiring import Runtime
from tests.integration.test_queue_processes import executions, start_workers, stop_workers
from tests.support.private_mariadb import PrivateMariaDB
from tests.support.waiting import wait_until

CODE = b"def main(n):\n    return n + 1\n"


@pytest.mark.slow
def test_jobs_survive_a_10_second_database_outage(
    private_db: PrivateMariaDB, tmp_path: Path
) -> None:
    settings = load_settings({"DATABASE_URL": private_db.url}, env_file=None)
    runtime = Runtime(settings)
    runtime.migrate()
    actors = [runtime.service.actor(Identity("local", "h", f"u{i}")) for i in range(10)]
    log = tmp_path / "executions.log"
    workers = start_workers(2, private_db.url, log)
    accepted: list[int] = []
    refusals: list[str] = []
    try:
        outage_ends = float("inf")
        for i in range(200):
            if i == 60:
                private_db.stop()
                outage_ends = time.monotonic() + 10
            if private_db.proc is None and time.monotonic() >= outage_ends:
                private_db.start()
            try:
                job, _ = runtime.service.submit(actors[i % 10], "inc.py", CODE, f'{{"n": {i}}}')
                accepted.append(job.id)
            except TemporarilyUnavailable as exc:
                refusals.append(exc.message)
                time.sleep(0.1)  # a person retrying, not synchronisation
        if private_db.proc is None:
            private_db.start()
        wait_until(
            lambda: runtime.store.count_by_status()[JobStatus.DONE] == len(accepted),
            timeout=120,
            interval=0.25,
            message="every accepted job done",
        )
    finally:
        codes = stop_workers(workers)
        runtime.stop()
    counts = executions(log)
    assert refusals, "the outage was noticed"
    assert all("Nothing was saved" in message for message in refusals)
    assert sorted(counts) == sorted(accepted)
    assert max(counts.values()) == 1
    assert codes == [0, 0]
