"""The store contract of JobQueue.submit_claimed: a job stored already claimed when a claim
would take it now, and stored waiting otherwise (MariaDB, SQLite and the in-memory fake)."""

from __future__ import annotations

import dataclasses
import threading

from bot.core.models import FileRole, Identity, JobFile, JobStatus, NewJob, NotificationEvent
from bot.core.ports import JobStore
from testbed.waiting import wait_until
from tests.integration.store.conftest import ALICE, BOB, done, expire, new_job


def submission(store: JobStore, who: Identity = ALICE, key: str | None = None) -> NewJob:
    owner = store.ensure_user(who)
    return NewJob(
        owner.id, "a.py", "print(1)", "0" * 64, "{}", notify_route="r", idempotency_key=key
    )


def test_a_job_nobody_waits_before_is_stored_claimed_as_a_claim_leaves_it(
    store: JobStore,
) -> None:
    job, created, claim = store.submit_claimed(submission(store), "w1", 30, 3)
    assert created and claim is not None
    assert claim.job.id == job.id and claim.job.status is JobStatus.RUNNING
    assert claim.token == claim.job.claim_token and len(claim.token) == 32
    stored = store.get(job.id)
    assert stored is not None and stored.status is JobStatus.RUNNING
    assert stored.claim_token == claim.token and stored.attempts == 1
    assert stored.lease_expires_at is not None and stored.invoked_at is None
    assert stored.started_at is not None
    assert store.notification_events(job.id) == [(NotificationEvent.QUEUED, "pending")]
    assert store.claim("w2", 5, 30, 3) == []  # nobody else can claim it
    assert store.mark_invoked(job.id, claim.token, 30)
    assert store.finish(job.id, claim.token, done("8"))
    assert store.get(job.id).result == "8"  # type: ignore[union-attr]


def test_an_owner_at_the_limit_gets_a_waiting_job(store: JobStore) -> None:
    for _ in range(2):
        assert store.submit_claimed(submission(store), "w1", 30, 2)[2] is not None
    job, created, claim = store.submit_claimed(submission(store), "w1", 30, 2)
    assert created and claim is None
    assert store.get(job.id).status is JobStatus.WAITING  # type: ignore[union-attr]
    # someone else is below the limit and nothing claimable waits before them
    assert store.submit_claimed(submission(store, BOB), "w1", 30, 2)[2] is not None


def test_a_job_waiting_first_keeps_its_turn(store: JobStore) -> None:
    older = new_job(store, BOB)
    job, created, claim = store.submit_claimed(submission(store), "w1", 30, 3)
    assert created and claim is None
    assert store.get(job.id).status is JobStatus.WAITING  # type: ignore[union-attr]
    assert [c.job.id for c in store.claim("w2", 5, 30, 3)] == [older, job.id]


def test_a_waiting_job_whose_owner_is_at_the_limit_does_not_hold_others_back(
    store: JobStore,
) -> None:
    running = new_job(store, BOB)
    assert [c.job.id for c in store.claim("w0", 1, 30, 1)] == [running]
    new_job(store, BOB)  # waits: Bob is at the limit of 1, so no claim takes it now
    assert store.submit_claimed(submission(store), "w1", 30, 1)[2] is not None


def test_an_existing_idempotency_key_gives_the_existing_job_and_no_claim(
    store: JobStore,
) -> None:
    first, created, claim = store.submit_claimed(submission(store, key="k1"), "w1", 30, 3)
    assert created and claim is not None
    again, created, claim = store.submit_claimed(submission(store, key="k1"), "w1", 30, 3)
    assert not created and claim is None and again.id == first.id
    assert len(store.list_all(10)) == 1


def test_a_job_stored_claimed_whose_worker_vanished_goes_back_to_the_queue(
    store: JobStore,
) -> None:
    job, _, claim = store.submit_claimed(submission(store), "w1", 0.05, 3)
    assert claim is not None
    tick = expire(store)

    def requeued() -> bool:
        tick()
        return job.id in store.recover_expired().requeued

    wait_until(requeued, timeout=5, message="the lease of the vanished worker ran out")
    assert store.get(job.id).status is JobStatus.WAITING  # type: ignore[union-attr]
    assert not store.mark_invoked(job.id, claim.token, 30)  # the old claim is fenced off
    taken = store.claim("w2", 1, 30, 3)
    assert [c.job.id for c in taken] == [job.id] and taken[0].job.attempts == 2


def test_concurrent_submissions_never_push_an_owner_past_the_limit(store: JobStore) -> None:
    barrier = threading.Barrier(6)
    claimed: list[int] = []
    lock = threading.Lock()

    def submitter(n: int) -> None:
        barrier.wait()
        for _ in range(3):
            _, _, claim = store.submit_claimed(submission(store), f"w{n}", 30, 2)
            if claim is not None:
                with lock:
                    claimed.append(claim.job.id)

    def claimer() -> None:
        barrier.wait()
        for _ in range(5):
            with lock:
                claimed.extend(c.job.id for c in store.claim("wc", 5, 30, 2))

    threads = [threading.Thread(target=submitter, args=(n,)) for n in range(5)]
    threads.append(threading.Thread(target=claimer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= len(claimed) <= 2 and len(set(claimed)) == len(claimed)
    claimed.extend(c.job.id for c in store.claim("wc", 5, 30, 2))  # tops up to the limit
    assert len(claimed) == 2
    counts = store.count_by_status()
    assert counts[JobStatus.RUNNING] == 2 and counts[JobStatus.WAITING] == 13


def test_a_claim_on_submit_says_whether_the_job_has_data_files(store: JobStore) -> None:
    bare = submission(store)
    with_files = dataclasses.replace(submission(store), files=(JobFile("d.csv", b"1\n"),))

    _, _, none = store.submit_claimed(bare, "w1", 30, 3)
    _, _, some = store.submit_claimed(with_files, "w1", 30, 3)

    assert none is not None and not none.data_files
    assert some is not None and some.data_files
    assert [f.name for f in store.read_files(some.job.id, FileRole.IN)] == ["d.csv"]
