"""`python -m bot worker` as a real process with the Slack settings, on MariaDB with the local
executor: it runs waiting jobs, delivers their Slack messages, takes up requests a dead `serve`
acknowledged (the intake journal), and stops cleanly on SIGTERM."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import signal
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from bot.core.models import Identity, JobStatus, NewJob, Upload
from bot.slack.intake.journal import HeldKind
from bot.slack.intake.request import Asker
from bot.slack.uploads import SlackFile
from bot.store import SqlStore
from testbed import slack_requests as sr
from testbed.processes import clean_env
from testbed.slack_ledger import settled, slack_env
from testbed.slack_standin import SlackStandIn, message_text
from testbed.waiting import wait_until
from testbed.workers import bot_worker, start_bot_worker

ROOT = Path(__file__).resolve().parents[2]
CODE = "def main(a, b):\n    return a * b\n"


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    with SlackStandIn() as fake:
        yield fake


@pytest.fixture
def worker(
    standin: SlackStandIn, mariadb_url: str, tmp_path: Path
) -> Iterator[subprocess.Popen[str]]:
    env = clean_env(
        **slack_env(standin),
        PYTHONPATH=str(ROOT),
        DATABASE_URL=mariadb_url,
        JOBBOT_POLL_INTERVAL="0.05",
        JOBBOT_INTAKE_LEASE="1",
        JOBBOT_LOG_FORMAT="json",
    )
    with bot_worker(env, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as process:
        yield process


def test_a_worker_runs_jobs_tells_slack_and_stops_on_sigterm(
    worker: subprocess.Popen[str], standin: SlackStandIn, mariadb_store: SqlStore
) -> None:
    owner = mariadb_store.ensure_user(Identity("slack", sr.TEAM, "U0WORK1"))
    origin = {
        "slack_kind": "command",
        "slack_team": sr.TEAM,
        "slack_user": "U0WORK1",
        "slack_channel": "C0WORK1",
    }
    job, _ = mariadb_store.submit(
        NewJob(
            owner.id,
            "times.py",
            CODE,
            hashlib.sha256(CODE.encode()).hexdigest(),
            json.dumps({"a": 6, "b": 7}),
            origin=origin,
            notify_route="slack",
        )
    )

    [done] = settled(mariadb_store, [job.id], timeout=30)
    assert (done.status, done.result) == (JobStatus.DONE, 42)
    texts = [message_text(p) for p in standin.posts(channel="C0WORK1")]
    assert any(f"Job #{job.id}" in t for t in texts), texts
    assert any("42" in t for t in texts), texts

    worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    assert worker.returncode == 0, out[-3000:]
    assert standin.token not in out and sr.SECRET not in out


def test_a_worker_takes_up_a_request_a_dead_serve_acknowledged(
    worker: subprocess.Popen[str], standin: SlackStandIn, mariadb_store: SqlStore
) -> None:
    """The journal record a serve writes before acknowledging `/job run`, left behind by a
    serve that died: the worker finishes it once the lease ran out."""
    user, channel = "U0WORK2", "C0WORK2"
    owner = mariadb_store.ensure_user(Identity("slack", sr.TEAM, user))
    # What serve records: the .py it saw shared, then (before acknowledging `/job run`) the
    # request itself; its process then died.
    file = SlackFile.from_payload(standin.add_file("times.py", CODE))
    now = datetime.now(UTC)
    mariadb_store.remember_upload(
        Upload(owner.id, channel, file.id, file.name, file.size or 0, file.meta(), now)
    )
    trigger = sr.new_trigger_id()
    asker = Asker(sr.TEAM, user, channel, standin.response_url(user))
    payload = {
        "asker": dataclasses.asdict(asker),
        "path": None,
        "input_text": '{"a": 3, "b": 5}',
        "trigger_id": trigger,
    }
    assert mariadb_store.hold_request(f"cmd:{sr.TEAM}:{trigger}", HeldKind.COMMAND, payload, 0.5)

    job = wait_until(
        lambda: (jobs := mariadb_store.list_by_owner(owner.id, 5)) and jobs[0],
        timeout=30,
        message="the held request taken up by the worker",
    )
    wait_until(
        lambda: (j := mariadb_store.get(job.id)) is not None and j.status.is_final,
        timeout=30,
        message="the job finished",
    )
    done = mariadb_store.get(job.id)
    assert done is not None and (done.status, done.result) == (JobStatus.DONE, 15)


def test_a_sigterm_while_the_worker_starts_is_a_clean_stop(
    mariadb_url: str, mariadb_store: SqlStore, tmp_path: Path
) -> None:
    """The worker is held in its first step (the schema: another process holds the migration
    lock) when SIGTERM arrives: it still exits 0, and claims nothing on the way out."""
    owner = mariadb_store.ensure_user(Identity("local", "host", "starting"))
    job, _ = mariadb_store.submit(NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}"))
    database = make_url(mariadb_url).database
    holder = create_engine(mariadb_url, poolclass=NullPool)
    with holder.connect() as lock:
        assert lock.execute(text("SELECT GET_LOCK('jobbot.migrate', 10)")).scalar() == 1
        process = start_bot_worker(
            clean_env(PYTHONPATH=str(ROOT), DATABASE_URL=mariadb_url),
            tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        waiting = text(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
            "WHERE DB = :db AND ID <> CONNECTION_ID() AND INFO LIKE '%GET_LOCK%jobbot.migrate%'"
        )
        wait_until(
            lambda: lock.execute(waiting, {"db": database}).scalar() == 1,
            timeout=30,
            message="the worker waits for the migration lock",
        )
        process.send_signal(signal.SIGTERM)
        lock.execute(text("SELECT RELEASE_LOCK('jobbot.migrate')"))
    holder.dispose()
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out[-3000:]
    left = mariadb_store.get(job.id)
    assert left is not None and left.status is JobStatus.WAITING
    assert left.claim_token is None and left.attempts == 0
