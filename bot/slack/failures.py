"""Slack Web API failures sorted into what to do next: retry later, fall back to another
conversation, or give up; each counted in `jobbot_slack_errors_total{kind}`."""

from __future__ import annotations

import logging
import re
import socket
import urllib.error
from dataclasses import dataclass
from http.client import HTTPException

from slack_sdk.errors import SlackApiError, SlackClientError

from bot.core.metrics import Metrics

log = logging.getLogger(__name__)

# The bot cannot post in that conversation: use the response_url or a DM instead.
UNREACHABLE = frozenset(
    {
        "not_in_channel",
        "channel_not_found",
        "is_archived",
        "channel_is_archived",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "team_access_not_granted",
        "user_not_in_channel",
        "cannot_dm_bot",
    }
)
# Slack's own trouble, reported with HTTP 200: worth another try later.
TRANSIENT = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)
# The token or the app's grants are wrong: an operator can fix it, so keep the outbox waiting.
AUTH = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "missing_scope",
        "no_permission",
        "org_login_required",
    }
)
OUTAGE_KINDS = frozenset({"rate_limited", "server_error", "timeout", "connection"}) | TRANSIENT
AUTH_RETRY_AFTER = 60.0
_KIND = re.compile(r"^[a-z0-9_]{1,40}$")
DEFAULT_RETRY_AFTER = 5.0


@dataclass(frozen=True)
class Failure:
    """One failed Slack call, classified."""

    kind: str  # metric label: rate_limited, server_error, timeout, connection, or Slack's code
    transient: bool  # the same call may succeed later
    unreachable: bool  # the conversation is closed to the bot
    retry_after: float | None = None

    @property
    def is_outage(self) -> bool:
        """Slack or the network is having trouble; the call itself was fine."""
        return self.kind in OUTAGE_KINDS

    def describe(self) -> str:
        """A short text for logs and outbox errors (never a token or a payload)."""
        return f"slack {self.kind}" + (
            f" (retry after {self.retry_after:g} s)" if self.retry_after else ""
        )


def _retry_after(headers: object) -> float:
    if isinstance(headers, dict):
        for key, value in headers.items():
            if str(key).lower() == "retry-after":
                text = value[0] if isinstance(value, list) and value else value
                try:
                    return max(0.0, min(300.0, float(str(text))))
                except ValueError:
                    break
    return DEFAULT_RETRY_AFTER


def classify(exc: BaseException) -> Failure:
    """What a Slack client exception means for the caller."""
    if isinstance(exc, SlackApiError):
        status = getattr(exc.response, "status_code", 200) or 200
        data = getattr(exc.response, "data", None)
        code = str(data.get("error", "")) if isinstance(data, dict) else ""
        if status == 429 or code in {"ratelimited", "rate_limited"}:
            return Failure("rate_limited", True, False, _retry_after(exc.response.headers))
        if status >= 500:
            return Failure("server_error", True, False)
        if code in TRANSIENT:
            return Failure(code, True, False)
        if code in AUTH:
            return Failure(code, True, False, AUTH_RETRY_AFTER)
        kind = code if _KIND.match(code) else "api_error"
        return Failure(kind, False, code in UNREACHABLE)
    if isinstance(exc, TimeoutError | socket.timeout):
        return Failure("timeout", True, False)
    if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, TimeoutError):
        return Failure("timeout", True, False)
    if isinstance(exc, urllib.error.URLError | ConnectionError | HTTPException | OSError):
        return Failure("connection", True, False)
    if isinstance(exc, SlackClientError):
        return Failure("client_error", False, False)
    return Failure("unexpected", False, False)


def record(metrics: Metrics | None, failure: Failure, method: str) -> None:
    """Count a failure and log it at a level that matches its cause."""
    if metrics is not None:
        metrics.inc("jobbot_slack_errors_total", "Slack Web API errors by kind.", kind=failure.kind)
    level = logging.INFO if failure.transient or failure.unreachable else logging.WARNING
    log.log(level, "slack call failed", extra={"method": method, "kind": failure.kind})
