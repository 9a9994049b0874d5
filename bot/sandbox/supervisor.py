"""Parent side of one run: reads capped stdout/stderr/record, enforces the deadline, kills."""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import reaper
from .capture import Capture

_CHUNK = 65536
_DRAIN_S = 2.0  # after the job ends, how long its pipes may take to reach EOF
_POLL_S = 0.02  # without a pidfd, how often to look for the child's exit


@dataclass(frozen=True)
class Observation:
    """What happened to the child, as seen from outside."""

    stdout: Capture
    stderr: Capture
    record: Capture
    wait_status: int
    timed_out: bool
    duration_ms: int
    stopped: bool = False  # stopped on request (or because the caller went away)


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux < 5.3 or a platform without pidfds
        return None


def _exited(pid: int) -> int | None:
    done, status = os.waitpid(pid, os.WNOHANG)
    return status if done else None


def _pump(sel: selectors.BaseSelector, captures: dict[int, Capture], timeout: float) -> set[int]:
    """Read what is ready into the captures; the other fds that fired (unregistered)."""
    fired: set[int] = set()
    for key, _ in sel.select(max(timeout, 0)):
        capture = captures.get(key.fd)
        if capture is None:
            sel.unregister(key.fd)
            fired.add(key.fd)
            continue
        data = os.read(key.fd, _CHUNK)
        if data:
            capture.feed(data)
        else:
            sel.unregister(key.fd)
    return fired


def _wait_for_exit(
    pid: int,
    pidfd: int | None,
    sel: selectors.BaseSelector,
    captures: dict[int, Capture],
    deadline: float,
    *,
    stop_fd: int | None,
) -> tuple[int, str | None]:
    """(wait status, why it was killed: "timeout", "stop" or None): the child's end,
    reading its output meanwhile."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            reaper.killpg(pid)
            return os.waitpid(pid, 0)[1], "timeout"
        fired = _pump(sel, captures, left if pidfd is not None else min(_POLL_S, left))
        if stop_fd is not None and stop_fd in fired:
            reaper.killpg(pid)
            return os.waitpid(pid, 0)[1], "stop"
        if pidfd in fired or pidfd is None:
            status = _exited(pid)
            if status is not None:
                return status, None


def _drain(sel: selectors.BaseSelector, captures: dict[int, Capture], until: float) -> None:
    while any(fd in sel.get_map() for fd in captures):
        left = until - time.monotonic()
        if left <= 0:
            return
        _pump(sel, captures, left)


def supervise(
    pid: int,
    stdout_fd: int,
    stderr_fd: int,
    record_fd: int,
    *,
    timeout_s: float,
    max_output_bytes: int,
    max_record_bytes: int,
    kill_rest: Callable[[], object],
    stop_fd: int | None = None,
) -> Observation:
    """Watch child `pid` until it exits or the deadline passes; the fds are read-ends we own.

    At the deadline, or as soon as `stop_fd` (the caller's, not closed here) is readable,
    the child's process group is SIGKILLed. Once the child is gone, `kill_rest()` removes
    every other process of the job, then the pipes are drained. The fds are closed on
    return; what was read before the kill is kept.
    """
    start = time.monotonic()
    captures = {stdout_fd: Capture(max_output_bytes), stderr_fd: Capture(max_output_bytes)}
    captures[record_fd] = Capture(max_record_bytes)
    pidfd = _pidfd(pid)
    sel = selectors.DefaultSelector()
    try:
        for fd in captures:
            sel.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ)
        if stop_fd is not None:
            sel.register(stop_fd, selectors.EVENT_READ)
        deadline = start + timeout_s
        status, killed = _wait_for_exit(pid, pidfd, sel, captures, deadline, stop_fd=stop_fd)
        ended = time.monotonic()
        kill_rest()
        _drain(sel, captures, time.monotonic() + _DRAIN_S)
    finally:
        sel.close()
        for owned in (*captures, pidfd):
            if owned is not None:
                os.close(owned)
    return Observation(
        stdout=captures[stdout_fd],
        stderr=captures[stderr_fd],
        record=captures[record_fd],
        wait_status=status,
        timed_out=killed == "timeout",
        duration_ms=max(0, round((ended - start) * 1000)),
        stopped=killed == "stop",
    )
