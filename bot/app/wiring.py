"""The assembler: builds the store, executor, service, workers, Slack app and notifiers from
Settings, and composes each command's process (serve, worker, console, run). The only module
that names concrete adapter classes."""

from __future__ import annotations

import getpass
import logging
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TextIO

from sqlalchemy.engine import make_url

from bot.app.config import Settings
from bot.app.shutdown import StopRequest
from bot.core.clock import SystemClock
from bot.core.commands import CONSOLE_USAGE
from bot.core.dispatcher import Dispatcher
from bot.core.handler import CommandHandler
from bot.core.metrics import Metrics
from bot.core.models import Identity, Job, JobStatus
from bot.core.ports import Executor, JobStore, Notifier
from bot.core.service import JobService, Limits
from bot.core.worker import WorkerConfig, WorkerPool
from bot.errors import ExecutorUnavailable
from bot.executors.jobenv import JobPackages
from bot.executors.jobenv import job_packages as read_job_packages
from bot.slack.memory import SlackMemory

if TYPE_CHECKING:
    from bot.api.routes import JobsApi
    from bot.app.server import HttpServer
    from bot.slack.app import SlackApp

log = logging.getLogger(__name__)
PROJECT_DIR = Path(__file__).resolve().parents[2]


def local_identity(name: str | None = None) -> Identity:
    """('local', hostname, os user) — who uses the CLI or console."""
    return Identity("local", socket.gethostname(), name or getpass.getuser())


def local_route() -> str:
    """A notification route unique to this process (console or CLI)."""
    return f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Store(JobStore, SlackMemory, Protocol):
    """What the SQL store is: core's store, and the Slack adapter's memory beside it."""


def build_store(settings: Settings) -> Store:
    """The SQL store for DATABASE_URL."""
    from bot.store import SqlStore, make_engine

    pool = max(5, settings.workers + settings.http_threads // 2 + 4)
    return SqlStore(
        make_engine(settings.database_url, pool_size=pool), quiet_s=settings.quiet_ms / 1000
    )


def hidden_paths(settings: Settings) -> list[str]:
    """Directories user code must not see: the project (.env), the SQLite file, HOME."""
    paths = {str(PROJECT_DIR), os.getcwd(), str(Path.home())}
    if settings.database_kind == "sqlite":
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            paths.add(str(Path(database).resolve().parent))
    return sorted(p for p in paths if p not in {"/", ""})


JOB_REQUIREMENTS = PROJECT_DIR / "requirements-jobs.txt"


def job_python(settings: Settings) -> str:
    """The interpreter of the local job environment (JOBBOT_JOB_PYTHON, else .venv-jobs)."""
    return settings.job_python or str(PROJECT_DIR / ".venv-jobs" / "bin" / "python")


def job_packages(settings: Settings) -> JobPackages:
    """What jobs can import beside the standard library, for `/job help` and the README:
    the pinned list, with the versions installed in the local job environment."""
    local = job_python(settings) if settings.executor == "local" else None
    return read_job_packages(JOB_REQUIREMENTS, local)


def packages_note(settings: Settings) -> str:
    """What jobs can import, for `/job help` (the versions pinned, or installed locally)."""
    offered = job_packages(settings).offered
    if not offered:
        return "Jobs can import the standard library only."
    return f"Jobs can import the standard library and: {', '.join(offered)}."


def build_executor(settings: Settings, metrics: Metrics | None = None) -> Executor:
    """The executor selected by JOBBOT_EXECUTOR (its own failures counted in `metrics`)."""
    if settings.executor == "lambda":
        from bot.executors.aws_lambda import build_lambda_executor

        return build_lambda_executor(settings, metrics)
    from bot.executors.local import LocalExecutor

    python = job_python(settings)
    if not os.path.exists(python):
        raise ExecutorUnavailable(
            f"the job environment {python} is missing: run scripts/setup (or set JOBBOT_JOB_PYTHON)"
        )
    return LocalExecutor(
        slots=settings.workers,
        python=python,
        packages=job_packages(settings),
        uid_base=settings.sandbox_uid_base,
        max_procs=settings.sandbox_max_procs,
        tmp_bytes=settings.sandbox_tmp_mb << 20,
        hide_paths=hidden_paths(settings),
    )


def service_limits(settings: Settings) -> Limits:
    """What the job service accepts."""
    return Limits(settings.max_code_bytes, settings.max_input_bytes, settings.max_files_in_bytes)


def worker_config(settings: Settings) -> WorkerConfig:
    """How a worker pool claims and runs jobs (a fresh worker id each call)."""
    slots = settings.workers
    if settings.executor == "lambda":
        slots = max(slots, settings.lambda_concurrency)
    return WorkerConfig(
        slots=slots,
        job_timeout=settings.job_timeout,
        memory_mb=settings.memory_mb,
        max_output_bytes=settings.max_output_bytes,
        lease_s=settings.lease_s,
        max_per_user=settings.max_jobs_per_user,
        poll_interval=settings.poll_interval,
        # Sweep often enough that a crashed worker's job settles soon after its lease.
        sweep_interval=min(5.0, max(0.5, settings.lease_s / 4)),
        max_files_out=settings.max_files_out,
        max_files_out_bytes=settings.max_files_out_bytes,
        files_retention_s=settings.files_retention_days * 86400,
    )


class Runtime:
    """Everything one process runs: store, service, and optionally workers and notifiers."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
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
            service_limits(settings),
            admins=settings.admins,
            on_submit=self._on_submit,
            on_stop=self._on_stop,
        )
        self._register_gauges()

    def _on_submit(self, job: Job) -> None:
        if self.pool is not None and job.status is JobStatus.WAITING:
            self.pool.wake()  # not taken as it was submitted: a claim may take it
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def _on_stop(self, job: Job) -> None:
        # The run may be here: look now rather than at the next poll. Elsewhere, the pool
        # holding it finds the request in the store.
        if self.pool is not None:
            self.pool.check_stops()

    def _on_settled(self) -> None:
        self.service.settled()
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
            on_started=self._on_settled,
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
        )
        self.dispatcher.start()
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
            self.dispatcher.stop()
        if self.executor is not None:
            self.executor.close()
        close = getattr(self.store, "close", None)
        if close is not None:
            close()
        return drained


def notifiers_for(settings: Settings, runtime: Runtime) -> dict[str, Notifier]:
    """The notification routes of Slack (none when Slack is not configured)."""
    if not settings.slack_enabled:
        return {}
    from bot.slack.notifier import build_slack_notifier

    notifier = build_slack_notifier(settings, runtime.service, runtime.store, runtime.metrics)
    return {"slack": notifier}


def slack_app_for(settings: Settings, runtime: Runtime) -> SlackApp | None:
    """The Slack app on `runtime`'s service when Slack is configured (its intake-journal
    sweeper not started yet: SlackApp.start does that)."""
    if not settings.slack_enabled:
        return None
    from bot.slack.app import build_app
    from bot.slack.clients import web_client

    client = web_client(settings)
    slack = build_app(
        runtime.service,
        runtime.store,
        settings,
        client,
        metrics=runtime.metrics,
        about=packages_note(settings),
    )
    slack.identity.resolve()
    return slack


def build_api(settings: Settings, runtime: Runtime) -> JobsApi:
    """The HTTP API for programs on `runtime`'s service."""
    from bot.api.routes import ApiLimits, JobsApi

    limits = ApiLimits(
        max_code_bytes=settings.max_code_bytes,
        max_input_bytes=settings.max_input_bytes,
        max_files_in_bytes=settings.max_files_in_bytes,
        job_timeout_s=settings.job_timeout,
        poll_s=settings.poll_interval,
        rate_per_minute=settings.api_rate,
        burst=settings.api_burst,
        # Waiting requests hold a server thread each: half of them stay free for the rest.
        wait_slots=max(1, settings.http_threads // 2),
    )
    return JobsApi(runtime.service, limits, runtime.metrics)


class Door(Protocol):
    """A way requests come in (the HTTP server, Socket Mode): opened last, closed first."""

    def close(self) -> None:
        """Take no more requests; those being handled finish."""


class Process:
    """What one command runs, started and stopped in the one order every command shares.

    start: the schema; the Slack app (when asked for and configured); the dispatcher of the
    notification routes; the workers; the Slack intake journal; the doors requests come in by.
    stop: no more claims; the doors closed; the Slack intake finished; running jobs finish (up
    to the job timeout); the notifications left delivered; the executor and store closed.
    """

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime | None = None,
        *,
        slack: bool = False,
        http: bool = False,
        workers: bool = True,
        routes: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings)
        self._with_slack = slack
        self._with_http = http
        self._with_workers = workers
        self._routes = dict(routes or {})
        self.slack: SlackApp | None = None
        self.http: HttpServer | None = None
        self._doors: list[Door] = []

    def start(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """Start every part, in order; once `stopping()` says so, start nothing more (a stop
        asked for while starting: no job is claimed and no door opened)."""
        settings, runtime = self.settings, self.runtime
        runtime.migrate()
        if stopping():
            return
        routes = dict(self._routes)
        if self._with_slack:
            self.slack = slack_app_for(settings, runtime)
            if self.slack is None and self._with_http:
                log.warning("Slack is not configured: serving the API, /healthz and /metrics")
            routes.update(notifiers_for(settings, runtime))
        runtime.start_dispatcher(routes)
        if self._with_workers and not stopping():
            runtime.start_workers()
        if self.slack is not None and not stopping():
            self.slack.start()  # takes up requests a dead process acknowledged (the journal)
        if self._with_http and not stopping():
            self._open_doors()

    def _open_doors(self) -> None:
        from bot.api.routes import owns as owns_api_path
        from bot.app.server import HttpServer, Mount, build_web_app

        settings, runtime, slack = self.settings, self.runtime, self.slack
        api = build_api(settings, runtime)
        mounts = [Mount(api.blueprint, owns_api_path, api.error)]
        largest = api.limits.max_body
        if slack is not None and settings.slack_signing_secret:
            from bot.slack.http import MAX_BODY, SlackEvents

            events = SlackEvents(slack.app, runtime.metrics, slack.guard)
            mounts.append(Mount(events.blueprint))
            largest = max(largest, MAX_BODY)
        web = build_web_app(runtime.store.ping, runtime.metrics, mounts)
        # Bodies up to twice the largest any route takes reach the routes, which refuse those
        # over their own limit in their own words (and count them) before parsing anything;
        # waitress refuses anything bigger unread (a plain 413), so none is buffered whole.
        self.http = HttpServer(web, settings.port, settings.http_threads, max_body=2 * largest)
        self._doors.append(self.http)
        mode = "http"
        if slack is not None and settings.socket_mode:
            from bot.slack.socket import start_socket_mode

            self._doors.append(
                start_socket_mode(slack.app, settings.slack_app_token, runtime.metrics)
            )
            mode = "socket"
        log.info(
            "serving",
            extra={"port": self.http.port, "mode": mode, "executor": settings.executor},
        )

    def stop(self, grace_s: float | None = None) -> bool:
        """Stop every part, in order; True if the running jobs finished in time."""
        log.info("stopping: no new requests or claims; running jobs may finish")
        # First, because winding the doors and the intake down can take seconds, and a job
        # claimed meanwhile would push the exit past the job timeout + a few seconds.
        self.runtime.stop_claiming()
        for door in reversed(self._doors):
            door.close()
        if self.slack is not None:
            self.slack.close()
        drained = self.runtime.stop(grace_s)
        log.info("stopped", extra={"drained": drained})
        return drained

    def run_until_signal(self) -> bool:
        """start(), wait for SIGTERM or SIGINT, stop(); True if the running jobs finished.

        The signals are caught before anything starts: one that arrives while starting stops
        the process cleanly (exit 0, nothing half-claimed) once the step under way is done.
        """
        stop = StopRequest()
        self.start(lambda: stop.requested)
        stop.wait()
        return self.stop()


def expected_schema_version() -> int:
    """The schema version this code expects of the store."""
    from bot.store.tables import SCHEMA_VERSION

    return SCHEMA_VERSION


def lambda_command(settings: Settings, action: str, out: TextIO, *, replace: bool = False) -> int:
    """`python -m bot lambda deploy [--replace] | policy`."""
    from bot.executors.aws_lambda.deploy import run_lambda_command

    return run_lambda_command(
        settings,
        action,
        out,
        replace=replace,
        requirements=JOB_REQUIREMENTS,
        job_python=job_python(settings),
    )


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

        rows += lambda_checks(settings, JOB_REQUIREMENTS)
    return rows
