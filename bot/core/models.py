"""Value objects of the job engine: jobs, users, run requests and results, notifications."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    """Where a job is in its life; the first four are the original orchestrator's."""

    WAITING = "waiting"  # stored, waiting for a worker
    RUNNING = "running"  # claimed by a worker (and possibly executing)
    DONE = "done"  # the code ran to the end; result recorded
    ERROR = "error"  # the code raised, crashed, ran out of memory, or the run was interrupted
    TIMEOUT = "timeout"  # killed at the wall-clock limit
    CANCELLED = "cancelled"  # cancelled while waiting (never ran), or stopped while running

    @property
    def is_final(self) -> bool:
        """True once the job can no longer change."""
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {JobStatus.DONE, JobStatus.ERROR, JobStatus.TIMEOUT, JobStatus.CANCELLED}
)


class Outcome(StrEnum):
    """How one run of user code ended, as reported by an executor."""

    OK = "ok"  # ran to the end
    ERROR = "error"  # uncaught exception, syntax error or unusable result
    TIMEOUT = "timeout"  # killed at the wall-clock limit
    MEMORY = "memory"  # ran out of memory
    CRASHED = "crashed"  # died by a signal or exited without a result
    CANCELLED = "cancelled"  # stopped on request while it ran (Executor.stop)

    @property
    def job_status(self) -> JobStatus:
        """The final job status this outcome gives."""
        if self is Outcome.OK:
            return JobStatus.DONE
        if self is Outcome.TIMEOUT:
            return JobStatus.TIMEOUT
        if self is Outcome.CANCELLED:
            return JobStatus.CANCELLED
        return JobStatus.ERROR


class ResultKind(StrEnum):
    """Where a job's result came from."""

    RETURN = "return"  # main(**input) returned a non-None value (JSON-encoded)
    STDOUT = "stdout"  # the captured stdout, trailing whitespace stripped (a JSON string)


class NotificationEvent(StrEnum):
    """Moments of a job's life that its origin is told about, in this order."""

    QUEUED = "queued"  # the job was accepted
    STARTED = "started"  # a worker started running it
    FINISHED = "finished"  # it reached a final status


@dataclass(frozen=True)
class Identity:
    """Who someone is outside jobbot: ('slack', team, user) or ('local', host, os user)."""

    provider: str
    team: str
    external_id: str


@dataclass(frozen=True)
class User:
    """A person known to jobbot, with the integer id people and jobs refer to."""

    id: int
    identity: Identity
    display_name: str | None = None


@dataclass(frozen=True)
class ApiToken:
    """A user's token for the HTTP API as the store keeps it (its hash only, not shown here):
    whose it is, since when, until when (None: until replaced or revoked), last used when
    (to the minute)."""

    user: User
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class Actor:
    """The user making a request, and whether they are an admin."""

    user: User
    is_admin: bool = False


class FileRole(StrEnum):
    """Which way a job's file went."""

    IN = "in"  # a data file the user gave the job, placed beside its code
    OUT = "out"  # a file the job wrote under out/, or a figure it left open


@dataclass(frozen=True)
class JobFile:
    """A file of a job: its (safe) name and content."""

    name: str
    data: bytes

    @property
    def size(self) -> int:
        """Bytes of content."""
        return len(self.data)


@dataclass(frozen=True)
class StoredFile:
    """A job's file as the store lists it, without its content."""

    job_id: int
    role: FileRole
    position: int  # the order the job's files of this role came in, from 0
    name: str
    size: int
    media_type: str
    created_at: datetime


@dataclass(frozen=True)
class NewJob:
    """A validated submission, ready to be stored as a waiting job."""

    owner_id: int
    file_name: str
    code: str
    code_sha256: str
    input_json: str
    origin: Mapping[str, Any] = field(default_factory=dict)
    notify_route: str | None = None
    idempotency_key: str | None = None
    rerun_of: int | None = None
    owner: Identity | None = None  # saves the store a lookup when the caller knows it
    files: tuple[JobFile, ...] = ()  # data files, stored with the job


@dataclass(frozen=True)
class Job:
    """A stored job; `owner` is the owner's identity, joined for display."""

    id: int
    owner_id: int
    owner: Identity
    status: JobStatus
    file_name: str
    code: str
    code_sha256: str
    input_json: str
    created_at: datetime
    attempts: int = 0
    result_json: str | None = None
    result_kind: ResultKind | None = None
    stdout: str | None = None
    stderr: str | None = None
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    duration_ms: int | None = None
    executor: str | None = None
    claim_token: str | None = None
    lease_expires_at: datetime | None = None
    invoked_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    origin: Mapping[str, Any] = field(default_factory=dict)
    notify_route: str | None = None
    idempotency_key: str | None = None
    rerun_of: int | None = None
    stop_requested_at: datetime | None = None  # a cancel asked for while it ran
    files_note: str | None = None  # why files of the job's were left out, if any were
    is_summary: bool = False  # a listing row: code and output left out, texts cut short

    @property
    def input(self) -> dict[str, Any]:
        """The input as a dict."""
        value = json.loads(self.input_json)
        if not isinstance(value, dict):
            raise ValueError(f"job {self.id} has a non-object input")
        return value

    @property
    def never_ran(self) -> bool:
        """A job cancelled before its code started (not one stopped while it ran)."""
        return self.status is JobStatus.CANCELLED and self.error_message in (
            None,
            CANCELLED_UNRUN_MESSAGE,
        )

    @property
    def result(self) -> Any:
        """The decoded result, or None."""
        return None if self.result_json is None else json.loads(self.result_json)

    @property
    def result_text(self) -> str:
        """The result as people read it: printed text as is, returned values as JSON. In a
        listing row, whose result is cut short, printed text is still shown unquoted."""
        if self.result_json is None:
            return ""
        try:
            value: Any = json.loads(self.result_json)
        except ValueError:
            cut = self.is_summary and self.result_kind is ResultKind.STDOUT
            prefix = _string_prefix(self.result_json) if cut else None
            return self.result_json if prefix is None else prefix + "…"
        if self.result_kind is ResultKind.STDOUT and isinstance(value, str):
            return value
        return json.dumps(value, ensure_ascii=False)


def _string_prefix(text: str) -> str | None:
    """What a JSON string cut short says so far, or None if the text is not one."""
    if not text.startswith('"'):
        return None
    for drop in range(6):  # an escape cut in its middle (a backslash-u and 2 digits) goes whole
        try:
            value = json.loads(text[: len(text) - drop] + '"')
        except ValueError:
            continue
        return value if isinstance(value, str) else None
    return None


@dataclass(frozen=True)
class Claim:
    """A job a worker has claimed, with the fencing token its later writes must carry."""

    job: Job
    token: str
    data_files: bool = True  # whether the job may have data files (False: it has none)


@dataclass(frozen=True)
class RunRequest:
    """What an executor needs to run one job."""

    job_id: int
    file_name: str
    code: str
    input_json: str
    timeout_s: float
    memory_mb: int
    max_output_bytes: int
    files: tuple[JobFile, ...] = ()  # data files, placed read-only beside the code
    max_files_out: int = 10  # files out kept at most (out/ and open figures)
    max_files_out_bytes: int = 4 * 1024 * 1024  # their bytes together at most
    owner: Identity | None = None  # whose job it is, for executors that keep users apart


# How a job ends when its worker vanished after invoking it: it may have run, so it is not
# run again (the recovery sweep writes this; see JobStore.recover).
INTERRUPTED_TYPE = "Interrupted"
INTERRUPTED_MESSAGE = "interrupted: the worker stopped while the job was running"

# How a job ends that was cancelled after a worker claimed it (Executor.stop's own runs say
# the same type): before its code ran; while it ran on an executor that cannot stop a run
# (Lambda), whose late result is then discarded; or with its worker gone.
CANCELLED_TYPE = "Cancelled"
CANCELLED_UNRUN_MESSAGE = "the job was cancelled before it started; nothing ran"
STOPPED_UNSTOPPABLE_MESSAGE = (
    "the job was cancelled while it ran; this executor cannot stop a run, so it ran on "
    "unseen and its result was discarded"
)
STOPPED_LOST_MESSAGE = (
    "the job was cancelled while it ran, and its worker stopped before it could record "
    "what the job printed"
)


@dataclass(frozen=True)
class RunResult:
    """How a run ended. User code failing is data here, not an exception."""

    outcome: Outcome
    duration_ms: int
    result_json: str | None = None
    result_kind: ResultKind | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    executor: str = ""
    files: tuple[JobFile, ...] = ()  # what the job left in out/, and its open figures
    files_note: str | None = None  # which files were left out, and why

    @property
    def status(self) -> JobStatus:
        """The final job status of this run."""
        return self.outcome.job_status


@dataclass(frozen=True)
class Notification:
    """One pending outbox entry: tell `route` that `job_id` reached `event`."""

    id: int
    job_id: int
    event: NotificationEvent
    route: str
    attempts: int
    token: str


@dataclass(frozen=True)
class HeldRequest:
    """A request an adapter acknowledged but has not finished handling, kept in the database
    so that another process can finish it if this one dies (the intake journal)."""

    key: str
    kind: str
    payload: Mapping[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class Upload:
    """A file a user shared in a conversation, remembered for `/job run`."""

    user_id: int
    channel: str
    file_id: str
    file_name: str
    size: int
    meta: Mapping[str, Any]
    created_at: datetime
