"""Button clicks: a Re-run (journaled, then submitted as a new job of the clicker's) and any
button jobbot does not know (the person is told; nothing changes)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bot.core.commands import parse_job_id
from bot.core.models import Actor, HeldRequest
from bot.errors import StoreError, UserError
from bot.slack import keys
from bot.slack.intake.context import ROUTE, IntakeContext, refusal
from bot.slack.intake.journal import HeldKind, Journal
from bot.slack.intake.request import Asker, clicked_on_home
from bot.slack.origin import Kind

log = logging.getLogger(__name__)
UNKNOWN = "jobbot does not know that button (it may be from an older version)."


class ButtonIntake:
    """What happens behind the block_actions listeners."""

    def __init__(self, context: IntakeContext, journal: Journal) -> None:
        self.context = context
        self.journal = journal
        journal.register(HeldKind.RERUN, self._redo)

    def rerun(self, body: Mapping[str, Any], action: Mapping[str, Any]) -> None:
        """A Re-run button: the value is untrusted, the service checks ownership."""
        asker, from_home = Asker.from_click(body), clicked_on_home(body)
        key = keys.button(action.get("action_ts") or body.get("trigger_id"))
        value = str(action.get("value") or "")

        def work() -> None:
            self._rerun(asker, value, key, from_home)

        payload = {"asker": asker.to_dict(), "value": value, "from_home": from_home}
        self.journal.hold(key, HeldKind.RERUN, payload, work, where=asker.where)

    def unknown(self, body: Mapping[str, Any], action: Mapping[str, Any]) -> None:
        """A click on something jobbot does not handle: tell the person, change nothing."""
        asker = Asker.from_click(body)
        log.info("unknown action", extra={"action": str(action.get("action_id"))[:40]})
        self.context.later(lambda: self.context.tell(asker.where, UNKNOWN))

    def _redo(self, request: HeldRequest) -> bool:
        data = request.payload
        asker = Asker.from_dict(data.get("asker"))
        if asker is None:
            return False
        value, from_home = str(data.get("value") or ""), bool(data.get("from_home"))
        self._rerun(asker, value, request.key, from_home)
        return True

    def _rerun(self, asker: Asker, value: str, key: str, from_home: bool) -> None:
        context = self.context
        kind = Kind.HOME if from_home else Kind.BUTTON
        actor: Actor | None = None
        try:
            job_id = parse_job_id(value[:40], "rerun")
            actor = context.actor(asker)
            context.service.rerun(
                actor, job_id, origin=asker.origin(kind), route=ROUTE, idempotency_key=key
            )
        except (UserError, StoreError) as exc:
            if from_home and actor is not None:
                context.home.opened(actor, asker.user, notice=refusal(exc))
            else:
                context.tell(asker.where, refusal(exc))
            return
        if from_home:
            context.home.opened(actor, asker.user)
