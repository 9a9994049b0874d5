"""The HTTP API's bearer tokens: minted at random, shown once, kept only as a SHA-256 hash;
`Tokens` mints, checks (remembering a looked-up token briefly), lists and revokes them."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.core.models import Actor, ApiToken, User
from bot.core.ports import ApiTokens, Clock
from bot.errors import UsageError

log = logging.getLogger(__name__)

PREFIX = "jobbot_"
MAX_EXPIRY = timedelta(days=3650)
_UNITS = {"m": 60, "h": 3600, "d": 86400}
_LIFETIME = re.compile(r"^([0-9]{1,7})([mhd])$")
# 32 random bytes, URL-safe base64 without padding: 43 characters.
_SHAPE = re.compile(r"^jobbot_[A-Za-z0-9_-]{43}$")
# A token's user is remembered this long after it was looked up, so that a program's requests
# cost no read each. Revoking or replacing the token in this process forgets it at once.
TOKEN_CACHE_S = 10.0
TOKEN_CACHE_SIZE = 10000
LAST_USED_EVERY = timedelta(minutes=1)  # a token's last use is recorded to the minute


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


class Tokens:
    """Every user's API token: mint (replacing theirs), check a presented one, list, revoke."""

    def __init__(self, store: ApiTokens, clock: Clock, actor_of: Callable[[User], Actor]) -> None:
        self.store = store
        self.clock = clock
        self._actor_of = actor_of  # the Actor of a token's user (admins as the service says)
        # API token hash -> (its user, when looked up); the generation guards a lookup that
        # raced a revocation from filling the memory with the revoked token.
        self._remembered: dict[str, tuple[ApiToken, float]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def mint(self, actor: Actor, lifetime: timedelta | None = None) -> str:
        """A new API token for the actor, replacing theirs; returned once, stored as a hash.
        With a `lifetime` it stops working that long from now."""
        token = new_token()
        expires_at = None if lifetime is None else self.clock.now() + lifetime
        self.store.set_token(actor.user.id, token_hash(token), expires_at)
        self._forget_user(actor.user.id)
        log.info(
            "api token minted",
            extra={
                "user_id": actor.user.id,
                "expires_at": None if expires_at is None else expires_at.isoformat(),
            },
        )
        return token

    def of(self, actor: Actor) -> ApiToken | None:
        """The actor's token as stored (never the token itself), if they have one."""
        return next((t for t in self.store.tokens() if t.user.id == actor.user.id), None)

    def all(self) -> list[ApiToken]:
        """Every user's token as stored (never the tokens themselves), by user id."""
        return self.store.tokens()

    def revoke(self, actor: Actor) -> bool:
        """Revoke the actor's API token; False if they had none."""
        revoked = self.store.drop_token(actor.user.id)
        self._forget_user(actor.user.id)
        log.info("api token revoked", extra={"user_id": actor.user.id, "had_one": revoked})
        return revoked

    def authenticate(self, presented: str) -> Actor | None:
        """The actor a presented API token stands for; None for anything else."""
        return self.check(presented).actor

    def check(self, presented: str, *, lookup: bool = True) -> TokenCheck:
        """What a presented API token stands for. Its record is remembered for
        TOKEN_CACHE_S, so that a program's requests cost no lookup each: a token replaced or
        revoked in this process is forgotten at once, one revoked elsewhere is refused by the
        caller's own check of each request (the API's, in the statement that spends the
        request's rate turn) or, failing that, once the record is looked up again. Without
        `lookup`, only a remembered token stands for someone."""
        if not well_formed(presented):
            return TokenCheck(None)
        digest = token_hash(presented)
        record = self._record(digest, lookup)
        if record is None:
            return TokenCheck(None, digest)
        now = self.clock.now()
        if record.expires_at is not None and record.expires_at <= now:
            return TokenCheck(None, digest, expired_at=record.expires_at)
        last = record.last_used_at
        if last is None or now - last >= LAST_USED_EVERY:
            self.store.touch_token(digest, now)
            with self._lock:
                cached = self._remembered.get(digest)
                if cached is not None and cached[0] is record:
                    self._remembered[digest] = (replace(record, last_used_at=now), cached[1])
        return TokenCheck(self._actor_of(record.user), digest)

    def forget(self, digest: str) -> None:
        """Forget a remembered token (it was found revoked, replaced or expired)."""
        with self._lock:
            self._remembered.pop(digest, None)

    def _record(self, digest: str, lookup: bool) -> ApiToken | None:
        now = time.monotonic()
        with self._lock:
            cached = self._remembered.get(digest)
            generation = self._generation
        if cached is not None and now - cached[1] < TOKEN_CACHE_S:
            return cached[0]
        if not lookup:
            return None
        record = self.store.token(digest)
        with self._lock:
            if record is None:
                self._remembered.pop(digest, None)
            elif generation == self._generation:
                if len(self._remembered) >= TOKEN_CACHE_SIZE:
                    self._remembered.clear()
                self._remembered[digest] = (record, now)
        return record

    def _forget_user(self, user_id: int) -> None:
        """Forget the remembered tokens of a user (theirs was just replaced or revoked)."""
        with self._lock:
            self._generation += 1
            self._remembered = {
                k: v for k, v in self._remembered.items() if v[0].user.id != user_id
            }
