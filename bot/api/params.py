"""A request's query parameters and headers read into values: a malformed one is the caller's
mistake (UsageError, answered 400); which parameters a route takes at all is the gate's check."""

from __future__ import annotations

import math

from flask import request

from bot.core.models import Actor
from bot.errors import UsageError


def idempotency_key(actor: Actor) -> str | None:
    """The caller's Idempotency-Key, kept apart from every other user's."""
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (1 <= len(key) <= 100 and key.isascii() and key.isprintable()):
        raise UsageError("The Idempotency-Key header must be 1 to 100 printable ASCII characters.")
    return f"api:{actor.user.id}:{key}"


def number(name: str, low: int, high: int, default: int) -> int:
    """The whole number `name` from `low` to `high`; `default` when it is absent."""
    text = request.args.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 9 and low <= int(text) <= high):
        raise UsageError(f"{name} must be a whole number from {low} to {high}, like {name}={low}.")
    return int(text)


def seconds(name: str, high: float) -> float:
    """The seconds `name`, cut to `high`; 0 when it is absent."""
    text = request.args.get(name)
    if text is None:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0:  # NaN fails too
        raise UsageError(f"{name} must be a number of seconds, like {name}=10.")
    return min(value, high)  # a longer wait is cut to the longest a job can take


def identifier(text: str, what: str) -> int:
    """A user id from the path (a positive whole number)."""
    if not (text.isascii() and text.isdigit() and len(text) <= 18 and int(text) > 0):
        raise UsageError(f"`{text[:40]}` is not a {what} id: ids are positive whole numbers.")
    return int(text)
