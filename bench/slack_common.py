"""Shared set-up of the Slack benchmarks: a fresh MariaDB database (dropped at the stop), the
Slack stand-in and a real `python -m bot serve` process in HTTP mode."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.databases import drop_database, fresh_database
from bot.core.models import Identity
from bot.store import SqlStore, make_engine
from testbed import slack_requests as sr
from testbed.serve_process import ServeProcess
from testbed.slack_standin import SlackStandIn
from testbed.waiting import wait_until

# Slack's rate limits are enforced by the stand-in unless this says "off" (for comparisons
# only: the benchmarks' figures are made with the limits on).
LIMITS = os.environ.get("JOBBOT_BENCH_SLACK_LIMITS", "on") != "off"


def start(name: str, **settings: str) -> tuple[SlackStandIn, ServeProcess, SqlStore]:
    """Stand-in, serve process and a store view on a fresh database."""
    url = fresh_database(name)
    standin = SlackStandIn(rate_limits=LIMITS).start()
    server = ServeProcess(standin, url, Path(tempfile.mkdtemp(prefix="jobbot-bench-")), **settings)
    server.start()
    return standin, server, SqlStore(make_engine(url))


def share(
    standin: SlackStandIn,
    server: ServeProcess,
    store: SqlStore,
    *,
    user: str,
    channel: str,
    name: str,
    code: str,
) -> None:
    """Share a .py file as `user` and wait until serve remembered it."""
    file = standin.add_file(name, code)
    sr.post(server.url, sr.event(sr.file_message("", [file], user=user, channel=channel)))
    user_id = store.ensure_user(Identity("slack", sr.TEAM, user)).id
    since = datetime.now(UTC) - timedelta(minutes=5)
    wait_until(
        lambda: (u := store.latest_upload(user_id, channel, since)) and u.file_id == file["id"],
        message="the upload to be remembered",
    )


def stop(standin: SlackStandIn, server: ServeProcess, store: SqlStore) -> None:
    """Stop everything, and drop the database."""
    server.stop(timeout=60)
    database = store.engine.url.database
    store.close()
    standin.stop()
    if database:
        drop_database(database)
    time.sleep(0)
