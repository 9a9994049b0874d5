"""RFC 9457 problem details: every refusal of the API as application/problem+json, worded as
the other surfaces word it, with the commands spelled as this API takes them."""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response

from bot.errors import (
    FileNotFound,
    FileTooLarge,
    Forbidden,
    InputTooLarge,
    InvalidFile,
    InvalidInput,
    JobNotFound,
    NotCancellable,
    UsageError,
    UserError,
    UserNotFound,
)

CONTENT_TYPE = "application/problem+json"
BASE = "urn:jobbot:problem:"

# The asker's mistakes, most specific first: (class, status, type, title).
USER_ERRORS: tuple[tuple[type[UserError], int, str, str], ...] = (
    (InputTooLarge, 413, "too-large", "Too large"),
    (FileTooLarge, 413, "too-large", "Too large"),
    (InvalidInput, 422, "invalid-input", "Invalid input"),
    (InvalidFile, 422, "invalid-file", "Invalid file"),
    (JobNotFound, 404, "not-found", "Not found"),
    (UserNotFound, 404, "not-found", "Not found"),
    (FileNotFound, 404, "not-found", "Not found"),
    (Forbidden, 403, "forbidden", "Not yours"),
    (NotCancellable, 409, "not-cancellable", "Not cancellable"),
    (UsageError, 400, "bad-request", "Bad request"),
)


def problem(
    status: int,
    kind: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """One problem answer; `kind` names its type (a URN), `extra` adds members."""
    body = {"type": BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    answer = Response(
        json.dumps(body, ensure_ascii=False), status=status, content_type=CONTENT_TYPE
    )
    for name, value in (headers or {}).items():
        answer.headers[name] = value
    return answer


def user_problem(exc: UserError, user_id: int | None = None) -> Response:
    """The answer to one of the asker's mistakes, raised by the core."""
    for cls, status, kind, title in USER_ERRORS:
        if isinstance(exc, cls):
            return problem(status, kind, title, api_wording(exc.message, user_id))
    return problem(400, "bad-request", "Bad request", api_wording(exc.message, user_id))


_SLASH_COMMAND = re.compile(r"`/job ([a-z]+)(?: ([^`]*))?`")


def api_wording(message: str, user_id: int | None = None) -> str:
    """A core message, which names commands as Slack and the console spell them
    (`/job status 12`), with those commands as requests of this API."""

    def spell(match: re.Match[str]) -> str:
        verb, arg = match.group(1), (match.group(2) or "").strip()
        if verb == "status" and arg:
            return f"`GET /api/jobs/{arg}`"
        if verb in {"cancel", "rerun"} and arg:
            return f"`POST /api/jobs/{arg}/{verb}`"
        if verb == "list":
            return f"`GET /api/jobs?page={arg or 1}`"
        if verb == "mine":
            return f"`GET /api/users/{user_id if user_id is not None else 'ID'}/jobs`"
        return match.group(0)

    return _SLASH_COMMAND.sub(spell, message)
