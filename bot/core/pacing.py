"""Pacing calls to a rate-limited service: the generic cell rate algorithm (GCRA), the
scheduling form of a token bucket. A bucket's whole state is one number, its theoretical
arrival time (`tat`), so any process can keep it in a shared database row.

A bucket of `burst` tokens refilled at `per_s` lets a call go at `max(now, tat - tolerance)`,
where `tolerance = (burst - 1) / per_s`; the call then moves `tat` on by `1 / per_s`. A call
that may wait is given that time (a reservation); one that must not wait goes only when the
bucket is full, and otherwise takes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rate:
    """`per_s` calls a second after a burst of `burst`."""

    per_s: float
    burst: int

    @property
    def interval(self) -> float:
        """Seconds per call at the steady rate."""
        return 1.0 / self.per_s

    @property
    def tolerance(self) -> float:
        """How far ahead of the steady rate a burst may run."""
        return max(0, self.burst - 1) * self.interval


def send_at(tat: float | None, now: float, rate: Rate, *, full: bool = False) -> float:
    """When the next call may go (`now` or later); with `full`, when the bucket is full
    again (nothing spent of its burst), for a call that must never take what another needs."""
    if tat is None:
        return now
    return max(now, tat if full else tat - rate.tolerance)


def after_send(tat: float | None, at: float, rate: Rate) -> float:
    """The bucket's new `tat` once a call takes its turn at `at`: one token spent. The call's
    own bucket counts it at its turn (`at`: no bunching); a bucket it shares with everyone
    (the workspace) counts it from now, so a turn reserved later in one busy channel does not
    leave the workspace idle until then."""
    return max(tat if tat is not None else at, at) + rate.interval


def after_refusal(tat: float | None, now: float, retry_after: float, rate: Rate) -> float:
    """The bucket's `tat` after the service refused a call with `Retry-After`: empty until
    then, so that nothing goes before `now + retry_after`, and no burst right after."""
    empty_until = now + retry_after + rate.tolerance
    return max(tat if tat is not None else empty_until, empty_until)


def backlog(tat: float | None, now: float, rate: Rate) -> float:
    """Calls already given a time in the future (0 when the bucket can take one now)."""
    if tat is None:
        return 0.0
    return max(0.0, (tat - rate.tolerance - now) / rate.interval)
