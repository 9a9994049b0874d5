"""How a fork of a template becomes one job's process, step by step, before any user code.

After the fork from the template, in this order (the supervisor did the steps before the
job's process existed; everything that needs root comes before the privileges go):

  supervisor:  the slot's uid and gid chosen, the slot cleared of anything left behind
               namespaces: the slot's network namespace, a private mount and IPC namespace
               with a fresh tmpfs behind /tmp, /var/tmp, /dev/shm and /run/lock
               the job directory, owned by the job's uid; the slot cgroup's memory limit
  job process: 1. a process group of its own, killed as one (not a new session: that makes
                  a scheduler autogroup per job, which costs milliseconds; the zygote's
                  session has no terminal, and all jobs share its autogroup's CPU share)
               2. the slot's cgroup (pids and memory of the job's processes together); a job
                  forked from a slot template (slots.py) is born in it
               3. rlimits (file size, open files, processes; once the request is known, CPU
                  time and the address-space backstop)
               4. descriptors: stdin, stdout, stderr and the record; every other one closed
               5. working directory and an allow-list environment
               6. randomness re-seeded (nothing forked from the template may repeat)
                  -- ready: it waits, still root, for its request (jobprocess.py) --
               7. the request's own rlimits (CPU time, the address-space backstop)
                  -- it waits, still root, for the go: the start gate's yes --
               8. privileges dropped: the slot's uid and gid, no groups, no_new_privs
               9. a seccomp filter would come last; the local executor installs none
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import sys
from typing import NamedTuple

from ..environment import job_env
from ..limits import (
    MIB,
    Limits,
    apply_job_rlimits,
    apply_rlimits,
    close_all_but,
    die_with_parent,
    drop_privileges,
    forbid_new_privileges,
    threads_of,
)
from ..protocol import Request
from . import cgroups

# RLIMIT_AS is not the memory limit: it counts the template's whole address space in every
# job (numpy and OpenBLAS reserve large areas they never touch). With a memory cgroup it is
# only a backstop, this many times the job's memory above what the process maps at the
# fork, that refuses at once an allocation that could never fit; without one it is the only
# limit, and the job gets its memory_mb above the template.
CGROUP_BACKSTOP = 4


class Slot(NamedTuple):
    """What the job's process needs to know of its slot."""

    uid: int | None
    cgroup: cgroups.Slot | None
    limits: Limits
    env: dict[str, str]
    in_slot: bool = False  # born in the slot's cgroup, from its slot template (slots.py)


def address_space(request: Request, has_memory_cgroup: bool) -> int:
    """RLIMIT_AS of the job's process: its memory above what it maps now."""
    with open("/proc/self/status") as fh:
        mapped_kb = next(int(line.split()[1]) for line in fh if line.startswith("VmSize:"))
    factor = CGROUP_BACKSTOP if has_memory_cgroup else 1
    return mapped_kb * 1024 + factor * request.memory_mb * MIB


def reseed() -> None:
    """Fresh randomness: `random` re-seeds itself at every fork (os.register_at_fork), and
    os.urandom, secrets and uuid4 ask the kernel, but numpy's global RandomState keeps the
    template's state. String hashes keep the template's secret: it is fixed when the
    interpreter starts and every dict of the template depends on it (see docs/security.md)."""
    numpy_random = sys.modules.get("numpy.random")
    if numpy_random is not None:
        numpy_random.seed(list(struct.unpack("8I", os.urandom(32))))


def become_ready(slot: Slot, workdir: str, fds: dict[int, int], keep: set[int]) -> None:
    """Steps 1-6 above, in the freshly forked child, before its request is known (still
    root: no job of the slot's uid can reach it); raises if one fails. `fds` maps the job's
    fixed slots to the fds that become them; `keep` are the pipes to the supervisor."""
    os.setpgid(0, 0)
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")  # out of memory, the kernel kills the job first (needs root here)
    if slot.cgroup is not None and not slot.in_slot:
        slot.cgroup.join()
    limits = slot.limits
    # a uid of our own starts with no processes; otherwise count what the uid runs
    # (this process included, as on its own uid)
    nproc = limits.max_procs + (0 if slot.uid is not None else threads_of(os.getuid()) - 1)
    apply_rlimits(limits, nproc=nproc)
    for target, fd in fds.items():
        os.dup2(fd, target)
    close_all_but({*fds.keys(), *keep})  # the dup2 sources too
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update(job_env(workdir, slot.env))
    reseed()


def take_request(request: Request, slot: Slot) -> None:
    """Step 7: the request's own limits (CPU time, the address-space backstop), taken while
    the start gate runs."""
    memory_cgroup = slot.cgroup is not None and slot.cgroup.memory_dir is not None
    apply_job_rlimits(address_space(request, memory_cgroup), request.timeout_s)


def become_job(slot: Slot) -> None:
    """Step 8, after the go: privileges dropped for good, and death with the supervisor."""
    if slot.uid is not None:
        drop_privileges(slot.uid, slot.uid)
    else:
        forbid_new_privileges()
    die_with_parent(signal.SIGKILL)
