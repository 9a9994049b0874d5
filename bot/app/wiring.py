"""Composition root: builds the store, executor, service, workers and notifiers from Settings.
The only module that names concrete adapter classes."""

from __future__ import annotations

import getpass
import logging
import os
import socket
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.app.config import Settings
from bot.core.clock import SystemClock
from bot.core.commands import CONSOLE_USAGE
from bot.core.dispatcher import Dispatcher
from bot.core.handler import CommandHandler
from bot.core.metrics import Metrics
from bot.core.models import Identity, Job, JobStatus
from bot.core.ports import Executor, JobStore, Notifier
from bot.core.service import JobService, Limits
from bot.core.worker import WorkerConfig, WorkerPool

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[2]


def local_identity(name: str | None = None) -> Identity:
    """('local', hostname, os user) — who uses the CLI or console."""
    return Identity("local", socket.gethostname(), name or getpass.getuser())


def local_route() -> str:
    """A notification route unique to this process (console or CLI)."""
    return f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_store(settings: Settings) -> JobStore:
    """The SQL store for DATABASE_URL."""
    from bot.store import SqlStore, make_engine

    pool = max(5, settings.workers + settings.http_threads // 2 + 4)
    return SqlStore(make_engine(settings.database_url, pool_size=pool))


def hidden_paths(settings: Settings) -> list[str]:
    """Directories user code must not see: the project (.env), the SQLite file, HOME."""
    paths = {str(PROJECT_DIR), os.getcwd(), str(Path.home())}
    if settings.database_kind == "sqlite":
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            paths.add(str(Path(database).resolve().parent))
    return sorted(p for p in paths if p not in {"/", ""})


def build_executor(settings: Settings, metrics: Metrics | None = None) -> Executor:
    """The executor selected by JOBBOT_EXECUTOR (its own failures counted in `metrics`)."""
    if settings.executor == "lambda":
        from bot.executors.aws_lambda import build_lambda_executor

        return build_lambda_executor(settings, metrics)
    from bot.executors.local import LocalExecutor

    return LocalExecutor(
        slots=settings.workers,
        python=sys.executable,
        uid_base=settings.sandbox_uid_base,
        max_procs=settings.sandbox_max_procs,
        tmp_bytes=settings.sandbox_tmp_mb * 1024 * 1024,
        hide_paths=hidden_paths(settings),
    )


class Runtime:
    """Everything one process runs: store, service, and optionally workers and notifiers."""

    def __init__(
        self,
        settings: Settings,
        store: JobStore | None = None,
        executor_factory: Callable[[Settings], Executor] | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.store = store or build_store(settings)
        self._executor_factory = executor_factory or (lambda s: build_executor(s, self.metrics))
        self.executor: Executor | None = None
        self.pool: WorkerPool | None = None
        self.dispatcher: Dispatcher | None = None
        self.service = JobService(
            self.store,
            SystemClock(),
            Limits(settings.max_code_bytes, settings.max_input_bytes),
            admins=settings.admins,
            on_submit=self._on_submit,
        )
        self._register_gauges()

    def _on_submit(self, job: Job) -> None:
        if self.pool is not None:
            self.pool.wake()
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def _on_settled(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

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
        return CommandHandler(self.service, CONSOLE_USAGE)

    def migrate(self) -> None:
        """Apply the schema."""
        self.store.migrate()

    def start_workers(self) -> WorkerPool:
        """Start the executor and a worker pool."""
        self.executor = self._executor_factory(self.settings)
        slots = self.settings.workers
        if self.settings.executor == "lambda":
            slots = max(slots, self.settings.lambda_concurrency)
        config = WorkerConfig(
            slots=slots,
            job_timeout=self.settings.job_timeout,
            memory_mb=self.settings.memory_mb,
            max_output_bytes=self.settings.max_output_bytes,
            lease_s=self.settings.lease_s,
            max_per_user=self.settings.max_jobs_per_user,
            poll_interval=self.settings.poll_interval,
            # Sweep often enough that a crashed worker's job settles soon after its lease.
            sweep_interval=min(5.0, max(0.5, self.settings.lease_s / 4)),
        )
        self.pool = WorkerPool(
            self.store,
            self.executor,
            config,
            self.metrics,
            on_settled=self._on_settled,
            on_started=self._on_settled,
        )
        self.pool.start()
        return self.pool

    def start_dispatcher(self, notifiers: Mapping[str, Notifier]) -> Dispatcher:
        """Deliver notifications for these routes."""
        self.dispatcher = Dispatcher(
            self.store,
            notifiers,
            metrics=self.metrics,
            poll_interval=max(0.1, self.settings.poll_interval),
        )
        self.dispatcher.start()
        return self.dispatcher

    def stop_claiming(self) -> None:
        """The first step of a stop: take no more jobs (running ones go on)."""
        if self.pool is not None:
            self.pool.stop_claiming()

    def stop(self, grace_s: float | None = None) -> bool:
        """Stop claiming, let running jobs finish (up to the job timeout), deliver, close."""
        grace = self.settings.job_timeout + 2 if grace_s is None else grace_s
        drained = True
        if self.pool is not None:
            drained = self.pool.stop(grace)
        if self.dispatcher is not None:
            self.dispatcher.stop()
        if self.executor is not None:
            self.executor.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        return drained


def extra_checks(settings: Settings) -> list[tuple[str, str, bool]]:
    """Doctor rows of the adapters in use (Slack auth, the Lambda function)."""
    rows: list[tuple[str, str, bool]] = []
    if settings.slack_enabled:
        from bot.slack.health import slack_checks

        rows += slack_checks(settings)
    else:
        rows.append(("slack", "not configured (console mode)", True))
    if settings.executor == "lambda":
        from bot.executors.aws_lambda import lambda_checks

        rows += lambda_checks(settings)
    return rows
