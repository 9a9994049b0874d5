"""The JobStore contract, run against MariaDB, SQLite and the in-memory fake alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bot.core.models import (
    HeldRequest,
    Identity,
    JobStatus,
    NewJob,
    NotificationEvent,
    Outcome,
    ResultKind,
    RunResult,
    Upload,
)
from bot.core.ports import JobStore
from testbed.waiting import wait_until
from tests.support.fakes import FakeClock, InMemoryStore

ALICE = Identity("slack", "T1", "UALICE")
BOB = Identity("slack", "T1", "UBOB")


@pytest.fixture(params=["mariadb", "sqlite", "memory"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(kind: str, request: pytest.FixtureRequest) -> JobStore:
    fixture = {"mariadb": "mariadb_store", "sqlite": "sqlite_store", "memory": "memory_store"}
    return request.getfixturevalue(fixture[kind])  # type: ignore[no-any-return]


def expire(store: JobStore) -> Callable[[], None]:
    """A way to let leases of `lease_s=0.05` run out: real time for SQL, the fake clock else."""
    if isinstance(store, InMemoryStore):
        clock = store.clock
        assert isinstance(clock, FakeClock)
        return lambda: clock.advance(1)
    return lambda: None


def new_job(
    store: JobStore,
    who: Identity = ALICE,
    key: str | None = None,
    route: str | None = "r",
    code: str = "print(1)",
) -> int:
    owner = store.ensure_user(who)
    job, _ = store.submit(
        NewJob(
            owner.id,
            "a.py",
            code,
            "0" * 64,
            '{"a":1}',
            notify_route=route,
            idempotency_key=key,
            origin={"channel": "C1"},
        )
    )
    return job.id


def done(text: str = "1") -> RunResult:
    return RunResult(
        outcome=Outcome.OK,
        duration_ms=5,
        result_json=f'"{text}"',
        result_kind=ResultKind.STDOUT,
        stdout=text + "\n",
        executor="local",
    )


def test_identity_maps_to_one_user_even_under_concurrent_first_contact(
    store: JobStore, kind: str
) -> None:
    ids: list[int] = []
    barrier = threading.Barrier(8)

    def contact() -> None:
        barrier.wait()
        ids.append(store.ensure_user(Identity("slack", "T9", "URACE")).id)

    threads = [threading.Thread(target=contact) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert store.get_user(ids[0]).identity == Identity("slack", "T9", "URACE")  # type: ignore[union-attr]


def test_submit_round_trips_every_field_including_emoji(store: JobStore) -> None:
    owner = store.ensure_user(ALICE, "alice")
    code = "print('héllo 🎉')\n"
    job, created = store.submit(
        NewJob(
            owner.id,
            "émoji.py",
            code,
            "f" * 64,
            '{"s":"🎉"}',
            origin={"channel": "C1", "ts": "1.2"},
            notify_route="slack",
            idempotency_key="msg:C1:1.2",
        )
    )
    assert created
    fetched = store.get(job.id)
    assert fetched is not None
    assert (fetched.code, fetched.file_name, fetched.input_json) == (code, "émoji.py", '{"s":"🎉"}')
    assert fetched.owner == ALICE and fetched.owner_id == owner.id
    assert fetched.status is JobStatus.WAITING
    assert fetched.origin == {"channel": "C1", "ts": "1.2"}
    assert fetched.created_at.tzinfo is not None
    assert abs(fetched.created_at - datetime.now(UTC)) < timedelta(days=400)


def test_idempotency_key_returns_the_existing_job(store: JobStore) -> None:
    first = new_job(store, key="view:V1")
    owner = store.ensure_user(ALICE)
    again, created = store.submit(
        NewJob(owner.id, "b.py", "x", "0" * 64, "{}", idempotency_key="view:V1")
    )
    assert not created and again.id == first
    assert len(store.list_all(10)) == 1


def test_claims_are_oldest_first_and_never_shared_between_claimers(store: JobStore) -> None:
    ids = [new_job(store, Identity("slack", "T1", f"U{i}")) for i in range(40)]
    claimed: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def claimer(n: int) -> None:
        barrier.wait()
        while True:
            got = store.claim(f"w{n}", 3, 30, 3)
            if not got:
                return
            with lock:
                claimed.extend(c.job.id for c in got)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == ids
    assert len(set(claimed)) == len(claimed)


def test_claim_order_is_fifo(store: JobStore) -> None:
    ids = [new_job(store, Identity("slack", "T1", f"U{i}")) for i in range(5)]
    assert [c.job.id for c in store.claim("w", 2, 30, 3)] == ids[:2]
    assert [c.job.id for c in store.claim("w", 5, 30, 3)] == ids[2:]


def test_per_user_limit_counts_running_jobs(store: JobStore) -> None:
    alice = [new_job(store, ALICE) for _ in range(4)]
    bob = new_job(store, BOB)
    first = [c.job.id for c in store.claim("w", 10, 30, 2)]
    assert first == [*alice[:2], bob]
    assert store.claim("w", 10, 30, 2) == []


def test_claim_sets_running_lease_token_and_attempt(store: JobStore) -> None:
    job_id = new_job(store)
    claim = store.claim("w1", 1, 30, 3)[0]
    assert claim.job.id == job_id
    assert claim.job.status is JobStatus.RUNNING
    assert claim.job.claim_token == claim.token and len(claim.token) == 32
    assert claim.job.attempts == 1
    stored = store.get(job_id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert stored.claim_token == claim.token and stored.attempts == 1
    assert stored.lease_expires_at is not None and stored.invoked_at is None
    assert stored.started_at is not None


def test_writes_with_a_stale_token_change_nothing(store: JobStore) -> None:
    job_id = new_job(store)
    claim = store.claim("w1", 1, 30, 3)[0]
    stale = "0" * 32
    assert not store.mark_invoked(job_id, stale, 30)
    assert not store.finish(job_id, stale, done())
    assert not store.release(job_id, stale, 0)
    assert store.mark_invoked(job_id, claim.token, 30)
    assert store.get(job_id).status is JobStatus.RUNNING  # type: ignore[union-attr]


def test_finish_records_once_and_a_repeat_by_the_same_claim_is_harmless(store: JobStore) -> None:
    job_id = new_job(store)
    claim = store.claim("w1", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    assert store.finish(job_id, claim.token, done("8"))
    assert store.finish(job_id, claim.token, done("9"))  # a retried commit is harmless
    stored = store.get(job_id)
    assert stored is not None and stored.status is JobStatus.DONE
    assert stored.result == "8"
    events = store.notification_events(job_id)
    assert [e for e, _ in events].count(NotificationEvent.FINISHED) == 1


def test_large_output_round_trips(store: JobStore) -> None:
    job_id = new_job(store)
    claim = store.claim("w1", 1, 30, 3)[0]
    big = "ü" * 1_000_000 + "\n"
    result = RunResult(
        outcome=Outcome.ERROR,
        duration_ms=5,
        stdout=big,
        stderr=big,
        stdout_truncated=True,
        error_type="ValueError",
        error_message="bad",
        traceback="Traceback...",
    )
    assert store.finish(job_id, claim.token, result)
    fetched = store.get(job_id)
    assert fetched is not None and fetched.stdout == big and fetched.stdout_truncated
    assert fetched.status is JobStatus.ERROR and fetched.error_type == "ValueError"


def test_release_puts_the_job_back_after_a_delay(store: JobStore) -> None:
    job_id = new_job(store)
    claim = store.claim("w1", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    assert store.release(job_id, claim.token, 3600)
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.WAITING and job.invoked_at is None
    assert store.claim("w2", 1, 30, 3) == []
    assert store.notification_events(job_id) == [(NotificationEvent.QUEUED, "pending")]


def test_expired_leases_requeue_unstarted_and_interrupt_started_jobs(store: JobStore) -> None:
    fresh, started = new_job(store), new_job(store)
    claims = {c.job.id: c for c in store.claim("w1", 2, 0.05, 3)}
    store.mark_invoked(started, claims[started].token, 0.05)
    tick = expire(store)
    seen: dict[str, set[int]] = {"requeued": set(), "interrupted": set()}

    def swept() -> bool:
        tick()
        recovery = store.recover_expired()
        seen["requeued"] |= set(recovery.requeued)
        seen["interrupted"] |= set(recovery.interrupted)
        return seen == {"requeued": {fresh}, "interrupted": {started}}

    wait_until(swept, timeout=5, message="both leases settled")
    assert store.get(fresh).status is JobStatus.WAITING  # type: ignore[union-attr]
    interrupted = store.get(started)
    assert interrupted is not None and interrupted.status is JobStatus.ERROR
    assert interrupted.error_message == "interrupted: the worker stopped while the job was running"
    assert (NotificationEvent.FINISHED, "pending") in store.notification_events(started)
    assert not store.finish(started, claims[started].token, done())


def test_cancel_only_waiting_jobs(store: JobStore) -> None:
    waiting, running = new_job(store), new_job(store)
    store.claim("w", 1, 30, 3)  # claims `waiting`, the older one
    assert store.cancel(waiting) is None
    cancelled = store.cancel(running)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert store.cancel(running) is None


def test_listings_are_newest_first_summaries(store: JobStore) -> None:
    a1 = new_job(store, ALICE, code="x" * 5000)
    b1 = new_job(store, BOB)
    a2 = new_job(store, ALICE)
    mine = store.list_by_owner(store.ensure_user(ALICE).id, 10)
    assert [j.id for j in mine] == [a2, a1]
    assert all(j.is_summary and j.code == "" for j in mine)
    assert [j.id for j in store.list_all(2)] == [a2, b1]
    assert [j.id for j in store.list_all(10, before_id=b1)] == [a1]


def test_outbox_leases_in_per_job_order_and_settles(store: JobStore) -> None:
    job_id = new_job(store)
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    store.finish(job_id, claim.token, done())
    assert store.claim_notifications(["elsewhere"], 10, 30) == []
    queued = store.claim_notifications(["r"], 10, 30)
    assert [n.event for n in queued] == [NotificationEvent.QUEUED]
    assert store.claim_notifications(["r"], 10, 30) == []
    assert store.complete_notification(queued[0], {"ts": "111.2"})
    assert not store.complete_notification(queued[0])
    started = store.claim_notifications(["r"], 10, 30)
    assert [n.event for n in started] == [NotificationEvent.STARTED]
    assert store.retry_notification(started[0], 3600, "rate_limited")
    assert store.claim_notifications(["r"], 10, 30) == []
    assert store.get(job_id).origin == {"channel": "C1", "ts": "111.2"}  # type: ignore[union-attr]
    assert [s for _, s in store.notification_events(job_id)] == ["sent", "pending", "pending"]


def test_dedupe_keys_are_first_time_only_once(store: JobStore) -> None:
    assert store.first_time("Ev1")
    assert not store.first_time("Ev1")
    assert store.first_time("Ev2")


def test_old_dedupe_keys_of_one_prefix_can_be_forgotten(store: JobStore) -> None:
    now = store.clock.now() if isinstance(store, InMemoryStore) else datetime.now(UTC)
    for key in ("sig:a", "sig:b", "sigX", "msg:c"):
        assert store.first_time(key)

    assert store.forget_keys("sig:", now - timedelta(hours=1)) == 0  # none that old
    assert store.forget_keys("s%", now + timedelta(hours=1)) == 0  # a prefix, not a pattern
    assert store.forget_keys("sig:", now + timedelta(hours=1)) == 2

    assert store.first_time("sig:a")  # forgotten: new again
    assert not store.first_time("sigX") and not store.first_time("msg:c")


def test_latest_upload_is_per_user_and_conversation(store: JobStore) -> None:
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


def test_counts_by_status(store: JobStore) -> None:
    new_job(store)
    new_job(store)
    store.claim("w", 1, 30, 3)
    counts = store.count_by_status()
    assert counts[JobStatus.WAITING] == 1 and counts[JobStatus.RUNNING] == 1
    assert counts[JobStatus.DONE] == 0


def test_held_requests_are_taken_up_only_after_their_lease(store: JobStore) -> None:
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
