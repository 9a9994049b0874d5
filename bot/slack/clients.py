"""WebClients for the Web API at SLACK_API_URL, with bounded retries that never sleep long."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler

from bot.app.config import Settings


def web_client(settings: Settings, *, token: bool = True, timeout: int = 10) -> WebClient:
    """A client for the configured Web API. Rate limits and 5xx are not retried here: the
    outbox retries with back-off, and replies in a request's path must not sleep."""
    return WebClient(
        token=settings.slack_bot_token if token else None,
        base_url=settings.slack_api_url,
        timeout=timeout,
        retry_handlers=[ConnectionErrorRetryHandler(max_retry_count=1)],
    )
