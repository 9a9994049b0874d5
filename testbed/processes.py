"""Processes a test starts are registered here, so that a failing test cannot leave a serve or
worker running into the next test (or past the session); and what /proc says about them."""

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


def descendants(root: int) -> set[int]:
    """Pids of every process below `root` (children, their children, ...), now."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as fh:
                    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
                    ppid = int(fh.read().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def uid_of(pid: int) -> int | None:
    """The real uid of a process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("Uid:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def listens_on(pid: int, port: int) -> bool:
    """Whether process `pid` holds a TCP socket listening on `port` (any address)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as fh:
                rows = fh.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                inodes.add(fields[9])
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            return True
    return False
