"""Several worker processes share one MariaDB queue: every job runs exactly once, counted by
executions (not rows), and SIGTERM stops each process cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.core.models import Identity, JobStatus, NewJob
from bot.store import SqlStore
from tests.support.processes import track
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def start_workers(
    count: int,
    url: str,
    executions: Path,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> list[subprocess.Popen[str]]:
    environ = {
        **os.environ,
        "DATABASE_URL": url,
        "JOBBOT_WORKERS": "4",
        "JOBBOT_MAX_JOBS_PER_USER": "4",
        "JOBBOT_LOG_LEVEL": "WARNING",
        "JOBBOT_POLL_INTERVAL": "0.1",
        **(env or {}),
    }
    procs = [
        track(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.support.worker_process",
                    str(executions),
                    *(extra or []),
                ],
                cwd=ROOT,
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return procs


def stop_workers(procs: list[subprocess.Popen[str]]) -> list[int]:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        _, err = proc.communicate(timeout=60)  # also closes the pipes
        if proc.returncode not in (0, -9):
            print(f"worker {proc.pid} exited {proc.returncode}:\n{err}")
    return [proc.returncode for proc in procs]


def executions(path: Path) -> Counter[int]:
    if not path.exists():
        return Counter()
    return Counter(int(line.split()[0]) for line in path.read_text().splitlines() if line)


@pytest.mark.mariadb
@pytest.mark.slow
def test_four_worker_processes_run_500_jobs_exactly_once(
    mariadb_store: SqlStore, mariadb_url: str, tmp_path: Path
) -> None:
    users = [mariadb_store.ensure_user(Identity("local", "h", f"u{i}")) for i in range(50)]
    code = "def main(n):\n    return n * n\n"
    ids = [
        mariadb_store.submit(NewJob(users[i % 50].id, "sq.py", code, "0" * 64, f'{{"n": {i}}}'))[
            0
        ].id
        for i in range(500)
    ]
    log = tmp_path / "executions.log"
    procs = start_workers(4, mariadb_url, log)
    try:
        wait_until(
            lambda: mariadb_store.count_by_status()[JobStatus.DONE] == 500,
            timeout=240,
            interval=0.25,
            message="500 jobs done",
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
