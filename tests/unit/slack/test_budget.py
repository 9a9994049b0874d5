"""The Pacer: results reserve their turn (kept in the delivery's progress), progress only
takes a free one, a 429 empties one bucket; the App Home's refresh budget."""

from __future__ import annotations

import pytest

from bot.slack.budget import (
    POST,
    POST_PER_CHANNEL,
    STALE_S,
    TIER_3,
    Held,
    Pacer,
    buckets,
)
from bot.slack.delivery import Progress
from bot.slack.home import HomePublisher
from tests.support.fakes import FakeClock, InMemoryStore


class Clock:
    """Wall time that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pacer(clock: Clock) -> Pacer:
    return Pacer(InMemoryStore(FakeClock()), clock=clock)


def fill(pacer: Pacer, channel: str) -> None:
    """Use up the channel's burst."""
    for _ in range(POST_PER_CHANNEL.burst):
        pacer.turn(Progress({}), POST, channel, result=True)


def test_a_result_reserves_the_next_turn_and_its_retry_uses_it(pacer: Pacer, clock: Clock) -> None:
    fill(pacer, "C1")
    progress = Progress({})
    with pytest.raises(Held) as held:
        pacer.turn(progress, POST, "C1", result=True)
    assert held.value.wait_s == pytest.approx(POST_PER_CHANNEL.interval)
    kept = progress.changes["slack_turn"]
    assert kept.startswith("slack:post:C1@")
    clock.now += held.value.wait_s
    retried = Progress(progress.changes)
    pacer.turn(retried, POST, "C1", result=True)  # its own turn, not another one
    assert retried.changes == {"slack_turn": None}
    with pytest.raises(Held) as next_one:
        pacer.turn(Progress({}), POST, "C1", result=True)
    assert next_one.value.wait_s == pytest.approx(POST_PER_CHANNEL.interval)


def test_progress_goes_only_while_its_bucket_is_full_so_results_go_first(
    pacer: Pacer, clock: Clock
) -> None:
    pacer.turn(Progress({}), POST, "C1", result=True)  # one result: the burst is not whole
    progress = Progress({})
    with pytest.raises(Held) as held:
        pacer.turn(progress, POST, "C1", result=False)
    assert progress.changes == {}, "progress reserved nothing"
    assert held.value.wait_s == pytest.approx(POST_PER_CHANNEL.interval), "until full again"
    pacer.turn(Progress({}), POST, "C2", result=False)  # another channel is quiet
    for _ in range(POST_PER_CHANNEL.burst - 1):
        pacer.turn(Progress({}), POST, "C1", result=True)
    with pytest.raises(Held):
        pacer.turn(Progress({}), POST, "C1", result=True)  # a result waits, reserved
    clock.now += POST_PER_CHANNEL.interval * POST_PER_CHANNEL.burst
    with pytest.raises(Held):
        pacer.turn(Progress({}), POST, "C1", result=False)  # the result's turn came first
    clock.now += POST_PER_CHANNEL.interval
    pacer.turn(Progress({}), POST, "C1", result=False)


def test_new_status_messages_go_no_faster_than_the_edits_they_promise(
    pacer: Pacer, clock: Clock
) -> None:
    pacer.turn(Progress({}), POST, "C0", result=False, status=True)
    with pytest.raises(Held) as held:
        pacer.turn(Progress({}), POST, "C99", result=False, status=True)
    assert held.value.wait_s == pytest.approx(TIER_3.interval), "chat.update's rate"
    pacer.turn(Progress({}), POST, "C99", result=False)  # other progress is not held up
    clock.now += TIER_3.interval
    pacer.turn(Progress({}), POST, "C98", result=False, status=True)


def test_buckets_full_again_for_a_day_are_pruned(pacer: Pacer, clock: Clock) -> None:
    pacer.turn(Progress({}), POST, "C1", result=True)
    clock.now += STALE_S / 2
    pacer.turn(Progress({}), POST, "C2", result=True)
    clock.now += STALE_S / 2 + 10
    assert pacer.prune(clock.now) == 1, "C1's bucket; C2's and the workspace's are recent"
    assert sorted(k for k, _ in pacer.memory.turns_ahead("slack:", 0.0)) == [
        "slack:post:*",
        "slack:post:C2",
    ]


def test_a_429_empties_that_bucket_alone_until_retry_after(pacer: Pacer, clock: Clock) -> None:
    pacer.refused(POST, "C1", 7.0)
    with pytest.raises(Held) as held:
        pacer.turn(Progress({}), POST, "C1", result=True)
    assert held.value.wait_s == pytest.approx(7.0)
    pacer.turn(Progress({}), POST, "C2", result=False)
    pacer.turn(Progress({}), "chat.update", "C1", result=False)


def test_files_upload_takes_a_turn_in_both_of_its_methods() -> None:
    assert [k for k, _ in buckets("files_upload_v2")] == [
        "slack:files.getUploadURLExternal",
        "slack:files.completeUploadExternal",
    ]


def test_the_home_tab_is_refreshed_only_once_opened_and_once_per_period(clock: Clock) -> None:
    pacer = Pacer(InMemoryStore(FakeClock()), clock=clock)
    home = HomePublisher(None, None, pacer=pacer, refresh_s=60)  # type: ignore[arg-type]
    assert not home._may_refresh(1, "U1"), "never opened"
    pacer.memory.take_turn([(home._bucket("U1"), home.refresh)], clock.now, wait=True)  # opened
    assert not home._may_refresh(1, "U1"), "just published"
    clock.now += 61
    assert home._may_refresh(1, "U1")
    assert not home._may_refresh(1, "U1"), "once per period"
    assert not home._may_refresh(2, "U10"), "another user's key is not a prefix match"
