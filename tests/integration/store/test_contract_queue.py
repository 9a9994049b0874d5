"""The store contract of core's JobQueue port: submit, claim, fence by token, settle, recover."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from bot.core.models import Identity, JobStatus, NewJob, NotificationEvent, Outcome, RunResult
from bot.core.ports import JobStore
from testbed.waiting import wait_until
from tests.integration.store.conftest import ALICE, BOB, done, expire, new_job


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


def test_a_job_without_a_route_starts_and_finishes_unrouted_with_no_notification(
    store: JobStore,
) -> None:
    job_id = new_job(store, route=None)
    claim = store.claim("w1", 1, 30, 3)[0]

    assert store.mark_invoked(job_id, claim.token, 30, routed=False)
    assert store.finish(job_id, claim.token, done("8"), routed=False)
    assert store.finish(job_id, claim.token, done("9"), routed=False)  # a repeat is harmless
    assert not store.finish(job_id, "0" * 32, done("7"), routed=False)  # and fenced

    stored = store.get(job_id)
    assert stored is not None and stored.status is JobStatus.DONE and stored.result == "8"
    assert stored.invoked_at is not None and stored.finished_at is not None
    assert store.notification_events(job_id) == []


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
