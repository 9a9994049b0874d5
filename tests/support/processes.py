"""Processes a test starts are registered here, so that a failing test cannot leave a serve or
worker running into the next test (or past the session)."""

from __future__ import annotations

import subprocess
import threading
from typing import Any

_started: list[subprocess.Popen[Any]] = []
_lock = threading.Lock()


def track(process: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    """Remember a process started by the current test."""
    with _lock:
        _started.append(process)
    return process


def kill_leftovers() -> list[int]:
    """SIGKILL and reap every tracked process still running; their pids."""
    with _lock:
        started, _started[:] = list(_started), []
    killed = []
    for process in started:
        if process.poll() is None:
            process.kill()
            killed.append(process.pid)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
    return killed
