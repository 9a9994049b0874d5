"""`/job status N` in the console (and `python -m bot status N`) names a job's files with their
sizes, data files and files out, and the note on files left out; anyone else sees none of it.
Real MariaDB: the job is stored, claimed and finished through the store as a worker does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot.app.environment import load_settings
from bot.app.wiring.parts import local_identity, service_limits
from bot.core.clock import SystemClock
from bot.core.commands import CONSOLE_USAGE
from bot.core.handler import CommandHandler
from bot.core.models import Identity, JobFile, Outcome, RunResult
from bot.core.service import JobService
from bot.store import SqlStore
from bot.terminal.console import Console
from testbed.processes import clean_env

ROOT = Path(__file__).resolve().parents[2]
NOTE = "left out: big.bin (5.0 MB; over the 4 MB of files out)"


def finished_with_files(store: SqlStore, service: JobService, owner: Identity) -> int:
    """A job with a data file that wrote two files out and had one left out."""
    actor = service.actor(owner)
    job, _ = service.submit(
        actor, "chart.py", b"print(1)\n", "{}", files=[("sales.csv", b"a,b\n" * 10)]
    )
    (claim,) = store.claim("w1", 1, 60, 4)
    assert store.mark_invoked(job.id, claim.token, 60)
    result = RunResult(
        outcome=Outcome.OK,
        duration_ms=12,
        files=(JobFile("figure-1.png", b"\x89PNG" + b"\0" * 2044), JobFile("out.txt", b"hi")),
        files_note=NOTE,
    )
    assert store.finish(job.id, claim.token, result)
    return job.id


def console_of(store: SqlStore, service: JobService, who: Identity) -> Console:
    return Console(CommandHandler(service, CONSOLE_USAGE), service.actor(who), "local:t", store)


def test_console_status_names_the_jobs_files_with_their_sizes_and_the_note(
    mariadb_store: SqlStore,
) -> None:
    service = JobService(
        mariadb_store, SystemClock(), service_limits(load_settings({}, env_file=None))
    )
    alice = Identity("local", "h", "alice")
    job_id = finished_with_files(mariadb_store, service, alice)

    shown = console_of(mariadb_store, service, alice).execute(f"/job status {job_id}")

    assert "Data files: sales.csv (40 bytes)" in shown
    assert "Files out: figure-1.png (2 KB), out.txt (2 bytes)" in shown
    assert f"Files left out: {NOTE}" in shown


def test_console_status_of_someone_elses_job_names_no_file(mariadb_store: SqlStore) -> None:
    service = JobService(
        mariadb_store, SystemClock(), service_limits(load_settings({}, env_file=None))
    )
    job_id = finished_with_files(mariadb_store, service, Identity("local", "h", "alice"))

    shown = console_of(mariadb_store, service, Identity("local", "h", "bob")).execute(
        f"/job status {job_id}"
    )

    assert "Only its owner or an admin" in shown
    assert "sales.csv" not in shown and "figure-1.png" not in shown and "left out" not in shown


def test_cli_status_names_the_jobs_files(mariadb_store: SqlStore, tmp_path: Path) -> None:
    service = JobService(
        mariadb_store, SystemClock(), service_limits(load_settings({}, env_file=None))
    )
    job_id = finished_with_files(mariadb_store, service, local_identity("alice"))
    env = clean_env(
        DATABASE_URL=mariadb_store.engine.url.render_as_string(hide_password=False),
        PYTHONPATH=str(ROOT),
    )

    done = subprocess.run(
        [sys.executable, "-m", "bot", "status", str(job_id), "--user", "alice"],
        cwd=tmp_path,  # no .env of the developer's
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "Files out: figure-1.png (2 KB), out.txt (2 bytes)" in done.stdout
