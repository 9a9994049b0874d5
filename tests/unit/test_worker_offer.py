"""Claim-on-submit: WorkerPool.offer stores a job claimed by a free slot and starts it without
waiting for a claim; JobService offers every new job to its intake first."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.core.models import Claim, Identity, Job, JobStatus, NewJob, RunRequest, RunResult
from bot.core.service import JobService, Limits
from bot.core.worker import WorkerPool
from testbed.waiting import wait_until
from tests.support.fakes import FakeClock, FakeExecutor, InMemoryStore, ok_result
from tests.unit.test_worker import config

ALICE = Identity("local", "h", "alice")


def submission(store: InMemoryStore) -> NewJob:
    owner = store.ensure_user(ALICE)
    return NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}", owner=ALICE)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    gate = threading.Event()
    yield gate
    gate.set()


def started_pool(store: InMemoryStore, executor: FakeExecutor, slots: int = 1) -> WorkerPool:
    # The claimer looks for waiting jobs once at start and then only every 600 s: a job that
    # runs at once was started by the offer, not found by a claim.
    pool = WorkerPool(store, executor, config(slots=slots, poll_interval=600, sweep_interval=60))
    pool.start()
    return pool


def test_an_offered_job_is_stored_claimed_and_runs_without_a_claim(
    memory_store: InMemoryStore,
) -> None:
    executor = FakeExecutor()
    pool = started_pool(memory_store, executor)
    try:
        stored = pool.offer(submission(memory_store))
        assert stored is not None
        job, created = stored
        assert created and job.status is JobStatus.RUNNING
        wait_until(lambda: executor.calls == [job.id], message="the offered job ran")
        done = wait_until(lambda: (j := memory_store.get(job.id)) and j.status.is_final and j)
        assert done.status is JobStatus.DONE and done.attempts == 1
    finally:
        assert pool.stop(5)


def test_no_free_slot_or_a_stopping_pool_takes_nothing(
    memory_store: InMemoryStore, release: threading.Event
) -> None:
    running = threading.Event()

    def behaviour(request: RunRequest) -> RunResult:
        running.set()
        release.wait(10)
        return ok_result(request)

    pool = started_pool(memory_store, FakeExecutor(behaviour), slots=1)
    try:
        assert pool.offer(submission(memory_store)) is not None
        assert running.wait(5)
        assert pool.offer(submission(memory_store)) is None  # its one slot is busy
        release.set()
        wait_until(lambda: pool.busy == 0, message="the slot is free again")
        pool.stop_claiming()
        assert pool.offer(submission(memory_store)) is None
        assert memory_store.count_by_status()[JobStatus.WAITING] == 0  # it stored nothing
    finally:
        release.set()
        assert pool.stop(5)


def test_the_service_stores_a_job_waiting_when_its_intake_takes_nothing(
    memory_store: InMemoryStore, fake_clock: FakeClock, release: threading.Event
) -> None:
    def behaviour(request: RunRequest) -> RunResult:
        release.wait(10)
        return ok_result(request)

    executor = FakeExecutor(behaviour)
    pool = started_pool(memory_store, executor, slots=1)
    service = JobService(memory_store, fake_clock, Limits(1000, 100))
    service.run_here(pool)
    try:
        actor = service.actor(ALICE)
        first, created = service.submit(actor, "a.py", b"print(1)", None)
        second, _ = service.submit(actor, "b.py", b"print(2)", None)
        assert created and first.status is JobStatus.RUNNING  # taken by the free slot
        assert second.status is JobStatus.WAITING  # the slot was busy: the queue has it
        service.run_here(None)
        third, _ = service.submit(actor, "c.py", b"print(3)", None)
        assert third.status is JobStatus.WAITING
    finally:
        release.set()
        assert pool.stop(5)


class HeldClaims(InMemoryStore):
    """Its claims wait for `go`: a claim of the pool is in progress until then."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.claiming = threading.Event()
        self.go = threading.Event()

    def claim(self, worker_id: str, slots: int, lease_s: float, max_per_user: int) -> list[Claim]:
        self.claiming.set()
        self.go.wait(10)
        return super().claim(worker_id, slots, lease_s, max_per_user)


def test_an_offer_during_a_claim_in_progress_waits_for_it_and_takes_the_job() -> None:
    store = HeldClaims(FakeClock())
    executor = FakeExecutor()
    pool = started_pool(store, executor)  # its claimer claims once at start: held
    try:
        assert store.claiming.wait(5)
        answers: list[tuple[Job, bool] | None] = []
        offering = threading.Thread(target=lambda: answers.append(pool.offer(submission(store))))
        offering.start()
        store.go.set()  # the claim (which finds nothing) ends
        offering.join(10)

        assert answers and answers[0] is not None, "the job was taken, not left waiting"
        job, created = answers[0]
        assert created and job.status is JobStatus.RUNNING
        wait_until(lambda: executor.calls == [job.id], message="the offered job ran")
    finally:
        store.go.set()
        assert pool.stop(5)
