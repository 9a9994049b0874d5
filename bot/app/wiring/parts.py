"""The parts of a process, each built from Settings: the store, the executor and its job
environment, the service's limits, a worker pool's config; and who the terminal's user is."""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import make_url

from bot.api.limits import Buckets
from bot.app.config import Settings
from bot.core.metrics import Metrics
from bot.core.models import Identity
from bot.core.ports import Executor, JobStore
from bot.core.service import Limits
from bot.core.worker import WorkerConfig
from bot.errors import ExecutorUnavailable
from bot.executors.jobenv import JobPackages
from bot.executors.jobenv import job_packages as read_job_packages
from bot.slack.memory import SlackMemory

PROJECT_DIR = Path(__file__).resolve().parents[3]


def local_identity(name: str | None = None) -> Identity:
    """('local', hostname, os user) — who uses the CLI or console."""
    return Identity("local", socket.gethostname(), name or getpass.getuser())


def local_route() -> str:
    """A notification route unique to this process (console or CLI)."""
    return f"local:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Store(JobStore, SlackMemory, Buckets, Protocol):
    """What the SQL store is: core's store, the Slack adapter's memory beside it, and the
    API's rate buckets."""


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
