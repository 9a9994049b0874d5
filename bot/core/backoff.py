"""Jittered exponential back-off: the one delay rule of every retry loop."""

from __future__ import annotations

import random

FULL_JITTER = (0.0, 1.0)  # anywhere from no wait to the whole step
NO_JITTER = (1.0, 1.0)  # exactly the step (when the waiting is counted, not timed)
_MAX_DOUBLINGS = 62  # beyond this any cap is reached, and 2.0**n stays a finite float


def backoff(
    attempt: int,
    first: float,
    cap: float = float("inf"),
    jitter: tuple[float, float] = (0.75, 1.25),
) -> float:
    """The wait before retry `attempt` (1, 2, ...): `first`, doubled for each attempt after
    the first and held at `cap`, times a random factor between the two ends of `jitter`
    (so that callers who failed together do not come back together)."""
    step = min(cap, first * 2.0 ** min(max(0, attempt - 1), _MAX_DOUBLINGS))
    low, high = jitter
    return step * random.uniform(low, high)  # noqa: S311 - jitter, not a secret


def standard_backoff(attempt: int) -> float:
    """The wait after trouble with the database, the executor or a notifier: about 0.5 s, 1 s,
    2 s ... up to 30 s."""
    return backoff(attempt, first=0.5, cap=30.0)


def jittered(interval: float, spread: float = 0.2) -> float:
    """`interval` give or take `spread` of itself: a poll that many processes share."""
    return interval * random.uniform(1 - spread, 1 + spread)  # noqa: S311 - jitter
