"""The HTTP API's bearer tokens: minted at random, shown once, kept only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.models import Actor
from bot.errors import UsageError

PREFIX = "jobbot_"
MAX_EXPIRY = timedelta(days=3650)
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_LIFETIME = re.compile(r"^([0-9]{1,7})([mhd])$")
# 32 random bytes, URL-safe base64 without padding: 43 characters.
_SHAPE = re.compile(r"^jobbot_[A-Za-z0-9_-]{43}$")


def new_token() -> str:
    """A fresh token: a recognisable prefix (for secret scanners) and 256 random bits."""
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """What is stored of a token. A plain SHA-256 suffices: with 256 random bits there is
    nothing to guess, so a slow password hash would only slow every request down."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def well_formed(token: str) -> bool:
    """Whether a presented token can be one of ours (anything else is refused unlooked-up)."""
    return bool(_SHAPE.match(token))


@dataclass(frozen=True)
class TokenCheck:
    """What a presented token stands for: its `actor`, or None when it stands for nobody
    (then `expired_at` says when, if it was one of ours that expired); `digest` is its hash
    (None for something that cannot be a token)."""

    actor: Actor | None
    digest: str | None = None
    expired_at: datetime | None = None


def parse_lifetime(text: str) -> timedelta:
    """A token's lifetime as people write it: 90m, 12h, 30d (at most ten years)."""
    match = _LIFETIME.match(text.strip().lower())
    if match is None or int(match.group(1)) == 0:
        raise UsageError(
            f"`{text.strip()[:40]}` is not a lifetime: write a whole number of minutes, hours "
            "or days, like 90m, 12h or 30d."
        )
    lifetime = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if lifetime > MAX_EXPIRY:
        raise UsageError(
            f"A token may live at most {MAX_EXPIRY.days} days: give a shorter lifetime, like 30d."
        )
    return lifetime
