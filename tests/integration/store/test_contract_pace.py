"""The store contract of the shared rate buckets (bot/store/pace.py): turns taken and
reserved, refusals, and one bucket state for every process on the same database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bot.core.pacing import Rate
from bot.store import SqlStore, make_engine
from tests.integration.store.conftest import ALICE, BOB

RATE = Rate(1.0, 2)  # a second apart after a burst of two
T0 = 1_000_000.0


def test_a_burst_goes_now_then_turns_are_a_rate_apart(store: Any) -> None:
    bucket = [("b:one", RATE)]
    assert store.take_turn(bucket, T0, wait=True) == T0
    assert store.take_turn(bucket, T0, wait=True) == T0
    assert store.take_turn(bucket, T0, wait=True) == pytest.approx(T0 + 1)
    assert store.take_turn(bucket, T0, wait=True) == pytest.approx(T0 + 2)
    assert store.take_turn([("b:other", RATE)], T0, wait=True) == T0, "buckets are apart"


def test_a_turn_that_must_not_wait_goes_only_while_the_bucket_is_full(store: Any) -> None:
    bucket = [("b:one", RATE)]
    assert store.take_turn(bucket, T0, wait=False) == T0
    assert store.take_turn(bucket, T0, wait=False) == pytest.approx(T0 + 1), "one spent"
    assert store.take_turn(bucket, T0, wait=False) == pytest.approx(T0 + 1), "nothing taken"
    assert store.take_turn(bucket, T0 + 1, wait=False) == pytest.approx(T0 + 1)
    store.take_turn(bucket, T0 + 2, wait=True)
    assert store.take_turn(bucket, T0 + 2, wait=True) == pytest.approx(T0 + 2), "the burst"


def test_a_call_through_two_buckets_waits_for_the_fuller_and_takes_from_both(store: Any) -> None:
    channel, workspace = ("b:post:C1", RATE), ("b:post:*", Rate(1.0, 3))
    for _ in range(2):
        store.take_turn([channel], T0, wait=True)
    at = store.take_turn([channel, workspace], T0, wait=True)
    assert at == pytest.approx(T0 + 1)
    # The workspace bucket counted that turn, from now (a turn reserved later in one channel
    # leaves it no idle gap): two more of its burst of three now, then a second apart.
    assert store.take_turn([workspace], T0, wait=True) == T0
    assert store.take_turn([workspace], T0, wait=True) == T0
    assert store.take_turn([workspace], T0, wait=True) == pytest.approx(T0 + 1)


def test_a_call_through_two_buckets_takes_a_turn_of_both_or_of_neither(store: Any) -> None:
    channel, workspace = ("b:post:C1", RATE), ("b:post:*", Rate(1.0, 1))
    assert store.take_turn([channel], T0 - 10, wait=True) == T0 - 10  # full again by T0
    assert store.take_turn([workspace], T0, wait=True) == T0  # empty until T0 + 1
    assert store.take_turn([channel, workspace], T0, wait=False) == pytest.approx(T0 + 1)
    assert store.take_turn([channel], T0, wait=False) == T0, "the channel is still full"
    assert store.take_turn([channel, workspace], T0 + 2, wait=True) == T0 + 2
    assert store.take_turn([workspace], T0 + 2, wait=True) == pytest.approx(T0 + 3), "taken"
    assert store.take_turn([channel], T0 + 2, wait=False) == pytest.approx(T0 + 3), "both"


def test_a_refusal_empties_the_bucket_until_retry_after(store: Any) -> None:
    store.refused_turn("b:one", RATE, T0, 30.0)
    assert store.take_turn([("b:one", RATE)], T0, wait=False) == pytest.approx(T0 + 31)
    assert store.take_turn([("b:one", RATE)], T0 + 30, wait=True) == pytest.approx(T0 + 30)
    assert store.take_turn([("b:one", RATE)], T0 + 30, wait=True) == pytest.approx(T0 + 31)
    assert store.take_turn([("b:two", RATE)], T0, wait=False) == T0, "the others are not held"
    assert [k for k, _ in store.turns_ahead("b:", T0 + 5)] == ["b:one"]


def test_buckets_long_full_again_are_forgotten_and_the_others_kept(store: Any) -> None:
    store.take_turn([("b:old", RATE)], T0, wait=True)
    store.take_turn([("b:new", RATE)], T0 + 100, wait=True)
    store.take_turn([("other:old", RATE)], T0, wait=True)
    assert store.forget_turns("b:", T0 + 50) == 1
    assert [k for k, _ in store.turns_ahead("b:", 0.0)] == ["b:new"]
    assert [k for k, _ in store.turns_ahead("other:", 0.0)] == ["other:old"], "another prefix"
    assert store.take_turn([("b:old", RATE)], T0 + 100, wait=False) == T0 + 100, "full"


@pytest.mark.parametrize("kind", ["mariadb", "sqlite"])
def test_every_process_on_the_database_shares_the_buckets(store: SqlStore) -> None:
    other = SqlStore(make_engine(store.engine.url.render_as_string(hide_password=False)))
    try:
        for _ in range(2):
            store.take_turn([("b:one", RATE)], T0, wait=True)
        assert other.take_turn([("b:one", RATE)], T0, wait=True) == pytest.approx(T0 + 1)
        other.refused_turn("b:two", RATE, T0, 10.0)
        assert store.take_turn([("b:two", RATE)], T0, wait=True) == pytest.approx(T0 + 10)
    finally:
        other.close()


def test_a_spent_turn_is_taken_now_or_not_at_all(store: Any) -> None:
    for _ in range(2):  # the burst
        assert store.spend_turn("a:one", RATE, T0) == 0
    assert store.spend_turn("a:one", RATE, T0) == pytest.approx(1.0)
    assert store.spend_turn("a:one", RATE, T0) == pytest.approx(1.0), "nothing spent"
    assert store.spend_turn("a:one", RATE, T0 + 1) == 0
    assert store.spend_turn("a:other", RATE, T0) == 0, "buckets are apart"


def test_a_turn_spent_for_a_token_needs_the_token_to_stand(store: Any) -> None:
    alice, bob = store.ensure_user(ALICE), store.ensure_user(BOB)
    store.set_token(alice.id, "a" * 64)
    store.set_token(bob.id, "b" * 64, datetime(2000, 1, 1, tzinfo=UTC))  # long expired
    assert store.spend_turn("a:alice", RATE, T0, token_sha256="a" * 64) == 0
    assert store.spend_turn("a:bob", RATE, T0, token_sha256="b" * 64) is None, "expired"
    store.drop_token(alice.id)
    assert store.spend_turn("a:alice", RATE, T0, token_sha256="a" * 64) is None, "revoked"
    assert store.spend_turn("a:alice", RATE, T0) == 0, "one spent before, none since"


def test_turns_taken_ahead_are_as_many_as_the_bucket_has_now(store: Any) -> None:
    assert store.spend_turns("a:ahead", RATE, T0, 5) == (2, 0.0), "the burst of two"
    none, wait = store.spend_turns("a:ahead", RATE, T0, 5)
    assert none == 0 and wait == pytest.approx(1.0)
    assert store.spend_turns("a:ahead", RATE, T0 + 1, 5) == (1, 0.0)
    assert store.spend_turns("a:fresh", RATE, T0, 2) == (2, 0.0), "one statement, all of them"
