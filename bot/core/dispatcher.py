"""Delivers the outbox: leases due notifications and hands each to its route's Notifier,
retrying transient failures with back-off, so every notification arrives once."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from bot.core.backoff import FULL_JITTER, backoff, jittered, standard_backoff
from bot.core.metrics import Metrics
from bot.core.models import Job, Notification, NotificationEvent
from bot.core.ports import Notifier, OutboxStore
from bot.errors import NotifyError, NotifyRetryable, StoreError

log = logging.getLogger(__name__)

LEASE_S = 60.0  # a delivery is its deliverer's this long; then another process may take it
MAX_ATTEMPTS = 500  # about four hours at the 30 s cap
SETTLE_MARGIN_S = 5.0  # stop retrying an outbox write this long before the lease runs out
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def retry_delay(attempts: int, retry_after: float | None) -> float:
    """Back-off for the next attempt, honouring a Retry-After."""
    if retry_after is not None:
        # up to half a second more, so that what was held back together does not all return at once
        return retry_after + backoff(1, first=0.5, jitter=FULL_JITTER)
    return standard_backoff(attempts)


class Dispatcher:
    """Background threads that deliver notifications for the routes this process serves."""

    def __init__(
        self,
        store: OutboxStore,
        notifiers: Mapping[str, Notifier],
        *,
        poll_interval: float,
        metrics: Metrics | None = None,
        threads: int = 2,
        batch: int = 10,
        lease_s: float = LEASE_S,
    ) -> None:
        self.store = store
        self.notifiers = dict(notifiers)
        self.metrics = metrics or Metrics()
        self.threads = threads
        self.batch = batch
        self.lease_s = lease_s
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._next_due: float | None = None  # monotonic time a held delivery is due
        # Leased to this process as they were written (take): delivered before any claim.
        self._handed: deque[tuple[Notification, Job, float]] = deque()
        self._writes = 0  # how many times the outbox was written to (wake); under _lock
        self._stopping = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        """Start delivering."""
        for i in range(self.threads):
            thread = threading.Thread(target=self._loop, name=f"notify-{i}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def wake(self) -> None:
        """Something was just written to the outbox."""
        with self._lock:
            self._writes += 1
        self._wake.set()

    def take(self, notification: Notification, job: Job) -> None:
        """A notification leased to this process as it was written (a job's result recorded
        here, Outbox.hand_results), with the job as it was then: delivered next, without a
        claim or a read of the job. Its lease began in the commit just made, a few
        milliseconds ago: far inside SETTLE_MARGIN_S."""
        with self._lock:
            self._handed.append((notification, job, time.monotonic() + self.lease_s))
        self._wake.set()

    def due_in(self, delay: float) -> None:
        """Something written to the outbox becomes due `delay` seconds from now."""
        self._due_soon(delay)

    def stop(self, grace_s: float = 5.0) -> None:
        """Stop after the current deliveries."""
        self._stopping.set()
        self._wake.set()
        for thread in self._workers:
            thread.join(timeout=grace_s)

    def run_once(self) -> int:
        """Deliver what was handed to this process, then one batch of due notifications;
        returns how many were claimed."""
        self._deliver_handed()
        return self._claim_once()

    def _deliver_handed(self) -> int:
        """Deliver the notifications handed over (take); how many."""
        count = 0
        while True:
            with self._lock:
                if not self._handed:
                    return count
                notification, job, leased_until = self._handed.popleft()
            self._deliver(notification, leased_until, job)
            count += 1

    def _claim_once(self) -> int:
        leased_until = time.monotonic() + self.lease_s
        try:
            batch = self.store.claim_notifications(list(self.notifiers), self.batch, self.lease_s)
        except StoreError as exc:
            log.warning("outbox claim failed: %s", exc)
            return 0
        for notification in batch:
            self._deliver(notification, leased_until)
        return len(batch)

    def _loop(self) -> None:
        claim, seen = True, -1
        while not self._stopping.is_set():
            self._wake.clear()
            self._deliver_handed()
            with self._lock:
                written, seen = self._writes != seen, self._writes
            if (claim or written) and self._claim_once() > 0:
                # Delivering one event can make the job's next event due; look again now
                # rather than after a poll (threads share the wake-up, so one may be missed).
                claim = True
                continue
            # A wake-up for a handed notification alone claims nothing: the outbox holds
            # nothing new for it (a result is a job's last event).
            claim = not self._wait()
        # A last pass so completions of a graceful stop still go out.
        self.run_once()

    def _deliver(
        self, notification: Notification, leased_until: float, job: Job | None = None
    ) -> None:
        extra: dict[str, object] = {
            "job_id": notification.job_id,
            "event": notification.event.value,
            "attempt": notification.attempts,
        }
        notifier = self.notifiers[notification.route]
        try:
            if job is None:
                job = self.store.get(notification.job_id)
            if job is None:
                self.store.fail_notification(notification, "the job no longer exists")
                return
            update = notifier.deliver(notification.event, job)
            done = self._settle(
                lambda: self.store.complete_notification(notification, update), leased_until, extra
            )
            if done is False:
                log.warning("notification lease lost after delivery", extra=extra)
            self.metrics.inc(
                "jobbot_notifications_total",
                "Notifications delivered.",
                event=notification.event.value,
            )
            if notification.event is NotificationEvent.FINISHED and job.finished_at is not None:
                lag = (datetime.now(UTC) - job.finished_at).total_seconds()
                self.metrics.observe(
                    "jobbot_notification_lag_seconds",
                    "From a job's end to its result delivered (its route's limits included).",
                    max(0.0, lag),
                    buckets=LAG_BUCKETS,
                )
        except NotifyRetryable as exc:
            if exc.held:
                self._hold(notification, exc, extra, leased_until)
                return
            self._retry(
                notification,
                exc.retry_after,
                exc.message,
                extra,
                leased_until,
                progress=exc.progress,
            )
        except NotifyError as exc:
            self.metrics.inc(
                "jobbot_notify_errors_total", "Notification failures by kind.", kind="failed"
            )
            log.error("notification given up: %s", exc.message, extra=extra)
            self._settle_failure(notification, exc.message, leased_until, extra)
        except StoreError as exc:
            # Nothing went out (the job could not be read): the lease expires and another pass
            # delivers it.
            log.warning("outbox read failed: %s", exc, extra=extra)
        except Exception as exc:
            log.exception("notifier raised unexpectedly", extra=extra)
            self._retry(
                notification, None, f"internal error ({type(exc).__name__})", extra, leased_until
            )

    def _hold(
        self,
        notification: Notification,
        exc: NotifyRetryable,
        extra: dict[str, object],
        leased_until: float,
    ) -> None:
        """The delivery waits its turn for a rate limit: due again at that time, no error."""
        delay = max(0.0, exc.retry_after or 0.0)
        self.metrics.inc(
            "jobbot_notifications_held_total",
            "Deliveries that waited their turn for a rate limit.",
            event=notification.event.value,
        )
        self._settle(
            lambda: self.store.retry_notification(notification, delay, exc.message, exc.progress),
            leased_until,
            extra,
        )
        self._due_soon(delay)

    def _due_soon(self, delay: float) -> None:
        """Look again when a held delivery is due, rather than at the next poll."""
        at = time.monotonic() + delay
        with self._lock:
            if self._next_due is None or at < self._next_due:
                self._next_due = at

    def _wait(self) -> bool:
        """Until woken, the next held delivery is due, or the poll interval passed; True
        when woken."""
        timeout = jittered(self.poll_interval)
        with self._lock:
            if self._next_due is not None:
                timeout = min(timeout, max(0.0, self._next_due - time.monotonic()))
                self._next_due = None
        return self._wake.wait(timeout)

    def _settle(
        self, write: Callable[[], bool], leased_until: float, extra: dict[str, object]
    ) -> bool | None:
        """An outbox write after a delivery attempt (sent, retry later with the progress made,
        failed), retried through database trouble while the lease is ours: if it were lost,
        the lease would run out and the messages that did go out would be posted again.
        None if it could not be written (the delivery may then be repeated)."""
        attempt = 0
        while True:
            try:
                return write()
            except StoreError as exc:
                attempt += 1
                delay = backoff(attempt, first=0.2, cap=2.0)
                if time.monotonic() + delay > leased_until - SETTLE_MARGIN_S or (
                    self._stopping.wait(delay)
                ):
                    log.warning("outbox update failed: %s", exc, extra=extra)
                    return None

    def _retry(
        self,
        notification: Notification,
        retry_after: float | None,
        message: str,
        extra: dict[str, object],
        leased_until: float,
        *,
        progress: Mapping[str, object] | None = None,
    ) -> None:
        self.metrics.inc(
            "jobbot_notify_errors_total", "Notification failures by kind.", kind="retryable"
        )
        if notification.attempts >= MAX_ATTEMPTS:
            self._settle_failure(
                notification,
                f"gave up after {notification.attempts} attempts: {message}",
                leased_until,
                extra,
            )
            return
        delay = retry_delay(notification.attempts, retry_after)
        log.warning(
            "notification will be retried: %s", message, extra={**extra, "delay_s": round(delay, 2)}
        )
        self._settle(
            lambda: self.store.retry_notification(notification, delay, message, progress),
            leased_until,
            extra,
        )

    def _settle_failure(
        self,
        notification: Notification,
        message: str,
        leased_until: float,
        extra: dict[str, object],
    ) -> None:
        self._settle(
            lambda: self.store.fail_notification(notification, message), leased_until, extra
        )
