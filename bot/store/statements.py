"""The queue's statements: the claim fence and INSERT IGNORE that every write shares, and the hot
statements, built once with bound parameters (SQLAlchemy then reuses their compiled form instead
of building, keying and compiling a new statement on every call)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    Select,
    Update,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)

from bot.core.models import (
    CANCELLED_TYPE,
    CANCELLED_UNRUN_MESSAGE,
    JobStatus,
    NotificationEvent,
)
from bot.store.rows import CLAIM_COLUMNS, job_select
from bot.store.tables import (
    NotificationState,
    dedupe_keys,
    held_requests,
    jobs,
    notifications,
    users,
)
from bot.store.types import UTCDateTime, utcnow


def ignoring_duplicates(stmt: Insert, sqlite: bool) -> Insert:
    """`stmt` as an INSERT that skips a row whose key is taken (MySQL's and SQLite's spelling)."""
    return stmt.prefix_with("OR IGNORE" if sqlite else "IGNORE")


def claimed(job_id: Any, token: Any) -> ColumnElement[bool]:
    """The fence of every write after a claim: the job is still running under this claim's
    token (values, or bind parameters for a statement built once)."""
    return and_(
        jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING, jobs.c.claim_token == token
    )


def requeued(not_before: Any) -> dict[str, Any]:
    """The values that put a claimed job back in the queue, due at `not_before`."""
    return {
        "status": JobStatus.WAITING,
        "claim_token": None,
        "claimed_by": None,
        "lease_expires_at": None,
        "invoked_at": None,
        "started_at": None,
        "not_before": not_before,
    }


def cancelled_unrun() -> dict[str, Any]:
    """The values that end a claimed job `cancelled` before its code ran."""
    return {
        "status": JobStatus.CANCELLED,
        "error_type": CANCELLED_TYPE,
        "error_message": CANCELLED_UNRUN_MESSAGE,
        "invoked_at": None,
        "lease_expires_at": None,
        "finished_at": utcnow(),
    }


@functools.cache
def submit_job() -> Insert:
    """INSERT a waiting job; every column but the clock comes as a parameter."""
    return insert(jobs).values(not_before=utcnow())


@functools.cache
def submit_claimed_job() -> Insert:
    """INSERT a job already claimed (see submission.submit_claimed): as `claim_jobs` leaves it."""
    return insert(jobs).values(
        not_before=utcnow(),
        lease_expires_at=utcnow(bindparam("b_lease_s", type_=Float())),
        started_at=utcnow(),
    )


@functools.cache
def lock_owner(sqlite: bool) -> Select[Any]:
    """The owner's identity, its users row locked as `claim_candidates` locks it (SKIP
    LOCKED: no row when a claimer holds it)."""
    q = select(users.c.provider, users.c.team, users.c.external_id).where(
        users.c.id == bindparam("b_owner")
    )
    return q if sqlite else q.with_for_update(skip_locked=True)


@functools.cache
def take_check() -> Select[Any]:
    """(the owner's running jobs, whether a due job waits that a claim would take): the
    two things that keep a job from being claimed as it is submitted."""
    running = (
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.status == JobStatus.RUNNING, jobs.c.owner_id == bindparam("b_owner"))
        .scalar_subquery()
    )
    ahead = (
        select(jobs.c.id)
        .where(
            jobs.c.status == JobStatus.WAITING,
            jobs.c.not_before <= utcnow(),
            jobs.c.owner_id.not_in(_busy_owners()),
        )
        .limit(1)
        .exists()
    )
    return select(running, ahead)


def _busy_owners() -> Select[Any]:
    """Owners with `b_max_per_user` jobs running or more: a claim skips their jobs."""
    return (
        select(jobs.c.owner_id)
        .where(jobs.c.status == JobStatus.RUNNING)
        .group_by(jobs.c.owner_id)
        .having(func.count() >= bindparam("b_max_per_user"))
    )


@functools.cache
def any_due() -> Select[Any]:
    """Whether a waiting job is due (ix_jobs_claim answers it)."""
    due = select(jobs.c.id).where(jobs.c.status == JobStatus.WAITING, jobs.c.not_before <= utcnow())
    return select(due.limit(1).exists())


@functools.cache
def claim_candidates(sqlite: bool) -> Select[Any]:
    """Due waiting jobs of owners below the limit, oldest first, locked with SKIP LOCKED
    (the join locks each owner's users row too)."""
    busy_owners = _busy_owners()
    q = (
        job_select(only=CLAIM_COLUMNS)
        .where(
            jobs.c.status == JobStatus.WAITING,
            jobs.c.not_before <= utcnow(),
            jobs.c.owner_id.not_in(busy_owners),
        )
        .order_by(jobs.c.not_before, jobs.c.id)
        .limit(bindparam("b_limit"))
    )
    return q if sqlite else q.with_for_update(skip_locked=True)


@functools.cache
def running_counts() -> Select[Any]:
    """Running jobs per owner, for the owners given."""
    return (
        select(jobs.c.owner_id, func.count())
        .where(
            jobs.c.status == JobStatus.RUNNING,
            jobs.c.owner_id.in_(bindparam("b_owners", expanding=True)),
        )
        .group_by(jobs.c.owner_id)
    )


@functools.cache
def claim_jobs() -> Update:
    """Mark the picked jobs running under one fresh token and lease."""
    return (
        update(jobs)
        .where(
            jobs.c.id.in_(bindparam("b_ids", expanding=True)), jobs.c.status == JobStatus.WAITING
        )
        .values(
            status=JobStatus.RUNNING,
            attempts=jobs.c.attempts + 1,
            claim_token=bindparam("b_token"),
            claimed_by=bindparam("b_worker"),
            lease_expires_at=utcnow(bindparam("b_lease_s", type_=Float())),
            invoked_at=None,
            started_at=utcnow(),
        )
    )


def _owned() -> ColumnElement[bool]:
    return claimed(bindparam("b_id"), bindparam("b_token"))


@functools.cache
def mark_invoked() -> Update:
    """Fenced: invoked_at now, lease renewed."""
    return (
        update(jobs)
        .where(_owned())
        .values(invoked_at=utcnow(), lease_expires_at=utcnow(bindparam("b_lease_s", type_=Float())))
    )


@functools.cache
def finish_job() -> Update:
    """Fenced: the final status and everything the run reported."""
    fields = (
        "result_json",
        "result_kind",
        "stdout",
        "stderr",
        "stdout_truncated",
        "stderr_truncated",
        "error_type",
        "error_message",
        "traceback",
        "duration_ms",
        "executor",
        "files_note",
    )
    values: dict[str, Any] = {
        name: bindparam(f"b_{name}", type_=jobs.c[name].type) for name in fields
    }
    values["status"] = bindparam("b_status", type_=jobs.c.status.type)
    return (
        update(jobs).where(_owned()).values(**values, lease_expires_at=None, finished_at=utcnow())
    )


@functools.cache
def notify_from_job(sqlite: bool, event: NotificationEvent, *, delayed: bool = False) -> Insert:
    """Write the job's `event` notification when it has a route (once per job and event);
    `delayed`: due at the bound `b_due` rather than now."""
    due = bindparam("b_due", type_=UTCDateTime) if delayed else utcnow()
    source = select(
        jobs.c.id,
        literal(event.value),
        jobs.c.notify_route,
        literal(NotificationState.PENDING.value),
        literal(0),
        due,
        utcnow(),
    ).where(jobs.c.id == bindparam("b_id"), jobs.c.notify_route.is_not(None))
    return ignoring_duplicates(
        insert(notifications).from_select(
            ["job_id", "event", "route", "state", "attempts", "next_attempt_at", "created_at"],
            source,
        ),
        sqlite,
    )


@functools.cache
def remember_key(sqlite: bool) -> Insert:
    """INSERT a dedupe key unless it is taken (the replay guard's, on every Slack request); the
    key and its claim come as parameters."""
    return ignoring_duplicates(insert(dedupe_keys).values(created_at=utcnow()), sqlite)


@functools.cache
def hold_request(sqlite: bool) -> Insert:
    """INSERT a request into the intake journal unless its key is held (every `/job run`,
    before its ack); key, kind and payload come as parameters, the lease as `b_lease_s`."""
    return ignoring_duplicates(
        insert(held_requests).values(
            attempts=0,
            lease_expires_at=utcnow(bindparam("b_lease_s", type_=Float())),
            created_at=utcnow(),
        ),
        sqlite,
    )
