"""What the Lambda stand-in can do to invocations instead of (or besides) the normal path, and
what it records about each: faults are queued and applied to the next invocations in order."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from testbed.lambda_pool import Environment
    from testbed.lambda_runtime_api import Invocation


@dataclass
class Fault:
    """Something to do to one invocation."""

    kind: (
        str  # throttle | service_error | malformed | function_error | delay | cutoff | kill_runtime
    )
    params: dict[str, Any]


@dataclass
class Record:
    """What the stand-in did with one invoke request (for assertions and benchmarks)."""

    request_id: str
    status: int
    function_error: str | None = None
    error_type: str | None = None
    executed: bool = False
    function_ms: float | None = None
    environment: int | None = None


def function_error_body(error_type: str, message: str, request_id: str | None = None) -> bytes:
    """A function error's body as Lambda sends it."""
    body: dict[str, Any] = {"errorType": error_type, "errorMessage": message}
    if request_id is not None:
        body.update(requestId=request_id, stackTrace=[])
    return json.dumps(body).encode()


def canned_response() -> dict[str, Any]:
    """The protocol-v1 answer of a simulated invocation."""
    return {
        "v": 1,
        "outcome": "ok",
        "result_json": '"simulated"',
        "result_kind": "return",
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "error_type": None,
        "error_message": None,
        "traceback": None,
        "duration_ms": 1000,
        "exit_code": 0,
        "signal": None,
    }


class Faults:
    """The queue of faults (a base of the stand-in, which shares its lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: collections.deque[Fault] = collections.deque()
        self._throttle_until = 0.0

    def _add(self, fault: str, times: int, **params: Any) -> None:
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(fault, params))

    def next_fault(self) -> Fault | None:
        """The fault for the invocation at hand, if any."""
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def put_back(self, fault: Fault | None) -> None:
        """Keep a fault for the next invocation (this one did not run)."""
        if fault is not None:
            with self._lock:
                self._faults.appendleft(fault)

    def throttled_now(self) -> bool:
        """True during a throttle_for() squeeze."""
        return time.monotonic() < self._throttle_until

    def throttle(
        self,
        times: int = 1,
        retry_after: str = "1",
        reason: str = "ReservedFunctionConcurrentInvocationLimitExceeded",
    ) -> None:
        """Answer the next `times` invocations with 429 TooManyRequestsException."""
        self._add("throttle", times, retry_after=retry_after, reason=reason)

    def throttle_for(self, seconds: float) -> None:
        """Answer every invocation with 429 for the next `seconds` (an account-level squeeze)."""
        with self._lock:
            self._throttle_until = time.monotonic() + seconds

    def malformed_response(self, body: bytes, times: int = 1) -> None:
        """Run the next invocations normally, then answer 200 with `body` instead."""
        self._add("malformed", times, body=body)

    def function_error(
        self, error_type: str, message: str, kind: str = "Unhandled", times: int = 1
    ) -> None:
        """Run the next invocations, then answer with this function error instead."""
        self._add("function_error", times, error_type=error_type, message=message, kind=kind)

    def service_error(self, status: int, code: str, message: str, times: int = 1) -> None:
        """Answer the next invocations with a Lambda service error, without running them."""
        self._add("service_error", times, status=status, code=code, message=message)

    def delay_response(self, seconds: float, times: int = 1) -> None:
        """Run the next invocations, then hold the answer back for `seconds`."""
        self._add("delay", times, seconds=seconds)

    def cut_off(self, seconds: float, times: int = 1) -> None:
        """Kill the next invocations after `seconds`, though their context says more is left."""
        self._add("cutoff", times, seconds=seconds)

    def kill_runtime(self, after_s: float = 0.2, *, oom: bool = False, times: int = 1) -> None:
        """SIGKILL the runtime `after_s` into the next invocations; with `oom`, Lambda reports
        it as Runtime.OutOfMemory (its memory accounting killed it), else Runtime.ExitError."""
        self._add("kill_runtime", times, after_s=after_s, oom=oom)

    @staticmethod
    def apply_runtime_fault(
        fault: Fault | None, environment: Environment, invocation: Invocation
    ) -> None:
        """Start what a fault does to a running invocation (kill_runtime)."""
        if fault is None or fault.kind != "kill_runtime":
            return

        def kill() -> None:
            if not invocation.delivered.wait(60):
                return
            if invocation.done.wait(fault.params["after_s"]):
                return  # it ended first
            pid = environment.runtime_pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

        threading.Thread(target=kill, daemon=True).start()
