"""Bolt listeners, kept thin: ack first (with a reply the intake computed in time), then hand
everything slow to the intake pool."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, BoltContext

from bot.slack.intake import Intake
from bot.slack.intake.request import event_team
from bot.slack.jobviews import RERUN_ACTION
from bot.slack.views import RUN_MODAL

log = logging.getLogger(__name__)
COMMAND = "/job"


def register(app: App, intake: Intake) -> None:
    """Attach every listener of jobbot to the Bolt app."""

    @app.command(COMMAND)
    def job_command(ack: Ack, body: dict[str, Any]) -> None:
        ack(**intake.command.ack(body))

    @app.view(RUN_MODAL)
    def run_form(ack: Ack, body: dict[str, Any]) -> None:
        ack(**intake.form.ack(body))

    @app.action(RERUN_ACTION)
    def rerun(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        intake.buttons.rerun(body, action)

    @app.action(re.compile(".*"))
    def other_action(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        # a button of an older jobbot, or one it never made: say so instead of failing
        ack()
        intake.buttons.unknown(body, action)

    @app.event("app_mention")
    def mention(body: dict[str, Any], event: dict[str, Any]) -> None:
        intake.messages.mention(event_team(body), event)

    @app.event("message")
    def message(body: dict[str, Any], event: dict[str, Any], context: BoltContext) -> None:
        intake.messages.message(event_team(body), event, context.bot_user_id)

    @app.event("app_home_opened")
    def home(body: dict[str, Any], event: dict[str, Any]) -> None:
        intake.home.opened(event_team(body), event)

    @app.event(re.compile(".*"))
    def anything_else(event: dict[str, Any]) -> None:
        # Acknowledged (200) so Slack does not retry events jobbot has no use for.
        log.debug("event ignored", extra={"slack_event": str(event.get("type"))[:40]})

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error(
            "slack listener failed: %s",
            type(error).__name__,
            exc_info=error,
            extra={"slack_type": str(body.get("type") or body.get("command") or "")[:40]},
        )
