"""JobService: submit, look up, list, cancel and re-run jobs, with the ownership rules."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.datafiles import check_data_files
from bot.core.inputs import check_file, check_input
from bot.core.models import (
    Actor,
    FileRole,
    Identity,
    Job,
    JobFile,
    JobStatus,
    NewJob,
    StoredFile,
    User,
)
from bot.core.ports import Clock, Intake, ServiceStore
from bot.core.tokens import Tokens
from bot.errors import FileNotFound, Forbidden, JobNotFound, NotCancellable, UserNotFound

log = logging.getLogger(__name__)
PAGE_SIZE = 20


@dataclass(frozen=True)
class Limits:
    """What the service accepts (from the settings, via the assembler)."""

    max_code_bytes: int
    max_input_bytes: int
    max_files_in_bytes: int = 4 * 1024 * 1024  # data files of one job, together


@dataclass(frozen=True)
class JobView:
    """A job as one viewer may see it: `full` means output and errors are shown."""

    job: Job
    full: bool


class JobService:
    """The use cases behind every `/job` command; adapters call this and render the result.

    A request the asker got wrong raises a UserError; a database failure passes through as
    the store raised it (StoreError), for each surface to answer in its own words.
    """

    def __init__(
        self,
        store: ServiceStore,
        clock: Clock,
        limits: Limits,
        admins: frozenset[str] = frozenset(),
        *,
        on_submit: Callable[[Job], None] | None = None,
        on_stop: Callable[[Job], None] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.limits = limits
        self.admins = admins
        self._on_submit = on_submit or (lambda job: None)
        self._on_stop = on_stop or (lambda job: None)  # a stop of a running job was asked for
        self._intake: Intake | None = None
        self._users: dict[Identity, User] = {}
        self._users_lock = threading.Lock()
        self.tokens = Tokens(store, clock, self.actor_of)  # the API's bearer tokens
        # Bumped whenever a job may have become final here, for those waiting on one.
        self._settled = threading.Condition()
        self._generation = 0

    def run_here(self, intake: Intake | None) -> None:
        """Offer new jobs to `intake` first (this process's worker pool: a job it takes
        starts without waiting for a claim); None stores every job waiting."""
        self._intake = intake

    # --- who ------------------------------------------------------------------------

    def actor(self, identity: Identity, display_name: str | None = None) -> Actor:
        """The Actor for an identity, mapping it to an integer user id on first contact."""
        with self._users_lock:
            user = self._users.get(identity)
        if user is None or (display_name is not None and user.display_name != display_name):
            user = self.store.ensure_user(identity, display_name)
            with self._users_lock:
                if len(self._users) > 10000:
                    self._users.clear()
                self._users[identity] = user
        return self.actor_of(user)

    def actor_of(self, user: User) -> Actor:
        """The Actor of a known user (admins by their external id, as everywhere)."""
        return Actor(user=user, is_admin=user.identity.external_id in self.admins)

    def user(self, user_id: int) -> User:
        """A user by id; UserNotFound if there is none."""
        user = self.store.get_user(user_id)
        if user is None:
            raise UserNotFound(f"There is no user #{user_id}.")
        return user

    # --- jobs -----------------------------------------------------------------------

    def submit(
        self,
        actor: Actor,
        file_name: str,
        data: bytes,
        input_text: str | None,
        *,
        origin: Mapping[str, Any] | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
        rerun_of: int | None = None,
        files: Sequence[tuple[str, bytes]] = (),
    ) -> tuple[Job, bool]:
        """Validate and store a job with its data `files` ((name, content) pairs, placed
        beside the code); returns (job, created). Raises UserError on bad input, before
        anything is stored."""
        checked_input = check_input(input_text, self.limits.max_input_bytes)
        checked_file = check_file(file_name, data, self.limits.max_code_bytes)
        data_files = check_data_files(files, checked_file.name, self.limits.max_files_in_bytes)
        new = NewJob(
            owner_id=actor.user.id,
            file_name=checked_file.name,
            code=checked_file.code,
            code_sha256=checked_file.sha256,
            input_json=checked_input.text,
            origin=dict(origin or {}),
            notify_route=route,
            # Always keyed: a submit retried after a lost connection cannot store twice.
            idempotency_key=idempotency_key or f"auto:{uuid.uuid4().hex}",
            rerun_of=rerun_of,
            owner=actor.user.identity,
            files=data_files,
        )
        intake = self._intake
        stored = intake.offer(new) if intake is not None else None
        job, created = stored if stored is not None else self.store.submit(new)
        if created:
            log.info(
                "job submitted",
                extra={"job_id": job.id, "user_id": actor.user.id, "file_bytes": len(data)},
            )
            self._on_submit(job)
        return job, created

    def view(self, actor: Actor, job_id: int) -> JobView:
        """A job as this actor may see it."""
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"There is no job #{job_id}. `/job mine` lists your jobs.")
        return JobView(job=job, full=self.may_manage(actor, job))

    def may_manage(self, actor: Actor, job: Job) -> bool:
        """Owners and admins may see output, cancel and re-run."""
        return actor.is_admin or job.owner_id == actor.user.id

    def views(self, actor: Actor, jobs: Sequence[Job]) -> list[JobView]:
        """Listing rows as this actor may see them: those whose output they may see are
        loaded in full (a listing row is a summary), the others stay summaries."""
        out = []
        for job in jobs:
            full = self.may_manage(actor, job)
            whole = self.store.get(job.id) if full and job.is_summary else None
            out.append(JobView(job=whole or job, full=full))
        return out

    def view_with_files(self, actor: Actor, job_id: int) -> tuple[JobView, list[StoredFile]]:
        """A job as this actor may see it, with its files (as `listed_files`), in one read."""
        found = self.store.job_with_files(job_id)
        if found is None:
            raise JobNotFound(f"There is no job #{job_id}. `/job mine` lists your jobs.")
        job, files = found
        full = self.may_manage(actor, job)
        return JobView(job=job, full=full), files if full else []

    def wait(
        self, actor: Actor, job_id: int, timeout_s: float, poll_s: float = 0.25
    ) -> tuple[JobView, list[StoredFile]]:
        """The job (with its files, as `view_with_files`) once it is final, or as it is after
        `timeout_s`. A job settled in this process wakes the wait at once; one settled
        elsewhere is seen within `poll_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self._settled:
                generation = self._generation
            view, files = self.view_with_files(actor, job_id)
            remaining = deadline - time.monotonic()
            if view.job.status.is_final or remaining <= 0:
                return view, files
            with self._settled:
                if self._generation == generation:
                    self._settled.wait(min(remaining, poll_s))

    def settled(self) -> None:
        """A job may have become final in this process: wake those waiting for one."""
        with self._settled:
            self._generation += 1
            self._settled.notify_all()

    def mine(self, actor: Actor, limit: int) -> list[Job]:
        """The actor's latest jobs (summaries)."""
        return self.store.list_by_owner(actor.user.id, limit)

    def jobs_of(self, user_id: int, limit: int) -> list[Job]:
        """A user's latest jobs (summaries); UserNotFound if there is no such user."""
        self.user(user_id)
        return self.store.list_by_owner(user_id, limit)

    def list_page(self, page: int) -> list[Job]:
        """Everyone's jobs, newest first, PAGE_SIZE per page (summaries)."""
        before: int | None = None
        if page > 1:
            # Find the id where the page starts by walking back; pages deep in history are rare.
            seen = self.store.list_all((page - 1) * PAGE_SIZE)
            if len(seen) < (page - 1) * PAGE_SIZE:
                return []
            before = seen[-1].id
        return self.store.list_all(PAGE_SIZE, before)

    def cancel(self, actor: Actor, job_id: int) -> Job:
        """Cancel a job of the actor's (or any, for an admin). A waiting job is cancelled at
        once (returned `cancelled`); for a running one a stop is recorded and the job is
        returned still `running`, with `stop_requested_at` set: the worker that runs it, in
        whatever process, stops it, and it ends `cancelled` with what it printed until then
        (on Lambda, whose invoke cannot be stopped, with its late result discarded). If it
        finishes on its own first, that outcome stands: a job ends exactly once."""
        view = self.view(actor, job_id)
        if not view.full:
            raise Forbidden(
                f"Job #{job_id} is not yours: only its owner or an admin can cancel it."
            )
        job: Job | None = view.job
        # A job can move between waiting and running while we ask (claimed, or handed back
        # by a throttled executor): ask again as it is now, a few times at most.
        for _ in range(3):
            if job is None or job.status.is_final:
                break
            cancelled = self.store.cancel(job_id)
            if cancelled is not None:
                stopping = cancelled.status is JobStatus.RUNNING
                log.info(
                    "job stop requested" if stopping else "job cancelled",
                    extra={"job_id": job_id, "user_id": actor.user.id},
                )
                if stopping:
                    self._on_stop(cancelled)
                return cancelled
            job = self.store.get(job_id)
        status = job.status.value if job is not None else "gone"
        raise NotCancellable(f"Job #{job_id} has already finished ({status}); nothing to cancel.")

    def rerun(
        self,
        actor: Actor,
        job_id: int,
        *,
        origin: Mapping[str, Any] | None = None,
        route: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[Job, bool]:
        """Submit a job's code and input again as a new job owned by the actor."""
        view = self.view(actor, job_id)
        if not view.full:
            raise Forbidden(
                f"Job #{job_id} is not yours: only its owner or an admin can re-run it."
            )
        source = view.job
        files = self.store.read_files(source.id, FileRole.IN)
        return self.submit(
            actor,
            source.file_name,
            source.code.encode("utf-8"),
            source.input_json,
            origin=origin,
            route=route,
            idempotency_key=idempotency_key,
            rerun_of=source.id,
            files=[(f.name, f.data) for f in files],
        )

    def get(self, job_id: int) -> Job | None:
        """A job by id, for adapters and waiters (no ownership check)."""
        return self.store.get(job_id)

    def listed_files(self, view: JobView) -> list[StoredFile]:
        """A job's files (data files first, then files out), without their content, for a
        viewer who may see its output; none for anyone else."""
        return self.store.list_files(view.job.id) if view.full else []

    def file(self, actor: Actor, job_id: int, name: str, role: FileRole = FileRole.OUT) -> JobFile:
        """One file of a job by its name, for its owner or an admin."""
        view = self.view(actor, job_id)
        if not view.full:
            raise Forbidden(
                f"Job #{job_id} is not yours: only its owner or an admin can fetch its files."
            )
        found = self.store.read_file(job_id, role, name)
        if found is None:
            kept = ", ".join(f.name for f in self.store.list_files(job_id, role)) or "none"
            raise FileNotFound(f"Job #{job_id} has no file {name[:100]!r} (its files: {kept}).")
        return found

    def files(self, actor: Actor, job_id: int, role: FileRole = FileRole.OUT) -> list[JobFile]:
        """A job's files of one role, with their content, for its owner or an admin."""
        view = self.view(actor, job_id)
        if not view.full:
            raise Forbidden(
                f"Job #{job_id} is not yours: only its owner or an admin can fetch its files."
            )
        return self.store.read_files(job_id, role)
