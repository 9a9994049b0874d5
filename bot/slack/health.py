"""Doctor rows for Slack: the mode in force and whether the bot token answers auth.test."""

from __future__ import annotations

from bot.app.config import Settings
from bot.slack.clients import web_client
from bot.slack.posting import CallFailed, call


def slack_checks(settings: Settings) -> list[tuple[str, str, bool]]:
    """(check, detail, ok) rows: mode and auth.test."""
    if settings.socket_mode:
        mode = "Socket Mode (SLACK_APP_TOKEN set)"
    else:
        mode = f"HTTP: POST :{settings.port}/slack/events"
    rows = [("slack mode", mode, True)]
    try:
        response = call(None, "auth.test", web_client(settings, timeout=5).auth_test)
    except CallFailed as exc:
        return [
            *rows,
            (
                "slack auth",
                f"auth.test at {settings.slack_api_url} failed: {exc.failure.kind}",
                False,
            ),
        ]
    who = f"bot {response.get('user')} ({response.get('user_id')}) in team {response.get('team')}"
    return [*rows, ("slack auth", f"{who} via {settings.slack_api_url}", True)]
