"""The Run job form's submission: field errors in the ack, else the request is journaled and
the file downloaded and submitted after it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.datafiles import too_large
from bot.core.models import HeldRequest
from bot.core.replies import UNAVAILABLE
from bot.errors import StoreError, UserError
from bot.slack import keys
from bot.slack.intake.context import IntakeContext, refusal
from bot.slack.intake.journal import (
    HOLD_BUDGET_S,
    Held,
    HeldKind,
    Journal,
    file_from_dict,
    file_to_dict,
)
from bot.slack.intake.request import Asker
from bot.slack.origin import Kind
from bot.slack.uploads import SlackFile
from bot.slack.views import (
    DATA_ACTION,
    DATA_BLOCK,
    FILE_ACTION,
    FILE_BLOCK,
    INPUT_ACTION,
    INPUT_BLOCK,
)

# MAYBE_SAVED, short enough for a form field's error.
MAYBE_SUBMITTED = (
    "jobbot's database stopped answering while saving this, so it may have been saved: "
    "check `/job mine` before you submit it again."
)


def first_line(message: str, limit: int = 150) -> str:
    """The first line of a message, short enough for a form field's error."""
    line = message.strip().splitlines()[0] if message.strip() else message
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _field(values: Mapping[str, Any], block: str, action: str) -> Mapping[str, Any]:
    return (values.get(block) or {}).get(action) or {}


class FormIntake:
    """What happens behind the Run job form's view_submission listener."""

    def __init__(self, context: IntakeContext, journal: Journal) -> None:
        self.context = context
        self.journal = journal
        journal.register(HeldKind.FORM, self._redo)

    def ack(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The ack body of a Run job form: field errors, or nothing (the form closes) with the
        download and submission scheduled."""
        view = body.get("view") or {}
        values = (view.get("state") or {}).get("values") or {}
        files = _field(values, FILE_BLOCK, FILE_ACTION).get("files") or []
        picked = _field(values, DATA_BLOCK, DATA_ACTION).get("files") or []
        data = [SlackFile.from_payload(f) for f in picked if isinstance(f, dict)]
        text = _field(values, INPUT_BLOCK, INPUT_ACTION).get("value") or ""
        errors: dict[str, str] = {}
        limit = self.context.service.limits.max_files_in_bytes
        total = sum(f.size or 0 for f in data)
        if total > limit:
            errors[DATA_BLOCK] = first_line(too_large([f.name for f in data], total, limit).message)
        try:
            self.context.check_input(text)
        except UserError as exc:
            errors[INPUT_BLOCK] = first_line(exc.message)
        file = SlackFile.from_payload(files[0]) if files else None
        if file is None:
            errors[FILE_BLOCK] = "Choose a .py file to run."
        else:
            try:
                self.context.fetcher.check(file)
            except UserError as exc:
                errors[FILE_BLOCK] = first_line(exc.message)
        if errors or file is None:
            return {"response_action": "errors", "errors": errors}
        asker = Asker.from_form(body)
        key = keys.form(view.get("id"))
        payload = {
            "asker": asker.to_dict(),
            "file": file_to_dict(file),
            "text": text,
            "data": [file_to_dict(f) for f in data],
        }
        held = self.journal.hold(
            key,
            HeldKind.FORM,
            payload,
            lambda: self._submit(asker, file, text, key, data),
            where=asker.where,
            budget=HOLD_BUDGET_S,
        )
        if held is Held.DOWN:
            return {
                "response_action": "errors",
                "errors": {INPUT_BLOCK: first_line(UNAVAILABLE.message)},
            }
        if held is Held.UNKNOWN:
            return {"response_action": "errors", "errors": {INPUT_BLOCK: MAYBE_SUBMITTED}}
        return {}

    def _redo(self, request: HeldRequest) -> bool:
        data = request.payload
        asker = Asker.from_dict(data.get("asker"))
        if asker is None:
            return False
        file = file_from_dict(data["file"])
        extra = [file_from_dict(f) for f in data.get("data") or [] if isinstance(f, dict)]
        self._submit(asker, file, str(data.get("text") or ""), request.key, extra)
        return True

    def _submit(
        self, asker: Asker, file: SlackFile, text: str, key: str, data: list[SlackFile]
    ) -> None:
        try:
            actor = self.context.actor(asker)
        except StoreError as exc:
            self.context.tell(asker.where, refusal(exc))
            return
        self.context.submit(actor, asker, file, text, kind=Kind.MODAL, key=key, data_files=data)
