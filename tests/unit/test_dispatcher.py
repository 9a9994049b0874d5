"""The outbox dispatcher delivers every notification once, in order, through outages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.dispatcher import Dispatcher
from bot.core.models import Identity, Job, NewJob, Notification, NotificationEvent
from bot.errors import NotifyError, NotifyRetryable, StoreUnavailable
from testbed.waiting import wait_until
from tests.support.fakes import FakeClock, InMemoryStore, RecordingNotifier, ok_result


def running_job(store: InMemoryStore, route: str = "r") -> tuple[int, str]:
    """A job that started: its queued and started notifications written; (id, claim token)."""
    owner = store.ensure_user(Identity("local", "h", "alice"))
    job, _ = store.submit(NewJob(owner.id, "a.py", "x=1", "0" * 64, "{}", notify_route=route))
    claim = store.claim("w", 1, 30, 3)[0]
    store.mark_invoked(job.id, claim.token, 30)
    return job.id, claim.token


def finish(store: InMemoryStore, job_id: int, token: str) -> None:
    store.finish(job_id, token, ok_result(None))  # type: ignore[arg-type]


def finished_job(store: InMemoryStore, route: str = "r") -> int:
    job_id, token = running_job(store, route)
    finish(store, job_id, token)
    return job_id


def drain(dispatcher: Dispatcher) -> None:
    while dispatcher.run_once():
        pass


def test_events_are_delivered_in_order_and_marked_sent(memory_store: InMemoryStore) -> None:
    job_id, token = running_job(memory_store)
    notifier = RecordingNotifier()
    dispatcher = Dispatcher(memory_store, {"r": notifier}, poll_interval=0.5)
    drain(dispatcher)
    finish(memory_store, job_id, token)
    drain(dispatcher)
    assert [e for e, _, _ in notifier.delivered] == [
        NotificationEvent.QUEUED,
        NotificationEvent.STARTED,
        NotificationEvent.FINISHED,
    ]
    assert all(state == "sent" for _, state in memory_store.notification_events(job_id))
    job = memory_store.get(job_id)
    assert job is not None and job.origin["finished_seen"] is True


def test_progress_not_delivered_before_the_job_ended_is_never_delivered(
    memory_store: InMemoryStore,
) -> None:
    job_id = finished_job(memory_store)
    notifier = RecordingNotifier()
    drain(Dispatcher(memory_store, {"r": notifier}, poll_interval=0.5))
    assert [e for e, _, _ in notifier.delivered] == [NotificationEvent.FINISHED]
    assert memory_store.notification_events(job_id) == [(NotificationEvent.FINISHED, "sent")]


class Pacing(RecordingNotifier):
    """Waits its turn (a rate limit) once per delivery, then delivers."""

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        if not job.origin.get("turn"):
            raise NotifyRetryable("waiting", retry_after=5, progress={"turn": 1}, held=True)
        return super().deliver(event, job)


def test_a_delivery_held_for_a_rate_limit_waits_its_turn_without_an_error(
    memory_store: InMemoryStore, fake_clock: FakeClock
) -> None:
    job_id = finished_job(memory_store)
    notifier = Pacing()
    dispatcher = Dispatcher(memory_store, {"r": notifier}, poll_interval=0.5)
    assert dispatcher.run_once() == 1 and notifier.delivered == []
    assert dispatcher.run_once() == 0, "not before its turn"
    fake_clock.advance(5)
    drain(dispatcher)
    assert [j for _, j, _ in notifier.delivered] == [job_id]
    assert dispatcher.metrics.value("jobbot_notify_errors_total", kind="retryable") == 0
    held = dispatcher.metrics.value("jobbot_notifications_held_total", event="finished")
    assert held == 1


def test_other_routes_are_left_for_their_process(memory_store: InMemoryStore) -> None:
    job_id = finished_job(memory_store, route="slack")
    dispatcher = Dispatcher(memory_store, {"local:me": RecordingNotifier()}, poll_interval=0.5)
    assert dispatcher.run_once() == 0
    assert all(state == "pending" for _, state in memory_store.notification_events(job_id))


def test_a_transient_failure_is_retried_and_delivered_once(
    memory_store: InMemoryStore, fake_clock: FakeClock
) -> None:
    job_id, token = running_job(memory_store)
    notifier = RecordingNotifier(fail_times=2)
    dispatcher = Dispatcher(memory_store, {"r": notifier}, poll_interval=0.01)
    dispatcher.start()
    try:
        # Each retry is due a moment later on the fake clock: move it along while waiting.
        wait_until(
            lambda: fake_clock.advance(1) or len(notifier.delivered) == 2,
            message="queued and started delivered",
        )
        finish(memory_store, job_id, token)
        wait_until(
            lambda: fake_clock.advance(1) or len(notifier.delivered) == 3,
            message="three deliveries",
        )
    finally:
        dispatcher.stop()
    assert notifier.attempts == 5
    assert [j for _, j, _ in notifier.delivered] == [job_id] * 3
    assert len({e for e, _, _ in notifier.delivered}) == 3


def test_a_later_event_waits_for_an_undelivered_earlier_one(memory_store: InMemoryStore) -> None:
    running_job(memory_store)
    first = memory_store.claim_notifications(["r"], 10, 60)
    assert [n.event for n in first] == [NotificationEvent.QUEUED]
    assert memory_store.claim_notifications(["r"], 10, 60) == []


class Refusing:
    """A notifier whose target is gone for good."""

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        raise NotifyError("channel_not_found and the user cannot be reached")


def test_a_permanent_failure_is_recorded_and_does_not_block_the_next(
    memory_store: InMemoryStore,
) -> None:
    job_id, token = running_job(memory_store)
    dispatcher = Dispatcher(memory_store, {"r": Refusing()}, poll_interval=0.5)
    drain(dispatcher)
    finish(memory_store, job_id, token)
    drain(dispatcher)
    assert [s for _, s in memory_store.notification_events(job_id)] == ["failed"] * 3


class CutOff(RecordingNotifier):
    """Delivers, and then the database goes away (the outage starts just after Slack accepted
    the message and before the outbox could record it)."""

    def __init__(self, store: InMemoryStore) -> None:
        super().__init__()
        self.store = store

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        update = super().deliver(event, job)
        if len(self.delivered) == 1:
            self.store.down = True
        return update


class BackAfterOneRefusal(InMemoryStore):
    """The database comes back as soon as it refused to record a delivery once."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.refused = 0

    def complete_notification(
        self, notification: Notification, origin_update: Mapping[str, Any] | None = None
    ) -> bool:
        try:
            return super().complete_notification(notification, origin_update)
        except StoreUnavailable:
            self.refused += 1
            self.down = False
            raise


def test_a_delivery_is_recorded_once_the_database_is_back_so_it_is_not_posted_again(
    fake_clock: FakeClock,
) -> None:
    store = BackAfterOneRefusal(fake_clock)
    job_id, token = running_job(store)
    notifier = CutOff(store)
    dispatcher = Dispatcher(store, {"r": notifier}, poll_interval=0.5)
    assert dispatcher.run_once() == 1
    assert store.refused == 1, "the first record of the delivery met the outage"
    assert store.notification_events(job_id)[0][1] == "sent"
    drain(dispatcher)
    finish(store, job_id, token)
    drain(dispatcher)
    assert [e for e, _, _ in notifier.delivered] == [
        NotificationEvent.QUEUED,
        NotificationEvent.STARTED,
        NotificationEvent.FINISHED,
    ]
    assert all(state == "sent" for _, state in store.notification_events(job_id))


def test_a_result_handed_over_is_delivered_at_once_without_a_wake_up(
    memory_store: InMemoryStore,
) -> None:
    job_id, token = running_job(memory_store)
    notifier = RecordingNotifier()
    # No poll within the test: only what is handed over, or a wake-up, is delivered.
    dispatcher = Dispatcher(memory_store, {"r": notifier}, poll_interval=3600)
    drain(dispatcher)  # the job's progress
    memory_store.hand_results(["r"], 30, dispatcher.take)
    dispatcher.start()
    try:
        finish(memory_store, job_id, token)
        wait_until(
            lambda: (
                memory_store.notification_events(job_id)[-1] == (NotificationEvent.FINISHED, "sent")
            ),
            timeout=5,
            message="the handed result delivered",
        )
    finally:
        dispatcher.stop()
    assert [e for e, _, _ in notifier.delivered] == [
        NotificationEvent.QUEUED,
        NotificationEvent.STARTED,
        NotificationEvent.FINISHED,
    ]
    job = memory_store.get(job_id)
    assert job is not None and job.origin["finished_seen"] is True
