"""Running one claimed job: the start gate, the executor call, handing the job back when
nothing ran, and recording its end under the claim."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.core.backoff import standard_backoff
from bot.core.metrics import Metrics
from bot.core.models import Claim, FileRole, Outcome, RunRequest, RunResult
from bot.core.ports import Executor, JobQueue, StartGate, WorkerStore
from bot.core.stops import RunStops
from bot.errors import CalledOff, ExecutorError, ExecutorUnavailable, StoreError, Throttled

if TYPE_CHECKING:  # the pool's module imports this one
    from bot.core.worker import WorkerConfig

log = logging.getLogger(__name__)


def infra_failure(message: str, executor: str) -> RunResult:
    """The result recorded when our side failed while the code may have run."""
    return RunResult(
        outcome=Outcome.CRASHED,
        duration_ms=0,
        error_type="InfrastructureError",
        error_message=message,
        executor=executor,
    )


def record_result(store: JobQueue, lease_s: float, claim: Claim, result: RunResult) -> bool:
    """Record the result, retrying through database trouble while the lease lasts."""
    deadline = time.monotonic() + lease_s
    attempt = 0
    while True:
        try:
            return store.finish(
                claim.job.id, claim.token, result, routed=claim.job.notify_route is not None
            )
        except StoreError as exc:
            attempt += 1
            if time.monotonic() > deadline:
                log.error("could not record result: %s", exc, extra={"job_id": claim.job.id})
                return False
            time.sleep(min(2.0, standard_backoff(attempt)))


class JobRunner:
    """Runs a pool's claimed jobs, one call of `execute` a job, on the pool's job threads.

    `stops` decides, with the pool's stop poller, who writes a run's end; `stopping` is set
    when the pool stops claiming (it cuts short the retries of a fenced write).
    """

    def __init__(
        self,
        store: WorkerStore,
        executor: Executor,
        config: WorkerConfig,
        *,
        metrics: Metrics,
        stops: RunStops,
        stopping: threading.Event,
        on_started: Callable[[], None],
        on_settled: Callable[[], None],
    ) -> None:
        self.store = store
        self.executor = executor
        self.config = config
        self.metrics = metrics
        self._stops = stops
        self._stopping = stopping
        self._on_started = on_started  # a job's run is about to start
        self._on_settled = on_settled  # a job reached a final state

    def execute(self, claim: Claim) -> None:
        """Run the claimed job and record its end (the caller keeps the claim in flight)."""
        job = claim.job
        extra = {"job_id": job.id, "user_id": job.owner_id}

        def start() -> bool:
            """The start gate: `invoked_at` is committed before the code can start (the
            executor prepares the run meanwhile). A job cancelled before this point never
            starts."""
            if self._stops.settle_unrun(claim):
                return False
            if not self._retry_store(
                lambda: self.store.mark_invoked(
                    job.id, claim.token, self.config.lease_s, routed=job.notify_route is not None
                )
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

        result = self._run(claim, start)
        if result is None:
            return
        if not self._stops.take_settlement(job.id):
            log.info("late result discarded: the job was cancelled", extra=extra)
            return
        if not record_result(self.store, self.config.lease_s, claim, result):
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
        try:  # a job submitted without data files has none to read
            files = tuple(self.store.read_files(job.id, FileRole.IN)) if claim.data_files else ()
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
