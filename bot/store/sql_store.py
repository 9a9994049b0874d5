"""SqlStore: core's JobStore and the Slack adapter's memory (bot.slack.memory.SlackMemory,
satisfied structurally) on MySQL/MariaDB (production) or SQLite (embedded default).

It opens a transaction per call and hands it to the module of the concern: schema, accounts
(users, API tokens), submission and queue (jobs), files, presence (worker pools), outbox,
pace, held (the intake journal) and memories (dedupe keys, uploads)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from bot.core.models import (
    ApiToken,
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
from bot.store import (
    accounts,
    files,
    held,
    memories,
    outbox,
    pace,
    presence,
    queue,
    schema,
    submission,
)
from bot.store.db import Database


class SqlStore:
    """Jobs, users, the outbox and the Slack adapter's memories in one SQL database."""

    def __init__(self, engine: Engine, *, quiet_s: float = 0.0) -> None:
        self.db = Database(engine)
        self.engine = engine
        # Progress (queued, started) is told no sooner than this after a job was accepted.
        self.quiet_s = quiet_s
        # Where results recorded here are handed, leased (hand_results); None: nowhere.
        self._handoff: tuple[tuple[str, ...], float, Callable[[Notification, Job], None]] | None
        self._handoff = None

    def close(self) -> None:
        """Close pooled connections."""
        self.db.dispose()

    # --- schema -----------------------------------------------------------------------

    def migrate(self) -> None:
        """Create missing tables and record the schema version; safe to run repeatedly."""
        self.db.write(schema.migrate)

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""
        self.db.read(lambda conn: conn.execute(text("SELECT 1")).scalar())

    def schema_version(self) -> int | None:
        """The applied schema version, or None before the first migration."""
        return self.db.read(schema.version)

    # --- users ------------------------------------------------------------------------

    def ensure_user(self, identity: Identity, display_name: str | None = None) -> User:
        """Find or create the user of an identity; concurrent first contacts get one id."""
        found = self.db.read(lambda conn: accounts.find_user(conn, identity))
        if found is not None and (display_name is None or found.display_name == display_name):
            return found
        return self.db.write(lambda conn: accounts.upsert_user(conn, identity, display_name))

    def get_user(self, user_id: int) -> User | None:
        """A user by id."""
        return self.db.read(lambda conn: accounts.get_user(conn, user_id))

    # --- API tokens -------------------------------------------------------------------

    def set_token(
        self, user_id: int, token_sha256: str, expires_at: datetime | None = None
    ) -> None:
        """Store the user's token hash in place of any earlier one."""
        self.db.write(lambda conn: accounts.set_token(conn, user_id, token_sha256, expires_at))

    def drop_token(self, user_id: int) -> bool:
        """Forget the user's token; False if there was none."""
        return self.db.write(lambda conn: accounts.drop_token(conn, user_id))

    def token(self, token_sha256: str) -> ApiToken | None:
        """The token with this hash, with its user."""
        return self.db.read(lambda conn: accounts.token(conn, token_sha256))

    def tokens(self) -> list[ApiToken]:
        """Every user's token."""
        return self.db.read(accounts.tokens)

    def touch_token(self, token_sha256: str, at: datetime) -> None:
        """Record that the token was used at `at`."""
        self.db.write_one(lambda conn: accounts.touch_token(conn, token_sha256, at))

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
        """Claim due waiting jobs. Most claims find none (a pool looks each time one of its
        jobs ends): one plain read, without locks or a transaction, says so first."""
        if slots <= 0 or not self.db.read(queue.any_due):
            return []
        return self.db.write(
            lambda conn: queue.claim(conn, worker_id, slots, lease_s, max_per_user)
        )

    def mark_invoked(self, job_id: int, token: str, lease_s: float, *, routed: bool = True) -> bool:
        """Record that the run is starting (one statement, committed by itself, for a job
        without a notification route)."""

        def mark(conn: Connection) -> bool:
            return queue.mark_invoked(conn, job_id, token, lease_s, self.quiet_s, routed=routed)

        return self.db.write(mark) if routed else self.db.write_one(mark)

    def extend_lease(self, job_id: int, token: str, lease_s: float) -> bool:
        """Push the lease out."""
        return self.db.write(lambda conn: queue.extend_lease(conn, job_id, token, lease_s))

    def release(self, job_id: int, token: str, delay_s: float) -> bool:
        """Back to waiting after a run that never started."""
        return self.db.write(lambda conn: queue.release(conn, job_id, token, delay_s))

    def finish(self, job_id: int, token: str, result: RunResult, *, routed: bool = True) -> bool:
        """Record the outcome exactly once (one statement, committed by itself, for a job
        without a notification route or files out). With a hand-off (hand_results), the
        `finished` entry is leased in the same transaction and handed over after the commit."""
        handoff = self._handoff if routed else None
        if handoff is None:

            def record(conn: Connection) -> bool:
                return queue.finish(conn, job_id, token, result, routed=routed)

            return (
                self.db.write_one(record)
                if not routed and not result.files
                else self.db.write(record)
            )
        routes, lease_s, to = handoff
        lease = outbox.ResultLease(routes, lease_s, secrets.token_hex(16))

        def record_leased(conn: Connection) -> tuple[bool, tuple[Notification, Job] | None]:
            if not queue.finish(conn, job_id, token, result, routed=True):
                return False, None
            return True, outbox.lease_result(conn, job_id, lease)

        recorded, leased = self.db.write(record_leased)
        if leased is not None:
            to(*leased)
        return recorded

    def recover_expired(self, limit: int = 100) -> Recovery:
        """Settle jobs whose lease expired."""
        return self.db.write(lambda conn: queue.recover_expired(conn, limit))

    # --- a job's files --------------------------------------------------------------

    def list_files(self, job_id: int, role: FileRole | None = None) -> list[StoredFile]:
        """A job's files (of one role, or both), without their content."""
        return self.db.read(lambda conn: files.list_files(conn, job_id, role))

    def job_with_files(self, job_id: int) -> tuple[Job, list[StoredFile]] | None:
        """A job by id with its files listed (without their content), in one read."""
        return self.db.read(lambda conn: files.job_with_files(conn, job_id))

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
        self.db.write(lambda conn: presence.seen(conn, worker_id))

    def worker_gone(self, worker_id: str) -> None:
        """Forget a worker pool that stopped."""
        self.db.write(lambda conn: presence.gone(conn, worker_id))

    def workers_alive(self, within_s: float) -> int:
        """How many worker pools were seen in the last `within_s` seconds."""
        return self.db.read(lambda conn: presence.alive(conn, within_s))

    # --- outbox -----------------------------------------------------------------------

    def claim_notifications(
        self, routes: Sequence[str], limit: int, lease_s: float
    ) -> list[Notification]:
        """Lease due notifications for these routes."""
        return self.db.write(lambda conn: outbox.claim(conn, routes, limit, lease_s))

    def hand_results(
        self,
        routes: Sequence[str],
        lease_s: float,
        to: Callable[[Notification, Job], None] | None,
    ) -> None:
        """From now on, the `finished` entry of a job of `routes` whose result this store
        records (finish) is leased for `lease_s` as it is written and handed to `to`, with the
        job, after the commit; `to` None stops it."""
        self._handoff = (tuple(routes), lease_s, to) if routes and to is not None else None

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
        it a turn is taken only if it is now (bot/store/pace.py). A turn that is now in
        every bucket is taken in one statement; the rest in a transaction that locks them. A
        statement run again after a lost answer spends a second turn: never one too few."""
        if not self.db.is_sqlite and self.db.write_one(
            lambda conn: pace.take_now(conn, buckets, now, wait=wait)
        ):
            return now
        return self.db.write(lambda conn: pace.take(conn, buckets, now, wait=wait))

    def spend_turns(
        self, bucket: str, rate: Rate, now: float, turns: int, *, token_sha256: str | None = None
    ) -> tuple[int, float] | None:
        """Spend up to `turns` turns of `bucket` that it has now: (how many, 0.0); or (0, the
        seconds until it has one), nothing spent. With `token_sha256`, only while that API
        token stands (not revoked, replaced or expired): None when it does not. One statement
        when the bucket has them all (bot/store/pace.py)."""
        only_if = None if token_sha256 is None else accounts.token_stands(token_sha256)
        if self.db.write_one(
            lambda conn: pace.spend_now(conn, bucket, rate, now, only_if=only_if, turns=turns)
        ):
            return turns, 0.0
        return self.db.write(
            lambda conn: pace.spend(conn, bucket, rate, now, only_if=only_if, turns=turns)
        )

    def spend_turn(
        self, bucket: str, rate: Rate, now: float, *, token_sha256: str | None = None
    ) -> float | None:
        """`spend_turns` of one turn: 0.0 when it was spent, else the seconds until one is
        free; None when the token given no longer stands."""
        got = self.spend_turns(bucket, rate, now, 1, token_sha256=token_sha256)
        return None if got is None else got[1]

    def refused_turn(self, bucket: str, rate: Rate, now: float, retry_after: float) -> None:
        """The service refused a call through `bucket` for `retry_after` seconds."""
        self.db.write(lambda conn: pace.refused(conn, bucket, rate, now, retry_after))

    def turns_ahead(self, prefix: str, since: float) -> list[tuple[str, float]]:
        """(bucket, arrival time) of the buckets under `prefix` with turns after `since`."""
        return self.db.read(lambda conn: pace.arrival_times(conn, prefix, since))

    def forget_turns(self, prefix: str, before: float) -> int:
        """Delete the buckets under `prefix` whose arrival time is before `before`."""
        return self.db.write(lambda conn: pace.forget(conn, prefix, before))

    def notification_events(self, job_id: int) -> list[tuple[NotificationEvent, str]]:
        """(event, state) of a job's notifications."""
        return self.db.read(lambda conn: outbox.events(conn, job_id))

    # --- the Slack adapter's memories (its own port) -------------------------------------

    def first_time(self, key: str) -> bool:
        """Record a dedupe key; True only the first time. The key is recorded with a claim of
        this call's own: when the answer to its insert (committed by itself) is lost and the
        insert runs again, the row found is this call's, and the answer is still True."""
        key, claim = key[: memories.KEY_CHARS], memories.new_claim()
        return self.db.write_one(lambda conn: memories.first_time(conn, key, claim))

    def forget_keys(self, prefix: str, before: datetime) -> int:
        """Delete old dedupe keys with this prefix (a range of the primary key)."""
        return self.db.write(lambda conn: memories.forget_keys(conn, prefix, before))

    def hold_request(self, key: str, kind: str, payload: Mapping[str, Any], lease_s: float) -> bool:
        """Journal a request before handling it (one insert, committed by itself: should its
        answer be lost, the insert run again finds the request held by this call's own mark,
        and the request is still this caller's to handle; held by another, False)."""
        marked = held.mark(payload, secrets.token_hex(8))  # the same for each retry of this call
        return self.db.write_one(lambda conn: held.hold(conn, key, kind, marked, lease_s))

    def claim_held_requests(self, limit: int, lease_s: float) -> list[HeldRequest]:
        """Take up held requests whose handler died."""
        return self.db.write(lambda conn: held.claim(conn, limit, lease_s))

    def drop_held_request(self, key: str) -> None:
        """Forget a handled request (one delete, committed by itself)."""
        self.db.write_one(lambda conn: held.drop(conn, key))

    def remember_upload(self, upload: Upload) -> None:
        """Remember a shared file."""
        self.db.write(lambda conn: memories.remember_upload(conn, upload))

    def latest_upload(self, user_id: int, channel: str, since: datetime) -> Upload | None:
        """The newest upload of a user in a conversation since a time."""
        return self.db.read(lambda conn: memories.latest_upload(conn, user_id, channel, since))
