"""Kills whatever is left of a job and reaps it: its process group, cgroup, uid and orphans."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

_POLL_S = 0.002


def children(pid: int) -> set[int]:
    """The current children of `pid` (all its threads'), zombies included."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        found: set[int] = set()
        for tid in tasks:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                found.update(int(x) for x in fh.read().split())
        return found
    except FileNotFoundError:  # no CONFIG_PROC_CHILDREN: scan every process's parent
        return {p for p, ppid in _parents().items() if ppid == pid}


def _parents() -> dict[int, int]:
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as fh:
                    stat = fh.read()
            except OSError:
                continue
            # the command name may contain spaces and ')'; the fields after the last ')' do not
            parents[int(name)] = int(stat[stat.rindex(b")") + 2 :].split()[1])
    return parents


def alive(pid: int) -> bool:
    """Whether process `pid` exists (someone else's counts too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill(pid: int) -> None:
    """SIGKILL one process, if it still exists."""
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_and_reap(pid: int) -> None:
    """SIGKILL one child of ours and wait for it."""
    kill(pid)
    os.waitpid(pid, 0)


def killpg(pgid: int) -> None:
    """SIGKILL a whole process group, if it still exists."""
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid`: a helper becomes that uid and calls kill(-1).

    Only safe for a uid that belongs to the job alone. kill(-1) runs under the kernel's
    task-list lock, so a forking job cannot slip a new process past it.
    """
    helper = os.fork()
    if helper == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        finally:
            os._exit(0)
    os.waitpid(helper, 0)


def reap_all() -> bool:
    """Reap every exited child without blocking; True when no children are left at all."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def sweep_own(
    pgid: int | None = None,
    *,
    cgroup_procs: Callable[[], list[int]] | None = None,
    uid: int | None = None,
    deadline_s: float = 5.0,
) -> bool:
    """For a subreaper that owns all its children: kill and reap every process of the job
    (its process group `pgid` first, then every child this process has, the job's cgroup
    or uid included when given).

    As a child subreaper this process inherits every orphaned descendant (setsid and
    double-fork escapees included), so "no children" means "nothing of the job left".
    Returns False if something survived until the deadline.
    """
    deadline = time.monotonic() + deadline_s
    if pgid is not None:
        killpg(pgid)
    while True:
        victims = children(os.getpid())
        if cgroup_procs is not None:
            victims.update(cgroup_procs())
        elif uid is not None:
            kill_uid(uid)
        for pid in victims:
            kill(pid)
        gone = reap_all()
        # with nothing of the job found, none of it is left to start another process
        if gone and (cgroup_procs is None or not victims or not cgroup_procs()):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)


def sweep_orphans(pgid: int, before: set[int], deadline_s: float = 5.0) -> bool:
    """For a caller with children of its own: kill the job's group and the orphans it adopted.

    `before` lists the caller's children from before the job; only newer ones are touched.
    """
    deadline = time.monotonic() + deadline_s
    killpg(pgid)
    me = os.getpid()
    while True:
        mine = children(me) - before
        if not mine:
            return True
        for pid in mine:
            kill(pid)
        for pid in mine:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
