"""The notification outbox in SQL: lease due entries in per-job order, then settle them."""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Float,
    Select,
    Update,
    and_,
    bindparam,
    case,
    exists,
    select,
    update,
)
from sqlalchemy.orm import aliased

from bot.core.models import Job, Notification, NotificationEvent
from bot.store.rows import dump_json, job_select, to_job
from bot.store.tables import NotificationState, jobs, notifications
from bot.store.types import utcnow

PENDING = NotificationState.PENDING


def claim(
    conn: Connection, routes: Sequence[str], limit: int, lease_s: float
) -> list[Notification]:
    """Lease due entries; an entry waits while an earlier one of its job is undelivered."""
    if not routes:
        return []
    n = notifications.alias("n")
    earlier = aliased(notifications, name="p")
    blocked = exists().where(
        earlier.c.job_id == n.c.job_id, earlier.c.id < n.c.id, earlier.c.state == PENDING
    )
    q = (
        select(n.c.id)
        .where(
            n.c.state == PENDING,
            n.c.route.in_(list(routes)),
            n.c.next_attempt_at <= utcnow(),
            (n.c.lease_expires_at.is_(None)) | (n.c.lease_expires_at < utcnow()),
            ~blocked,
        )
        # Results before progress, then the oldest due first.
        .order_by(
            case((n.c.event == NotificationEvent.FINISHED, 0), else_=1),
            n.c.next_attempt_at,
            n.c.id,
        )
        .limit(limit)
    )
    if conn.dialect.name != "sqlite":
        q = q.with_for_update(skip_locked=True, of=n)
    ids = list(conn.execute(q).scalars())
    if not ids:
        return []
    token = secrets.token_hex(16)
    conn.execute(
        update(notifications)
        .where(notifications.c.id.in_(ids), notifications.c.state == PENDING)
        .values(
            claim_token=token,
            lease_expires_at=utcnow(lease_s),
            attempts=notifications.c.attempts + 1,
        )
    )
    rows = conn.execute(
        select(notifications).where(notifications.c.id.in_(ids)).order_by(notifications.c.id)
    ).mappings()
    return [
        Notification(
            id=row["id"],
            job_id=row["job_id"],
            event=row["event"],
            route=row["route"],
            attempts=row["attempts"],
            token=token,
        )
        for row in rows
    ]


@dataclass(frozen=True)
class ResultLease:
    """A lease on a job's `finished` entry, taken as the result is recorded (for these
    routes only); `token` is drawn once, so a transaction run again finds its own lease."""

    routes: tuple[str, ...]
    lease_s: float
    token: str


def lease_result(
    conn: Connection, job_id: int, lease: ResultLease
) -> tuple[Notification, Job] | None:
    """In the transaction that recorded the job's result: lease its `finished` entry as a
    claim would (the same lease, fence and attempt count), and read the job as it now is, so
    the process that recorded it can deliver it at once; None when a claim could not take it
    either (another route; an earlier entry of the job still undelivered, i.e. a progress
    message being delivered right now): the outbox then delivers it as usual."""
    params = {
        "b_job": job_id,
        "b_token": lease.token,
        "b_lease_s": lease.lease_s,
        "b_routes": list(lease.routes),
    }
    conn.execute(_lease_result(), params)
    # By the token: the lease just taken, or the one taken by this transaction's first run
    # when it is run again after its COMMIT's answer was lost.
    row = conn.execute(_leased_job(), params).mappings().first()
    if row is None:
        return None
    leased = Notification(
        id=row["lease_id"],
        job_id=job_id,
        event=NotificationEvent.FINISHED,
        route=row["lease_route"],
        attempts=row["lease_attempts"],
        token=lease.token,
    )
    return leased, to_job(row)


@functools.cache
def _lease_result() -> Update:
    earlier = aliased(notifications, name="p")
    blocked = exists().where(
        earlier.c.job_id == bindparam("b_job"),
        earlier.c.id < notifications.c.id,
        earlier.c.state == PENDING,
    )
    return (
        update(notifications)
        .where(
            notifications.c.job_id == bindparam("b_job"),
            notifications.c.event == NotificationEvent.FINISHED,
            notifications.c.state == PENDING,
            notifications.c.claim_token.is_(None),
            notifications.c.route.in_(bindparam("b_routes", expanding=True)),
            ~blocked,
        )
        .values(
            claim_token=bindparam("b_token"),
            lease_expires_at=utcnow(bindparam("b_lease_s", type_=Float())),
            attempts=notifications.c.attempts + 1,
        )
    )


@functools.cache
def _leased_job() -> Select[Any]:
    """The job with its leased `finished` entry, in one read."""
    return (
        job_select()
        .add_columns(
            notifications.c.id.label("lease_id"),
            notifications.c.route.label("lease_route"),
            notifications.c.attempts.label("lease_attempts"),
        )
        .join(
            notifications,
            and_(
                notifications.c.job_id == jobs.c.id,
                notifications.c.event == NotificationEvent.FINISHED,
                notifications.c.claim_token == bindparam("b_token"),
            ),
        )
        .where(jobs.c.id == bindparam("b_job"))
    )


def _owned(notification: Notification) -> Any:
    return and_(
        notifications.c.id == notification.id,
        notifications.c.state == PENDING,
        notifications.c.claim_token == notification.token,
    )


def complete(
    conn: Connection, notification: Notification, origin_update: Mapping[str, Any] | None
) -> bool:
    """Mark delivered and merge the adapter's new origin fields into the job."""
    result = conn.execute(
        update(notifications)
        .where(_owned(notification))
        .values(
            state=NotificationState.SENT,
            sent_at=utcnow(),
            claim_token=None,
            lease_expires_at=None,
            last_error=None,
        )
    )
    if result.rowcount != 1:
        return False
    if origin_update:
        merge_origin(conn, notification.job_id, origin_update)
    return True


def merge_origin(conn: Connection, job_id: int, origin_update: Mapping[str, Any]) -> None:
    """Merge fields into a job's opaque origin JSON (under a row lock)."""
    q = select(jobs.c.origin).where(jobs.c.id == job_id)
    if conn.dialect.name != "sqlite":
        q = q.with_for_update()
    text = conn.execute(q).scalar()
    origin = json.loads(text) if text else {}
    origin.update(origin_update)
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(origin=dump_json(origin)))


def retry(
    conn: Connection,
    notification: Notification,
    delay_s: float,
    error: str,
    origin_update: Mapping[str, Any] | None = None,
) -> bool:
    """Give the lease back; try again after `delay_s`; keep the progress made so far. An
    entry that a later one of its job waits behind is due again at once (its state is
    obsolete by then, and the later one must not wait on it)."""
    later = conn.execute(
        select(notifications.c.id).where(
            notifications.c.job_id == notification.job_id,
            notifications.c.id > notification.id,
            notifications.c.state == PENDING,
        )
    ).first()
    result = conn.execute(
        update(notifications)
        .where(_owned(notification))
        .values(
            claim_token=None,
            lease_expires_at=None,
            next_attempt_at=utcnow(0.0 if later is not None else delay_s),
            last_error=error[:500],
        )
    )
    if result.rowcount != 1:
        return False
    if origin_update:
        merge_origin(conn, notification.job_id, origin_update)
    return True


def fail(conn: Connection, notification: Notification, error: str) -> bool:
    """Give up for good."""
    result = conn.execute(
        update(notifications)
        .where(_owned(notification))
        .values(
            state=NotificationState.FAILED,
            claim_token=None,
            lease_expires_at=None,
            last_error=error[:500],
        )
    )
    return result.rowcount == 1


def events(conn: Connection, job_id: int) -> list[tuple[NotificationEvent, str]]:
    """(event, state) of a job's entries, oldest first."""
    rows = conn.execute(
        select(notifications.c.event, notifications.c.state)
        .where(notifications.c.job_id == job_id)
        .order_by(notifications.c.id)
    ).all()
    return [(row[0], row[1].value) for row in rows]
