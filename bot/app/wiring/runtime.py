"""The Runtime: what one process runs (the store, the service, and optionally a worker pool
and the outbox dispatcher), with the callbacks that tie them together, and its stop."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from bot.app.config import Settings
from bot.app.wiring.parts import (
    Store,
    build_executor,
    build_store,
    packages_note,
    service_limits,
    worker_config,
)
from bot.core.clock import SystemClock
from bot.core.commands import CONSOLE_USAGE
from bot.core.dispatcher import LEASE_S as DELIVERY_LEASE_S
from bot.core.dispatcher import Dispatcher
from bot.core.handler import CommandHandler
from bot.core.metrics import Metrics
from bot.core.models import Job, JobStatus, Notification
from bot.core.ports import Executor, Notifier
from bot.core.service import JobService
from bot.core.worker import WorkerPool


class Runtime:
    """Everything one process runs: store, service, and optionally workers and notifiers."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        executor_factory: Callable[[Settings], Executor] | None = None,
        *,
        delivery_lease_s: float = DELIVERY_LEASE_S,
    ) -> None:
        self.settings = settings
        # how long a notification is leased to its deliverer (the crash tests shorten it; it
        # is not a setting)
        self.delivery_lease_s = delivery_lease_s
        self.metrics = Metrics()
        self.store = store or build_store(settings)
        self._executor_factory = executor_factory or (lambda s: build_executor(s, self.metrics))
        self.executor: Executor | None = None
        self.pool: WorkerPool | None = None
        self.dispatcher: Dispatcher | None = None
        # set on a job thread whose result was just handed to this process's dispatcher
        self._handed_here = threading.local()
        self.service = JobService(
            self.store,
            SystemClock(),
            service_limits(settings),
            admins=settings.admins,
            on_submit=self._on_submit,
            on_stop=self._on_stop,
        )
        self._register_gauges()

    def _on_submit(self, job: Job) -> None:
        if self.pool is not None and job.status is JobStatus.WAITING:
            self.pool.wake()  # not taken as it was submitted: a claim may take it
        self._progress_written()

    def _on_stop(self, job: Job) -> None:
        # The run may be here: look now rather than at the next poll. Elsewhere, the pool
        # holding it finds the request in the store.
        if self.pool is not None:
            self.pool.check_stops()

    def _on_started(self) -> None:
        self.service.settled()
        self._progress_written()

    def _progress_written(self) -> None:
        """A job's `queued` or `started` notification was just written: it is due only after
        the quiet period, so the outbox looks then. A wake-up now would be a claim that finds
        nothing, on the cores the job is about to run on."""
        if self.dispatcher is None:
            return
        quiet_s = self.settings.quiet_ms / 1000
        if quiet_s > 0:
            self.dispatcher.due_in(quiet_s)
        else:
            self.dispatcher.wake()

    def _on_settled(self) -> None:
        self.service.settled()
        handed = getattr(self._handed_here, "job", None) is not None
        self._handed_here.job = None
        if self.dispatcher is not None and not handed:
            self.dispatcher.wake()

    def _hand(self, notification: Notification, job: Job) -> None:
        """A result recorded on this thread was leased to this process's dispatcher: it
        delivers it now, and the outbox need not be woken for it (_on_settled, next)."""
        if self.dispatcher is not None:
            self._handed_here.job = job.id
            self.dispatcher.take(notification, job)

    def _register_gauges(self) -> None:
        def by_status() -> list[tuple[tuple[tuple[str, str], ...], float]]:
            counts = self.store.count_by_status()
            return [((("status", s.value),), float(n)) for s, n in counts.items()]

        def depth() -> list[tuple[tuple[tuple[str, str], ...], float]]:
            return [((), float(self.store.count_by_status()[JobStatus.WAITING]))]

        self.metrics.gauge("jobbot_jobs", "Jobs in the database by status.", by_status)
        self.metrics.gauge("jobbot_queue_depth", "Jobs waiting to run.", depth)

    def console_handler(self) -> CommandHandler:
        """The command handler with console usage text."""
        return CommandHandler(self.service, CONSOLE_USAGE, about=packages_note(self.settings))

    def migrate(self) -> None:
        """Apply the schema."""
        self.store.migrate()

    def start_workers(self) -> WorkerPool:
        """Start the executor and a worker pool."""
        self.executor = self._executor_factory(self.settings)
        self.pool = WorkerPool(
            self.store,
            self.executor,
            worker_config(self.settings),
            self.metrics,
            on_settled=self._on_settled,
            on_started=self._on_started,
        )
        self.pool.start()
        self.service.run_here(self.pool)
        return self.pool

    def start_dispatcher(self, notifiers: Mapping[str, Notifier]) -> Dispatcher:
        """Deliver notifications for these routes."""
        self.dispatcher = Dispatcher(
            self.store,
            notifiers,
            metrics=self.metrics,
            poll_interval=max(0.1, self.settings.poll_interval),
            lease_s=self.delivery_lease_s,
        )
        self.dispatcher.start()
        # The results of jobs run here go straight to it, leased as they are recorded: no
        # wake-up, claim or read of the job between a result and its delivery.
        self.store.hand_results(list(notifiers), self.delivery_lease_s, self._hand)
        return self.dispatcher

    def stop_claiming(self) -> None:
        """The first step of a stop: take no more jobs (running ones go on)."""
        if self.pool is not None:
            self.pool.stop_claiming()  # its offers stop too: new jobs are stored waiting

    def stop_runs(self) -> None:
        """Stop claiming, and stop the runs in progress here instead of letting them finish."""
        if self.pool is not None:
            self.pool.stop_runs()

    def stop(self, grace_s: float | None = None) -> bool:
        """Stop claiming, let running jobs finish (up to the job timeout), deliver, close."""
        grace = self.settings.job_timeout + 2 if grace_s is None else grace_s
        drained = True
        if self.pool is not None:
            drained = self.pool.stop(grace)
        if self.dispatcher is not None:
            self.store.hand_results((), 0.0, None)  # later results: the outbox, as usual
            self.dispatcher.stop()
        if self.executor is not None:
            self.executor.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        return drained
