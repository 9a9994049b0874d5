"""In-memory fakes of the ports (store, executor, notifier, clock) for fast tests; the store
passes the same contract tests as the SQL store."""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core import pacing
from bot.core.datafiles import media_type
from bot.core.models import (
    CANCELLED_TYPE,
    CANCELLED_UNRUN_MESSAGE,
    INTERRUPTED_MESSAGE,
    INTERRUPTED_TYPE,
    STOPPED_LOST_MESSAGE,
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
    Outcome,
    ResultKind,
    RunRequest,
    RunResult,
    StoredFile,
    Upload,
    User,
)
from bot.core.pacing import Rate
from bot.core.ports import Clock, Recovery, StartGate
from bot.errors import CalledOff, NotifyRetryable, StoreOutcomeUnknown, StoreUnavailable


class FakeClock:
    """A clock that moves only when told to (or follows real time when `real` is set)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The fake current time."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        with self._lock:
            self._now += timedelta(seconds=seconds)


@dataclasses.dataclass
class _Note:
    id: int
    job_id: int
    event: NotificationEvent
    route: str
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: datetime = dataclasses.field(
        default_factory=lambda: datetime.min.replace(tzinfo=UTC)
    )
    token: str | None = None
    lease_expires_at: datetime | None = None
    last_error: str | None = None


class InMemoryStore:
    """Core's JobStore and the Slack adapter's SlackMemory in memory, one lock for everything;
    `down` simulates an outage; `answer_lost` one that began as a job was submitted: the job
    is stored, and the submitter hears StoreOutcomeUnknown."""

    def __init__(self, clock: Clock, *, quiet_s: float = 0.0) -> None:
        self.clock = clock
        self.quiet_s = quiet_s
        self.down = False
        self.answer_lost = False
        self._note_ids = itertools.count(1)
        self._tats: dict[str, float] = {}
        self._lock = threading.RLock()
        self._users: dict[Identity, User] = {}
        self._jobs: dict[int, Job] = {}
        self._keys: dict[str, int] = {}
        self._notes: list[_Note] = []
        self._uploads: list[Upload] = []
        self._held: dict[str, tuple[HeldRequest, datetime]] = {}
        self._dedupe: dict[str, datetime] = {}
        self._not_before: dict[int, datetime] = {}
        self._workers: dict[str, datetime] = {}
        self._tokens: dict[int, str] = {}  # user id -> token hash
        self._token_info: dict[int, ApiToken] = {}  # user id -> the token's record
        self._files: list[StoredFile] = []
        self._file_data: dict[tuple[int, FileRole, str], bytes] = {}
        self.migrated = False
        self._handoff: tuple[tuple[str, ...], float, Callable[[Notification, Job], None]] | None
        self._handoff = None

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable("database unavailable (simulated)")

    def _now(self, plus: float = 0.0) -> datetime:
        return self.clock.now() + timedelta(seconds=plus)

    def _note(self, job_id: int, route: str | None, event: NotificationEvent) -> None:
        if route is None or any(n.job_id == job_id and n.event is event for n in self._notes):
            return
        note = _Note(next(self._note_ids), job_id, event, route)
        if event is not NotificationEvent.FINISHED and self.quiet_s > 0:
            note.next_attempt_at = self._jobs[job_id].created_at + timedelta(seconds=self.quiet_s)
        self._notes.append(note)
        if event is NotificationEvent.FINISHED:
            # Coalesce: progress still waiting, unleased, is obsolete (bot/store/queue.py).
            self._notes = [
                n
                for n in self._notes
                if not (
                    n.job_id == job_id
                    and n.event is not NotificationEvent.FINISHED
                    and n.state == "pending"
                    and n.token is None
                )
            ]

    def _set(self, job: Job, **changes: Any) -> Job:
        updated = dataclasses.replace(job, **changes)
        self._jobs[job.id] = updated
        return updated

    def migrate(self) -> None:
        """Nothing to create."""
        self._check()
        self.migrated = True

    def ping(self) -> None:
        """Answer unless down."""
        self._check()

    def schema_version(self) -> int | None:
        """1 once migrated."""
        self._check()
        return 1 if self.migrated else None

    def ensure_user(self, identity: Identity, display_name: str | None = None) -> User:
        """Find or create."""
        with self._lock:
            self._check()
            user = self._users.get(identity)
            if user is None:
                user = User(len(self._users) + 1, identity, display_name)
            elif display_name is not None:
                user = dataclasses.replace(user, display_name=display_name)
            self._users[identity] = user
            return user

    def get_user(self, user_id: int) -> User | None:
        """A user by id."""
        with self._lock:
            self._check()
            return next((u for u in self._users.values() if u.id == user_id), None)

    def set_token(
        self, user_id: int, token_sha256: str, expires_at: datetime | None = None
    ) -> None:
        """Replace the user's token hash."""
        with self._lock:
            self._check()
            user = self.get_user(user_id)
            assert user is not None
            self._tokens[user_id] = token_sha256
            self._token_info[user_id] = ApiToken(user, self.clock.now(), expires_at)

    def drop_token(self, user_id: int) -> bool:
        """Forget the user's token."""
        with self._lock:
            self._check()
            self._token_info.pop(user_id, None)
            return self._tokens.pop(user_id, None) is not None

    def token(self, token_sha256: str) -> ApiToken | None:
        """The token with this hash."""
        with self._lock:
            self._check()
            owner = next((u for u, h in self._tokens.items() if h == token_sha256), None)
            return None if owner is None else self._token_info[owner]

    def tokens(self) -> list[ApiToken]:
        """Every token, by user id."""
        with self._lock:
            self._check()
            return [self._token_info[u] for u in sorted(self._token_info)]

    def touch_token(self, token_sha256: str, at: datetime) -> None:
        """Record a use."""
        with self._lock:
            self._check()
            for user_id, digest in self._tokens.items():
                if digest == token_sha256:
                    info = self._token_info[user_id]
                    self._token_info[user_id] = dataclasses.replace(info, last_used_at=at)

    def submit(self, new: NewJob) -> tuple[Job, bool]:
        """Store a waiting job."""
        with self._lock:
            self._check()
            if new.idempotency_key and new.idempotency_key in self._keys:
                return self._jobs[self._keys[new.idempotency_key]], False
            owner = next(u for u in self._users.values() if u.id == new.owner_id)
            job = Job(
                id=len(self._jobs) + 1,
                owner_id=new.owner_id,
                owner=owner.identity,
                status=JobStatus.WAITING,
                file_name=new.file_name,
                code=new.code,
                code_sha256=new.code_sha256,
                input_json=new.input_json,
                created_at=self._now(),
                origin=dict(new.origin),
                notify_route=new.notify_route,
                idempotency_key=new.idempotency_key,
                rerun_of=new.rerun_of,
            )
            self._jobs[job.id] = job
            self._not_before[job.id] = job.created_at
            if new.idempotency_key:
                self._keys[new.idempotency_key] = job.id
            self._add_files(job.id, FileRole.IN, new.files)
            self._note(job.id, new.notify_route, NotificationEvent.QUEUED)
            if self.answer_lost:
                raise StoreOutcomeUnknown("database unavailable after a write was sent (simulated)")
            return job, True

    def submit_claimed(
        self, new: NewJob, worker_id: str, lease_s: float, max_per_user: int
    ) -> tuple[Job, bool, Claim | None]:
        """Store the job claimed if a claim would take it now, else waiting."""
        with self._lock:
            self._check()
            job, created = self.submit(new)
            if not created:
                return job, False, None
            now = self._now()
            running = sum(
                1
                for j in self._jobs.values()
                if j.status is JobStatus.RUNNING and j.owner_id == new.owner_id
            )
            busy = {
                j.owner_id
                for j in self._jobs.values()
                if j.status is JobStatus.RUNNING
                and sum(
                    1
                    for k in self._jobs.values()
                    if k.status is JobStatus.RUNNING and k.owner_id == j.owner_id
                )
                >= max_per_user
            }
            ahead = any(
                j.status is JobStatus.WAITING
                and j.id != job.id
                and self._not_before[j.id] <= now
                and j.owner_id not in busy
                for j in self._jobs.values()
            )
            if running >= max_per_user or ahead:
                return job, True, None
            token = secrets.token_hex(16)
            claimed = self._set(
                job,
                status=JobStatus.RUNNING,
                attempts=1,
                claim_token=token,
                lease_expires_at=self._now(lease_s),
                started_at=now,
            )
            return claimed, True, Claim(claimed, token, data_files=bool(new.files))

    def _add_files(self, job_id: int, role: FileRole, files: Sequence[JobFile]) -> None:
        for position, f in enumerate(files):
            kind = media_type(f.name)
            self._files.append(
                StoredFile(job_id, role, position, f.name, len(f.data), kind, self._now())
            )
            self._file_data[job_id, role, f.name] = f.data

    def list_files(self, job_id: int, role: FileRole | None = None) -> list[StoredFile]:
        """A job's files, data files first."""
        with self._lock:
            self._check()
            found = [f for f in self._files if f.job_id == job_id and role in (None, f.role)]
            return sorted(found, key=lambda f: (f.role != FileRole.IN, f.position))

    def job_with_files(self, job_id: int) -> tuple[Job, list[StoredFile]] | None:
        """A job and its files listed."""
        with self._lock:
            job = self.get(job_id)
            return None if job is None else (job, self.list_files(job_id))

    def read_files(self, job_id: int, role: FileRole) -> list[JobFile]:
        """A job's files of one role with their content."""
        with self._lock:
            listed = self.list_files(job_id, role)
            return [JobFile(f.name, self._file_data[job_id, role, f.name]) for f in listed]

    def read_file(self, job_id: int, role: FileRole, name: str) -> JobFile | None:
        """One file by name."""
        with self._lock:
            self._check()
            data = self._file_data.get((job_id, role, name))
            return None if data is None else JobFile(name, data)

    def forget_files(self, before: datetime, limit: int = 500) -> int:
        """Delete files stored before `before`."""
        with self._lock:
            self._check()
            gone = [f for f in self._files if f.created_at < before]
            for f in gone:
                self._files.remove(f)
                del self._file_data[f.job_id, f.role, f.name]
            return len(gone)

    def get(self, job_id: int) -> Job | None:
        """By id."""
        with self._lock:
            self._check()
            return self._jobs.get(job_id)

    def _summary(self, job: Job) -> Job:
        return dataclasses.replace(
            job, code="", stdout=None, stderr=None, traceback=None, is_summary=True
        )

    def list_by_owner(self, owner_id: int, limit: int, before_id: int | None = None) -> list[Job]:
        """Newest first."""
        return [j for j in self.list_all(10**9, before_id) if j.owner_id == owner_id][:limit]

    def list_all(self, limit: int, before_id: int | None = None) -> list[Job]:
        """Newest first."""
        with self._lock:
            self._check()
            ids = sorted(
                (i for i in self._jobs if before_id is None or i < before_id), reverse=True
            )
            return [self._summary(self._jobs[i]) for i in ids[:limit]]

    def cancel(self, job_id: int) -> Job | None:
        """Cancel a waiting job, or ask for a running one to be stopped."""
        with self._lock:
            self._check()
            job = self._jobs.get(job_id)
            if job is not None and job.status is JobStatus.RUNNING:
                return self._set(job, stop_requested_at=job.stop_requested_at or self._now())
            if job is None or job.status is not JobStatus.WAITING:
                return None
            job = self._set(job, status=JobStatus.CANCELLED, finished_at=self._now())
            self._note(job_id, job.notify_route, NotificationEvent.FINISHED)
            return job

    def stop_requests(self, job_ids: Sequence[int]) -> set[int]:
        """Running jobs among these with a stop asked for."""
        with self._lock:
            self._check()
            return {
                i
                for i in job_ids
                if (job := self._jobs.get(i)) is not None
                and job.status is JobStatus.RUNNING
                and job.stop_requested_at is not None
            }

    def _cancel_unrun(self, job: Job) -> None:
        self._set(
            job,
            status=JobStatus.CANCELLED,
            error_type=CANCELLED_TYPE,
            error_message=CANCELLED_UNRUN_MESSAGE,
            invoked_at=None,
            lease_expires_at=None,
            finished_at=self._now(),
        )

    def claim(self, worker_id: str, slots: int, lease_s: float, max_per_user: int) -> list[Claim]:
        """Oldest due first, per-user limit honoured."""
        with self._lock:
            self._check()
            running: dict[int, int] = {}
            for job in self._jobs.values():
                if job.status is JobStatus.RUNNING:
                    running[job.owner_id] = running.get(job.owner_id, 0) + 1
            due = sorted(
                (
                    j
                    for j in self._jobs.values()
                    if j.status is JobStatus.WAITING and self._not_before[j.id] <= self._now()
                ),
                key=lambda j: (self._not_before[j.id], j.id),
            )
            token = secrets.token_hex(16)
            claims: list[Claim] = []
            for job in due:
                if len(claims) == slots:
                    break
                if running.get(job.owner_id, 0) >= max_per_user:
                    continue
                running[job.owner_id] = running.get(job.owner_id, 0) + 1
                claimed = self._set(
                    job,
                    status=JobStatus.RUNNING,
                    attempts=job.attempts + 1,
                    claim_token=token,
                    lease_expires_at=self._now(lease_s),
                    invoked_at=None,
                    started_at=self._now(),
                )
                claims.append(Claim(claimed, token))
            return claims

    def _owned(self, job_id: int, token: str) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or job.status is not JobStatus.RUNNING or job.claim_token != token:
            return None
        return job

    def mark_invoked(self, job_id: int, token: str, lease_s: float, *, routed: bool = True) -> bool:
        """Fenced."""
        with self._lock:
            self._check()
            job = self._owned(job_id, token)
            if job is None:
                return False
            self._set(job, invoked_at=self._now(), lease_expires_at=self._now(lease_s))
            self._note(job_id, job.notify_route, NotificationEvent.STARTED)
            return True

    def extend_lease(self, job_id: int, token: str, lease_s: float) -> bool:
        """Fenced."""
        with self._lock:
            self._check()
            job = self._owned(job_id, token)
            if job is None:
                return False
            self._set(job, lease_expires_at=self._now(lease_s))
            return True

    def release(self, job_id: int, token: str, delay_s: float) -> bool:
        """Fenced; back to waiting."""
        with self._lock:
            self._check()
            job = self._owned(job_id, token)
            if job is None:
                return False
            if job.stop_requested_at is not None:
                self._cancel_unrun(job)
            else:
                self._set(
                    job,
                    status=JobStatus.WAITING,
                    claim_token=None,
                    lease_expires_at=None,
                    invoked_at=None,
                    started_at=None,
                )
                self._not_before[job_id] = self._now(delay_s)
            self._notes = [
                n
                for n in self._notes
                if not (
                    n.job_id == job_id
                    and n.event is NotificationEvent.STARTED
                    and n.state == "pending"
                    and n.token is None
                )
            ]
            if job.stop_requested_at is not None:
                self._note(job_id, job.notify_route, NotificationEvent.FINISHED)
            return True

    def finish(self, job_id: int, token: str, result: RunResult, *, routed: bool = True) -> bool:
        """Fenced, exactly once."""
        with self._lock:
            self._check()
            job = self._owned(job_id, token)
            if job is None:
                current = self._jobs.get(job_id)
                return bool(current and current.claim_token == token and current.status.is_final)
            job = self._set(
                job,
                status=result.status,
                result_json=result.result_json,
                result_kind=result.result_kind,
                stdout=result.stdout,
                stderr=result.stderr,
                stdout_truncated=result.stdout_truncated,
                stderr_truncated=result.stderr_truncated,
                error_type=result.error_type,
                error_message=result.error_message,
                traceback=result.traceback,
                duration_ms=result.duration_ms,
                executor=result.executor or None,
                files_note=result.files_note,
                lease_expires_at=None,
                finished_at=self._now(),
            )
            self._add_files(job_id, FileRole.OUT, result.files)
            self._note(job_id, job.notify_route, NotificationEvent.FINISHED)
            leased = self._lease_result(job_id) if routed else None
        if leased is not None and self._handoff is not None:
            self._handoff[2](leased, self._jobs[job_id])
        return True

    def _lease_result(self, job_id: int) -> Notification | None:
        """The hand-off's lease of a result entry, as a claim would take it."""
        if self._handoff is None:
            return None
        routes, lease_s, _ = self._handoff
        for note in self._notes:
            if note.job_id != job_id or note.event is not NotificationEvent.FINISHED:
                continue
            if note.state != "pending" or note.token is not None or note.route not in routes:
                return None
            if any(
                p.job_id == job_id and p.id < note.id and p.state == "pending" for p in self._notes
            ):
                return None
            note.token = secrets.token_hex(16)
            note.lease_expires_at = self._now(lease_s)
            note.attempts += 1
            return Notification(
                note.id, note.job_id, note.event, note.route, note.attempts, note.token
            )
        return None

    def hand_results(
        self,
        routes: Sequence[str],
        lease_s: float,
        to: Callable[[Notification, Job], None] | None,
    ) -> None:
        """Lease results recorded here and hand them to `to` (bot/store/outbox.py)."""
        self._handoff = (tuple(routes), lease_s, to) if routes and to is not None else None

    def recover_expired(self, limit: int = 100) -> Recovery:
        """Requeue the never-invoked, interrupt the invoked."""
        with self._lock:
            self._check()
            requeued: list[int] = []
            interrupted: list[int] = []
            for job in list(self._jobs.values()):
                if (
                    job.status is not JobStatus.RUNNING
                    or job.lease_expires_at is None
                    or job.lease_expires_at >= self._now()
                ):
                    continue
                if len(requeued) + len(interrupted) >= limit:
                    break
                if job.stop_requested_at is not None:
                    if job.invoked_at is None:
                        self._cancel_unrun(job)
                    else:
                        self._set(
                            job,
                            status=JobStatus.CANCELLED,
                            error_type=CANCELLED_TYPE,
                            error_message=STOPPED_LOST_MESSAGE,
                            finished_at=self._now(),
                        )
                    self._set(self._jobs[job.id], claim_token=None, lease_expires_at=None)
                    self._note(job.id, job.notify_route, NotificationEvent.FINISHED)
                    interrupted.append(job.id)
                elif job.invoked_at is None:
                    self._set(
                        job,
                        status=JobStatus.WAITING,
                        claim_token=None,
                        lease_expires_at=None,
                        started_at=None,
                    )
                    self._not_before[job.id] = self._now()
                    requeued.append(job.id)
                else:
                    self._set(
                        job,
                        status=JobStatus.ERROR,
                        error_type=INTERRUPTED_TYPE,
                        error_message=INTERRUPTED_MESSAGE,
                        lease_expires_at=None,
                        claim_token=None,
                        finished_at=self._now(),
                    )
                    self._note(job.id, job.notify_route, NotificationEvent.FINISHED)
                    interrupted.append(job.id)
            return Recovery(tuple(requeued), tuple(interrupted))

    def count_by_status(self) -> dict[JobStatus, int]:
        """Jobs per status."""
        with self._lock:
            self._check()
            counts = dict.fromkeys(JobStatus, 0)
            for job in self._jobs.values():
                counts[job.status] += 1
            return counts

    def worker_seen(self, worker_id: str) -> None:
        """Alive now."""
        with self._lock:
            self._check()
            self._workers[worker_id] = self._now()

    def worker_gone(self, worker_id: str) -> None:
        """Stopped."""
        with self._lock:
            self._check()
            self._workers.pop(worker_id, None)

    def workers_alive(self, within_s: float) -> int:
        """Seen lately."""
        with self._lock:
            self._check()
            since = self._now(-within_s)
            return sum(1 for seen in self._workers.values() if seen >= since)

    def claim_notifications(
        self, routes: Sequence[str], limit: int, lease_s: float
    ) -> list[Notification]:
        """Due, in per-job order."""
        with self._lock:
            self._check()
            token = secrets.token_hex(16)
            out: list[Notification] = []
            ordered = sorted(
                self._notes,
                key=lambda n: (n.event is not NotificationEvent.FINISHED, n.next_attempt_at, n.id),
            )
            for note in ordered:
                if len(out) == limit:
                    break
                if note.state != "pending" or note.route not in routes:
                    continue
                if note.next_attempt_at > self._now():
                    continue
                if note.lease_expires_at is not None and note.lease_expires_at >= self._now():
                    continue
                if any(
                    p.job_id == note.job_id and p.id < note.id and p.state == "pending"
                    for p in self._notes
                ):
                    continue
                note.token = token
                note.lease_expires_at = self._now(lease_s)
                note.attempts += 1
                out.append(
                    Notification(note.id, note.job_id, note.event, note.route, note.attempts, token)
                )
            return out

    def _find_owned(self, n: Notification) -> _Note | None:
        for note in self._notes:
            if note.id == n.id and note.state == "pending" and note.token == n.token:
                return note
        return None

    def complete_notification(
        self, notification: Notification, origin_update: Mapping[str, Any] | None = None
    ) -> bool:
        """Mark sent, merge origin."""
        with self._lock:
            self._check()
            note = self._find_owned(notification)
            if note is None:
                return False
            note.state, note.token, note.lease_expires_at = "sent", None, None
            if origin_update:
                job = self._jobs[notification.job_id]
                self._set(job, origin={**job.origin, **origin_update})
            return True

    def retry_notification(
        self,
        notification: Notification,
        delay_s: float,
        error: str,
        origin_update: Mapping[str, Any] | None = None,
    ) -> bool:
        """Later, keeping progress."""
        with self._lock:
            self._check()
            note = self._find_owned(notification)
            if note is None:
                return False
            if origin_update:
                job = self._jobs[notification.job_id]
                self._set(job, origin={**job.origin, **origin_update})
            note.token, note.lease_expires_at = None, None
            later = any(
                n.job_id == note.job_id and n.id > note.id and n.state == "pending"
                for n in self._notes
            )
            note.next_attempt_at, note.last_error = self._now(0 if later else delay_s), error
            return True

    def fail_notification(self, notification: Notification, error: str) -> bool:
        """Never."""
        with self._lock:
            self._check()
            note = self._find_owned(notification)
            if note is None:
                return False
            note.state, note.token, note.last_error = "failed", None, error
            return True

    def take_turn(self, buckets: Sequence[tuple[str, Rate]], now: float, *, wait: bool) -> float:
        """GCRA in memory (bot/store/pace.py)."""
        with self._lock:
            self._check()
            at = max(
                pacing.send_at(self._tats.get(k), now, r, full=not wait and i == 0)
                for i, (k, r) in enumerate(buckets)
            )
            if at > now and not wait:
                return at
            for i, (key, rate) in enumerate(buckets):
                base = at if i == 0 else now
                self._tats[key] = pacing.after_send(self._tats.get(key), base, rate)
            return at

    def spend_turns(
        self, bucket: str, rate: Rate, now: float, turns: int, *, token_sha256: str | None = None
    ) -> tuple[int, float] | None:
        """GCRA in memory, while the token stands (bot/store/pace.py)."""
        with self._lock:
            self._check()
            if token_sha256 is not None:
                found = self.token(token_sha256)
                expires = None if found is None else found.expires_at
                if found is None or (expires is not None and expires <= self.clock.now()):
                    return None
            tat = self._tats.get(bucket)
            base = now if tat is None else max(tat, now)
            room = now + rate.tolerance - base
            if room < 0:
                return 0, -room
            granted = min(turns, int(room / rate.interval + 1e-9) + 1)
            self._tats[bucket] = base + granted * rate.interval
            return granted, 0.0

    def spend_turn(
        self, bucket: str, rate: Rate, now: float, *, token_sha256: str | None = None
    ) -> float | None:
        """One turn."""
        got = self.spend_turns(bucket, rate, now, 1, token_sha256=token_sha256)
        return None if got is None else got[1]

    def refused_turn(self, bucket: str, rate: Rate, now: float, retry_after: float) -> None:
        """Empty until Retry-After."""
        with self._lock:
            self._check()
            self._tats[bucket] = pacing.after_refusal(
                self._tats.get(bucket), now, retry_after, rate
            )

    def turns_ahead(self, prefix: str, since: float) -> list[tuple[str, float]]:
        """Buckets under `prefix` with turns after `since`."""
        with self._lock:
            return [(k, t) for k, t in self._tats.items() if k.startswith(prefix) and t > since]

    def forget_turns(self, prefix: str, before: float) -> int:
        """Forget buckets long full again."""
        with self._lock:
            self._check()
            gone = [k for k, t in self._tats.items() if k.startswith(prefix) and t < before]
            for key in gone:
                del self._tats[key]
            return len(gone)

    def notification_events(self, job_id: int) -> list[tuple[NotificationEvent, str]]:
        """(event, state), oldest first."""
        with self._lock:
            return [(n.event, n.state) for n in self._notes if n.job_id == job_id]

    def first_time(self, key: str) -> bool:
        """Dedupe."""
        with self._lock:
            self._check()
            if key in self._dedupe:
                return False
            self._dedupe[key] = self._now()
            return True

    def forget_keys(self, prefix: str, before: datetime) -> int:
        """Forget old dedupe keys."""
        with self._lock:
            self._check()
            old = [k for k, at in self._dedupe.items() if k.startswith(prefix) and at < before]
            for key in old:
                del self._dedupe[key]
            return len(old)

    def hold_request(self, key: str, kind: str, payload: Mapping[str, Any], lease_s: float) -> bool:
        """Journal unless held."""
        with self._lock:
            self._check()
            if key in self._held:
                return False
            self._held[key] = (
                HeldRequest(key, kind, dict(payload), 0, self._now()),
                self._now(lease_s),
            )
            return True

    def claim_held_requests(self, limit: int, lease_s: float) -> list[HeldRequest]:
        """Take up expired holds, oldest first."""
        with self._lock:
            self._check()
            due = sorted(
                (lease, request.created_at, key)
                for key, (request, lease) in self._held.items()
                if lease < self._now()
            )
            taken: list[HeldRequest] = []
            for _, _, key in due[:limit]:
                request = self._held[key][0]
                request = dataclasses.replace(request, attempts=request.attempts + 1)
                self._held[key] = (request, self._now(lease_s))
                taken.append(request)
            return taken

    def drop_held_request(self, key: str) -> None:
        """Forget."""
        with self._lock:
            self._check()
            self._held.pop(key, None)

    def remember_upload(self, upload: Upload) -> None:
        """Remember."""
        with self._lock:
            self._check()
            self._uploads.append(dataclasses.replace(upload, created_at=self._now()))

    def latest_upload(self, user_id: int, channel: str, since: datetime) -> Upload | None:
        """Newest match."""
        with self._lock:
            self._check()
            matches = [
                u
                for u in self._uploads
                if u.user_id == user_id and u.channel == channel and u.created_at >= since
            ]
            return matches[-1] if matches else None


def ok_result(request: RunRequest) -> RunResult:
    """What a trivial successful run looks like."""
    return RunResult(
        outcome=Outcome.OK,
        duration_ms=1,
        result_json='"ok"',
        result_kind=ResultKind.STDOUT,
        stdout="ok\n",
        executor="fake",
    )


class FakeExecutor:
    """Runs nothing; answers with `behaviour(request)` and counts calls per job id."""

    name = "fake"

    def __init__(self, behaviour: Callable[[RunRequest], RunResult] = ok_result) -> None:
        self.behaviour = behaviour
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        """Record the call and answer."""
        if start is not None and not start():
            raise CalledOff()
        with self._lock:
            self.calls.append(request.job_id)
        return self.behaviour(request)

    def stop(self, job_id: int) -> bool:
        """Runs finish at once: there is never one to stop."""
        return False

    def describe(self) -> list[tuple[str, str, bool]]:
        """Nothing to isolate."""
        return [("isolation", "fake executor: runs nothing", True)]

    def close(self) -> None:
        """Nothing to close."""


class RecordingNotifier:
    """Records deliveries; the first `fail_times` attempts raise NotifyRetryable."""

    def __init__(self, fail_times: int = 0) -> None:
        self.fail_times = fail_times
        self.delivered: list[tuple[NotificationEvent, int, JobStatus]] = []
        self.attempts = 0
        self.event = threading.Event()
        self._lock = threading.Lock()

    def deliver(self, event: NotificationEvent, job: Job) -> Mapping[str, Any] | None:
        """Record or fail."""
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fail_times:
                raise NotifyRetryable("simulated outage", retry_after=0.0)
            self.delivered.append((event, job.id, job.status))
        self.event.set()
        return {f"{event.value}_seen": True}
