"""Intake: what happens behind each Slack listener, one module per entry point (command, form,
message, buttons, home) on one typed request (request.Asker). Replies that need the database
are computed within a budget (the ack must leave within 3 s); downloads and submissions run
on our own pool after the ack, never on Bolt's listener threads."""

from __future__ import annotations

from bot.core.models import HeldRequest
from bot.slack.intake.buttons import ButtonIntake
from bot.slack.intake.command import CommandIntake
from bot.slack.intake.context import IntakeContext
from bot.slack.intake.form import FormIntake
from bot.slack.intake.home import HomeIntake
from bot.slack.intake.journal import Journal
from bot.slack.intake.message import MessageIntake


class Intake:
    """The entry points the listeners hand Slack's requests to, sharing one context and one
    intake journal."""

    def __init__(self, context: IntakeContext, hold_lease_s: float) -> None:
        self.context = context
        self.journal = Journal(context, hold_lease_s)
        self.command = CommandIntake(context, self.journal)
        self.form = FormIntake(context, self.journal)
        self.messages = MessageIntake(context, self.journal)
        self.buttons = ButtonIntake(context, self.journal)
        self.home = HomeIntake(context)

    def take_up(self, request: HeldRequest) -> None:
        """Finish a request another process acknowledged but did not finish."""
        self.journal.take_up(request)
