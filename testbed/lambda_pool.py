"""The stand-in's execution environments: one process tree and Runtime API each, and the pool
that routes invocations to them (by tenant id when the function is per-tenant).

Routing follows Lambda: an invocation goes to an environment whose runtime is ready (it has
asked for the next event), of the invocation's tenant when the function is per-tenant
("execution environments are not shared between different tenants, but can be reused for
the same tenant"); else a new environment starts (a cold start). An environment that has
answered but not yet asked again is given a moment to do so before a new one is started, so
sequential invocations stay warm as they do on Lambda.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.lambda_faults import function_error_body
from testbed.lambda_runtime_api import SYNC_PAYLOAD_LIMIT, Invocation, RuntimeApi, RuntimeState
from testbed.processes import descendants

SUPPORT = Path(__file__).resolve().parent
READY_GRACE_S = 5.0  # how long an invocation waits for a finishing environment to be ready
INIT_LIMIT_S = 10.0  # Lambda's limit on an on-demand environment's init phase
# Go's names of signals, as rapid prints a runtime's end ("signal: killed")
_GO_SIGNAL_NAMES = {
    signal.SIGHUP: "hangup",
    signal.SIGINT: "interrupt",
    signal.SIGQUIT: "quit",
    signal.SIGILL: "illegal instruction",
    signal.SIGTRAP: "trace/breakpoint trap",
    signal.SIGABRT: "aborted",
    signal.SIGBUS: "bus error",
    signal.SIGFPE: "floating point exception",
    signal.SIGKILL: "killed",
    signal.SIGUSR1: "user defined signal 1",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGUSR2: "user defined signal 2",
    signal.SIGPIPE: "broken pipe",
    signal.SIGALRM: "alarm clock",
    signal.SIGTERM: "terminated",
    signal.SIGXCPU: "CPU time limit exceeded",
    signal.SIGSYS: "bad system call",
}


def termination_text(line: str) -> str:
    """rapid's words for a runtime's end ("exit 1" -> "exit status 1", "signal 9" -> "signal:
    killed"); "" for a clean exit, which rapid reports as exiting without a reason."""
    kind, _, number = line.strip().partition(" ")
    if kind == "signal" and number.isdigit():
        signum = int(number)
        try:
            name = _GO_SIGNAL_NAMES.get(signal.Signals(signum), f"signal {signum}")
        except ValueError:
            name = f"signal {signum}"
        return f"signal: {name}"
    if kind == "exit" and number.isdigit() and int(number) != 0:
        return f"exit status {number}"
    return ""


def _namespace_pids(pid: int) -> list[str]:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("NSpid:"):
                return line.split()[1:]
    return []


class Environment:
    """One execution environment: a namespaced process tree (or, with `config` None, only the
    Runtime API, driven by a test as the runtime) and its Runtime API.

    Args:
        index: its number in the stand-in (records name it).
        tenant_id: the tenant it serves (None: a function without tenant isolation).
        api: its Runtime API.
        config: the launcher's configuration (testbed/lambda_environment.py), given the
            Runtime API's address; None for an external runtime.
        log_path: where the launcher's and the runtime's output go.
    """

    def __init__(
        self,
        index: int,
        tenant_id: str | None,
        api: RuntimeApi,
        config: Callable[[str], dict[str, Any]] | None,
        log_path: Path,
    ) -> None:
        self.index = index
        self.tenant_id = tenant_id
        self.api = api
        self.reserved = False  # an invocation is assigned and not finished
        self.dead = threading.Event()
        self.termination: str | None = None  # rapid's words, once the runtime ended by itself
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        if config is None:
            return
        status_read, status_write = os.pipe()
        launch = {**config(api.address), "status_fd": status_write}
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SUPPORT / "lambda_environment.py")],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.defpath},
                pass_fds=(status_write,),
            )
        os.close(status_write)
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(launch).encode())
        self.process.stdin.close()
        threading.Thread(target=self._watch, args=(status_read,), daemon=True).start()

    def _watch(self, status_read: int) -> None:
        assert self.process is not None
        self.process.wait()
        os.set_blocking(status_read, False)
        try:
            line = os.read(status_read, 256).decode(errors="replace")
        except BlockingIOError:
            line = ""  # killed from outside (a reset): the runtime did not end by itself
        finally:
            os.close(status_read)
        if line:
            self.termination = termination_text(line)
        self.dead.set()
        self.api.end_current("exit")

    @property
    def external(self) -> bool:
        """True when a test, not a launched process, acts as the runtime."""
        return self.process is None

    def runtime_pid(self) -> int | None:
        """The runtime process's pid as this machine sees it (None: not running)."""
        if self.process is None or self.dead.is_set():
            return None
        for pid in descendants(self.process.pid):
            if _namespace_pids(pid)[1:] == ["2"]:  # the environment's init forks it first
                return pid
        return None

    def exit_error(self, request_id: str, oom: bool) -> bytes:
        """The function error of an invocation whose runtime ended, in rapid's words."""
        self.dead.wait(5)
        reason = self.termination
        cause = (
            f"Runtime exited with error: {reason}"
            if reason
            else "Runtime exited without providing a reason"
        )
        # Lambda's memory accounting, not the runtime, tells an out-of-memory kill apart
        error_type = "Runtime.OutOfMemory" if oom else "Runtime.ExitError"
        return function_error_body(error_type, f"RequestId: {request_id} Error: {cause}")

    def kill(self) -> None:
        """Reset the environment: everything in its PID namespace dies with the launcher."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.dead.wait(5)
        else:
            self.dead.set()
            self.api.end_current("exit")
        self.api.close()


class Pool:
    """Environments and the routing of invocations to them. Thread-safe.

    Args:
        make: starts a new environment for a tenant (given its index).
        per_tenant: route by tenant id (the function has TenantIsolationMode PER_TENANT).
    """

    def __init__(
        self, make: Callable[[int, str | None], Environment], *, per_tenant: bool = False
    ) -> None:
        self._make = make
        self.per_tenant = per_tenant
        self._cond = threading.Condition()
        self.environments: list[Environment] = []
        self._reinit: collections.Counter[str | None] = collections.Counter()

    def notify(self) -> None:
        """An environment's runtime became ready (or one died): look again."""
        with self._cond:
            self._cond.notify_all()

    def _serves(self, environment: Environment, tenant_id: str | None) -> bool:
        if environment.dead.is_set() or environment.reserved:
            return False
        return not self.per_tenant or environment.tenant_id == tenant_id

    def acquire(self, tenant_id: str | None) -> tuple[Environment, bool]:
        """(an environment reserved for one invocation, True if the invocation's timeout
        counts its init: a new environment replacing one that was reset)."""
        deadline = time.monotonic() + READY_GRACE_S
        with self._cond:
            while True:
                candidates = [e for e in self.environments if self._serves(e, tenant_id)]
                for environment in reversed(candidates):  # the most recently used first
                    if environment.api.idle():
                        environment.reserved = True
                        return environment, False
                finishing = [
                    e
                    for e in candidates
                    if e.api.state in (RuntimeState.STARTED, RuntimeState.RESPONDED)
                ]
                left = deadline - time.monotonic()
                if not finishing or left <= 0:
                    break
                self._cond.wait(left)
            environment = self._start(tenant_id)
            environment.reserved = True
            counts_init = self._reinit[tenant_id] > 0
            if counts_init:
                self._reinit[tenant_id] -= 1
            return environment, counts_init

    def _start(self, tenant_id: str | None) -> Environment:
        environment = self._make(len(self.environments), tenant_id)
        self.environments.append(environment)
        return environment

    def reset(self, environment: Environment) -> None:
        """Lambda resets an environment after a timeout or a crash; its re-init then counts
        into the timeout of the invocation that meets it."""
        environment.kill()
        with self._cond:
            self._reinit[environment.tenant_id] += 1
            self._cond.notify_all()

    def run(
        self,
        invocation: Invocation,
        timeout_s: float,
        *,
        oom: bool = False,
        started: Callable[[Environment, Invocation], None] = lambda e, i: None,
    ) -> tuple[int, bytes, str | None]:
        """Route an invocation, wait for its end: (environment index, body, function error).

        `timeout_s` is the timeout enforced (a test may cut an invocation off early); `oom`
        makes a runtime killed meanwhile Lambda's Runtime.OutOfMemory."""
        environment, invocation.counts_init = self.acquire(invocation.tenant_id)
        try:
            environment.api.assign(invocation)
            started(environment, invocation)
            request_id = invocation.request_id
            if not invocation.wait_end(timeout_s, INIT_LIMIT_S):
                self.reset(environment)
                message = f"Task timed out after {timeout_s:.2f} seconds"
                body = function_error_body(
                    "Sandbox.Timedout", f"RequestId: {request_id} Error: {message}"
                )
                return environment.index, body, "Unhandled"
            if invocation.outcome == "exit":
                self.reset(environment)
                return environment.index, environment.exit_error(request_id, oom), "Unhandled"
            if invocation.outcome == "oversized":
                message = (
                    "Response payload size exceeded maximum allowed payload size "
                    f"({SYNC_PAYLOAD_LIMIT} bytes)."
                )
                body = function_error_body("Function.ResponseSizeTooLarge", message)
                return environment.index, body, "Unhandled"
            function_error = "Unhandled" if invocation.outcome == "error" else None
            return environment.index, invocation.body, function_error
        finally:
            self.release(environment)

    def release(self, environment: Environment) -> None:
        """The invocation is over; the environment serves again once its runtime is ready."""
        with self._cond:
            environment.reserved = False
            self._cond.notify_all()

    def warm_up(self, count: int, tenant_id: str | None = None) -> None:
        """Start environments (of `tenant_id`) until `count` are alive."""
        with self._cond:
            alive = [e for e in self.environments if self._serves(e, tenant_id)]
            for _ in range(count - len(alive)):
                self._start(tenant_id)

    def all(self) -> list[Environment]:
        """Every environment started so far."""
        with self._cond:
            return list(self.environments)
