"""The worker pool: its settings, its slots, claiming jobs and a graceful stop. Running one
claimed job is bot/core/jobrun.py; the presence and recovery loops are bot/core/upkeep.py.
Many pools (threads or processes) may share one database."""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from bot.core.backoff import jittered, standard_backoff
from bot.core.jobrun import JobRunner, record_result
from bot.core.metrics import Metrics
from bot.core.models import Claim, Job, NewJob
from bot.core.ports import Executor, WorkerStore
from bot.core.stops import Flight, RunStops
from bot.core.upkeep import Upkeep
from bot.errors import StoreError

log = logging.getLogger(__name__)
# How long an offer waits for a claim of this pool in progress (it holds the free slots for
# the few milliseconds of its transaction) before the job is stored waiting instead.
OFFER_WAIT_S = 1.0


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
        self._claiming = False  # the claimer holds free slots while its claim is stored
        self._stops = RunStops(
            store,
            executor,
            self._cond,
            self._in_flight,
            finish=functools.partial(record_result, store, config.lease_s),
            on_settled=self._on_settled,
            poll_interval=config.poll_interval,
        )
        self._runner = JobRunner(
            store,
            executor,
            config,
            metrics=self.metrics,
            stops=self._stops,
            stopping=self._stopping,
            on_started=self._on_started,
            on_settled=self._on_settled,
        )
        self._upkeep = Upkeep(
            store,
            config,
            cond=self._cond,
            flights=self._in_flight,
            stopping=self._stopping,
            wake=self._wake,
            on_settled=self._on_settled,
        )
        self._pool = ThreadPoolExecutor(config.slots, thread_name_prefix="job")
        self._threads: list[threading.Thread] = []

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start claiming, sweeping and saying it is alive in background threads."""
        loops = (
            ("claimer", self._claim_loop),
            ("sweeper", self._upkeep.sweep_loop),
            ("presence", self._upkeep.presence_loop),
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
        stopping: the caller stores it waiting.

        A claim of this pool in progress (the claimer looks for work each time a job ends)
        holds every free slot while its transaction runs; the offer waits for it, since a
        job stored waiting would cost a commit, a claim and the claimer's wake-up more."""
        with self._cond:
            self._cond.wait_for(
                lambda: not self._claiming or self._stopping.is_set(), timeout=OFFER_WAIT_S
            )
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
                self._claiming = True
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
                    self._claiming = False
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

    def _execute(self, claim: Claim) -> None:
        """A job thread: run the claim, then free its slot."""
        try:
            self._runner.execute(claim)
        except Exception:
            log.exception(
                "unexpected error while handling a job",
                extra={"job_id": claim.job.id, "user_id": claim.job.owner_id},
            )
        finally:
            with self._cond:
                self._in_flight.pop(claim.job.id, None)
                self._cond.notify_all()
            self._wake.set()
