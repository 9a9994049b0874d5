"""`serve`: the Slack app, the HTTP endpoints and the workers in one process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.config import Settings
from bot.core.ports import Notifier

if TYPE_CHECKING:
    from bot.wiring import Runtime


def notifiers_for(settings: Settings, runtime: Runtime) -> dict[str, Notifier]:
    """The notification routes this process delivers (Slack when configured)."""
    if not settings.slack_enabled:
        return {}
    from bot.slack.notifier import build_slack_notifier

    return {"slack": build_slack_notifier(settings, runtime.service)}


def serve(settings: Settings) -> int:
    """Run until SIGTERM."""
    raise NotImplementedError("serve is built in the Slack issue")
