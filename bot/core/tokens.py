"""The HTTP API's bearer tokens: minted at random, shown once, kept only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "jobbot_"
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
