"""The API's limits: what it accepts (ApiLimits, from the settings), a token bucket per API
token (and one per client address for requests without a valid token) shared by every serve
process, and a cap on the requests that hold a server thread while they wait for a job."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from bot.core.pacing import Rate
from bot.errors import StoreError

log = logging.getLogger(__name__)

LEASE_S = 1.0  # turns a process took ahead are kept this long at most
STALE_S = 24 * 3600.0  # a bucket full again this long is forgotten (a missing one is full)
PRUNE_EVERY_S = 600.0  # how often a process forgets the stale buckets of its limits
WAIT_MARGIN_S = 5.0  # ?wait= may exceed the job timeout by this much (queueing, start-up)
BODY_OVERHEAD = 64 << 10  # JSON escapes and multipart boundaries around the code and input


@dataclass(frozen=True)
class ApiLimits:
    """What the API accepts and how it paces its callers (from the settings)."""

    max_code_bytes: int
    max_input_bytes: int
    max_files_in_bytes: int
    job_timeout_s: float
    poll_s: float
    rate_per_minute: int
    burst: int
    wait_slots: int  # requests waiting for a job at once, in all
    waits_per_token: int = 4
    unauthorized_per_minute: int = 30  # requests without a valid token, per client address
    unauthorized_burst: int = 10

    @property
    def max_body(self) -> int:
        """The largest request body read: twice the code and input (JSON escapes), the data
        files, and room for the envelope. A bigger one is refused before it is read."""
        code_and_input = 2 * (self.max_code_bytes + self.max_input_bytes)
        return code_and_input + self.max_files_in_bytes + BODY_OVERHEAD

    @property
    def max_wait_s(self) -> float:
        """The longest ?wait= taken."""
        return self.job_timeout_s + WAIT_MARGIN_S


class Buckets(Protocol):
    """Rate buckets every process shares (the store keeps them: bot/store/pace.py)."""

    def spend_turns(
        self, bucket: str, rate: Rate, now: float, turns: int, *, token_sha256: str | None = None
    ) -> tuple[int, float] | None:
        """Up to `turns` turns of `bucket` spent now: (how many, 0.0), or (0, the seconds
        until one is free). With `token_sha256`, None when that API token no longer stands
        (nothing spent)."""

    def forget_turns(self, prefix: str, before: float) -> int:
        """Delete the buckets under `prefix` whose arrival time is before `before`."""


class SharedRateLimit:
    """`per_minute` requests per key on average, `burst` at once, counted in buckets that
    every serve process shares, so that several processes together allow what one does.

    A process takes a few turns at once (a second's worth of the rate, at most a quarter of
    the burst) and spends them within LEASE_S: most requests of a busy key then cost no
    database write. Turns left unused lapse, so the processes together never allow more than
    the limit; one may refuse a little early while another holds turns it does not use."""

    def __init__(
        self,
        buckets: Buckets,
        prefix: str,
        per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.time,
        lease_s: float = LEASE_S,
    ) -> None:
        self.buckets = buckets
        self.prefix = prefix
        self.rate = Rate(per_minute / 60.0, burst)
        self.clock = clock
        self.lease_s = lease_s
        self.ahead = max(1, min(burst // 4, math.ceil(self.rate.per_s * lease_s)))
        self._held: dict[str, tuple[int, float]] = {}  # key -> (turns held, until)
        self._lock = threading.Lock()
        self._next_prune = 0.0

    def take(self, key: str, token_sha256: str | None = None) -> float | None:
        """Spend one request of `key`: 0 if allowed, else the seconds until one is; None when
        `token_sha256` was given and that token no longer stands (checked whenever turns
        are taken from the shared bucket: at least every LEASE_S while the key is busy)."""
        now = self.clock()
        self._prune_later(now)
        with self._lock:
            held, until = self._held.get(key, (0, 0.0))
            if held > 0 and now < until:
                self._held[key] = (held - 1, until)
                return 0.0
        got = self.buckets.spend_turns(
            self.prefix + key, self.rate, now, self.ahead, token_sha256=token_sha256
        )
        if got is None:
            self.forget(key)
            return None
        granted, wait = got
        if granted == 0:
            return wait
        with self._lock:
            if len(self._held) >= 10000:
                self._held = {k: v for k, v in self._held.items() if v[1] > now}
            self._held[key] = (granted - 1, now + self.lease_s)
        return 0.0

    def _prune_later(self, now: float) -> None:
        """Every PRUNE_EVERY_S, forget this limit's buckets full again for STALE_S (one per
        token or address ever seen), in a thread of its own: never in a request's way."""
        with self._lock:
            if now < self._next_prune:
                return
            self._next_prune = now + PRUNE_EVERY_S
        threading.Thread(target=self.prune, args=(now,), name="api-pace-prune", daemon=True).start()

    def prune(self, now: float) -> int:
        """Forget this limit's buckets that have been full again for STALE_S; how many."""
        try:
            return self.buckets.forget_turns(self.prefix, now - STALE_S)
        except StoreError as exc:
            log.info("stale API rate buckets not pruned: %s", exc)
            return 0

    def forget(self, key: str) -> None:
        """Drop the turns held for `key` (its token was revoked or replaced here)."""
        with self._lock:
            self._held.pop(key, None)


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
