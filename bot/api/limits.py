"""Pacing: a token bucket per API token (and one per client address for requests without a
valid token) shared by every serve process, and a cap on the requests that hold a server
thread while they wait for a job."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

from bot.core.pacing import Rate


class Buckets(Protocol):
    """Rate buckets every process shares (the store keeps them: bot/store/pace.py)."""

    def spend_turn(
        self, bucket: str, rate: Rate, now: float, *, token_sha256: str | None = None
    ) -> float | None:
        """0.0 when a turn of `bucket` was spent now; else the seconds until one is free.
        With `token_sha256`, None when that API token no longer stands (nothing spent)."""


class SharedRateLimit:
    """`per_minute` requests per key on average, `burst` at once, counted in buckets that
    every serve process shares, so that several processes together allow what one does."""

    def __init__(
        self,
        buckets: Buckets,
        prefix: str,
        per_minute: int,
        burst: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.buckets = buckets
        self.prefix = prefix
        self.rate = Rate(per_minute / 60.0, burst)
        self.clock = clock

    def take(self, key: str, token_sha256: str | None = None) -> float | None:
        """Spend one request of `key`: 0 if allowed, else the seconds until one is; None when
        `token_sha256` was given and that token no longer stands."""
        return self.buckets.spend_turn(
            self.prefix + key, self.rate, self.clock(), token_sha256=token_sha256
        )


class Refusals:
    """Addresses refused until a time, remembered in this process, so that one over its limit
    is answered at once with no token looked up (a guess cannot be tried while refused)."""

    def __init__(self, clock: Callable[[], float] = time.time, size: int = 10000) -> None:
        self.clock = clock
        self.size = size
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def refuse(self, key: str, seconds: float) -> None:
        """`key` is refused for `seconds` from now."""
        with self._lock:
            if len(self._until) >= self.size:
                now = self.clock()
                self._until = {k: t for k, t in self._until.items() if t > now}
            self._until[key] = self.clock() + seconds

    def left(self, key: str) -> float:
        """Seconds `key` is still refused (0 when it is not)."""
        with self._lock:
            until = self._until.get(key)
        return 0.0 if until is None else max(0.0, until - self.clock())


def retry_after(seconds: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))


class WaitSlots:
    """How many requests may wait for a job at once: in all (so that waiting requests never
    take every server thread from Slack's events and quick requests) and per key."""

    def __init__(self, total: int, per_key: int) -> None:
        self.total = total
        self.per_key = per_key
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: int) -> Iterator[str | None]:
        """A slot for the body of the `with`; yields None, or why there is none ('key' when
        this key waits too often at once, 'total' when the server does)."""
        with self._lock:
            mine = self._held.get(key, 0)
            refused = (
                "key"
                if mine >= self.per_key
                else "total"
                if sum(self._held.values()) >= self.total
                else None
            )
            if refused is None:
                self._held[key] = mine + 1
        try:
            yield refused
        finally:
            if refused is None:
                with self._lock:
                    left = self._held[key] - 1
                    if left:
                        self._held[key] = left
                    else:
                        del self._held[key]
