"""Slack calls with their failures translated: Web API methods, response_url posts, DMs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackClientError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from bot.core.metrics import Metrics
from bot.slack.failures import Failure, classify, record
from bot.slack.formatting import Message


class CallFailed(Exception):
    """A Slack call failed; `failure` says whether to retry, fall back or give up."""

    def __init__(self, method: str, failure: Failure) -> None:
        super().__init__(f"{method}: {failure.describe()}")
        self.method = method
        self.failure = failure


def call(
    metrics: Metrics | None, method: str, fn: Callable[..., SlackResponse], **kwargs: Any
) -> SlackResponse:
    """Call a WebClient method; any failure becomes CallFailed (and is counted)."""
    try:
        return fn(**kwargs)
    except (SlackClientError, OSError) as exc:
        failure = classify(exc)
        record(metrics, failure, method)
        raise CallFailed(method, failure) from exc


def respond_url(
    metrics: Metrics | None,
    url: str,
    message: Message,
    *,
    response_type: str = "ephemeral",
    timeout: float = 10.0,
) -> None:
    """Post to a slash command's response_url (valid ~30 minutes, 5 posts)."""
    try:
        response = WebhookClient(url, timeout=int(timeout)).send(
            text=message.text,
            blocks=message.blocks,
            response_type=response_type,
            replace_original=False,
        )
    except (SlackClientError, OSError) as exc:
        failure = classify(exc)
        record(metrics, failure, "response_url")
        raise CallFailed("response_url", failure) from exc
    status = response.status_code
    if status == 200:
        return
    if status == 429:
        retry = response.headers.get("Retry-After") or response.headers.get("retry-after")
        failure = Failure("rate_limited", True, False, float(retry) if retry else 5.0)
    elif status >= 500:
        failure = Failure("server_error", True, False)
    else:
        # Expired, used up or unknown: the user is reached another way.
        failure = Failure("response_url_expired", False, True)
    record(metrics, failure, "response_url")
    raise CallFailed("response_url", failure)
