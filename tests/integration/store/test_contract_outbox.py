"""The store contract of core's Outbox port: notifications leased in per-job order, then
settled; progress that became obsolete dropped; results before progress; a quiet period."""

from __future__ import annotations

from typing import Any

from bot.core.models import Job, JobStatus, Notification, NotificationEvent
from bot.core.ports import JobStore
from testbed.waiting import wait_until
from tests.integration.store.conftest import done, expire, new_job

QUEUED, STARTED, FINISHED = (
    NotificationEvent.QUEUED,
    NotificationEvent.STARTED,
    NotificationEvent.FINISHED,
)


def test_outbox_leases_in_per_job_order_and_settles(store: JobStore) -> None:
    job_id = new_job(store)
    assert store.claim_notifications(["elsewhere"], 10, 30) == []
    queued = store.claim_notifications(["r"], 10, 30)
    assert [n.event for n in queued] == [QUEUED]
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    assert store.claim_notifications(["r"], 10, 30) == [], "started waits behind queued"
    assert store.complete_notification(queued[0], {"ts": "111.2"})
    assert not store.complete_notification(queued[0])
    started = store.claim_notifications(["r"], 10, 30)
    assert [n.event for n in started] == [STARTED]
    assert store.retry_notification(started[0], 3600, "rate_limited")
    assert store.claim_notifications(["r"], 10, 30) == []
    assert store.get(job_id).origin == {"channel": "C1", "ts": "111.2"}  # type: ignore[union-attr]
    assert [s for _, s in store.notification_events(job_id)] == ["sent", "pending"]
    # The job ends: its started state, waiting undelivered, is obsolete and dropped.
    store.finish(job_id, claim.token, done())
    assert store.notification_events(job_id) == [(QUEUED, "sent"), (FINISHED, "pending")]
    assert [n.event for n in store.claim_notifications(["r"], 10, 30)] == [FINISHED]


def test_a_job_that_ended_before_any_progress_went_out_has_only_its_result(
    store: JobStore,
) -> None:
    job_id = new_job(store)
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    store.finish(job_id, claim.token, done())
    assert store.notification_events(job_id) == [(FINISHED, "pending")]


def test_progress_being_delivered_when_the_job_ends_is_due_again_at_once(store: JobStore) -> None:
    job_id = new_job(store)
    [queued] = store.claim_notifications(["r"], 10, 30)
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    store.finish(job_id, claim.token, done())
    # Leased while the job ended: kept (it may be going out), but a retry must not make the
    # result wait behind it.
    assert store.retry_notification(queued, 3600, "held")
    assert [n.event for n in store.claim_notifications(["r"], 10, 30)] == [QUEUED]


def test_progress_waits_out_the_quiet_period_and_results_go_first(store: Any) -> None:
    store.quiet_s = 3600.0
    slow = new_job(store, key="slow")
    assert store.claim_notifications(["r"], 10, 30) == [], "queued is told after the quiet"
    fast = new_job(store, key="fast")
    claims = {c.job.id: c for c in store.claim("w", 2, 30, 3)}
    for job_id in (slow, fast):
        store.mark_invoked(job_id, claims[job_id].token, 30)
    assert store.claim_notifications(["r"], 10, 30) == [], "started too"
    store.finish(fast, claims[fast].token, done())
    [result] = store.claim_notifications(["r"], 10, 30)
    assert (result.job_id, result.event) == (fast, FINISHED)
    store.quiet_s = 0.0
    other = new_job(store, key="other")
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(other, claim.token, 30)
    store.finish(other, claim.token, done())
    third = new_job(store, key="third")  # due now: progress of a job still waiting
    first = store.claim_notifications(["r"], 1, 30)
    assert [(n.job_id, n.event) for n in first] == [(other, FINISHED)], "results first"
    assert [n.job_id for n in store.claim_notifications(["r"], 1, 30)] == [third]


def handing(
    store: JobStore, routes: list[str], lease_s: float = 30
) -> list[tuple[Notification, Job]]:
    """Results recorded from now on are handed here (Outbox.hand_results)."""
    handed: list[tuple[Notification, Job]] = []
    store.hand_results(routes, lease_s, lambda n, job: handed.append((n, job)))
    return handed


def test_a_result_handed_over_is_leased_as_a_claim_leases_it(store: JobStore) -> None:
    handed = handing(store, ["r"])
    job_id = new_job(store)
    [queued] = store.claim_notifications(["r"], 10, 30)
    assert store.complete_notification(queued)
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    assert store.finish(job_id, claim.token, done("8"))
    [(result, job)] = handed
    assert (result.job_id, result.event, result.route, result.attempts) == (
        job_id,
        FINISHED,
        "r",
        1,
    )
    assert job.status is JobStatus.DONE and job.result_json == '"8"'
    assert store.claim_notifications(["r"], 10, 30) == [], "leased: no claim takes it"
    assert store.complete_notification(result, {"ts": "1.2"})
    assert not store.complete_notification(result), "settled once"
    assert store.notification_events(job_id)[-1] == (FINISHED, "sent")
    assert store.get(job_id).origin["ts"] == "1.2"  # type: ignore[union-attr]


def test_a_result_behind_progress_being_delivered_or_of_another_route_is_not_handed(
    store: JobStore,
) -> None:
    handed = handing(store, ["r"])
    job_id = new_job(store)
    [queued] = store.claim_notifications(["r"], 10, 30)  # going out as the job ends
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    store.finish(job_id, claim.token, done())
    assert handed == [], "it waits behind the progress, as a claim would"
    assert store.complete_notification(queued)
    assert [n.event for n in store.claim_notifications(["r"], 10, 30)] == [FINISHED]
    other = new_job(store, route="elsewhere", key="other")
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(other, claim.token, 30)
    store.finish(other, claim.token, done())
    assert handed == []
    assert [n.job_id for n in store.claim_notifications(["elsewhere"], 10, 30)] == [other]


def test_a_handed_result_left_unsettled_is_claimed_once_its_lease_runs_out(
    store: JobStore,
) -> None:
    handed = handing(store, ["r"], lease_s=0.05)
    job_id = new_job(store)
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    store.finish(job_id, claim.token, done())
    [(lost, _)] = handed  # its process died before delivering it
    tick = expire(store)

    def claimed() -> list[Notification]:
        tick()
        return store.claim_notifications(["r"], 10, 30)

    [again] = wait_until(claimed, timeout=5, message="the lease to run out")
    assert (again.job_id, again.event, again.attempts) == (job_id, FINISHED, 2)
    assert not store.complete_notification(lost), "the old lease is fenced off"
    assert store.complete_notification(again)


def test_no_result_is_handed_once_the_hand_off_stops(store: JobStore) -> None:
    handed = handing(store, ["r"])
    store.hand_results([], 0.0, None)
    job_id = new_job(store)
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job_id, claim.token, 30)
    store.finish(job_id, claim.token, done())
    assert handed == []
    assert [n.job_id for n in store.claim_notifications(["r"], 10, 30)] == [job_id]
