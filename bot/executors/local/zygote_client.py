"""The executor's side of the zygote: start it, hand it jobs, restart it when it dies."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from bot.sandbox import boot
from bot.sandbox.environment import base_env
from bot.sandbox.protocol import SandboxCalledOff, SandboxFailed, SandboxUnavailable
from bot.sandbox.zygote import cgroups, frames

LIGHT, HEAVY = b"J", b"H"  # the zygote's templates: the standard library, or the packages too
ACK_TIMEOUT_S = 30.0  # a healthy zygote forks a supervisor in milliseconds
GRACE_S = 30.0  # past the job's own limit, before we give up on its supervisor
RESPONSE_LIMIT = 1 << 30


def _after(seconds: float) -> float:
    return time.monotonic() + seconds


def package_pattern(modules: Iterable[str]) -> re.Pattern[str] | None:
    """What marks a job's code as using a preloaded package: the top-level name as a word
    (`import pandas as pd`, `from matplotlib import pyplot`), or None if nothing is preloaded.

    A word in a comment or a string also counts; a name built at run time does not, and
    such a job imports the package itself: slower, with the same result.
    """
    tops = sorted({m.partition(".")[0] for m in modules})
    return re.compile(r"\b(?:" + "|".join(map(re.escape, tops)) + r")\b") if tops else None


def _once(fn: Callable[[], bool]) -> Callable[[], bool]:
    """`fn` called at most once; later calls repeat its answer (a retried attempt must not
    commit the start twice)."""
    answers: list[bool] = []

    def gate() -> bool:
        if not answers:
            answers.append(fn())
        return answers[0]

    return gate


def _pass_gate(sock: socket.socket, start: Callable[[], bool]) -> None:
    """Call the start gate while the supervisor sets the job's process up; return on a yes.
    A "no" (or a gate that raised) is told the supervisor, and leaves nothing run."""
    go = False
    try:
        go = start()
    finally:
        if not go:
            _call_off(sock)
    if not go:
        raise SandboxCalledOff("the run was called off before it started")


def _call_off(sock: socket.socket) -> None:
    """Tell the supervisor "no", and let it put the prepared process down and answer
    before we go (the go pipe it may have sent us is closed unused)."""
    with contextlib.suppress(OSError):
        frames.send(sock, {"go": False}, _after(ACK_TIMEOUT_S))
        deadline = _after(ACK_TIMEOUT_S)
        while True:
            frame, fds = frames.recv_fds(sock, RESPONSE_LIMIT, deadline)
            for fd in fds:
                os.close(fd)
            if frame is None or ("ack" not in frame and "ready" not in frame):
                break


def _start_code(sock: socket.socket) -> dict[str, Any] | None:
    """After the gate's yes: start the job's code. Once the job is delivered its
    supervisor sends the job process's go pipe; one byte on it starts the code (one
    hand-off less than through the supervisor), which the supervisor is told next. The
    supervisor's answer instead, if it could not set the job up: nothing ran."""
    try:
        frame, fds = frames.recv_fds(sock, RESPONSE_LIMIT, _after(ACK_TIMEOUT_S))
    except OSError as exc:  # the code cannot start without the go we hold
        raise SandboxUnavailable(f"the job supervisor is gone: {exc}") from exc
    if not isinstance(frame, dict):
        for fd in fds:
            os.close(fd)
        raise SandboxUnavailable("the job supervisor is gone")
    if "ready" not in frame or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return frame
    try:
        os.write(fds[0], frames.GO)
    except OSError:
        pass  # the job's process died setting up: its supervisor reports the crash
    finally:
        os.close(fds[0])
    try:  # from here on the code may run
        frames.send(sock, {"go": True}, _after(ACK_TIMEOUT_S))
    except OSError as exc:
        raise SandboxFailed(f"the job supervisor is gone: {exc}") from exc
    return None


class _Stops:
    """The runs in progress, by job id, and how to reach each one's supervisor to stop it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[int, socket.socket | None] = {}  # None: its code cannot run yet
        self._asked: set[int] = set()

    def begin(self, job_id: int) -> None:
        """A run of the job started (its code is not running yet)."""
        with self._lock:
            self._runs[job_id] = None

    def reachable(self, job_id: int, sock: socket.socket) -> None:
        """The job's code may run from now on; a stop asked for earlier is sent now."""
        with self._lock:
            if job_id in self._runs:
                self._runs[job_id] = sock
                if job_id in self._asked:
                    self._send(sock)

    def unreachable(self, job_id: int) -> None:
        """The supervisor of this attempt is done (a retry may reach another)."""
        with self._lock:
            if job_id in self._runs:
                self._runs[job_id] = None

    def end(self, job_id: int) -> None:
        """The run is over."""
        with self._lock:
            self._runs.pop(job_id, None)
            self._asked.discard(job_id)

    def stop(self, job_id: int) -> bool:
        """Stop the job's run: now if its code may be running, else as soon as it may.
        False when no run of that job is in progress."""
        with self._lock:
            if job_id not in self._runs:
                return False
            self._asked.add(job_id)
            sock = self._runs[job_id]
            if sock is not None:
                self._send(sock)
            return True

    @staticmethod
    def _send(sock: socket.socket) -> None:
        # the run's thread reads this socket meanwhile: send one small, whole frame
        with contextlib.suppress(OSError):
            sock.sendall(frames.encode({"stop": True}))


class ZygoteClient:
    """Starts the zygote and sends it jobs; thread-safe, restarts the zygote when it died.

    Jobs whose code names a preloaded package (`packages`, a pattern) go to the zygote's
    package template; the rest to its light one, which forks faster.
    """

    def __init__(
        self,
        python: str,
        config: dict[str, Any],
        *,
        start_timeout_s: float = 30.0,
        packages: re.Pattern[str] | None = None,
    ):
        self._python = python
        self._config = {**config, "start_s": start_timeout_s}
        self._start_timeout_s = start_timeout_s
        self._packages = packages
        self._stops = _Stops()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._hello: dict[str, Any] = {}
        self._starts = 0
        self._closed = False

    @property
    def hello(self) -> dict[str, Any]:
        """What the current zygote reported about its isolation."""
        return self._hello

    @property
    def pid(self) -> int | None:
        """The zygote's pid while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> dict[str, Any]:
        """Start the zygote unless it is running; its hello."""
        with self._lock:
            self._ensure()
            return self._hello

    def _ensure(self) -> None:
        if self._closed:
            raise SandboxUnavailable("the executor is closed")
        if self._proc is not None and self._proc.poll() is None:
            return
        self._stop()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        config = {**self._config, "sweep": self._starts == 0}
        try:
            with child:
                self._proc = subprocess.Popen(
                    boot.command(self._python, "zygote.zygote", "main", str(child.fileno())),
                    env=base_env(),  # exec'd fresh with an allow-list: none of the bot's secrets
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    pass_fds=[child.fileno()],
                    start_new_session=True,  # a Ctrl-C meant for the bot must not hit it
                )
            parent.settimeout(self._start_timeout_s)
            parent.send(json.dumps(config).encode())
            data = parent.recv(1 << 20)
        except OSError as exc:
            parent.close()
            self._stop()
            raise SandboxUnavailable(f"the zygote did not start: {exc}") from exc
        if not data:
            parent.close()
            code = self._stop()
            raise SandboxUnavailable(f"the zygote exited during setup (status {code})")
        parent.settimeout(None)
        self._ctrl = parent
        self._hello = json.loads(data)
        self._starts += 1

    def _stop(self) -> int | None:
        """Forget the current zygote, killing it if it still runs; its exit status."""
        if self._ctrl is not None:
            self._ctrl.close()
            self._ctrl = None
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        try:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _hand_over(self, theirs: socket.socket, template: bytes) -> None:
        with self._lock:
            self._ensure()
            ctrl = self._ctrl
            if ctrl is None:
                raise SandboxUnavailable("the zygote is not running")
            try:
                socket.send_fds(ctrl, [template], [theirs.fileno()])
            except OSError as exc:  # it died since we looked; the next call restarts it
                self._stop()
                raise SandboxUnavailable(f"the zygote is gone: {exc}") from exc

    def _attempt(
        self, job: dict[str, Any], timeout_s: float, start: Callable[[], bool] | None
    ) -> dict[str, Any]:
        code = job["request"].get("code")
        heavy = self._packages is not None and isinstance(code, str)
        template = HEAVY if heavy and self._packages.search(code) else LIGHT  # type: ignore[union-attr]
        template += str(job["slot"]).encode()  # the zygote hands it to the slot's template
        job_id = job["request"].get("job_id")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        with ours:
            with theirs:
                self._hand_over(theirs, template)
            try:
                frames.send(ours, {**job, "gated": start is not None}, _after(ACK_TIMEOUT_S))
            except OSError as exc:
                raise SandboxUnavailable(f"the zygote did not take the job: {exc}") from exc
            if start is not None:
                # while the zygote forks the job's supervisor and it sets the process up
                _pass_gate(ours, start)
            try:
                ack = frames.recv(ours, 4096, _after(ACK_TIMEOUT_S))
            except OSError as exc:
                raise SandboxUnavailable(f"the zygote did not take the job: {exc}") from exc
            if ack is None:
                raise SandboxUnavailable("the zygote closed the job connection")
            reply = _start_code(ours) if start is not None else None
            if isinstance(job_id, int):
                self._stops.reachable(job_id, ours)
            try:
                if reply is None:
                    deadline = time.monotonic() + timeout_s + GRACE_S
                    reply = frames.recv(ours, RESPONSE_LIMIT, deadline)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.kill(int(ack["ack"]), signal.SIGKILL)
                raise SandboxFailed(f"no answer from the job supervisor: {exc}") from exc
            finally:
                if isinstance(job_id, int):
                    self._stops.unreachable(job_id)
        if reply is None:
            raise SandboxFailed("the job supervisor died without an answer")
        if "called_off" in reply:
            raise SandboxCalledOff("the run was called off before it started")
        if "unavailable" in reply:
            raise SandboxUnavailable(str(reply["unavailable"]))
        response: dict[str, Any] = reply["response"]
        return response

    def run(
        self,
        slot: int,
        request: dict[str, Any],
        timeout_s: float,
        start: Callable[[], bool] | None = None,
    ) -> dict[str, Any]:
        """Run a v1 request in `slot`; the v1 response.

        With a `start` gate, the job's process is set up while `start()` runs, and the code
        starts only if it returned True (it is called once, even across the retry below;
        False raises SandboxCalledOff).
        Raises SandboxUnavailable if the job never started (retried once here first),
        SandboxFailed if the supervisor failed after taking the job.
        """
        job = {"slot": slot, "request": request}
        gate = None if start is None else _once(start)
        job_id = request.get("job_id")
        if isinstance(job_id, int):
            self._stops.begin(job_id)
        try:
            try:
                return self._attempt(job, timeout_s, gate)
            except SandboxCalledOff:
                raise
            except SandboxUnavailable:
                if self._closed:
                    raise
            return self._attempt(job, timeout_s, gate)
        finally:
            if isinstance(job_id, int):
                self._stops.end(job_id)

    def stop(self, job_id: int) -> bool:
        """Stop the run of `job_id` (see LocalExecutor.stop); False if none is in progress."""
        return self._stops.stop(job_id)

    def close(self) -> None:
        """Stop the zygote and remove its cgroups (running jobs must have finished)."""
        with self._lock:
            self._closed = True
            if self._ctrl is not None:
                with contextlib.suppress(OSError):
                    self._ctrl.send(b"Q")
            self._stop()
            cgroups.remove(self._hello.get("cgroup", {}).get("created", ()))
