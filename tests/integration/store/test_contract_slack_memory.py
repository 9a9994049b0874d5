"""The store contract of the Slack adapter's SlackMemory port: dedupe keys, uploads, the journal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.app.wiring.parts import Store
from bot.core.models import HeldRequest, Upload
from bot.slack.memory import SlackMemory
from testbed.waiting import wait_until
from tests.integration.store.conftest import ALICE, BOB, expire
from tests.support.fakes import InMemoryStore


def test_dedupe_keys_are_first_time_only_once(store: SlackMemory) -> None:
    assert store.first_time("Ev1")
    assert not store.first_time("Ev1")
    assert store.first_time("Ev2")


def test_old_dedupe_keys_of_one_prefix_can_be_forgotten(store: SlackMemory) -> None:
    now = store.clock.now() if isinstance(store, InMemoryStore) else datetime.now(UTC)
    for key in ("sig:a", "sig:b", "sigX", "msg:c"):
        assert store.first_time(key)

    assert store.forget_keys("sig:", now - timedelta(hours=1)) == 0  # none that old
    assert store.forget_keys("s%", now + timedelta(hours=1)) == 0  # a prefix, not a pattern
    assert store.forget_keys("sig:", now + timedelta(hours=1)) == 2

    assert store.first_time("sig:a")  # forgotten: new again
    assert not store.first_time("sigX") and not store.first_time("msg:c")


def test_latest_upload_is_per_user_and_conversation(store: Store) -> None:
    alice = store.ensure_user(ALICE)
    bob = store.ensure_user(BOB)
    since = datetime.now(UTC) - timedelta(hours=1)
    if isinstance(store, InMemoryStore):
        since = store.clock.now() - timedelta(hours=1)
    for user, channel, file_id in (
        (alice, "C1", "F1"),
        (alice, "C1", "F2"),
        (bob, "C1", "F3"),
        (alice, "C2", "F4"),
    ):
        store.remember_upload(
            Upload(
                user.id,
                channel,
                file_id,
                f"{file_id}.py",
                10,
                {"url": f"https://files/{file_id}"},
                since,
            )
        )
    latest = store.latest_upload(alice.id, "C1", since)
    assert latest is not None and latest.file_id == "F2" and latest.meta["url"].endswith("F2")
    assert store.latest_upload(alice.id, "C3", since) is None


def test_held_requests_are_taken_up_only_after_their_lease(store: SlackMemory) -> None:
    assert store.hold_request("cmd:T1:1", "command", {"text": "run {}", "n": 1}, 0.05)
    assert not store.hold_request("cmd:T1:1", "command", {"text": "again"}, 0.05)
    assert store.hold_request("cmd:T1:2", "command", {"text": "other"}, 3600)
    tick = expire(store)

    def taken() -> list[HeldRequest]:
        tick()
        return store.claim_held_requests(10, 3600)

    orphans = wait_until(taken, timeout=5, message="the expired hold taken up")
    assert [(h.key, h.kind, dict(h.payload), h.attempts) for h in orphans] == [
        ("cmd:T1:1", "command", {"text": "run {}", "n": 1}, 1)
    ]
    assert store.claim_held_requests(10, 3600) == []  # leased again to its new handler
    store.drop_held_request("cmd:T1:1")
    store.drop_held_request("cmd:T1:2")
    assert store.hold_request("cmd:T1:1", "command", {}, 3600)  # gone: can be held anew
