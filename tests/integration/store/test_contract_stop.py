"""The store contract of cancelling: a waiting job ends at once, a running one gets a stop
request its worker finds (from any process), and every way a running job can end afterwards
settles it exactly once."""

from __future__ import annotations

import threading

from bot.core.models import (
    CANCELLED_UNRUN_MESSAGE,
    STOPPED_LOST_MESSAGE,
    JobStatus,
    NotificationEvent,
    Outcome,
    RunResult,
)
from bot.core.ports import JobStore
from testbed.waiting import wait_until
from tests.integration.store.conftest import done, expire, new_job


def stopped(text: str = "so far\n") -> RunResult:
    return RunResult(
        outcome=Outcome.CANCELLED,
        duration_ms=7,
        stdout=text,
        error_type="Cancelled",
        error_message="the job was stopped while it ran (what it printed until then is kept)",
        executor="local",
    )


def finished_notes(store: JobStore, job_id: int) -> int:
    return sum(1 for ev, _ in store.notification_events(job_id) if ev is NotificationEvent.FINISHED)


def test_a_waiting_job_is_cancelled_at_once_and_a_final_one_not_at_all(store: JobStore) -> None:
    job_id = new_job(store)
    cancelled = store.cancel(job_id)
    assert cancelled is not None and cancelled.status is JobStatus.CANCELLED
    assert cancelled.never_ran
    assert finished_notes(store, job_id) == 1
    assert store.cancel(job_id) is None
    assert store.cancel(job_id + 1000) is None


def test_a_running_job_gets_a_stop_request_that_its_worker_can_see(store: JobStore) -> None:
    running, other = new_job(store), new_job(store)
    claims = {c.job.id: c for c in store.claim("w", 2, 30, 3)}
    assert store.stop_requests([running, other]) == set()

    asked = store.cancel(running)
    assert asked is not None
    assert asked.status is JobStatus.RUNNING and asked.stop_requested_at is not None
    assert store.stop_requests([running, other]) == {running}
    again = store.cancel(running)  # asking twice keeps the first request
    assert again is not None and again.stop_requested_at == asked.stop_requested_at

    assert store.finish(running, claims[running].token, stopped())
    final = store.get(running)
    assert final is not None and final.status is JobStatus.CANCELLED
    assert final.stdout == "so far\n" and not final.never_ran
    assert store.stop_requests([running]) == set()
    assert store.cancel(running) is None
    assert finished_notes(store, running) == 1


def test_a_job_that_finishes_before_its_stop_keeps_its_outcome(store: JobStore) -> None:
    job_id = new_job(store)
    (claim,) = store.claim("w", 1, 30, 3)
    store.cancel(job_id)
    assert store.finish(job_id, claim.token, done("7"))
    assert store.get(job_id).status is JobStatus.DONE  # type: ignore[union-attr]
    # the stop's own write comes second and changes nothing
    assert not store.finish(job_id, "another-claim", stopped())
    assert store.get(job_id).status is JobStatus.DONE  # type: ignore[union-attr]


def test_a_job_handed_back_after_a_stop_request_ends_cancelled(store: JobStore) -> None:
    job_id = new_job(store)
    (claim,) = store.claim("w", 1, 30, 3)
    assert store.mark_invoked(job_id, claim.token, 30)
    store.cancel(job_id)
    assert store.release(job_id, claim.token, 0)
    job = store.get(job_id)
    assert job is not None and job.status is JobStatus.CANCELLED
    assert job.error_message == CANCELLED_UNRUN_MESSAGE and job.never_ran
    assert store.claim("w", 1, 30, 3) == []
    events = store.notification_events(job_id)
    assert (NotificationEvent.STARTED, "pending") not in events
    assert finished_notes(store, job_id) == 1


def test_expired_leases_of_stopped_jobs_end_cancelled(store: JobStore) -> None:
    unrun, started = new_job(store), new_job(store)
    claims = {c.job.id: c for c in store.claim("w", 2, 0.05, 3)}
    assert store.mark_invoked(started, claims[started].token, 0.05)
    store.cancel(unrun)
    store.cancel(started)
    expire(store)()

    def swept() -> bool:
        store.recover_expired()
        return all(store.get(i).status.is_final for i in (unrun, started))  # type: ignore[union-attr]

    wait_until(swept, timeout=5, message="both leases settled")
    first, second = store.get(unrun), store.get(started)
    assert first is not None and second is not None
    assert (first.status, first.never_ran) == (JobStatus.CANCELLED, True)
    assert (second.status, second.error_message) == (JobStatus.CANCELLED, STOPPED_LOST_MESSAGE)
    assert not store.finish(started, claims[started].token, done())
    assert finished_notes(store, unrun) == finished_notes(store, started) == 1


def test_cancel_racing_the_claim_either_cancels_or_asks_for_a_stop(store: JobStore) -> None:
    """Whichever of the claim and the cancel comes first, the job is never lost between
    waiting and running: it ends up cancelled, or running with its stop asked for."""
    ids = [new_job(store) for _ in range(10)]
    barrier = threading.Barrier(2)
    answers: dict[int, JobStatus] = {}

    def claimer() -> None:
        barrier.wait()
        for _ in ids:
            store.claim("w", 1, 30, 100)

    def canceller() -> None:
        barrier.wait()
        for job_id in ids:
            job = store.cancel(job_id)
            assert job is not None
            answers[job_id] = job.status

    threads = [threading.Thread(target=claimer), threading.Thread(target=canceller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for job_id in ids:
        job = store.get(job_id)
        assert job is not None
        if answers[job_id] is JobStatus.CANCELLED:
            assert job.status is JobStatus.CANCELLED
        else:
            assert job.status is JobStatus.RUNNING and job.stop_requested_at is not None
            assert store.stop_requests([job_id]) == {job_id}
