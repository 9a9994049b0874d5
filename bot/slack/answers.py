"""Answers only the asking user sees: through the response_url, an ephemeral message, or
a DM, whichever works first."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from slack_sdk import WebClient

from bot.core.metrics import Metrics
from bot.errors import StoreError
from bot.slack.budget import POST, Pacer
from bot.slack.formatting import Message
from bot.slack.posting import CallFailed, call, respond_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Where:
    """Where a user asked something."""

    user: str
    channel: str | None = None
    response_url: str | None = None
    thread_ts: str | None = None

    @property
    def is_dm(self) -> bool:
        """True in the user's DM with the bot (no one else can read it)."""
        return bool(self.channel and self.channel.startswith("D"))


class Answerer:
    """Sends private answers, falling back until one way works."""

    def __init__(
        self, client: WebClient, metrics: Metrics | None = None, pacer: Pacer | None = None
    ) -> None:
        self.client = client
        self.metrics = metrics
        self.pacer = pacer  # counts each Web API answer in the shared buckets

    def tell(self, where: Where, message: Message) -> bool:
        """Show `message` to the user alone; False if no way worked."""
        attempts: list[Callable[[], None]] = []
        if where.response_url:
            attempts.append(lambda: respond_url(self.metrics, str(where.response_url), message))
        if where.channel and where.is_dm:
            attempts.append(lambda: self._post(str(where.channel), message, where.thread_ts))
        elif where.channel:
            attempts.append(lambda: self._ephemeral(where, message))
        attempts.append(lambda: self._post(where.user, message, None))
        for attempt in attempts:
            try:
                attempt()
                return True
            except CallFailed as exc:
                log.info("answer path failed, trying the next", extra={"kind": exc.failure.kind})
        log.warning("could not answer the user", extra={"slack_user": where.user})
        return False

    def _post(self, channel: str, message: Message, thread_ts: str | None) -> None:
        with self._counted(POST, channel):
            call(
                self.metrics,
                POST,
                self.client.chat_postMessage,
                channel=channel,
                thread_ts=thread_ts,
                unfurl_links=False,
                unfurl_media=False,
                **message.as_kwargs(),
            )

    def _ephemeral(self, where: Where, message: Message) -> None:
        with self._counted("chat.postEphemeral", where.channel):
            call(
                self.metrics,
                "chat.postEphemeral",
                self.client.chat_postEphemeral,
                channel=where.channel,
                user=where.user,
                thread_ts=where.thread_ts,
                **message.as_kwargs(),
            )

    @contextmanager
    def _counted(self, method: str, channel: str | None) -> Iterator[None]:
        """An answer goes first, never waiting for a turn, but it spends one in the shared
        buckets once sent (a 429 empties its bucket), so the outbox paces around it. The
        response_url is no Web API method: Slack limits it per URL, not in these buckets."""
        try:
            yield
        except CallFailed as exc:
            if self.pacer is not None and exc.failure.kind == "rate_limited":
                try:
                    self.pacer.refused(method, channel, exc.failure.retry_after or 1.0)
                except StoreError as store:
                    log.info("a refused answer was not counted: %s", store)
            raise
        if self.pacer is not None:
            self.pacer.spend(method, channel)
