"""The App Home tab opened: publish the person's recent jobs, after the ack."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.slack.intake.context import IntakeContext
from bot.slack.intake.request import Asker


class HomeIntake:
    """What happens behind the app_home_opened listener."""

    def __init__(self, context: IntakeContext) -> None:
        self.context = context

    def opened(self, team: str, event: Mapping[str, Any]) -> None:
        """app_home_opened on the Home tab: publish the user's jobs."""
        if event.get("tab") != "home" or not event.get("user"):
            return
        context, asker = self.context, Asker.from_home(team, event)

        def publish() -> None:
            context.home.opened(context.actor(asker), asker.user)

        context.later(publish)
