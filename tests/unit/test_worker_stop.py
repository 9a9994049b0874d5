"""Stopping running jobs (`/job cancel` of a running job) through the WorkerPool, against the
in-memory store: an executor that can stop a run, one that cannot (as Lambda), a cancel
before the code starts, and a cancel crossing the job's own end."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import pytest

from bot.core.models import (
    CANCELLED_UNRUN_MESSAGE,
    STOPPED_UNSTOPPABLE_MESSAGE,
    Identity,
    Job,
    JobStatus,
    NewJob,
    NotificationEvent,
    Outcome,
    ResultKind,
    RunRequest,
    RunResult,
)
from bot.core.ports import StartGate
from bot.core.worker import WorkerPool
from bot.errors import CalledOff
from testbed.waiting import wait_until
from tests.support.fakes import InMemoryStore
from tests.unit.test_worker import config


class HeldExecutor:
    """Each run waits until the test releases it or (if `stoppable`) it is stopped; a run
    may also be held before its start gate (`hold_start`)."""

    name = "held"

    def __init__(self, stoppable: bool) -> None:
        self.stoppable = stoppable
        self.hold_start = threading.Event()
        self.hold_start.set()
        self.preparing: set[int] = set()
        self.running: set[int] = set()
        self.ran: list[int] = []
        self._lock = threading.Lock()
        self._ends: dict[int, threading.Event] = {}
        self._stopped: set[int] = set()

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        job_id = request.job_id
        with self._lock:
            self.preparing.add(job_id)
            end = self._ends.setdefault(job_id, threading.Event())
        self.hold_start.wait(30)
        with self._lock:
            self.preparing.discard(job_id)
        if start is not None and not start():
            raise CalledOff()
        with self._lock:
            self.ran.append(job_id)
            self.running.add(job_id)
        end.wait(30)
        with self._lock:
            self.running.discard(job_id)
            stopped = job_id in self._stopped
        if stopped:
            return RunResult(
                outcome=Outcome.CANCELLED,
                duration_ms=3,
                stdout="so far\n",
                error_type="Cancelled",
                error_message="stopped",
                executor=self.name,
            )
        return RunResult(
            outcome=Outcome.OK,
            duration_ms=3,
            result_json='"late"',
            result_kind=ResultKind.STDOUT,
            stdout="late\n",
            executor=self.name,
        )

    def release(self, job_id: int) -> None:
        """Let the run end on its own."""
        with self._lock:
            self._ends.setdefault(job_id, threading.Event()).set()

    def stop(self, job_id: int) -> bool:
        with self._lock:
            if not self.stoppable or job_id not in self.running:
                return False
            self._stopped.add(job_id)
            self._ends[job_id].set()
            return True

    def describe(self) -> list[tuple[str, str, bool]]:
        return []

    def close(self) -> None:
        """Nothing to close."""


class WatchedStore(InMemoryStore):
    """Says when a worker has seen the stop asked for a job."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.seen: set[int] = set()

    def stop_requests(self, job_ids: Sequence[int]) -> set[int]:
        found = super().stop_requests(job_ids)
        self.seen |= found
        return found


@pytest.fixture
def store(memory_store: InMemoryStore) -> WatchedStore:
    return WatchedStore(memory_store.clock)


@pytest.fixture
def pools() -> Iterator[list[WorkerPool]]:
    started: list[WorkerPool] = []
    yield started
    for pool in started:
        pool.stop(5)


def start(pools: list[WorkerPool], store: InMemoryStore, executor: HeldExecutor) -> WorkerPool:
    pool = WorkerPool(store, executor, config(slots=2, poll_interval=0.01, sweep_interval=0.05))
    pool.start()
    pools.append(pool)
    return pool


def add_job(store: InMemoryStore) -> int:
    owner = store.ensure_user(Identity("local", "h", "alice"))
    job, _ = store.submit(NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}", notify_route="r"))
    return job.id


def final(store: InMemoryStore, job_id: int) -> Job:
    job: Job = wait_until(
        lambda: (j := store.get(job_id)) and j.status.is_final and j, message="a final state"
    )
    return job


def finished_notes(store: InMemoryStore, job_id: int) -> int:
    return [e for e, _ in store.notification_events(job_id)].count(NotificationEvent.FINISHED)


def test_a_run_the_executor_can_stop_ends_cancelled_with_its_output(
    store: WatchedStore, pools: list[WorkerPool]
) -> None:
    executor = HeldExecutor(stoppable=True)
    job_id = add_job(store)
    start(pools, store, executor)
    wait_until(lambda: job_id in executor.running, message="the run to start")

    store.cancel(job_id)  # as another process would: only the store knows

    job = final(store, job_id)
    assert job.status is JobStatus.CANCELLED
    assert (job.stdout, job.error_type) == ("so far\n", "Cancelled")
    assert not job.never_ran
    assert finished_notes(store, job_id) == 1


def test_a_run_that_cannot_be_stopped_ends_cancelled_and_its_late_result_is_dropped(
    store: WatchedStore, pools: list[WorkerPool]
) -> None:
    executor = HeldExecutor(stoppable=False)
    job_id = add_job(store)
    pool = start(pools, store, executor)
    wait_until(lambda: job_id in executor.running, message="the run to start")

    store.cancel(job_id)

    job = final(store, job_id)  # while the run still goes on
    assert job_id in executor.running
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == STOPPED_UNSTOPPABLE_MESSAGE
    executor.release(job_id)
    wait_until(lambda: pool.busy == 0, message="the late result to come back")
    after = store.get(job_id)
    assert after is not None and after.status is JobStatus.CANCELLED
    assert not after.stdout and after.result_json is None
    assert finished_notes(store, job_id) == 1


def test_a_job_cancelled_before_its_code_starts_never_runs(
    store: WatchedStore, pools: list[WorkerPool]
) -> None:
    executor = HeldExecutor(stoppable=True)
    executor.hold_start.clear()
    job_id = add_job(store)
    start(pools, store, executor)
    wait_until(lambda: job_id in executor.preparing, message="the run to be set up")

    store.cancel(job_id)
    wait_until(lambda: job_id in store.seen, message="the worker to see the stop")
    executor.hold_start.set()

    job = final(store, job_id)
    assert job.status is JobStatus.CANCELLED
    assert job.error_message == CANCELLED_UNRUN_MESSAGE and job.never_ran
    assert executor.ran == []
    assert NotificationEvent.STARTED not in [e for e, _ in store.notification_events(job_id)]


@pytest.mark.parametrize("stoppable", [True, False], ids=["stoppable", "unstoppable"])
def test_a_cancel_crossing_the_end_of_the_run_settles_the_job_once(
    store: WatchedStore, pools: list[WorkerPool], stoppable: bool
) -> None:
    executor = HeldExecutor(stoppable=stoppable)
    pool = start(pools, store, executor)
    outcomes: set[JobStatus] = set()
    for _ in range(25):
        job_id = add_job(store)
        wait_until(lambda j=job_id: j in executor.running, message="the run to start")  # type: ignore[misc]
        barrier = threading.Barrier(2)

        def end(job_id: int = job_id, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            executor.release(job_id)

        ender = threading.Thread(target=end)
        ender.start()
        barrier.wait()
        store.cancel(job_id)
        pool.check_stops()
        ender.join()
        job = final(store, job_id)
        wait_until(lambda: pool.busy == 0, message="the run to be over")
        outcomes.add(job.status)
        assert job.status in {JobStatus.DONE, JobStatus.CANCELLED}
        if job.status is JobStatus.DONE:
            assert job.stdout == "late\n"
        assert store.get(job_id) == job  # nothing changed it afterwards
        assert finished_notes(store, job_id) == 1
    assert outcomes  # which of the two wins varies; each run is settled exactly once
