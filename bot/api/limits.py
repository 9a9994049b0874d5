"""Pacing per token: a token bucket for the request rate, and a cap on the requests that hold
a server thread while they wait for a job."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RateLimit:
    """`per_minute` requests per key on average, `burst` at once; in memory, per process."""

    def __init__(
        self, per_minute: int, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self._buckets: dict[int, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def take(self, key: int) -> float:
        """Spend one request of `key`: 0 if allowed, else the seconds until one is."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                self._forget_full(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled, so the map stays as small as the active keys."""
        if len(self._buckets) < 10000:
            return
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


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
