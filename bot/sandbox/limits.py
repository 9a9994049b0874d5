"""Per-process limits: rlimits, privilege drop, the prctl switches (via ctypes), closed fds."""

from __future__ import annotations

import math
import os
import resource
import signal
from functools import cache
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import ctypes

MIB = 1024 * 1024

PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38


class Limits(NamedTuple):
    """Limits that do not come with each request (time and memory do).

    A NamedTuple, not a dataclass, like the other value objects a fresh child imports:
    `dataclasses` pulls in `inspect`, ~7 ms of every fresh job's start.
    """

    max_procs: int = 64  # processes and threads of one job, the first included
    max_file_bytes: int = 64 * MIB  # largest file a job may write
    max_open_files: int = 256


@cache
def libc() -> ctypes.CDLL:
    """The C library, with errno kept for error messages (ctypes loads lazily: it is slow)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    """Raise OSError with errno when a libc call returned -1."""
    if result == -1:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def prctl(option: int, value: int) -> None:
    """prctl(option, value, 0, 0, 0), raising OSError on failure."""
    import ctypes

    fn = libc().prctl
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    check(fn(option, value, 0, 0, 0), f"prctl({option})")


def set_dumpable(flag: bool) -> None:
    """Non-dumpable processes keep /proc/<pid>/environ, mem, fd and ptrace from same-uid peers."""
    prctl(PR_SET_DUMPABLE, int(flag))


def set_child_subreaper() -> None:
    """Orphaned descendants (setsid + double fork) get re-parented to us instead of init."""
    prctl(PR_SET_CHILD_SUBREAPER, 1)


def _set(kind: int, value: int) -> None:
    _, hard = resource.getrlimit(kind)
    # an unprivileged process can only lower its hard limit
    if hard != resource.RLIM_INFINITY and os.geteuid() != 0:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def cpu_seconds(timeout_s: float) -> int:
    """The RLIMIT_CPU soft limit: a backstop just past the wall-clock limit."""
    return math.ceil(timeout_s) + 1


def apply_rlimits(limits: Limits, *, nproc: int) -> None:
    """Set this process's rlimits that no request changes; children inherit them."""
    _set(resource.RLIMIT_FSIZE, limits.max_file_bytes)
    _set(resource.RLIMIT_NOFILE, limits.max_open_files)
    _set(resource.RLIMIT_NPROC, nproc)
    _set(resource.RLIMIT_CORE, 0)


def apply_job_rlimits(address_space: int, timeout_s: float) -> None:
    """The request's own rlimits: address space (bytes) and the CPU-time backstop. They only
    lower limits, so they work after privileges are gone too."""
    _set(resource.RLIMIT_AS, address_space)
    soft = cpu_seconds(timeout_s)
    _set_pair(resource.RLIMIT_CPU, soft, soft + 1)


def _set_pair(kind: int, soft: int, hard: int) -> None:
    _, old_hard = resource.getrlimit(kind)
    if old_hard != resource.RLIM_INFINITY and os.geteuid() != 0:
        hard = min(hard, old_hard)
        soft = min(soft, hard)
    resource.setrlimit(kind, (soft, hard))


def threads_of(uid: int) -> int:
    """How many threads `uid` runs now: RLIMIT_NPROC counts threads of the real uid."""
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{name}/task"))
            except OSError:  # gone meanwhile, or not ours to look at
                continue
    return count


def forbid_new_privileges() -> None:
    """No exec can grant privileges any more (setuid binaries such as su stay powerless)."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def drop_privileges(uid: int, gid: int) -> None:
    """Become uid/gid for good, with no supplementary groups and no way back up."""
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    forbid_new_privileges()
    # changing uid made us non-dumpable, which would hide /proc/self/fd from the job itself
    set_dumpable(True)


def die_with_parent(signum: int) -> None:
    """Get `signum` when the parent dies (must come after any uid change, which resets it)."""
    prctl(PR_SET_PDEATHSIG, signum)


def go_with(parent: int) -> None:
    """In a forked child: be killed when `parent`, the process that forked it, dies; exit at
    once if it died already (before the switch was on)."""
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def close_all_but(keep: set[int]) -> None:
    """Close every open fd of this process that is not in `keep`, so nothing of the caller's
    reaches the job (close_range(2) where the kernel has it: no /proc listing)."""
    low = 0
    for fd in sorted(keep):
        if low < fd:  # closerange(n, n) would close everything from n on (3.11)
            os.closerange(low, fd)
        low = fd + 1
    # an fd at or above the soft RLIMIT_NOFILE cannot be open unless the limit was lowered
    # after it was made, which nothing here does
    os.closerange(low, max(resource.getrlimit(resource.RLIMIT_NOFILE)[0], low + 1024))
