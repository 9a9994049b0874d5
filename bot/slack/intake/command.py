"""The `/job` slash command: answers within the ack, or for `run` journals the request and then
submits the latest shared file or opens the Run job form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.commands import RunCommand, parse_command
from bot.core.models import HeldRequest
from bot.core.replies import MAYBE_SAVED, UNAVAILABLE
from bot.errors import StoreError, UsageError, UserError
from bot.slack import keys
from bot.slack.formatting import unescape
from bot.slack.intake.context import ROUTE, WORKING, IntakeContext, no_run, refusal
from bot.slack.intake.journal import HOLD_BUDGET_S, Held, HeldKind, Journal
from bot.slack.intake.request import Asker
from bot.slack.origin import Kind
from bot.slack.posting import CallFailed, call
from bot.slack.replyviews import problem, render
from bot.slack.uploads import SlackFile
from bot.slack.views import run_modal


class CommandIntake:
    """What happens behind the `/job` listener."""

    def __init__(self, context: IntakeContext, journal: Journal) -> None:
        self.context = context
        self.journal = journal
        journal.register(HeldKind.COMMAND, self._redo)

    def ack(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The ack body of a `/job` command (work that must wait for the ack is scheduled)."""
        context, asker = self.context, Asker.from_command(body)
        trigger_id = str(body.get("trigger_id") or "")
        key = keys.command(asker.team, trigger_id)
        try:
            command = parse_command(unescape(str(body.get("text") or "")))
        except UsageError as exc:
            return problem(exc.message, exc.usage or context.handler.usage).as_kwargs()
        if not isinstance(command, RunCommand):
            return context.within_budget(
                asker,
                lambda: context.handler.handle(
                    context.actor(asker),
                    command,
                    no_run,
                    origin=asker.origin(Kind.COMMAND),
                    route=ROUTE,
                    idempotency_key=key,
                ),
            )
        try:
            context.check_input(command.input_text)
        except UserError as exc:
            return problem(exc.message).as_kwargs()
        payload = {
            "asker": asker.to_dict(),
            "path": command.path,
            "input_text": command.input_text,
            "trigger_id": trigger_id,
        }
        held = self.journal.hold(
            key,
            HeldKind.COMMAND,
            payload,
            lambda: self._run(asker, command, trigger_id),
            where=asker.where,
            budget=HOLD_BUDGET_S,
        )
        if held is Held.DOWN:
            return render(UNAVAILABLE).as_kwargs()
        if held is Held.UNKNOWN:
            return render(MAYBE_SAVED).as_kwargs()
        return {"text": WORKING} if held is Held.PENDING else {}

    def _redo(self, request: HeldRequest) -> bool:
        data = request.payload
        asker = Asker.from_dict(data.get("asker"))
        if asker is None:
            return False
        command = RunCommand(data.get("path"), str(data.get("input_text") or ""))
        self._run(asker, command, str(data.get("trigger_id") or ""))
        return True

    def _run(self, asker: Asker, command: RunCommand, trigger_id: str) -> None:
        context = self.context
        try:
            actor = context.actor(asker)
            upload = None
            if command.path is None and asker.channel:
                upload = context.latest_upload(actor, asker.channel)
        except StoreError as exc:
            context.tell(asker.where, refusal(exc))
            return
        if upload is None:
            self._open_form(asker, command.input_text, trigger_id)
            return
        file = SlackFile.from_upload(upload)
        key = keys.command(asker.team, trigger_id)
        context.submit(actor, asker, file, command.input_text, kind=Kind.COMMAND, key=key)

    def _open_form(self, asker: Asker, input_text: str, trigger_id: str) -> None:
        context = self.context
        try:
            call(
                context.metrics,
                "views.open",
                context.client.views_open,
                trigger_id=trigger_id,
                view=run_modal(asker.form_metadata(), input_text.strip()),
            )
        except CallFailed as exc:
            context.tell(
                asker.where,
                f"The Run job form could not be opened ({exc.failure.kind}). Share a .py file "
                "here, then try `/job run` again.",
            )
