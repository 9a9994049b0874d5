"""WorkerPool against the in-memory store and a fake executor: lifecycle, limits, failures."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app.environment import load_settings
from bot.app.wiring.parts import worker_config
from bot.core.models import (
    FileRole,
    Identity,
    JobFile,
    JobStatus,
    NewJob,
    NotificationEvent,
    RunRequest,
    RunResult,
)
from bot.core.ports import StartGate
from bot.core.upkeep import PRESENCE_WINDOW_S
from bot.core.worker import WorkerConfig, WorkerPool
from bot.errors import ExecutorError, ExecutorUnavailable, StoreUnavailable, Throttled
from testbed.waiting import wait_until
from tests.support.fakes import FakeClock, FakeExecutor, InMemoryStore, ok_result


def add_job(store: InMemoryStore, user: str = "alice", route: str | None = "r") -> int:
    owner = store.ensure_user(Identity("local", "h", user))
    job, _ = store.submit(NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}", notify_route=route))
    return job.id


def config(**changes: object) -> WorkerConfig:
    """The pool configuration of the default settings, with the changes a test needs."""
    return dataclasses.replace(worker_config(load_settings({}, env_file=None)), **changes)  # type: ignore[arg-type]


@pytest.fixture
def pools() -> Iterator[list[WorkerPool]]:
    started: list[WorkerPool] = []
    yield started
    for pool in started:
        pool.stop(5)


def start(
    pools: list[WorkerPool], store: InMemoryStore, executor: FakeExecutor, **changes: object
) -> WorkerPool:
    changes = {"slots": 2, "poll_interval": 0.01, "sweep_interval": 0.05, **changes}
    pool = WorkerPool(store, executor, config(**changes))
    pool.start()
    pools.append(pool)
    return pool


def test_a_waiting_job_runs_once_and_is_finished_with_notifications(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    job_id = add_job(memory_store)
    executor = FakeExecutor()
    start(pools, memory_store, executor)
    job = wait_until(lambda: (j := memory_store.get(job_id)) and j.status.is_final and j)
    assert job.status is JobStatus.DONE
    assert job.result == "ok"
    assert executor.calls == [job_id]
    # Queued and started were never delivered: the result coalesced them (only it is told).
    events = [e for e, _ in memory_store.notification_events(job_id)]
    assert events == [NotificationEvent.FINISHED]


def test_the_executor_is_told_whose_job_it_runs(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    seen: list[RunRequest] = []

    def record(request: RunRequest) -> RunResult:
        seen.append(request)
        return ok_result(request)

    job_id = add_job(memory_store, user="bob")
    start(pools, memory_store, FakeExecutor(record))
    wait_until(lambda: (j := memory_store.get(job_id)) and j.status.is_final)

    assert [r.owner for r in seen] == [Identity("local", "h", "bob")]


def test_per_user_limit_holds_while_other_users_proceed(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    release = threading.Event()
    running: set[int] = set()
    peak = {"alice": 0}
    lock = threading.Lock()
    alice_ids = {add_job(memory_store, "alice") for _ in range(3)}
    bob_id = add_job(memory_store, "bob")

    def behaviour(request: RunRequest) -> RunResult:
        with lock:
            running.add(request.job_id)
            peak["alice"] = max(peak["alice"], len(running & alice_ids))
        release.wait(5)
        with lock:
            running.discard(request.job_id)
        return ok_result(request)

    start(pools, memory_store, FakeExecutor(behaviour), slots=4, max_per_user=1)
    wait_until(lambda: bob_id in running and len(running) == 2, message="bob and one alice job")
    assert len(running & alice_ids) == 1
    release.set()
    wait_until(
        lambda: all(
            memory_store.get(i).status is JobStatus.DONE  # type: ignore[union-attr]
            for i in alice_ids | {bob_id}
        )
    )
    assert peak["alice"] == 1


def test_throttled_job_goes_back_to_waiting_then_completes(
    memory_store: InMemoryStore, fake_clock: FakeClock, pools: list[WorkerPool]
) -> None:
    job_id = add_job(memory_store)
    attempts: list[int] = []

    def behaviour(request: RunRequest) -> RunResult:
        attempts.append(request.job_id)
        if len(attempts) == 1:
            raise Throttled("busy", retry_after=5)
        return ok_result(request)

    start(pools, memory_store, FakeExecutor(behaviour))
    wait_until(lambda: attempts and memory_store.get(job_id).status is JobStatus.WAITING)  # type: ignore[union-attr]
    assert memory_store.notification_events(job_id) == [(NotificationEvent.QUEUED, "pending")]
    fake_clock.advance(6)
    job = wait_until(lambda: (j := memory_store.get(job_id)) and j.status.is_final and j)
    assert job.status is JobStatus.DONE
    assert job.attempts == 2


def test_never_startable_job_gives_up_after_max_attempts(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    job_id = add_job(memory_store)

    def behaviour(request: RunRequest) -> RunResult:
        raise ExecutorUnavailable("connection refused")

    start(pools, memory_store, FakeExecutor(behaviour), max_attempts=1)
    job = wait_until(lambda: (j := memory_store.get(job_id)) and j.status.is_final and j)
    assert job.status is JobStatus.ERROR
    assert job.error_type == "NotStarted"
    assert "nothing ran" in (job.error_message or "")


def test_executor_failure_after_start_is_an_error_not_a_rerun(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    job_id = add_job(memory_store)

    def behaviour(request: RunRequest) -> RunResult:
        raise ExecutorError("sandbox vanished")

    executor = FakeExecutor(behaviour)
    start(pools, memory_store, executor)
    job = wait_until(lambda: (j := memory_store.get(job_id)) and j.status.is_final and j)
    assert job.status is JobStatus.ERROR
    assert "sandbox vanished" in (job.error_message or "")
    assert executor.calls == [job_id]


class RefusingFinish(InMemoryStore):
    """Says when it refused to store a result because the database was down."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.refused = 0
        self.refusal = threading.Event()

    def finish(self, job_id: int, token: str, result: RunResult, *, routed: bool = True) -> bool:
        try:
            return super().finish(job_id, token, result, routed=routed)
        except StoreUnavailable:
            self.refused += 1
            self.refusal.set()
            raise


def test_result_is_kept_through_a_database_outage_at_finish(pools: list[WorkerPool]) -> None:
    store = RefusingFinish(FakeClock())
    job_id = add_job(store)

    def behaviour(request: RunRequest) -> RunResult:
        store.down = True  # the database goes away while the job runs
        return ok_result(request)

    executor = FakeExecutor(behaviour)
    start(pools, store, executor)
    assert store.refusal.wait(10), "the result met the outage"
    store.down = False
    job = wait_until(lambda: (j := store.get(job_id)) and j.status.is_final and j)
    assert job.status is JobStatus.DONE and job.result == "ok"
    assert store.refused >= 1 and executor.calls == [job_id], "stored by a retry, run once"


class StopWatched(WorkerPool):
    """Says when a stop began (stop() starts by calling stop_claiming())."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopping = threading.Event()

    def stop_claiming(self) -> None:
        super().stop_claiming()
        self.stopping.set()


def test_stop_lets_running_jobs_finish(memory_store: InMemoryStore) -> None:
    job_id = add_job(memory_store)
    started = threading.Event()

    def behaviour(request: RunRequest) -> RunResult:
        """Run until stop() has begun: stop has a running job to wait for."""
        started.set()
        pool.stopping.wait(5)
        return ok_result(request)

    pool = StopWatched(memory_store, FakeExecutor(behaviour), config(slots=1, poll_interval=0.01))
    pool.start()
    assert started.wait(5)
    assert pool.stop(grace_s=5)
    assert memory_store.get(job_id).status is JobStatus.DONE  # type: ignore[union-attr]


def test_sweeper_requeues_unstarted_and_interrupts_started_jobs(
    memory_store: InMemoryStore, fake_clock: FakeClock, pools: list[WorkerPool]
) -> None:
    fresh, started = add_job(memory_store), add_job(memory_store)
    claims = {c.job.id: c for c in memory_store.claim("dead-worker", 2, 30, 5)}
    memory_store.mark_invoked(started, claims[started].token, 30)
    fake_clock.advance(31)
    executor = FakeExecutor()
    start(pools, memory_store, executor)
    job = wait_until(lambda: (j := memory_store.get(started)) and j.status.is_final and j)
    assert job.status is JobStatus.ERROR
    assert job.error_message == "interrupted: the worker stopped while the job was running"
    wait_until(lambda: memory_store.get(fresh).status is JobStatus.DONE)  # type: ignore[union-attr]
    assert started not in executor.calls
    assert executor.calls.count(fresh) == 1


def test_after_stop_claiming_running_jobs_go_on_and_nothing_new_is_claimed(
    memory_store: InMemoryStore,
) -> None:
    first = add_job(memory_store)
    started = threading.Event()
    go = threading.Event()

    def behaviour(request: RunRequest) -> RunResult:
        started.set()
        go.wait(5)
        return ok_result(request)

    pool = WorkerPool(memory_store, FakeExecutor(behaviour), config(slots=2, poll_interval=0.01))
    pool.start()
    started.wait(5)
    pool.stop_claiming()
    later = add_job(memory_store, user="bob")
    go.set()
    wait_until(lambda: memory_store.get(first).status is JobStatus.DONE)  # type: ignore[union-attr]
    assert pool.stop(grace_s=5)
    assert memory_store.get(later).status is JobStatus.WAITING  # type: ignore[union-attr]


class LosingStore(InMemoryStore):
    """The claim is lost (another process settled the job) by the time `invoked_at` is
    committed: the start gate says no."""

    def mark_invoked(self, job_id: int, token: str, lease_s: float, *, routed: bool = True) -> bool:
        return False


class WatchedExecutor(FakeExecutor):
    """A FakeExecutor that says when a run call returned (or raised)."""

    def __init__(self) -> None:
        super().__init__()
        self.returned = threading.Event()

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        try:
            return super().run(request, start)
        finally:
            self.returned.set()


def test_a_claim_lost_at_the_start_gate_runs_nothing(pools: list[WorkerPool]) -> None:
    store = LosingStore(FakeClock())
    job_id = add_job(store)
    executor = WatchedExecutor()
    start(pools, store, executor)
    assert executor.returned.wait(5), "the executor was asked to run the job"
    assert executor.calls == [], "the code never ran"
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.RUNNING and job.invoked_at is None
    events = [e for e, _ in store.notification_events(job_id)]
    assert NotificationEvent.STARTED not in events


def test_a_pool_is_alive_while_it_runs_and_gone_once_it_stops(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    assert memory_store.workers_alive(PRESENCE_WINDOW_S) == 0
    pool = start(pools, memory_store, FakeExecutor())
    wait_until(lambda: memory_store.workers_alive(PRESENCE_WINDOW_S) == 1, message="alive")
    pool.stop(5)
    assert memory_store.workers_alive(PRESENCE_WINDOW_S) == 0


def test_a_jobs_data_files_reach_the_executor_and_its_files_out_are_stored(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    owner = memory_store.ensure_user(Identity("local", "h", "alice"))
    job, _ = memory_store.submit(
        NewJob(owner.id, "a.py", "x", "0" * 64, "{}", files=(JobFile("d.csv", b"1"),))
    )
    seen: list[RunRequest] = []

    def with_files(request: RunRequest) -> RunResult:
        seen.append(request)
        return dataclasses.replace(
            ok_result(request), files=(JobFile("figure-1.png", b"png"),), files_note="a note"
        )

    start(pools, memory_store, FakeExecutor(with_files), max_files_out=3, max_files_out_bytes=99)
    done = wait_until(lambda: (j := memory_store.get(job.id)) and j.status.is_final and j)

    (request,) = seen
    assert (request.files, request.max_files_out, request.max_files_out_bytes) == (
        (JobFile("d.csv", b"1"),),
        3,
        99,
    )
    assert done.files_note == "a note"
    assert memory_store.read_files(job.id, FileRole.OUT) == [JobFile("figure-1.png", b"png")]


def test_the_sweeper_forgets_files_past_their_retention(
    memory_store: InMemoryStore, pools: list[WorkerPool]
) -> None:
    owner = memory_store.ensure_user(Identity("local", "h", "alice"))
    memory_store.submit(  # stored at the fake clock's time, long before today
        NewJob(owner.id, "a.py", "x", "0" * 64, "{}", files=(JobFile("d.csv", b"1"),))
    )
    start(pools, memory_store, FakeExecutor(), slots=1, files_retention_s=86400)

    wait_until(lambda: memory_store.list_files(1) == [])
