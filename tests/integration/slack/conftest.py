"""The real Bolt app on MariaDB, its workers (a fake executor) and the Slack notifier, all
talking to the loopback Slack stand-in through the real slack_sdk WebClient."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.app.config import Settings
from bot.app.environment import load_settings
from bot.app.wiring.runtime import Runtime
from bot.app.wiring.surfaces import notifiers_for, slack_app_for
from bot.core.models import Identity, Job, NotificationEvent, Upload
from bot.slack.app import SlackApp
from bot.store import SqlStore
from testbed.slack_requests import ADMIN, ALICE, CHANNEL, SECRET, TEAM, SlackRequest
from testbed.slack_standin import TOKEN, SlackStandIn
from testbed.waiting import wait_until
from tests.support.fake_jobs import scripted
from tests.support.fakes import FakeExecutor


@dataclass
class Stack:
    """Everything a Bolt-level test drives."""

    settings: Settings
    runtime: Runtime
    slack: SlackApp
    standin: SlackStandIn
    executor: FakeExecutor

    def dispatch(self, request: SlackRequest) -> BoltResponse:
        """Run a signed request through the real Bolt app."""
        return self.slack.app.dispatch(BoltRequest(body=request.body, headers=request.headers))

    def jobs(self) -> list[Job]:
        """Every job, newest first."""
        return self.runtime.store.list_all(100)

    def job(self, job_id: int) -> Job:
        """One job, in full."""
        job = self.runtime.store.get(job_id)
        assert job is not None
        return job

    def wait_jobs(self, count: int) -> list[Job]:
        """Poll until `count` jobs exist."""
        return wait_until(
            lambda: len(self.jobs()) >= count and self.jobs(), message=f"{count} job(s)"
        )

    def wait_upload(self, user: str = ALICE, channel: str = CHANNEL) -> Upload:
        """Poll until the user's shared file is remembered in that conversation."""
        actor = self.runtime.service.actor(Identity("slack", TEAM, user))
        since = datetime.now(UTC) - timedelta(seconds=60)
        return wait_until(
            lambda: self.runtime.store.latest_upload(actor.user.id, channel, since),
            message=f"an upload of {user} in {channel}",
        )

    def wait_final(self, job_id: int) -> Job:
        """Poll until the job finished and its notifications went out."""

        def done() -> Job | None:
            # Events first: a delivery settled after them has its progress in the job read next.
            events = self.runtime.store.notification_events(job_id)
            job = self.job(job_id)
            settled = events and all(state != "pending" for _, state in events)
            told = any(event is NotificationEvent.FINISHED for event, _ in events)
            return job if job.status.is_final and settled and told else None

        return wait_until(done, timeout=15, message=f"job {job_id} settled")

    def start_dispatcher(self) -> None:
        """Start delivering notifications (for a stack made with `dispatch=False`)."""
        self.runtime.start_dispatcher(notifiers_for(self.settings, self.runtime))

    def finish_intake(self) -> None:
        """Let every request dispatched so far finish its work (downloads, submissions), then
        stop the Slack app: what a request would store is stored. Call it last."""
        self.slack.close()


def slack_settings(standin: SlackStandIn, database_url: str, **extra: str) -> Settings:
    """Settings for a Slack app on the stand-in."""
    environ = {
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": standin.base_url,
        "JOBBOT_ADMINS": ADMIN,
        "JOBBOT_POLL_INTERVAL": "0.05",
        "JOBBOT_MAX_CODE_BYTES": "4096",
        "JOBBOT_LOG_FORMAT": "text",
        # A trivial job here is one that ends within the quiet period, however loaded the
        # machine: the one-message path is certain. A test of the slow path sets its own.
        "JOBBOT_QUIET_MS": "20000",
    }
    environ.update(extra)
    return load_settings(environ, env_file=None)


@pytest.fixture
def standin() -> Iterator[SlackStandIn]:
    """A fresh Slack stand-in."""
    with SlackStandIn() as fake:
        yield fake


@pytest.fixture
def stack_options() -> dict[str, str]:
    """Extra settings; override in a test module."""
    return {}


@pytest.fixture
def stack(
    standin: SlackStandIn, mariadb_store: SqlStore, mariadb_url: str, stack_options: dict[str, Any]
) -> Iterator[Stack]:
    """The Slack app, workers and notifier on MariaDB, against the stand-in."""
    with running_stack(standin, mariadb_store, FakeExecutor(scripted), **stack_options) as stack:
        yield stack


@contextlib.contextmanager
def running_stack(
    standin: SlackStandIn,
    store: SqlStore,
    executor: FakeExecutor,
    *,
    dispatch: bool = True,
    **options: str,
) -> Iterator[Stack]:
    """The Slack app, workers and notifier on `store` with `executor`, as `serve` composes
    them (bot.app.wiring), stopped on exit; the journal's sweeper is left to the tests. With
    `dispatch=False` no notification goes out until the test calls `Stack.start_dispatcher`."""
    url = store.engine.url.render_as_string(hide_password=False)
    settings = slack_settings(standin, url, **options)
    store.quiet_s = settings.quiet_ms / 1000  # as bot.app.wiring.parts.build_store sets it
    runtime = Runtime(settings, store=store, executor_factory=lambda s: executor)
    if dispatch:
        runtime.start_dispatcher(notifiers_for(settings, runtime))
    runtime.start_workers()
    slack = slack_app_for(settings, runtime)
    assert slack is not None, "the stand-in's Slack settings are present"
    try:
        yield Stack(settings, runtime, slack, standin, executor)
    finally:
        slack.close()
        runtime.stop(grace_s=3)
