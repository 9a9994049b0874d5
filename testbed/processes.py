"""Processes a test starts are registered here, so that a failing test cannot leave a serve or
worker running into the next test (or past the session)."""

from __future__ import annotations

import os
import subprocess
import threading
from typing import Any

_BOTS_OWN = ("SLACK_", "JOBBOT_", "DATABASE_URL", "AWS_")

_started: list[subprocess.Popen[Any]] = []


def clean_env(**settings: str) -> dict[str, str]:
    """This environment without any of the bot's settings (a test's process gets only those
    it is given), plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_BOTS_OWN)}
    env.update(settings)
    return env


_lock = threading.Lock()


def track(process: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
    """Remember a process started by the current test."""
    with _lock:
        _started.append(process)
    return process


def mark() -> int:
    """A point in the register: `kill_leftovers(mark())` later spares what was started before."""
    with _lock:
        return len(_started)


def kill_leftovers(since: int = 0) -> list[int]:
    """SIGKILL and reap every process tracked since `since` still running; their pids.

    A test passes the mark taken at its start, so the processes of module- or session-scoped
    fixtures (started before it) live on; the session's end passes 0."""
    with _lock:
        started, _started[since:] = _started[since:], []
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
