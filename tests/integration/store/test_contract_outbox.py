"""The store contract of core's Outbox port: notifications leased in per-job order, then settled."""

from __future__ import annotations

from bot.core.models import NotificationEvent
from bot.core.ports import JobStore
from tests.integration.store.conftest import done, new_job


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
