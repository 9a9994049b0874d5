"""The crash-safe queue in SQL: claim, mark invoked, finish, release, recover (submitting is in
submission.py).

Every write after a claim is fenced by `status='running' AND claim_token=:token`, so a worker
that lost its lease can never overwrite a job another process settled.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, insert, select, update

from bot.core.models import (
    CANCELLED_TYPE,
    INTERRUPTED_MESSAGE,
    INTERRUPTED_TYPE,
    STOPPED_LOST_MESSAGE,
    Claim,
    FileRole,
    Job,
    JobStatus,
    NotificationEvent,
    RunResult,
)
from bot.core.ports import Recovery
from bot.store import statements
from bot.store.files import add_files
from bot.store.rows import job_select, to_job
from bot.store.tables import NotificationState, jobs, notifications
from bot.store.types import utcnow


def insert_ignore(conn: Connection, table: Any, values: dict[str, Any]) -> int:
    """INSERT that silently skips a duplicate key; returns rows inserted (0 or 1)."""
    sqlite = conn.dialect.name == "sqlite"
    result = conn.execute(statements.ignoring_duplicates(insert(table).values(**values), sqlite))
    return result.rowcount


def add_notification(
    conn: Connection,
    job_id: int,
    route: str | None,
    ev: NotificationEvent,
    due: datetime | None = None,
) -> None:
    """Write an outbox entry in the caller's transaction (once per job and event), due now
    or at `due`. A `finished` entry makes the job's undelivered progress obsolete."""
    if route is None:
        return
    insert_ignore(
        conn,
        notifications,
        {
            "job_id": job_id,
            "event": ev,
            "route": route,
            "state": NotificationState.PENDING,
            "attempts": 0,
            "next_attempt_at": due or utcnow(),
            "created_at": utcnow(),
        },
    )
    if ev is NotificationEvent.FINISHED:
        drop_obsolete(conn, job_id)


def add_notification_from_job(
    conn: Connection, job_id: int, ev: NotificationEvent, due: datetime | None = None
) -> None:
    """Like add_notification, with the route read from the job in the same statement."""
    sqlite = conn.dialect.name == "sqlite"
    if due is None:
        conn.execute(statements.notify_from_job(sqlite, ev), {"b_id": job_id})
    else:
        conn.execute(
            statements.notify_from_job(sqlite, ev, delayed=True), {"b_id": job_id, "b_due": due}
        )
    if ev is NotificationEvent.FINISHED:
        drop_obsolete(conn, job_id)


def drop_obsolete(conn: Connection, job_id: int) -> int:
    """Coalesce: the job's progress entries (queued, started) that wait undelivered and
    unleased are obsolete once it finished; only its latest state is sent. How many."""
    result = conn.execute(
        notifications.delete().where(
            notifications.c.job_id == job_id,
            notifications.c.event.in_([NotificationEvent.QUEUED, NotificationEvent.STARTED]),
            notifications.c.state == NotificationState.PENDING,
            notifications.c.claim_token.is_(None),
        )
    )
    return result.rowcount


def progress_due(created_at: datetime, quiet_s: float) -> datetime | None:
    """When a job's progress may first be told: `quiet_s` after it was accepted (None: now).
    A job that finishes sooner is told once, with its result."""
    if quiet_s <= 0:
        return None
    return created_at + timedelta(seconds=quiet_s)


def load_job(conn: Connection, job_id: int) -> Job | None:
    """A full job row."""
    row = conn.execute(job_select().where(jobs.c.id == job_id)).mappings().first()
    return None if row is None else to_job(row)


def any_due(conn: Connection) -> bool:
    """Whether any waiting job is due (a claim may find one; without, it finds none)."""
    return bool(conn.execute(statements.any_due()).scalar())


def claim(
    conn: Connection, worker_id: str, slots: int, lease_s: float, max_per_user: int
) -> list[Claim]:
    """Claim due waiting jobs, oldest first, honouring the per-user running limit.

    On MySQL the candidate SELECT locks each job row *and its owner's users row* with SKIP
    LOCKED, so while one claimer decides for a user, the others skip that user's jobs: two
    claimers can never push one user past the limit together, and nobody waits.
    """
    sqlite = conn.dialect.name == "sqlite"
    candidates = [
        to_job(row)
        for row in conn.execute(
            statements.claim_candidates(sqlite),
            {"b_max_per_user": max_per_user, "b_limit": min(slots * 4, 400)},
        ).mappings()
    ]
    if not candidates:
        return []
    owners = sorted({job.owner_id for job in candidates})
    # Counted after the owners are locked (READ COMMITTED reads the latest commits).
    running: dict[int, int] = {
        row[0]: row[1] for row in conn.execute(statements.running_counts(), {"b_owners": owners})
    }
    picked: list[Job] = []
    for job in candidates:
        if len(picked) == slots:
            break
        if running.get(job.owner_id, 0) < max_per_user:
            picked.append(job)
            running[job.owner_id] = running.get(job.owner_id, 0) + 1
    if not picked:
        return []
    token = secrets.token_hex(16)
    conn.execute(
        statements.claim_jobs(),
        {
            "b_ids": [job.id for job in picked],
            "b_token": token,
            "b_worker": worker_id,
            "b_lease_s": float(lease_s),
        },
    )
    # The rows are locked by this transaction, so the UPDATE changed exactly these values;
    # the database-clock timestamps are left out rather than read back.
    return [
        Claim(
            job=dataclasses.replace(
                job, status=JobStatus.RUNNING, attempts=job.attempts + 1, claim_token=token
            ),
            token=token,
        )
        for job in picked
    ]


def mark_invoked(
    conn: Connection,
    job_id: int,
    token: str,
    lease_s: float,
    quiet_s: float = 0.0,
    *,
    routed: bool = True,
) -> bool:
    """Commit invoked_at before the run; the `started` notification goes with it, due
    `quiet_s` after the job was accepted. A job without a notification route (`routed`
    False: the claim's job says so, and the route never changes) has none to write: then
    this is one statement."""
    result = conn.execute(
        statements.mark_invoked(), {"b_id": job_id, "b_token": token, "b_lease_s": float(lease_s)}
    )
    if result.rowcount != 1:
        return False
    if not routed:
        return True
    due = None
    if quiet_s > 0:
        created = conn.execute(select(jobs.c.created_at).where(jobs.c.id == job_id)).scalar()
        due = progress_due(created, quiet_s) if created is not None else None
    add_notification_from_job(conn, job_id, NotificationEvent.STARTED, due)
    return True


def extend_lease(conn: Connection, job_id: int, token: str, lease_s: float) -> bool:
    """Push the lease out while a run is legitimately long."""
    result = conn.execute(
        update(jobs)
        .where(statements.claimed(job_id, token))
        .values(lease_expires_at=utcnow(lease_s))
    )
    return result.rowcount == 1


def release(conn: Connection, job_id: int, token: str, delay_s: float) -> bool:
    """Back to waiting after a run that never started (throttled, executor unreachable); a
    job whose cancel was asked for meanwhile ends `cancelled` instead."""
    # Locked first, so that a cancel cannot slip in between the look and the write.
    look = select(jobs.c.stop_requested_at).where(statements.claimed(job_id, token))
    if conn.dialect.name != "sqlite":  # SQLite's write transaction already excludes others
        look = look.with_for_update()
    row = conn.execute(look).first()
    if row is None:
        return False
    stopped = row[0] is not None
    values = statements.cancelled_unrun() if stopped else statements.requeued(utcnow(delay_s))
    conn.execute(update(jobs).where(statements.claimed(job_id, token)).values(**values))
    # Nothing ran: an undelivered "started" would be misleading; it is written again later.
    conn.execute(
        notifications.delete().where(
            notifications.c.job_id == job_id,
            notifications.c.event == NotificationEvent.STARTED,
            notifications.c.state == NotificationState.PENDING,
            notifications.c.claim_token.is_(None),
        )
    )
    if stopped:
        add_notification_from_job(conn, job_id, NotificationEvent.FINISHED)
    return True


def finish(
    conn: Connection, job_id: int, token: str, result: RunResult, *, routed: bool = True
) -> bool:
    """Record the outcome exactly once; True also for a repeat by the same claim (a retried
    commit), False when the job is no longer this claim's. Its files out and its `finished`
    notification go with it (none for a job without a route, `routed` False: then a result
    without files is one statement)."""
    outcome = conn.execute(
        statements.finish_job(),
        {
            "b_id": job_id,
            "b_token": token,
            "b_status": result.status,
            "b_result_json": result.result_json,
            "b_result_kind": result.result_kind,
            "b_stdout": result.stdout,
            "b_stderr": result.stderr,
            "b_stdout_truncated": result.stdout_truncated,
            "b_stderr_truncated": result.stderr_truncated,
            "b_error_type": result.error_type,
            "b_error_message": result.error_message,
            "b_traceback": result.traceback,
            "b_duration_ms": result.duration_ms,
            "b_executor": result.executor or None,
            "b_files_note": result.files_note,
        },
    )
    if outcome.rowcount == 1:
        add_files(conn, job_id, FileRole.OUT, result.files)
        if routed:
            add_notification_from_job(conn, job_id, NotificationEvent.FINISHED)
        return True
    row = conn.execute(select(jobs.c.claim_token, jobs.c.status).where(jobs.c.id == job_id)).first()
    return row is not None and row[0] == token and row[1].is_final


def cancel(conn: Connection, job_id: int) -> Job | None:
    """Cancel a waiting job, or ask for a running one to be stopped (its worker, wherever it
    runs, sees the request); None when the job is neither."""
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.WAITING)
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), not_before=utcnow())
    )
    if result.rowcount == 1:
        job = load_job(conn, job_id)
        if job is not None:
            add_notification(conn, job_id, job.notify_route, NotificationEvent.FINISHED)
        return job
    # Repeating the request keeps its first time: an answer lost on the way is asked again.
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.RUNNING)
        .values(stop_requested_at=func.coalesce(jobs.c.stop_requested_at, utcnow()))
    )
    return load_job(conn, job_id) if result.rowcount == 1 else None


def stop_requests(conn: Connection, job_ids: Sequence[int]) -> set[int]:
    """Which of these jobs are running with a stop asked for."""
    if not job_ids:
        return set()
    rows = conn.execute(
        select(jobs.c.id).where(
            jobs.c.id.in_(list(job_ids)),
            jobs.c.status == JobStatus.RUNNING,
            jobs.c.stop_requested_at.is_not(None),
        )
    )
    return {int(row[0]) for row in rows}


def recover_expired(conn: Connection, limit: int) -> Recovery:
    """Settle running jobs whose lease expired; never re-run one that may have started. One
    whose cancel was asked for ends `cancelled` (it never ran, or its worker vanished)."""
    expired_q = (
        select(jobs.c.id, jobs.c.invoked_at, jobs.c.notify_route, jobs.c.stop_requested_at)
        .where(jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < utcnow())
        .order_by(jobs.c.lease_expires_at)
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        expired_q = expired_q.with_for_update(skip_locked=True)
    expired = conn.execute(expired_q).all()
    fresh = [row.id for row in expired if row.invoked_at is None and row.stop_requested_at is None]
    settle = [row for row in expired if row.invoked_at is not None or row.stop_requested_at]
    still_expired = and_(jobs.c.status == JobStatus.RUNNING, jobs.c.lease_expires_at < utcnow())
    if fresh:
        conn.execute(
            update(jobs)
            .where(jobs.c.id.in_(fresh), jobs.c.invoked_at.is_(None), still_expired)
            .values(**statements.requeued(utcnow()))
        )
    interrupted: list[int] = []
    for row in settle:
        if row.stop_requested_at is None:
            values: dict[str, Any] = {
                "status": JobStatus.ERROR,
                "error_type": INTERRUPTED_TYPE,
                "error_message": INTERRUPTED_MESSAGE,
                "finished_at": utcnow(),
            }
        elif row.invoked_at is None:
            values = statements.cancelled_unrun()
        else:
            values = {
                "status": JobStatus.CANCELLED,
                "error_type": CANCELLED_TYPE,
                "error_message": STOPPED_LOST_MESSAGE,
                "finished_at": utcnow(),
            }
        done = conn.execute(
            update(jobs)
            .where(jobs.c.id == row.id, still_expired)
            # a late finish by the vanished worker must not match
            .values(**{**values, "claim_token": None, "lease_expires_at": None})
        )
        if done.rowcount == 1:
            interrupted.append(row.id)
            add_notification(conn, row.id, row.notify_route, NotificationEvent.FINISHED)
    return Recovery(requeued=tuple(fresh), interrupted=tuple(interrupted))


def count_by_status(conn: Connection) -> dict[JobStatus, int]:
    """Jobs per status."""
    rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
    counts = dict.fromkeys(JobStatus, 0)
    counts.update({row[0]: row[1] for row in rows})
    return counts


def list_jobs(
    conn: Connection, owner_id: int | None, limit: int, before_id: int | None
) -> Sequence[Job]:
    """Newest first, summaries only."""
    q = job_select(summary=True)
    if owner_id is not None:
        q = q.where(jobs.c.owner_id == owner_id)
    if before_id is not None:
        q = q.where(jobs.c.id < before_id)
    rows = conn.execute(q.order_by(jobs.c.id.desc()).limit(limit)).mappings()
    return [to_job(row, summary=True) for row in rows]
