"""Stopping runs on request (a cancel of a running job): a worker pool's runs in flight, the
stops asked for them in the store, and the one flag per run that decides who writes its end.

A cancel only records a stop request on the job's row, in whatever process received it. The
pool holding the job polls the store for requests of its runs while it has any, and asks the
executor to stop each: a run it can stop ends `cancelled` with its output so far. One it
cannot stop (a Lambda invoke) is recorded `cancelled` at once, and its late result discarded.
Exactly one final state is written: the store fences every write by the claim, and in the
pool the flag `settled` is taken once, by the run's own end or by the stop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.core.backoff import jittered, standard_backoff
from bot.core.models import (
    CANCELLED_TYPE,
    CANCELLED_UNRUN_MESSAGE,
    STOPPED_UNSTOPPABLE_MESSAGE,
    Claim,
    Outcome,
    RunResult,
)
from bot.core.ports import Executor, JobQueue
from bot.errors import StoreError

log = logging.getLogger(__name__)


@dataclass
class Flight:
    """A claimed job a pool is handling (guarded by the pool's condition)."""

    claim: Claim
    since: float  # monotonic time of the claim
    started: bool = False  # the start gate let its code run
    stop_wanted: bool = False  # a cancel asked for it to be stopped
    settled: bool = False  # the pool has written (or is writing) its final state


class RunStops:
    """Finds and carries out the stops asked for a pool's runs.

    It shares the pool's `flights` and the condition guarding them; `finish` records a
    final result under the claim (retrying through database trouble).
    """

    def __init__(
        self,
        store: JobQueue,
        executor: Executor,
        cond: threading.Condition,
        flights: dict[int, Flight],
        *,
        finish: Callable[[Claim, RunResult], bool],
        on_settled: Callable[[], None],
        poll_interval: float,
    ) -> None:
        self.store = store
        self.executor = executor
        self._cond = cond
        self._flights = flights
        self._finish = finish
        self._on_settled = on_settled
        self._poll_interval = poll_interval
        self._now = threading.Event()  # look for stop requests now
        self._closed = threading.Event()  # the pool stopped: no more polling

    def check_now(self) -> None:
        """Look for stop requests now (a cancel was just asked for in this process)."""
        self._now.set()

    def close(self) -> None:
        """End the polling loop."""
        self._closed.set()
        self._now.set()

    def loop(self) -> None:
        """While runs are in flight, poll the store for stops asked for them (a thread).
        The first look comes one interval after runs appear, as every next one (at once on
        `check_now`): most runs are over by then, and a look as a run starts would compete
        with its start for the database and this process."""
        failures = 0
        idle = True
        while not self._closed.is_set():
            with self._cond:
                ids = [i for i, f in self._flights.items() if not f.stop_wanted]
                if not ids:
                    idle = True
                    self._cond.wait(timeout=self._poll_interval)
                    continue
            if idle:
                idle = False
                self._now.wait(jittered(self._poll_interval))
                self._now.clear()
                continue
            try:
                wanted = self.store.stop_requests(ids)
                failures = 0
            except StoreError as exc:
                failures += 1
                log.warning("stop poll failed: %s", exc, extra={"attempt": failures})
                wanted = set()
            for job_id in wanted:
                self.stop(job_id)
            pause = min(5.0, standard_backoff(failures)) if failures else self._poll_interval
            self._now.wait(jittered(pause))
            self._now.clear()

    def stop(self, job_id: int) -> None:
        """Stop one run, as a cancel asked: through the executor if it can, else by
        recording the job cancelled now and discarding the result that comes later."""
        with self._cond:
            flight = self._flights.get(job_id)
            if flight is None or flight.stop_wanted:
                return
            flight.stop_wanted = True
            started = flight.started
        extra = {"job_id": job_id, "user_id": flight.claim.job.owner_id}
        if not started:  # the start gate ends it, before its code runs (settle_unrun)
            log.info("cancel noticed before the run started", extra=extra)
            return
        if self.executor.stop(job_id):
            log.info("stopping a run on request", extra=extra)
            return
        # The executor cannot stop it (a Lambda invoke), or it just ended on its own.
        if not self.take_settlement(job_id):
            return
        result = RunResult(
            outcome=Outcome.CANCELLED,
            duration_ms=int((time.monotonic() - flight.since) * 1000),
            error_type=CANCELLED_TYPE,
            error_message=STOPPED_UNSTOPPABLE_MESSAGE,
            executor=self.executor.name,
        )
        if self._finish(flight.claim, result):
            log.info("job cancelled; its run goes on and its result will be dropped", extra=extra)
            self._on_settled()

    def mark_started(self, job_id: int) -> bool:
        """At the start gate, once the start is committed: from now on a stop goes to the
        executor. True if a stop was asked for meanwhile (the gate must still honour it)."""
        with self._cond:
            flight = self._flights[job_id]
            flight.started = True
            return flight.stop_wanted

    def settle_unrun(self, claim: Claim) -> bool:
        """At the start gate: end a job whose stop was asked for before its code ran (True),
        or whose end was already written; then nothing runs."""
        with self._cond:
            flight = self._flights.get(claim.job.id)
            wanted = flight is not None and flight.stop_wanted
            settled = flight is not None and flight.settled
        if settled:
            return True
        if not wanted or not self.take_settlement(claim.job.id):
            return False
        result = RunResult(
            outcome=Outcome.CANCELLED,
            duration_ms=0,
            error_type=CANCELLED_TYPE,
            error_message=CANCELLED_UNRUN_MESSAGE,
            executor=self.executor.name,
        )
        if self._finish(claim, result):
            log.info("job cancelled before it started", extra={"job_id": claim.job.id})
            self._on_settled()
        return True

    def take_settlement(self, job_id: int) -> bool:
        """True for the one caller (the run's end, or a stop) that writes the final state."""
        with self._cond:
            flight = self._flights.get(job_id)
            if flight is None or flight.settled:
                return False
            flight.settled = True
            return True
