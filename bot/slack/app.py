"""build_app: the Bolt app with jobbot's listeners, its own thread pools and an authorize
function that never calls Slack in a request's path."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from slack_bolt import App
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.response import BoltResponse
from slack_sdk import WebClient

from bot.app.config import Settings
from bot.core.commands import USAGE
from bot.core.handler import CommandHandler
from bot.core.metrics import Metrics
from bot.core.service import JobService
from bot.slack.answers import Answerer
from bot.slack.budget import Pacer
from bot.slack.guard import RequestGuard, malformed
from bot.slack.home import HomePublisher
from bot.slack.intake import Intake
from bot.slack.intake.context import IntakeContext
from bot.slack.intake.journal import SWEEP_INTERVAL_S, Sweeper
from bot.slack.listeners import register
from bot.slack.memory import SlackMemory
from bot.slack.posting import CallFailed, call
from bot.slack.uploads import FileFetcher

log = logging.getLogger(__name__)
RETRY_IDENTITY_S = 30.0


class BotIdentity:
    """The bot's own user and bot ids (from auth.test), so Bolt drops the bot's own events
    and mentions of the bot are recognised; looked up off the request path."""

    def __init__(self, client: WebClient, metrics: Metrics | None = None) -> None:
        self.client = client
        self.metrics = metrics
        self.user_id: str | None = None
        self.bot_id: str | None = None
        self.team_id: str | None = None
        self._lock = threading.Lock()
        self._next_try = 0.0

    def resolve(self) -> bool:
        """Ask auth.test who the bot is; False if Slack did not answer."""
        try:
            response = call(self.metrics, "auth.test", self.client.auth_test)
        except CallFailed as exc:
            log.warning("auth.test failed: %s", exc.failure.kind)
            return False
        self.user_id = response.get("user_id")
        self.bot_id = response.get("bot_id")
        self.team_id = response.get("team_id")
        return True

    def _refresh_later(self) -> None:
        with self._lock:
            if self.user_id is not None or time.monotonic() < self._next_try:
                return
            self._next_try = time.monotonic() + RETRY_IDENTITY_S
        threading.Thread(target=self.resolve, name="slack-identity", daemon=True).start()

    def authorize_result(self, enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        """What Bolt needs per request, from memory."""
        if self.user_id is None:
            self._refresh_later()
        return AuthorizeResult(
            enterprise_id=enterprise_id,
            team_id=team_id,
            bot_token=self.client.token,
            bot_id=self.bot_id,
            bot_user_id=self.user_id,
        )


@dataclass
class SlackApp:
    """The Bolt app and the pools behind it."""

    app: App
    intake: Intake
    identity: BotIdentity
    listener_pool: ThreadPoolExecutor
    ack_pool: ThreadPoolExecutor
    intake_pool: ThreadPoolExecutor
    guard: RequestGuard
    sweeper: Sweeper

    def start(self) -> None:
        """Start finishing requests that a process died before finishing (journal)."""
        self.sweeper.start()

    def close(self) -> None:
        """Finish scheduled intake work (downloads, submissions) and stop the pools: the ack
        pool first, so that a journal hold settling late still hands its work to the intake
        pool."""
        self.sweeper.stop()
        self.listener_pool.shutdown(wait=True)
        self.ack_pool.shutdown(wait=True)
        self.intake_pool.shutdown(wait=True)
        self.guard.close()


class _QuietTokenWarning(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN is unused when `authorize` is given; that is intended."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (
            "will be ignored" not in record.getMessage()
            and "will be unused" not in record.getMessage()
        )


def build_app(
    service: JobService,
    memory: SlackMemory,
    settings: Settings,
    client: WebClient,
    *,
    metrics: Metrics | None = None,
    identity: BotIdentity | None = None,
    intake_threads: int = 8,
    about: str = "",
) -> SlackApp:
    """The Bolt app for jobbot; `client` speaks to SLACK_API_URL with the bot token, and
    `memory` keeps the adapter's dedupe keys, intake journal and uploads."""
    identity = identity or BotIdentity(client, metrics)
    bolt_logger = logging.getLogger("slack_bolt.jobbot")
    bolt_logger.addFilter(_QuietTokenWarning())
    listener_pool = ThreadPoolExecutor(
        max(8, settings.http_threads), thread_name_prefix="slack-listener"
    )
    intake_pool = ThreadPoolExecutor(intake_threads, thread_name_prefix="slack-intake")
    # One thread per request thread: what an ack waits for never waits for a thread.
    ack_pool = ThreadPoolExecutor(max(8, settings.http_threads), thread_name_prefix="slack-ack")

    def authorize(enterprise_id: str | None, team_id: str | None) -> AuthorizeResult:
        return identity.authorize_result(enterprise_id, team_id)

    app = App(
        # Bolt copies base_url and retry handlers from this client into its per-request ones.
        client=WebClient(
            base_url=client.base_url, timeout=client.timeout, retry_handlers=client.retry_handlers
        ),
        signing_secret=settings.slack_signing_secret or "socket-mode",
        authorize=authorize,
        logger=bolt_logger,
        listener_executor=listener_pool,  # lazy listeners only (jobbot has none)
        # Each listener runs in the request's own thread and returns with its ack: no hand-off
        # to a listener thread, and no wait for ack() in Bolt's 10 ms polling loop. Listeners
        # are thin (slow work goes to the intake pool), so nothing slow waits before the answer.
        process_before_response=True,
        raise_error_for_unhandled_request=False,
    )
    pacer = Pacer(memory, metrics)
    home = HomePublisher(client, service, metrics, pacer=pacer, refresh_s=settings.home_refresh_s)
    fetcher = FileFetcher(
        client, str(client.token), settings.slack_api_url, settings.max_code_bytes, metrics=metrics
    )
    context = IntakeContext(
        service,
        CommandHandler(service, USAGE, about=about),
        fetcher,
        Answerer(client, metrics, pacer),
        client,
        memory=memory,
        pool=intake_pool,
        ack_pool=ack_pool,
        home=home,
        upload_window=settings.upload_window,
        metrics=metrics,
    )
    intake = Intake(context, hold_lease_s=settings.intake_lease)

    @app.use
    def refuse_malformed(body: dict[str, Any], next: Callable[[], None]) -> BoltResponse | None:
        # after Bolt's signature check: only signed requests get here
        problem = malformed(body)
        if problem is None:
            next()
            return None
        log.warning("malformed slack payload refused", extra={"missing": problem[:80]})
        return BoltResponse(status=400, body=f"malformed Slack payload: no {problem}\n")

    register(app, intake)

    def forget(prefix: str, older_than_s: float) -> int:
        return memory.forget_keys(prefix, service.clock.now() - timedelta(seconds=older_than_s))

    guard = RequestGuard(
        settings.slack_signing_secret,
        memory.first_time,
        forget,
        metrics=metrics,
        threads=max(8, settings.http_threads),
    )
    sweeper = Sweeper(
        lambda: memory.claim_held_requests(10, settings.intake_lease),
        intake.take_up,
        interval_s=min(SWEEP_INTERVAL_S, settings.intake_lease / 2),
    )
    return SlackApp(app, intake, identity, listener_pool, ack_pool, intake_pool, guard, sweeper)
