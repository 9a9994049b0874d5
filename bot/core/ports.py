"""The small interfaces the core talks through: the store (users, API tokens, reads, queue,
outbox, presence, schema), Executor, Notifier, Clock."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from bot.core.models import (
    ApiToken,
    Claim,
    FileRole,
    Identity,
    Job,
    JobFile,
    JobStatus,
    NewJob,
    Notification,
    NotificationEvent,
    RunRequest,
    RunResult,
    StoredFile,
    User,
)


@dataclass(frozen=True)
class Recovery:
    """What one lease-expiry sweep did."""

    requeued: tuple[int, ...] = ()  # never invoked: back to waiting
    interrupted: tuple[int, ...] = ()  # invoked, outcome unknown: now `error`, not re-run


class Users(Protocol):
    """Who uses jobbot: one integer id per identity."""

    def ensure_user(self, identity: Identity, display_name: str | None = None) -> User:
        """The user for an identity, created race-free on first contact."""

    def get_user(self, user_id: int) -> User | None:
        """A user by id."""


class ApiTokens(Protocol):
    """The HTTP API's bearer tokens, one per user, kept only as SHA-256 hashes."""

    def set_token(
        self, user_id: int, token_sha256: str, expires_at: datetime | None = None
    ) -> None:
        """Store the user's token hash, replacing the one they had (which stops working);
        it stops working on its own at `expires_at` when given."""

    def drop_token(self, user_id: int) -> bool:
        """Forget the user's token; False if they had none."""

    def token(self, token_sha256: str) -> ApiToken | None:
        """The token with this hash, with its user, if any (expired ones too)."""

    def tokens(self) -> list[ApiToken]:
        """Every user's token, by user id."""

    def touch_token(self, token_sha256: str, at: datetime) -> None:
        """Record that the token was last used at `at`."""


class JobReads(Protocol):
    """Jobs as they are now, for answers, listings and gauges."""

    def get(self, job_id: int) -> Job | None:
        """A job by id."""

    def list_by_owner(self, owner_id: int, limit: int, before_id: int | None = None) -> list[Job]:
        """A user's jobs, newest first, with ids below `before_id` when given."""

    def list_all(self, limit: int, before_id: int | None = None) -> list[Job]:
        """Everyone's jobs, newest first, with ids below `before_id` when given."""

    def count_by_status(self) -> dict[JobStatus, int]:
        """How many jobs are in each status."""


class JobQueue(Protocol):
    """The queue: jobs go in, workers claim them, fenced by the claim token, until settled.

    Writes after a claim return False when this process no longer owns the job.
    """

    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Store a waiting job (and its `queued` notification); (job, created).

        With an idempotency key that already exists, returns the existing job and False.
        """

    def submit_claimed(
        self, new: NewJob, worker_id: str, lease_s: float, max_per_user: int
    ) -> tuple[Job, bool, Claim | None]:
        """Store a job already claimed by `worker_id` (as `claim` would leave it: running, a
        fresh token, a lease, not invoked) when a claim would take it now: its owner has
        fewer than `max_per_user` running and no due job waits that a claim would take
        first. Otherwise store it waiting, as `submit` does. (job, created, the claim or
        None); an idempotency key that exists gives the existing job and no claim.
        """

    def cancel(self, job_id: int) -> Job | None:
        """Cancel a waiting job (writing its `finished` notification), or, for a running one,
        record that a stop is asked for (`stop_requested_at`) and return it still running:
        the worker that holds it stops it and records how it ended. None when the job is
        neither waiting nor running (or does not exist)."""

    def stop_requests(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these jobs are running with a stop asked for (a worker polls this for its
        runs: the cancel may have come through any process)."""

    def claim(self, worker_id: str, slots: int, lease_s: float, max_per_user: int) -> list[Claim]:
        """Claim up to `slots` due waiting jobs, oldest first, at most `max_per_user` running
        per owner; each gets status running, a fresh token and a lease."""

    def mark_invoked(self, job_id: int, token: str, lease_s: float, *, routed: bool = True) -> bool:
        """Record that the run is about to start (and write `started`); False if not owned.
        `routed` False: the job has no notification route (its claim's job says so), so
        there is no `started` to write."""

    def extend_lease(self, job_id: int, token: str, lease_s: float) -> bool:
        """Push the lease out; False if not owned."""

    def release(self, job_id: int, token: str, delay_s: float) -> bool:
        """Put a claimed job that did not run back to waiting, due after `delay_s` (or end
        it `cancelled` if a stop was asked for meanwhile)."""

    def finish(self, job_id: int, token: str, result: RunResult, *, routed: bool = True) -> bool:
        """Record the final result (and write `finished`) exactly once. True when this claim
        recorded it (also on a repeat after a lost commit); False if the job is not owned.
        `routed` as for mark_invoked: no `finished` to write."""

    def recover_expired(self, limit: int = 100) -> Recovery:
        """Settle running jobs whose lease expired: requeue the never-invoked, and mark the
        invoked ones `error` ("interrupted") with their `finished` notification; those with a
        stop asked for end `cancelled` instead, invoked or not."""


class Outbox(Protocol):
    """What is to be told about jobs (queued, started, finished), delivered in order."""

    def claim_notifications(
        self, routes: Sequence[str], limit: int, lease_s: float
    ) -> list[Notification]:
        """Lease due notifications for these routes; never one whose job has an earlier
        undelivered notification."""

    def hand_results(
        self,
        routes: Sequence[str],
        lease_s: float,
        to: Callable[[Notification, Job], None] | None,
    ) -> None:
        """Lease the `finished` entry of a job of `routes` as its result is recorded here
        (JobQueue.finish), as claim_notifications would (never past an earlier undelivered
        entry of the job), and hand it with the job to `to` after the commit; a lease not
        settled runs out and the entry is claimed as usual. `to` None: hand nothing."""

    def complete_notification(
        self, notification: Notification, origin_update: Mapping[str, Any] | None = None
    ) -> bool:
        """Mark delivered and merge `origin_update` into the job's origin; False if not owned."""

    def retry_notification(
        self,
        notification: Notification,
        delay_s: float,
        error: str,
        origin_update: Mapping[str, Any] | None = None,
    ) -> bool:
        """Give a lease back, to be tried again after `delay_s`, keeping delivery progress
        (merged into the job's origin)."""

    def fail_notification(self, notification: Notification, error: str) -> bool:
        """Give up on a notification for good."""

    def notification_events(self, job_id: int) -> list[tuple[NotificationEvent, str]]:
        """(event, state) of a job's notifications, oldest first."""


class JobFiles(Protocol):
    """A job's files, stored with it: its data files (written by `JobQueue.submit` from
    `NewJob.files`) and its files out (by `JobQueue.finish` from `RunResult.files`), in the
    same transaction as the job's row. Files are named uniquely per job and role."""

    def list_files(self, job_id: int, role: FileRole | None = None) -> list[StoredFile]:
        """A job's files (of one role, or both: data files first), without their content."""

    def job_with_files(self, job_id: int) -> tuple[Job, list[StoredFile]] | None:
        """A job by id with its files listed as `list_files` lists them, in one read."""

    def read_files(self, job_id: int, role: FileRole) -> list[JobFile]:
        """A job's files of one role with their content, in the order they came."""

    def read_file(self, job_id: int, role: FileRole, name: str) -> JobFile | None:
        """One file of a job by its name, or None."""

    def forget_files(self, before: datetime, limit: int = 500) -> int:
        """Delete the files of jobs created before `before` (retention); how many went."""


class Presence(Protocol):
    """Which worker pools are alive, so a command waiting for its job can tell that none runs."""

    def worker_seen(self, worker_id: str) -> None:
        """Record that this worker pool is alive now."""

    def worker_gone(self, worker_id: str) -> None:
        """Forget a worker pool that stopped."""

    def workers_alive(self, within_s: float) -> int:
        """How many worker pools were seen in the last `within_s` seconds."""


class Intake(Protocol):
    """Somewhere that can run a job the moment it is submitted (a worker pool of this process
    with a free slot), saving the claim's own round trip through the database."""

    def offer(self, new: NewJob) -> tuple[Job, bool] | None:
        """Store `new`, claimed and started here if a claim would take it now, else waiting;
        (job, created). None when it did not store it (no free slot, stopping): the caller
        stores the job itself."""


class WorkerStore(JobQueue, Presence, JobFiles, Protocol):
    """What a worker pool needs of the store: the queue, a say in who is alive, and the
    jobs' files (a job's data files for its run, the retention sweep)."""


class ServiceStore(Users, ApiTokens, JobReads, JobQueue, JobFiles, Protocol):
    """What JobService needs of the store: who is who, jobs to read, the queue to put jobs in
    (and take them out by cancelling), and the jobs' files."""


class OutboxStore(Outbox, JobReads, Protocol):
    """What the outbox dispatcher needs of the store: the outbox, and the jobs it reports on."""


class Schema(Protocol):
    """The database itself: its schema and whether it answers."""

    def migrate(self) -> None:
        """Create or update the schema; idempotent."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def schema_version(self) -> int | None:
        """The applied schema version, or None before the first migration."""


class JobStore(Users, ApiTokens, JobReads, JobQueue, JobFiles, Outbox, Presence, Schema, Protocol):
    """Core's durable state: users and their API tokens, jobs and their files, the queue,
    the notification outbox and the worker pools alive.

    Every method is one short transaction. Transient database failures raise
    StoreUnavailable; others StoreError. What only an adapter needs (Slack's dedupe keys,
    intake journal and uploads) is a port of that adapter's own, not part of this one.
    """


StartGate = Callable[[], bool]


class Executor(Protocol):
    """Runs one job's code somewhere contained and reports how it ended.

    User code failing is a RunResult with an explicit outcome. `run` raises only when the
    infrastructure fails: ExecutorUnavailable (nothing ran; safe to try again), Throttled
    (likewise, after `retry_after`), or ExecutorError (it may have run).
    """

    name: str

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        """Run the request to completion within its time limit.

        With a `start` gate, the executor calls it exactly once, at the last moment before the
        code can start, and may prepare the run meanwhile (the local sandbox sets the job's
        process up while the gate commits `invoked_at`). True lets the run go on; False calls
        it off: nothing runs and `run` raises CalledOff. If the gate raises, nothing runs and
        the exception propagates.
        """

    def stop(self, job_id: int) -> bool:
        """Ask for the run of `job_id` in progress here to stop (from any thread).

        True: the executor stops it; `run` then returns a RunResult with outcome CANCELLED
        and the output printed until then (or, if the run ended meanwhile, its real result).
        A stop that arrives while the run is being set up takes effect as soon as the code
        may start. False: no run of that job is in progress here, or this executor cannot
        stop one: a Lambda invoke runs to its end and `run` returns its result normally, so
        the caller that asked for the stop must discard that late result.
        """

    def describe(self) -> list[tuple[str, str, bool]]:
        """Facts for `doctor`: (check, detail, ok)."""

    def close(self) -> None:
        """Release processes and connections."""


class Notifier(Protocol):
    """Delivers a job's notifications to where it came from (a chat, a terminal)."""

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        """Deliver one event about `job` (its current state); return origin fields to persist.

        Raise NotifyRetryable for a transient failure and NotifyError to give up.
        """


class Clock(Protocol):
    """Time, injectable for tests."""

    def now(self) -> datetime:
        """The current UTC time (timezone-aware)."""
