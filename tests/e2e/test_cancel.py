"""`python -m bot cancel N` stops a job that a `python -m bot worker` process runs: the two
processes share only the database; the job ends `cancelled` with what it printed so far, its
processes are gone, and the CLI prints it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import Identity, JobStatus, NewJob
from bot.store import SqlStore, make_engine
from testbed.processes import clean_env
from testbed.waiting import wait_until
from testbed.workers import bot_worker
from tests.integration.executor.conftest import IS_ROOT, processes_of

ROOT = Path(__file__).resolve().parents[2]
UID_BASE = 63000
JOB = """\
import subprocess, time
print("started", flush=True)
subprocess.Popen(["sleep", "60"])
open("running", "w").close()
time.sleep(60)
"""

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the job's files are watched through /proc")


def job_uids() -> range:
    """Every uid the worker's sandbox may give its one slot (a taken block moves it on)."""
    return range(UID_BASE, UID_BASE + 16)


def code_runs() -> bool:
    for pid in processes_of(job_uids()):
        try:
            if os.path.exists(f"/proc/{pid}/cwd/running"):
                return True
        except OSError:
            continue
    return False


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'jobbot.db'}",
        PYTHONPATH=str(ROOT),
        JOBBOT_WORKERS="1",
        JOBBOT_JOB_TIMEOUT="60",
        JOBBOT_POLL_INTERVAL="0.05",
        JOBBOT_SANDBOX_UID_BASE=str(UID_BASE),
    )


@pytest.fixture
def worker(env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    with bot_worker(env, tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as process:
        yield process


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cancel_stops_a_job_running_in_a_worker_process(
    env: dict[str, str], worker: subprocess.Popen[str], tmp_path: Path
) -> None:
    store = SqlStore(make_engine(env["DATABASE_URL"]))
    wait_until(lambda: store.schema_version() is not None, timeout=30, message="migrated")
    owner = store.ensure_user(Identity("local", socket.gethostname(), "alice"))
    job, _ = store.submit(NewJob(owner.id, "long.py", JOB, "0" * 64, "{}"))
    wait_until(code_runs, timeout=60, message="the job's code to run in the worker")

    refused = cli(env, tmp_path, "cancel", str(job.id), "--user", "bob")
    assert refused.returncode == 2 and "not yours" in refused.stderr

    done = cli(env, tmp_path, "cancel", str(job.id), "--user", "alice")

    assert done.returncode == 0, done.stderr
    assert f"Stopping job #{job.id}" in done.stderr
    assert "cancelled" in done.stdout and "started" in done.stdout
    final = store.get(job.id)
    assert final is not None and final.status is JobStatus.CANCELLED
    assert final.stdout == "started\n" and final.error_type == "Cancelled"
    wait_until(lambda: not processes_of(job_uids()), message="the job's processes to go")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=60) == 0
    store.close()
