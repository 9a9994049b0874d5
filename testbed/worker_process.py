"""A real worker process for queue tests: the production WorkerPool, Runtime and executor,
with every execution recorded (one job id per line) so tests count executions, not rows.

    python -m testbed.worker_process EXECUTIONS_FILE [--crash-at POINT] [--executor KIND]
        [--hold-claims FILE] [--delivery-lease SECONDS]

POINT makes the process SIGKILL itself at that moment of the first job's life (the way a
crash or `kill -9` would): before-claim (a job is waiting), after-claim, after-invoked,
after-result (stored, not yet notified), after-post (Slack took the outcome messages, the
outbox has not recorded it), after-held (the result's delivery waits for the turn it reserved
in Slack's rate buckets, recorded in the outbox). While FILE exists the process claims
nothing. SECONDS is how long its dispatcher leases a notification (60 s by default, as in
production).
KIND is `local` (the real sandbox, default) or `sleep:SECONDS` (an executor that only waits,
for scale tests that are about the queue rather than the sandbox).
Settings come from the environment, exactly as for `python -m bot worker`.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bot.app.config import Settings
from bot.app.environment import load_settings
from bot.app.shutdown import StopRequest
from bot.app.wiring.parts import build_executor, build_store
from bot.app.wiring.process import Process
from bot.app.wiring.runtime import Runtime
from bot.core.dispatcher import LEASE_S as DELIVERY_LEASE_S
from bot.core.models import (
    JobStatus,
    Notification,
    NotificationEvent,
    Outcome,
    ResultKind,
    RunRequest,
    RunResult,
)
from bot.core.ports import Executor, JobStore, StartGate
from bot.errors import CalledOff

CRASH_POINTS = (
    "before-claim",
    "after-claim",
    "after-invoked",
    "after-result",
    "after-post",
    "after-held",  # a result's delivery waits for its reserved turn in a rate bucket
    "after-ack",  # serve only: a `/job run` was acknowledged (and journaled), its work not done
)


def die() -> None:
    """SIGKILL this process: no cleanup, no finally blocks, like a crash."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class CountingExecutor:
    """Records each run's job id (appended and flushed before the code starts)."""

    def __init__(self, inner: Executor, path: str) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self.lock = threading.Lock()

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        def counted() -> bool:
            """The run goes ahead: record it before the code can start."""
            if start is not None and not start():
                return False
            with self.lock, open(self.path, "a") as log:
                log.write(f"{request.job_id} {os.getpid()}\n")
                log.flush()
                os.fsync(log.fileno())
            return True

        return self.inner.run(request, counted)

    def stop(self, job_id: int) -> bool:
        return self.inner.stop(job_id)

    def describe(self) -> list[tuple[str, str, bool]]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()


class SleepExecutor:
    """Waits, then reports stdout "ok": the queue is what is under test."""

    name = "sleep"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        if start is not None and not start():
            raise CalledOff()
        time.sleep(self.seconds)
        return RunResult(
            outcome=Outcome.OK,
            duration_ms=int(self.seconds * 1000),
            result_json='"ok"',
            result_kind=ResultKind.STDOUT,
            stdout="ok\n",
            executor=self.name,
        )

    def stop(self, job_id: int) -> bool:
        return False

    def describe(self) -> list[tuple[str, str, bool]]:
        return [("isolation", "none (test executor)", True)]

    def close(self) -> None:
        """Nothing to release."""


class CrashingStore:
    """Delegates to the real store; SIGKILLs the process at the chosen point of a job's life
    and, while `hold` (a path) exists, claims nothing, so a test can queue jobs first.

    The kill waits (a few seconds at most) for Slack deliveries already under way in this
    process and lets no new one start: each crash point is then exactly that point of the
    job's life, not also a half-sent message (a kill during a delivery is its own case)."""

    def __init__(self, inner: JobStore, point: str | None, hold: str | None = None) -> None:
        self.inner = inner
        self.point = point
        self.hold = hold
        self._gate = threading.Lock()  # held from the kill on: no delivery starts
        self._delivering: set[int] = set()
        self._settled = threading.Condition()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def die(self) -> None:
        """Crash once this process's deliveries in flight are settled."""
        self._gate.acquire()
        with self._settled:
            self._settled.wait_for(lambda: not self._delivering, timeout=5)
        die()

    def claim(self, *args: Any, **kwargs: Any) -> Any:
        if self.hold is not None and os.path.exists(self.hold):
            return []
        if self.point == "before-claim" and self.inner.count_by_status()[JobStatus.WAITING]:
            self.die()  # a job is waiting and this process was about to claim it
        claims = self.inner.claim(*args, **kwargs)
        if claims and self.point == "after-claim":
            self.die()
        return claims

    def submit_claimed(self, new: Any, *args: Any, **kwargs: Any) -> Any:
        """A job taken as it is submitted is a claim too: held, it is stored waiting; at
        "before-claim" it is stored waiting for the claim that crashes; at "after-claim"
        the crash follows the commit that stored it claimed."""
        if self.point == "before-claim" or (self.hold is not None and os.path.exists(self.hold)):
            job, created = self.inner.submit(new)
            return job, created, None
        job, created, claim = self.inner.submit_claimed(new, *args, **kwargs)
        if claim is not None and self.point == "after-claim":
            self.die()
        return job, created, claim

    def latest_upload(self, *args: Any, **kwargs: Any) -> Any:
        # The first thing a `/job run`'s work does after the ack: crash before it is stored.
        if self.point == "after-ack":
            die()
        return self.inner.latest_upload(*args, **kwargs)

    def mark_invoked(self, *args: Any, **kwargs: Any) -> bool:
        done: bool = self.inner.mark_invoked(*args, **kwargs)
        if self.point == "after-invoked":
            self.die()
        return done

    def finish(self, *args: Any, **kwargs: Any) -> Any:
        job = self.inner.finish(*args, **kwargs)
        if self.point == "after-result":
            self.die()
        return job

    # --- deliveries in flight --------------------------------------------------------

    def claim_notifications(self, *args: Any, **kwargs: Any) -> list[Notification]:
        with self._gate:
            batch: list[Notification] = self.inner.claim_notifications(*args, **kwargs)
            with self._settled:
                self._delivering.update(n.id for n in batch)
        return batch

    def _done(self, notification: Notification) -> None:
        with self._settled:
            self._delivering.discard(notification.id)
            self._settled.notify_all()

    def complete_notification(self, notification: Notification, *args: Any) -> bool:
        if self.point == "after-post" and notification.event is NotificationEvent.FINISHED:
            self._done(notification)
            self.die()
        try:
            return bool(self.inner.complete_notification(notification, *args))
        finally:
            self._done(notification)

    def retry_notification(self, notification: Notification, *args: Any) -> bool:
        try:
            kept = bool(self.inner.retry_notification(notification, *args))
        finally:
            self._done(notification)
        progress = args[2] if len(args) > 2 else {}
        if (
            self.point == "after-held"
            and notification.event is NotificationEvent.FINISHED
            and (progress or {}).get("slack_turn")
        ):
            self.die()  # its turn is reserved and recorded; the message is not sent
        return kept

    def fail_notification(self, notification: Notification, *args: Any) -> bool:
        try:
            return bool(self.inner.fail_notification(notification, *args))
        finally:
            self._done(notification)


def executor_factory(kind: str, path: str) -> Callable[[Settings], Executor]:
    def build(settings: Settings) -> Executor:
        inner: Executor
        if kind.startswith("sleep:"):
            inner = SleepExecutor(float(kind.split(":", 1)[1]))
        else:
            inner = build_executor(settings)
        return CountingExecutor(inner, path)

    return build


def instrumented_runtime(settings: Settings) -> Runtime:
    """The Runtime of an instrumented process (this one, or testbed.serve_process), from its
    arguments: EXECUTIONS_FILE [--crash-at POINT] [--executor KIND] [--hold-claims FILE]
    [--delivery-lease SECONDS]."""
    parser = argparse.ArgumentParser()
    parser.add_argument("executions")
    parser.add_argument("--crash-at", choices=CRASH_POINTS)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--hold-claims", metavar="FILE")
    parser.add_argument("--delivery-lease", type=float, metavar="SECONDS")
    args = parser.parse_args()
    store = build_store(settings)
    if args.crash_at or args.hold_claims:
        store = CrashingStore(store, args.crash_at, args.hold_claims)  # type: ignore[assignment]
    parts = {"store": store, "executor_factory": executor_factory(args.executor, args.executions)}
    lease = args.delivery_lease if args.delivery_lease is not None else DELIVERY_LEASE_S
    return Runtime(settings, delivery_lease_s=lease, **parts)


def main() -> None:
    """`python -m bot worker` on the instrumented Runtime."""
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a test's view of a hang
    settings = load_settings(env_file=None)
    runtime = instrumented_runtime(settings)
    runtime.migrate()
    stop = StopRequest()  # a SIGTERM right after "ready" still stops it cleanly
    print("ready", flush=True)  # migrated; a crash point may fire as soon as work starts
    process = Process(settings, runtime, slack=True)  # as `worker` composes it
    process.start()
    stop.wait()
    sys.exit(0 if process.stop() else 1)


if __name__ == "__main__":
    main()
