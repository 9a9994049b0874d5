"""Submitting a job: one INSERT of a waiting job, or of one already claimed by a worker with a
free slot (claim-on-submit), with its `queued` notification, deduplicated by its idempotency
key."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError

from bot.core.models import Claim, FileRole, Identity, Job, JobStatus, NewJob, NotificationEvent
from bot.errors import StoreError
from bot.store import statements
from bot.store.files import add_files
from bot.store.queue import add_notification, progress_due
from bot.store.rows import dump_json, job_select, to_job
from bot.store.tables import jobs, users


def submit(conn: Connection, new: NewJob, quiet_s: float = 0.0) -> tuple[Job, bool]:
    """Insert a waiting job, or return the one with the same idempotency key. Its `queued`
    notification is due `quiet_s` later (queue.progress_due)."""
    job, created, _ = _insert(conn, new, new.owner, None, quiet_s)
    return job, created


@dataclasses.dataclass(frozen=True)
class Taker:
    """Who takes a job as it is submitted: a worker with a free slot, its claim token and
    lease, and the per-user limit it honours."""

    worker_id: str
    token: str
    lease_s: float
    max_per_user: int


def submit_claimed(
    conn: Connection, new: NewJob, taker: Taker, quiet_s: float = 0.0
) -> tuple[Job, bool, Claim | None]:
    """Insert the job already claimed by `taker` (running, its token and lease, `invoked_at`
    empty: what `claim` would have made of it, without the claim's own commit), when a claim
    would take it now: its owner is below the limit and no due job waits that a claim would
    take first. Otherwise insert it waiting, as `submit` does.

    The owner's users row is locked first, as `claim` locks it (SKIP LOCKED: a claimer
    deciding for this user right now makes it a plain submit), so the running jobs counted
    stay counted until the commit.
    """
    sqlite = conn.dialect.name == "sqlite"
    row = conn.execute(statements.lock_owner(sqlite), {"b_owner": new.owner_id}).first()
    if row is None:  # a claimer holds the owner's row (or there is no such user: submit says)
        return _insert(conn, new, new.owner, None, quiet_s)
    owner = Identity(row[0], row[1], row[2])
    check = {"b_owner": new.owner_id, "b_max_per_user": taker.max_per_user}
    running, ahead = conn.execute(statements.take_check(), check).one()
    if running >= taker.max_per_user or ahead:
        return _insert(conn, new, owner, None, quiet_s)
    return _insert(conn, new, owner, taker, quiet_s)


def _insert(
    conn: Connection, new: NewJob, owner: Identity | None, taker: Taker | None, quiet_s: float
) -> tuple[Job, bool, Claim | None]:
    """Insert the job (waiting, or claimed by `taker`) with its `queued` notification;
    with an idempotency key already stored, that job: claimed only if by this very taker
    (its transaction ran again after the answer to its commit was lost)."""
    created_at = datetime.now(UTC)
    values = {
        "owner_id": new.owner_id,
        "status": JobStatus.WAITING,
        "file_name": new.file_name,
        "code": new.code,
        "code_sha256": new.code_sha256,
        "input_json": new.input_json,
        "stdout_truncated": False,
        "stderr_truncated": False,
        "attempts": 0,
        "created_at": created_at,
        "origin": dump_json(new.origin) if new.origin else None,
        "notify_route": new.notify_route,
        "idempotency_key": new.idempotency_key,
        "rerun_of": new.rerun_of,
    }
    statement = statements.submit_job()
    if taker is not None:
        statement = statements.submit_claimed_job()
        values.update(
            status=JobStatus.RUNNING,
            attempts=1,
            claim_token=taker.token,
            claimed_by=taker.worker_id,
            b_lease_s=float(taker.lease_s),
        )
    try:
        # A duplicate key aborts only this statement (MySQL and SQLite), not the transaction.
        inserted = conn.execute(statement, values).inserted_primary_key
        job_id = int(inserted[0]) if inserted else 0
    except IntegrityError:
        if new.idempotency_key is None:
            raise
        existing = (
            conn.execute(job_select().where(jobs.c.idempotency_key == new.idempotency_key))
            .mappings()
            .first()
        )
        if existing is None:
            raise
        found = to_job(existing)
        if (
            taker is not None
            and found.claim_token == taker.token
            and found.status is JobStatus.RUNNING
        ):
            return found, True, Claim(job=found, token=taker.token)
        return found, False, None
    add_files(conn, job_id, FileRole.IN, new.files)
    due = progress_due(created_at, quiet_s)
    add_notification(conn, job_id, new.notify_route, NotificationEvent.QUEUED, due)
    if owner is None:
        row = conn.execute(
            select(users.c.provider, users.c.team, users.c.external_id).where(
                users.c.id == new.owner_id
            )
        ).first()
        if row is None:
            raise StoreError(f"user {new.owner_id} does not exist")
        owner = Identity(row[0], row[1], row[2])
    # Built from what was just written rather than read back: one round trip less.
    job = Job(
        id=job_id,
        owner_id=new.owner_id,
        owner=owner,
        status=JobStatus.WAITING if taker is None else JobStatus.RUNNING,
        file_name=new.file_name,
        code=new.code,
        code_sha256=new.code_sha256,
        input_json=new.input_json,
        created_at=created_at,
        attempts=0 if taker is None else 1,
        claim_token=None if taker is None else taker.token,
        origin=dict(new.origin),
        notify_route=new.notify_route,
        idempotency_key=new.idempotency_key,
        rerun_of=new.rerun_of,
    )
    claim = Claim(job=job, token=taker.token, data_files=bool(new.files)) if taker else None
    return job, True, claim
