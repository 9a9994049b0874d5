"""SqlStore: core's JobStore and the Slack adapter's memory (bot.slack.memory.SlackMemory,
satisfied structurally) on MySQL/MariaDB (production) or SQLite (embedded default)."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, inspect, select, text, update

from bot.core.models import (
    Claim,
    FileRole,
    HeldRequest,
    Identity,
    Job,
    JobFile,
    JobStatus,
    NewJob,
    Notification,
    NotificationEvent,
    RunResult,
    StoredFile,
    Upload,
    User,
)
from bot.core.pacing import Rate
from bot.core.ports import Recovery
from bot.store import files, held, outbox, pace, queue, submission
from bot.store.db import Database
from bot.store.rows import to_upload, to_user
from bot.store.tables import (
    SCHEMA_VERSION,
    api_tokens,
    dedupe_keys,
    metadata,
    schema_info,
    uploads,
    users,
    workers,
)
from bot.store.types import utcnow


class SqlStore:
    """Jobs, users, the outbox and the Slack adapter's memories in one SQL database."""

    def __init__(self, engine: Engine, *, quiet_s: float = 0.0) -> None:
        self.db = Database(engine)
        self.engine = engine
        # Progress (queued, started) is told no sooner than this after a job was accepted.
        self.quiet_s = quiet_s

    def close(self) -> None:
        """Close pooled connections."""
        self.db.dispose()

    # --- schema -----------------------------------------------------------------------

    def migrate(self) -> None:
        """Create missing tables and record the schema version; safe to run repeatedly."""

        def apply(conn: Connection) -> None:
            if conn.dialect.name != "sqlite":
                # Several processes may start at once; DDL is not transactional in MySQL.
                conn.execute(text("SELECT GET_LOCK('jobbot.migrate', 60)"))
            metadata.create_all(conn, checkfirst=True)
            _add_missing_columns(conn)
            queue.insert_ignore(
                conn, schema_info, {"id": 1, "version": SCHEMA_VERSION, "applied_at": utcnow()}
            )
            conn.execute(
                update(schema_info)
                .where(schema_info.c.id == 1, schema_info.c.version < SCHEMA_VERSION)
                .values(version=SCHEMA_VERSION, applied_at=utcnow())
            )
            if conn.dialect.name != "sqlite":
                conn.execute(text("SELECT RELEASE_LOCK('jobbot.migrate')"))

        self.db.write(apply)

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        self.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar())

    def schema_version(self) -> int | None:
        """The applied schema version, or None before the first migration."""

        def read(conn: Connection) -> int | None:
            if not conn.dialect.has_table(conn, "jobbot_schema"):
                return None
            value = conn.execute(select(schema_info.c.version)).scalar()
            return None if value is None else int(value)

        return self.db.read(read)

    # --- users ------------------------------------------------------------------------

    def ensure_user(self, identity: Identity, display_name: str | None = None) -> User:
        """Find or create the user of an identity; concurrent first contacts get one id."""
        key = (
            (users.c.provider == identity.provider)
            & (users.c.team == identity.team)
            & (users.c.external_id == identity.external_id)
        )

        def find(conn: Connection) -> User | None:
            row = conn.execute(select(users).where(key)).mappings().first()
            return None if row is None else to_user(row)

        found = self.db.read(find)
        if found is not None and (display_name is None or found.display_name == display_name):
            return found

        def upsert(conn: Connection) -> User:
            queue.insert_ignore(
                conn,
                users,
                {
                    "provider": identity.provider,
                    "team": identity.team,
                    "external_id": identity.external_id,
                    "display_name": display_name,
                    "created_at": utcnow(),
                    "last_seen_at": utcnow(),
                },
            )
            if display_name is not None:
                conn.execute(
                    update(users)
                    .where(key)
                    .values(display_name=display_name, last_seen_at=utcnow())
                )
            user = find(conn)
            if user is None:  # pragma: no cover - the unique key guarantees a row
                raise LookupError(f"user {identity} missing after insert")
            return user

        return self.db.write(upsert)

    def get_user(self, user_id: int) -> User | None:
        """A user by id."""

        def read(conn: Connection) -> User | None:
            row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
            return None if row is None else to_user(row)

        return self.db.read(read)

    # --- API tokens -------------------------------------------------------------------

    def set_token(self, user_id: int, token_sha256: str) -> None:
        """Store the user's token hash in place of any earlier one."""

        def put(conn: Connection) -> None:
            conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
            conn.execute(
                insert(api_tokens).values(
                    user_id=user_id, token_sha256=token_sha256, created_at=utcnow()
                )
            )

        self.db.write(put)

    def drop_token(self, user_id: int) -> bool:
        """Forget the user's token; False if there was none."""
        stmt = delete(api_tokens).where(api_tokens.c.user_id == user_id)
        return self.db.write(lambda conn: conn.execute(stmt).rowcount > 0)

    def token_user(self, token_sha256: str) -> User | None:
        """The user whose token has this hash."""
        stmt = select(users).select_from(api_tokens.join(users, api_tokens.c.user_id == users.c.id))
        stmt = stmt.where(api_tokens.c.token_sha256 == token_sha256)

        def read(conn: Connection) -> User | None:
            row = conn.execute(stmt).mappings().first()
            return None if row is None else to_user(row)

        return self.db.read(read)

    # --- jobs -------------------------------------------------------------------------

    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Store a waiting job; an existing idempotency key returns the existing job."""
        return self.db.write(lambda conn: submission.submit(conn, new, self.quiet_s))

    def submit_claimed(
        self, new: NewJob, worker_id: str, lease_s: float, max_per_user: int
    ) -> tuple[Job, bool, Claim | None]:
        """Store a job already claimed by `worker_id` if a claim would take it now, else
        waiting. The token is drawn once: a transaction run again after its commit's answer
        was lost recognises the job it stored by it."""
        taker = submission.Taker(worker_id, secrets.token_hex(16), lease_s, max_per_user)
        return self.db.write(lambda conn: submission.submit_claimed(conn, new, taker, self.quiet_s))

    def get(self, job_id: int) -> Job | None:
        """A job by id."""
        return self.db.read(lambda conn: queue.load_job(conn, job_id))

    def list_by_owner(self, owner_id: int, limit: int, before_id: int | None = None) -> list[Job]:
        """A user's jobs, newest first."""
        return list(self.db.read(lambda conn: queue.list_jobs(conn, owner_id, limit, before_id)))

    def list_all(self, limit: int, before_id: int | None = None) -> list[Job]:
        """Everyone's jobs, newest first."""
        return list(self.db.read(lambda conn: queue.list_jobs(conn, None, limit, before_id)))

    def cancel(self, job_id: int) -> Job | None:
        """Cancel a waiting job, or ask for a running one to be stopped."""
        return self.db.write(lambda conn: queue.cancel(conn, job_id))

    def stop_requests(self, job_ids: Sequence[int]) -> set[int]:
        """Which of these running jobs have a stop asked for."""
        if not job_ids:
            return set()
        return self.db.read(lambda conn: queue.stop_requests(conn, job_ids))

    def claim(self, worker_id: str, slots: int, lease_s: float, max_per_user: int) -> list[Claim]:
        """Claim due waiting jobs."""
        if slots <= 0:
            return []
        return self.db.write(
            lambda conn: queue.claim(conn, worker_id, slots, lease_s, max_per_user)
        )

    def mark_invoked(self, job_id: int, token: str, lease_s: float) -> bool:
        """Record that the run is starting."""
        return self.db.write(
            lambda conn: queue.mark_invoked(conn, job_id, token, lease_s, self.quiet_s)
        )

    def extend_lease(self, job_id: int, token: str, lease_s: float) -> bool:
        """Push the lease out."""
        return self.db.write(lambda conn: queue.extend_lease(conn, job_id, token, lease_s))

    def release(self, job_id: int, token: str, delay_s: float) -> bool:
        """Back to waiting after a run that never started."""
        return self.db.write(lambda conn: queue.release(conn, job_id, token, delay_s))

    def finish(self, job_id: int, token: str, result: RunResult) -> bool:
        """Record the outcome exactly once."""
        return self.db.write(lambda conn: queue.finish(conn, job_id, token, result))

    def recover_expired(self, limit: int = 100) -> Recovery:
        """Settle jobs whose lease expired."""
        return self.db.write(lambda conn: queue.recover_expired(conn, limit))

    # --- a job's files --------------------------------------------------------------

    def list_files(self, job_id: int, role: FileRole | None = None) -> list[StoredFile]:
        """A job's files (of one role, or both), without their content."""
        return self.db.read(lambda conn: files.list_files(conn, job_id, role))

    def read_files(self, job_id: int, role: FileRole) -> list[JobFile]:
        """A job's files of one role with their content, in order."""
        return self.db.read(lambda conn: files.read_files(conn, job_id, role))

    def read_file(self, job_id: int, role: FileRole, name: str) -> JobFile | None:
        """One file of a job by name, or None."""
        return self.db.read(lambda conn: files.read_file(conn, job_id, role, name))

    def forget_files(self, before: datetime, limit: int = 500) -> int:
        """Delete the files stored before `before` (retention); how many went."""
        return self.db.write(lambda conn: files.forget_files(conn, before, limit))

    def count_by_status(self) -> dict[JobStatus, int]:
        """Jobs per status."""
        return self.db.read(queue.count_by_status)

    # --- worker pools alive -------------------------------------------------------------

    def worker_seen(self, worker_id: str) -> None:
        """Record that a worker pool is alive now (forgetting pools silent for a day)."""

        def seen(conn: Connection) -> None:
            found = conn.execute(
                update(workers).where(workers.c.worker_id == worker_id).values(seen_at=utcnow())
            ).rowcount
            if not found:
                conn.execute(delete(workers).where(workers.c.seen_at < utcnow(-86400)))
                queue.insert_ignore(conn, workers, {"worker_id": worker_id, "seen_at": utcnow()})

        self.db.write(seen)

    def worker_gone(self, worker_id: str) -> None:
        """Forget a worker pool that stopped."""
        self.db.write(
            lambda conn: conn.execute(delete(workers).where(workers.c.worker_id == worker_id))
        )

    def workers_alive(self, within_s: float) -> int:
        """How many worker pools were seen in the last `within_s` seconds."""
        alive = (
            select(func.count()).select_from(workers).where(workers.c.seen_at >= utcnow(-within_s))
        )
        return int(self.db.read(lambda conn: conn.execute(alive).scalar() or 0))

    # --- outbox -----------------------------------------------------------------------

    def claim_notifications(
        self, routes: Sequence[str], limit: int, lease_s: float
    ) -> list[Notification]:
        """Lease due notifications for these routes."""
        return self.db.write(lambda conn: outbox.claim(conn, routes, limit, lease_s))

    def complete_notification(
        self, notification: Notification, origin_update: Mapping[str, Any] | None = None
    ) -> bool:
        """Mark delivered."""
        return self.db.write(lambda conn: outbox.complete(conn, notification, origin_update))

    def retry_notification(
        self,
        notification: Notification,
        delay_s: float,
        error: str,
        origin_update: Mapping[str, Any] | None = None,
    ) -> bool:
        """Try again later, keeping delivery progress."""
        return self.db.write(
            lambda conn: outbox.retry(conn, notification, delay_s, error, origin_update)
        )

    def fail_notification(self, notification: Notification, error: str) -> bool:
        """Give up."""
        return self.db.write(lambda conn: outbox.fail(conn, notification, error))

    # --- pace (rate buckets shared by every process) -------------------------------------

    def take_turn(self, buckets: Sequence[tuple[str, Rate]], now: float, *, wait: bool) -> float:
        """When a call through these buckets may go; with `wait` that turn is reserved, without
        it a turn is taken only if it is now (bot/store/pace.py)."""
        return self.db.write(lambda conn: pace.take(conn, buckets, now, wait=wait))

    def refused_turn(self, bucket: str, rate: Rate, now: float, retry_after: float) -> None:
        """The service refused a call through `bucket` for `retry_after` seconds."""
        self.db.write(lambda conn: pace.refused(conn, bucket, rate, now, retry_after))

    def turns_ahead(self, prefix: str, since: float) -> list[tuple[str, float]]:
        """(bucket, arrival time) of the buckets under `prefix` with turns after `since`."""
        return self.db.read(lambda conn: pace.arrival_times(conn, prefix, since))

    def notification_events(self, job_id: int) -> list[tuple[NotificationEvent, str]]:
        """(event, state) of a job's notifications."""
        return self.db.read(lambda conn: outbox.events(conn, job_id))

    # --- the Slack adapter's memories (its own port) -------------------------------------

    def first_time(self, key: str) -> bool:
        """Record a dedupe key; True only the first time. The key is recorded with a claim of
        this call's own: when the answer to the commit is lost and the transaction runs again,
        the row found is this call's, and the answer is still True."""
        key, claim = key[:191], uuid.uuid4().hex
        values = {"dedupe_key": key, "created_at": utcnow(), "claim": claim}

        def record(conn: Connection) -> bool:
            if queue.insert_ignore(conn, dedupe_keys, values) == 1:
                return True
            mine = select(dedupe_keys.c.claim).where(dedupe_keys.c.dedupe_key == key)
            return conn.execute(mine).scalar() == claim

        return self.db.write(record)

    def forget_keys(self, prefix: str, before: datetime) -> int:
        """Delete old dedupe keys with this prefix (a range of the primary key)."""
        stmt = dedupe_keys.delete().where(
            dedupe_keys.c.dedupe_key.startswith(prefix, autoescape=True),
            dedupe_keys.c.created_at < before,
        )
        return self.db.write(lambda conn: int(conn.execute(stmt).rowcount))

    def hold_request(self, key: str, kind: str, payload: Mapping[str, Any], lease_s: float) -> bool:
        """Journal a request before handling it."""
        return self.db.write(lambda conn: held.hold(conn, key, kind, payload, lease_s))

    def claim_held_requests(self, limit: int, lease_s: float) -> list[HeldRequest]:
        """Take up held requests whose handler died."""
        return self.db.write(lambda conn: held.claim(conn, limit, lease_s))

    def drop_held_request(self, key: str) -> None:
        """Forget a handled request."""
        self.db.write(lambda conn: held.drop(conn, key))

    def remember_upload(self, upload: Upload) -> None:
        """Remember a shared file."""
        values = {
            "user_id": upload.user_id,
            "channel": upload.channel,
            "file_id": upload.file_id,
            "file_name": upload.file_name,
            "size": upload.size,
            "meta": json.dumps(dict(upload.meta), sort_keys=True),
            "created_at": utcnow(),
        }
        self.db.write(lambda conn: conn.execute(insert(uploads).values(**values)))

    def latest_upload(self, user_id: int, channel: str, since: datetime) -> Upload | None:
        """The newest upload of a user in a conversation since a time."""

        def read(conn: Connection) -> Upload | None:
            row = (
                conn.execute(
                    select(uploads)
                    .where(
                        uploads.c.user_id == user_id,
                        uploads.c.channel == channel,
                        uploads.c.created_at >= since,
                    )
                    .order_by(uploads.c.created_at.desc(), uploads.c.id.desc())
                    .limit(1)
                )
                .mappings()
                .first()
            )
            return None if row is None else to_upload(row)

        return self.db.read(read)


def _add_missing_columns(conn: Connection) -> None:
    """Add the columns a newer schema version declared on an existing table (nullable ones
    only: rows already there have no value for them)."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:  # pragma: no cover - a rule for whoever adds a column
                raise RuntimeError(f"{table.name}.{column.name} must be nullable to be added")
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} NULL"))
