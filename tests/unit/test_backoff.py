"""The one back-off rule: doubling steps held at a cap, each spread by its jitter."""

from __future__ import annotations

import pytest

from bot.core.backoff import FULL_JITTER, NO_JITTER, backoff, jittered, standard_backoff


@pytest.mark.parametrize(("attempt", "step"), [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0)])
def test_each_attempt_doubles_the_step_up_to_the_cap(attempt: int, step: float) -> None:
    delays = [backoff(attempt, first=0.5, cap=30.0) for _ in range(200)]

    assert all(step * 0.75 <= delay <= step * 1.25 for delay in delays)


def test_without_jitter_the_step_is_exact() -> None:
    assert [backoff(n, first=1.0, cap=8.0, jitter=NO_JITTER) for n in range(1, 7)] == [
        1.0, 2.0, 4.0, 8.0, 8.0, 8.0,
    ]  # fmt: skip


def test_full_jitter_waits_anywhere_from_nothing_to_the_step() -> None:
    delays = [backoff(3, first=0.1, cap=0.5, jitter=FULL_JITTER) for _ in range(200)]

    assert all(0.0 <= delay <= 0.4 for delay in delays)
    assert len(set(delays)) > 1


def test_an_attempt_below_one_waits_the_first_step() -> None:
    assert backoff(0, first=2.0, jitter=NO_JITTER) == 2.0


def test_a_very_late_attempt_is_held_at_the_cap_without_overflow() -> None:
    assert backoff(10_000, first=1.0, cap=15.0, jitter=NO_JITTER) == 15.0
    assert backoff(10_000, first=1.0, jitter=NO_JITTER) == 2.0**62


def test_the_standard_back_off_runs_from_half_a_second_to_thirty() -> None:
    assert 0.375 <= standard_backoff(1) <= 0.625
    assert 22.5 <= standard_backoff(50) <= 37.5


def test_a_jittered_poll_stays_within_its_spread() -> None:
    polls = [jittered(0.25) for _ in range(200)]

    assert all(0.2 <= poll <= 0.3 for poll in polls)
