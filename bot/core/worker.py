"""The worker pool: claim -> mark invoked -> execute -> finish, with leases, a recovery sweep
and a graceful stop. Many pools (threads or processes) may share one database."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.core.backoff import jittered, standard_backoff
from bot.core.metrics import Metrics
from bot.core.models import (
    Claim,
    FileRole,
    Job,
    NewJob,
    Outcome,
    RunRequest,
    RunResult,
)
from bot.core.ports import Executor, StartGate, WorkerStore
from bot.core.stops import Flight, RunStops
from bot.errors import CalledOff, ExecutorError, ExecutorUnavailable, StoreError, Throttled

log = logging.getLogger(__name__)
PRESENCE_EVERY_S = 5.0  # how often a running pool tells the store it is alive
PRESENCE_WINDOW_S = 3 * PRESENCE_EVERY_S  # a pool not heard of for this long is gone
FORGET_EVERY_S = 60.0  # how often a pool deletes the files past their retention


def default_worker_id() -> str:
    """host:pid:random, unique per pool."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class WorkerConfig:
    """How a pool claims and runs jobs (the values come from the settings, via the assembler)."""

    slots: int
    job_timeout: float
    memory_mb: int
    max_output_bytes: int
    lease_s: float
    max_per_user: int
    poll_interval: float
    sweep_interval: float
    max_attempts: int = 12  # claims of a job that never got to run before giving up
    max_files_out: int = 10  # files kept from a job's out/ and open figures
    max_files_out_bytes: int = 4 * 1024 * 1024  # their bytes together
    files_retention_s: float = 0.0  # a job's files are deleted this long after; 0: kept
    worker_id: str = field(default_factory=default_worker_id)


def infra_failure(message: str, executor: str) -> RunResult:
    """The result recorded when our side failed while the code may have run."""
    return RunResult(
        outcome=Outcome.CRASHED,
        duration_ms=0,
        error_type="InfrastructureError",
        error_message=message,
        executor=executor,
    )


class WorkerPool:
    """Claims jobs and runs up to `slots` of them at once on an executor.

    A cancel of a running job is a stop asked for in the store, by any process; the pool's
    RunStops (bot/core/stops.py) find and carry out those of its runs.
    """

    def __init__(
        self,
        store: WorkerStore,
        executor: Executor,
        config: WorkerConfig,
        metrics: Metrics | None = None,
        *,
        on_settled: Callable[[], None] | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.config = config
        self.metrics = metrics or Metrics()
        self._on_settled = on_settled or (lambda: None)  # a job reached a final state
        self._on_started = on_started or (lambda: None)  # a job's run is about to start
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cond = threading.Condition()
        self._in_flight: dict[int, Flight] = {}  # guarded by _cond, shared with _stops
        self._held = 0  # free slots held while a claim or an offer is being stored
        self._stops = RunStops(
            store,
            executor,
            self._cond,
            self._in_flight,
            finish=self._finish,
            on_settled=self._on_settled,
            poll_interval=config.poll_interval,
        )
        self._pool = ThreadPoolExecutor(config.slots, thread_name_prefix="job")
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming, sweeping and saying it is alive in background threads."""
        loops = (
            ("claimer", self._claim_loop),
            ("sweeper", self._sweep_loop),
            ("presence", self._presence_loop),
            ("stopper", self._stops.loop),
        )
        for name, target in loops:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        log.info(
            "worker pool started",
            extra={"worker_id": self.config.worker_id, "slots": self.config.slots},
        )

    def wake(self) -> None:
        """Look for work now (a job was just submitted in this process)."""
        self._wake.set()

    def offer(self, new: NewJob) -> tuple[Job, bool] | None:
        """Store a job claimed by a free slot of this pool and start it at once: the claim's
        commit and the claimer's wake-up are saved (the store still makes it a plain waiting
        job when a claim would not take it now). None when no slot is free or the pool is
        stopping: the caller stores it waiting."""
        with self._cond:
            if self._stopping.is_set() or self._free() <= 0:
                return None
            self._held += 1
        claim: Claim | None = None
        try:
            job, created, claim = self.store.submit_claimed(
                new, self.config.worker_id, self.config.lease_s, self.config.max_per_user
            )
        finally:
            with self._cond:
                self._held -= 1
                if claim is not None:
                    self._in_flight[claim.job.id] = Flight(claim, time.monotonic())
                self._cond.notify_all()
        if claim is not None:
            self._start(claim)
        elif created:
            self._wake.set()
        return job, created

    def _free(self) -> int:
        """Slots neither running nor held (call with the condition held)."""
        return self.config.slots - len(self._in_flight) - self._held

    @property
    def busy(self) -> int:
        """Jobs running right now in this pool."""
        with self._cond:
            return len(self._in_flight)

    def check_stops(self) -> None:
        """Look for stop requests now (a cancel was just asked for in this process)."""
        self._stops.check_now()

    def stop_claiming(self) -> None:
        """Claim nothing more (the first step of a stop); running jobs go on."""
        self._stopping.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()

    def stop_runs(self) -> None:
        """Stop claiming, and ask the executor to stop every run in progress here: each ends
        cancelled, with what it printed until then (an executor that cannot stop a run, as
        Lambda, lets it run out). For someone who will not wait for their jobs."""
        self.stop_claiming()
        with self._cond:
            running = list(self._in_flight)
        for job_id in running:
            stopped = self.executor.stop(job_id)
            log.info("stopping a run", extra={"job_id": job_id, "stopped": stopped})

    def stop(self, grace_s: float) -> bool:
        """Stop claiming, let running jobs finish for up to `grace_s`; True if all did."""
        self.stop_claiming()
        with self._cond:
            drained = self._cond.wait_for(
                lambda: not self._in_flight and not self._held, timeout=grace_s
            )
        self._stops.close()
        for thread in self._threads:
            thread.join(timeout=2)
        try:
            self.store.worker_gone(self.config.worker_id)
        except StoreError as exc:  # its row ages out of the window instead
            log.info("worker presence not cleared: %s", exc)
        self._pool.shutdown(wait=drained)
        log.info("worker pool stopped", extra={"drained": drained})
        return drained

    # --- claiming --------------------------------------------------------------------

    def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            with self._cond:
                free = self._free()
                if free <= 0:
                    self._cond.wait(timeout=self.config.poll_interval)
                    continue
                self._held += free  # an offer meanwhile must not count them as free
            claims: list[Claim] = []
            try:
                claims = self.store.claim(
                    self.config.worker_id, free, self.config.lease_s, self.config.max_per_user
                )
                failures = 0
            except StoreError as exc:
                failures += 1
                log.warning("claim failed: %s", exc, extra={"attempt": failures})
            finally:
                with self._cond:
                    self._held -= free
                    for claim in claims:
                        self._in_flight[claim.job.id] = Flight(claim, time.monotonic())
                    self._cond.notify_all()  # the stop poller watches while runs are in flight
            if failures:
                self._stopping.wait(min(5.0, standard_backoff(failures)))
                continue
            for claim in claims:
                self._start(claim)
            if claims and len(claims) == free:
                continue  # the queue may hold more
            self._wake.wait(jittered(self.config.poll_interval))

    def _start(self, claim: Claim) -> None:
        """Run a claim counted in flight on a job thread."""
        try:
            self._pool.submit(self._execute, claim)
        except RuntimeError:  # shutting down: the lease will hand the job back
            with self._cond:
                self._in_flight.pop(claim.job.id, None)

    # --- running ---------------------------------------------------------------------

    def _execute(self, claim: Claim) -> None:
        job = claim.job
        extra = {"job_id": job.id, "user_id": job.owner_id}

        def start() -> bool:
            """The start gate: `invoked_at` is committed before the code can start (the
            executor prepares the run meanwhile). A job cancelled before this point never
            starts."""
            if self._stops.settle_unrun(claim):
                return False
            if not self._retry_store(
                lambda: self.store.mark_invoked(job.id, claim.token, self.config.lease_s)
            ):
                log.warning("lost the claim before starting", extra=extra)
                return False
            # From here a stop goes to the executor; one that came while the start was
            # committed is still this gate's to honour: the code has not run.
            if self._stops.mark_started(job.id) and self._stops.settle_unrun(claim):
                return False
            self._on_started()  # a `started` notification was just written
            log.info("job started", extra={**extra, "attempt": job.attempts})
            return True

        try:
            result = self._run(claim, start)
            if result is None:
                return
            if not self._stops.take_settlement(job.id):
                log.info("late result discarded: the job was cancelled", extra=extra)
                return
            if not self._finish(claim, result):
                log.warning("lost the claim before finishing; result dropped", extra=extra)
                return
            self.metrics.inc(
                "jobbot_jobs_finished_total",
                "Jobs finished by this process.",
                status=result.status.value,
            )
            self.metrics.observe(
                "jobbot_job_duration_seconds",
                "Run time of finished jobs.",
                result.duration_ms / 1000,
                executor=self.executor.name,
            )
            log.info(
                "job finished",
                extra={**extra, "status": result.status.value, "duration_ms": result.duration_ms},
            )
            self._on_settled()
        except Exception:
            log.exception("unexpected error while handling a job", extra=extra)
        finally:
            with self._cond:
                self._in_flight.pop(job.id, None)
                self._cond.notify_all()
            self._wake.set()

    def _run(self, claim: Claim, start: StartGate) -> RunResult | None:
        """Run the code; None when the job was handed back to the queue instead."""
        job = claim.job
        request = RunRequest(
            job_id=job.id,
            file_name=job.file_name,
            code=job.code,
            input_json=job.input_json,
            timeout_s=self.config.job_timeout,
            memory_mb=self.config.memory_mb,
            max_output_bytes=self.config.max_output_bytes,
            owner=job.owner,
            max_files_out=self.config.max_files_out,
            max_files_out_bytes=self.config.max_files_out_bytes,
        )
        try:
            files = tuple(self.store.read_files(job.id, FileRole.IN))
        except StoreError as exc:  # nothing ran: the job goes back to the queue
            return self._hand_back(claim, None, f"its data files could not be read: {exc}")
        request = dataclasses.replace(request, files=files)
        try:
            return self.executor.run(request, start)
        except CalledOff:
            return None  # the claim was lost at the gate: the job is someone else's now
        except Throttled as exc:
            self.metrics.inc(
                "jobbot_executor_errors_total", "Executor failures by kind.", kind="throttled"
            )
            return self._hand_back(claim, exc.retry_after, f"throttled: {exc.message}")
        except ExecutorUnavailable as exc:
            self.metrics.inc(
                "jobbot_executor_errors_total", "Executor failures by kind.", kind="unavailable"
            )
            return self._hand_back(claim, None, f"executor unavailable: {exc.message}")
        except ExecutorError as exc:
            self.metrics.inc(
                "jobbot_executor_errors_total", "Executor failures by kind.", kind="failed"
            )
            log.error("executor failed: %s", exc.message, extra={"job_id": job.id})
            return infra_failure(
                f"the executor failed while running the job: {exc.message}", self.executor.name
            )
        except Exception as exc:
            log.exception("executor raised unexpectedly", extra={"job_id": job.id})
            return infra_failure(
                f"internal error while running the job ({type(exc).__name__})", self.executor.name
            )

    def _hand_back(self, claim: Claim, retry_after: float | None, reason: str) -> RunResult | None:
        """Nothing ran: requeue with back-off, or give up after max_attempts claims."""
        job = claim.job
        if job.attempts >= self.config.max_attempts:
            return RunResult(
                outcome=Outcome.ERROR,
                duration_ms=0,
                error_type="NotStarted",
                error_message=f"the job could not be started after {job.attempts} attempts "
                f"({reason}); nothing ran. Try again later.",
                executor=self.executor.name,
            )
        delay = retry_after if retry_after is not None else standard_backoff(job.attempts)
        log.info(
            "job handed back",
            extra={"job_id": job.id, "delay_s": round(delay, 2), "reason": reason},
        )
        self._retry_store(lambda: self.store.release(job.id, claim.token, delay))
        return None

    def _finish(self, claim: Claim, result: RunResult) -> bool:
        """Record the result, retrying through database trouble while the lease lasts."""
        deadline = time.monotonic() + self.config.lease_s
        attempt = 0
        while True:
            try:
                return self.store.finish(claim.job.id, claim.token, result)
            except StoreError as exc:
                attempt += 1
                if time.monotonic() > deadline:
                    log.error("could not record result: %s", exc, extra={"job_id": claim.job.id})
                    return False
                time.sleep(min(2.0, standard_backoff(attempt)))

    def _retry_store(self, fn: Callable[[], bool]) -> bool:
        """A fenced write, retried briefly through database trouble; False if it never took."""
        for attempt in range(1, 6):
            try:
                return fn()
            except StoreError as exc:
                log.warning("store write failed: %s", exc, extra={"attempt": attempt})
                if self._stopping.wait(min(2.0, standard_backoff(attempt))):
                    break
        return False

    # --- presence --------------------------------------------------------------------

    def _presence_loop(self) -> None:
        """Tell the store this pool is alive until it stops claiming."""
        while True:
            try:
                self.store.worker_seen(self.config.worker_id)
            except StoreError as exc:
                log.warning("worker presence not recorded: %s", exc)
            if self._stopping.wait(PRESENCE_EVERY_S):
                return

    # --- recovery --------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        forgotten_at = 0.0
        while not self._stopping.wait(self.config.sweep_interval):
            self._heartbeat()
            if self.config.files_retention_s and time.monotonic() - forgotten_at > FORGET_EVERY_S:
                forgotten_at = time.monotonic()
                self._forget_old_files()
            try:
                recovery = self.store.recover_expired()
            except StoreError as exc:
                log.warning("lease sweep failed: %s", exc)
                continue
            if recovery.requeued:
                log.warning(
                    "requeued jobs whose worker vanished before running them",
                    extra={"job_ids": list(recovery.requeued)},
                )
                self._wake.set()
            if recovery.interrupted:
                log.warning(
                    "jobs interrupted by a vanished worker",
                    extra={"job_ids": list(recovery.interrupted)},
                )
                self._on_settled()

    def _forget_old_files(self) -> None:
        """The retention sweep: delete the files of jobs older than the retention."""
        before = datetime.now(UTC) - timedelta(seconds=self.config.files_retention_s)
        try:
            gone = self.store.forget_files(before)
        except StoreError as exc:
            log.warning("file retention sweep failed: %s", exc)
            return
        if gone:
            log.info("deleted files past their retention", extra={"files": gone})

    def _heartbeat(self) -> None:
        """Extend the leases of runs still in progress here (bounded by the job timeout)."""
        limit = self.config.job_timeout + self.config.lease_s
        now = time.monotonic()
        with self._cond:
            flights = list(self._in_flight.items())
        for job_id, flight in flights:
            if now - flight.since < limit and not flight.settled:
                try:
                    self.store.extend_lease(job_id, flight.claim.token, self.config.lease_s)
                except StoreError:
                    return
