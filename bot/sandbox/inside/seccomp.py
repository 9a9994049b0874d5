"""The job's seccomp filter on Lambda: what the job may not do to the runtime that serves it.

On Lambda the job runs as the runtime's uid, beside the runtime, in a warm environment that
serves the next invocation, maybe another user's. A job that could stop the runtime and talk
to the Runtime API could answer its own invoke and then take the next user's event (issue 9).
The fresh child installs this filter on itself after PR_SET_NO_NEW_PRIVS (which needs no
privilege) and before the user's code; it then binds the job and everything it starts, for
good. It is classic BPF built here with ctypes, for x86_64 and aarch64 (Lambda's arm64).

Refused with EPERM:
- a signal (kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo) to any task that existed
  when the job started and that the job could reach (the runtime and its threads: every task
  of its uid, or every task at all when it may signal anyone), to any process group but the
  job's own, and to -1; pidfd_send_signal outright. The protected pids are exact (runs of
  consecutive pids become one range, nothing more), so a signal to one of the job's own
  descendants is never refused, however many tasks there were and wherever pids wrap around
  (only a protected task that exits and whose pid the job's next process reuses would be);
- setting another process as the receiver of SIGIO (fcntl F_SETOWN, F_SETOWN_EX, F_SETSIG;
  ioctl FIOSETOWN, SIOCSPGRP), and changing those tasks' scheduling or priority;
- ptrace, process_vm_readv/writev, process_madvise and pidfd_getfd;
- io_uring (its operations would run past this filter);
- sockets of any family but AF_UNIX, or with the network on AF_UNIX, AF_INET, AF_INET6 and
  AF_NETLINK (never AF_VSOCK or AF_PACKET). Off, the Runtime API (TCP on loopback) is out of
  reach; on, it is not, and nothing here can tell its port from others: only tenant isolation
  keeps users apart then.
Killed on the spot: any system call of another ABI (i386 or arm32 compat, x32), whose numbers
this filter does not check.
"""

from __future__ import annotations

import os
from typing import NamedTuple

EPERM = 1
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK = 1, 2, 10, 16
F_SETOWN, F_SETSIG, F_SETOWN_EX = 8, 10, 15
FIOSETOWN, SIOCSPGRP = 0x8901, 0x8902
PRIO_PROCESS = 0
CAP_KILL, CAP_SYS_NICE = 5, 23  # either lets a process signal or reschedule any task
MAX_INSTRUCTIONS = 4096  # the kernel's limit on one classic-BPF program (BPF_MAXINSNS)
CHUNK = 32  # protected ranges checked in a row; jumps within a chunk fit a byte

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000
X32_SYSCALL_BIT = 0x40000000
NEGATIVE = 0x80000000  # a 32-bit argument at or above this is a negative pid_t
# classic BPF opcodes
LD_W_ABS = 0x20
JEQ, JGT, JGE, JA = 0x15, 0x25, 0x35, 0x05
RET_K = 0x06
# offsets in struct seccomp_data; both architectures are little-endian, so an argument's low
# 32 bits (all a pid_t, an int or an unsigned int command holds) come first
OFFSET_NR, OFFSET_ARCH = 0, 4


def arg(index: int) -> int:
    """Offset of the low word of syscall argument `index`."""
    return 16 + 8 * index


class ConfinementError(OSError):
    """The filter could not be built or installed: the job must not run."""


class Arch(NamedTuple):
    """An architecture's audit id and the numbers of the system calls the filter handles."""

    name: str
    audit: int
    x32: bool  # x86_64 also accepts x32 calls (number | X32_SYSCALL_BIT)
    nr: dict[str, int]


_NAMES = (
    "kill", "tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "pidfd_send_signal",
    "pidfd_getfd", "ptrace", "process_vm_readv", "process_vm_writev", "process_madvise",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "socket", "socketpair", "fcntl",
    "ioctl", "setpriority", "sched_setparam", "sched_setscheduler", "sched_setaffinity",
    "sched_setattr",
)  # fmt: skip
# from arch/x86/entry/syscalls/syscall_64.tbl and include/uapi/asm-generic/unistd.h
_X86_64 = (62, 200, 234, 129, 297, 424, 438, 101, 310, 311, 440, 425, 426, 427, 41, 53, 72, 16,
           141, 142, 144, 203, 314)  # fmt: skip
_AARCH64 = (129, 130, 131, 138, 240, 424, 438, 117, 270, 271, 440, 425, 426, 427, 198, 199, 25,
            29, 140, 118, 119, 122, 274)  # fmt: skip
ARCHES = {
    "x86_64": Arch("x86_64", 0xC000003E, True, dict(zip(_NAMES, _X86_64, strict=True))),
    "aarch64": Arch("aarch64", 0xC00000B7, False, dict(zip(_NAMES, _AARCH64, strict=True))),
}
_REFUSED = ("pidfd_send_signal", "pidfd_getfd", "ptrace", "process_vm_readv",
            "process_vm_writev", "process_madvise", "io_uring_setup", "io_uring_enter",
            "io_uring_register")  # fmt: skip
# their first argument is a pid (or a tgid / tid; 0 means the caller)
_PID_FIRST = ("tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sched_setparam",
              "sched_setscheduler", "sched_setaffinity", "sched_setattr")  # fmt: skip


class Confinement(NamedTuple):
    """How a fresh job is confined (decided by the caller, never by the request)."""

    network: bool = False  # the job may open Internet sockets
    syscall_filter: bool = True  # install the filter (off only in a test's weakened handler)


def arch_of(machine: str) -> Arch:
    """The architecture named by `uname -m`; ConfinementError for one the filter lacks."""
    try:
        return ARCHES[machine]
    except KeyError:
        raise ConfinementError(f"no seccomp filter for the {machine} architecture") from None


def _ids(status: str, field: str) -> list[int]:
    """The numbers of a line of /proc/<pid>/status ("Uid:  real effective saved fs")."""
    for line in status.splitlines():
        if line.startswith(field):
            return [int(part, 16 if field == "CapEff:" else 10) for part in line.split()[1:]]
    return []


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return None  # gone meanwhile: nothing left to protect
    except OSError:
        return ""  # there, but not readable: protected, to be safe


def may_reach_any() -> bool:
    """True when this process may signal or reschedule any task (CAP_KILL or CAP_SYS_NICE):
    then every task is protected, not only those of its own uid."""
    status = _read("/proc/self/status") or ""
    (caps,) = _ids(status, "CapEff:") or [0]
    return bool(caps & (1 << CAP_KILL | 1 << CAP_SYS_NICE))


def reachable_tasks(own: int) -> list[int]:
    """Every process and thread visible now that this process could signal or reschedule
    (the kernel lets it reach a task whose real, effective or saved uid is its own real or
    effective uid), but this one. A task of another uid is out of its reach anyway."""
    everyone = may_reach_any()
    ours = {os.getuid(), os.geteuid()}
    found: set[int] = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            tids = [int(tid) for tid in os.listdir(f"/proc/{name}/task")]
        except OSError:  # gone meanwhile
            continue
        for tid in tids:
            if everyone:
                found.add(tid)
                continue
            status = _read(f"/proc/{name}/task/{tid}/status")
            if status is None:
                continue
            uids = _ids(status, "Uid:")
            if not uids or ours & set(uids[:3]):
                found.add(tid)
    found.discard(own)
    return sorted(found)


def exact_ranges(pids: list[int]) -> list[tuple[int, int]]:
    """`pids` as inclusive ranges of consecutive pids, which cover exactly `pids` (a thread
    group's tids often follow each other)."""
    merged: list[tuple[int, int]] = []
    for pid in sorted(set(pids)):
        if merged and merged[-1][1] == pid - 1:
            merged[-1] = (merged[-1][0], pid)
        else:
            merged.append((pid, pid))
    return merged


class _Assembler:
    """Classic BPF with forward labels (jt/jf offsets must fit a byte, as the kernel wants)."""

    def __init__(self) -> None:
        self.lines: list[tuple[int, str | None, str | None, int]] = []
        self.labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self.labels[name] = len(self.lines)

    def load(self, offset: int) -> None:
        self.lines.append((LD_W_ABS, None, None, offset))

    def jump(self, op: int, k: int, true: str | None = None, false: str | None = None) -> None:
        """Jump to `true` / `false` (None: the next instruction)."""
        self.lines.append((op, true, false, k))

    def goto(self, label: str) -> None:
        self.lines.append((JA, label, None, 0))

    def ret(self, value: int) -> None:
        self.lines.append((RET_K, None, None, value))

    def assemble(self) -> list[tuple[int, int, int, int]]:
        out = []
        for at, (code, true, false, k) in enumerate(self.lines):
            if code == JA:
                assert true is not None
                out.append((code, 0, 0, self.labels[true] - at - 1))
                continue
            jt, jf = (0 if t is None else self.labels[t] - at - 1 for t in (true, false))
            if not (0 <= jt <= 255 and 0 <= jf <= 255):
                raise ConfinementError("a seccomp jump is out of reach")
            out.append((code, jt, jf, k))
        return out


def program(
    arch: Arch, *, own: int, protected: list[tuple[int, int]], network: bool
) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions."""
    deny = RET_ERRNO | EPERM
    nr = arch.nr
    asm = _Assembler()
    asm.load(OFFSET_ARCH)
    asm.jump(JEQ, arch.audit, false="kill")
    asm.load(OFFSET_NR)
    if arch.x32:
        asm.jump(JGE, X32_SYSCALL_BIT, true="kill")
    for name in _REFUSED:
        asm.jump(JEQ, nr[name], true="deny")
    asm.jump(JEQ, nr["kill"], true="kill()")
    for name in _PID_FIRST:
        asm.jump(JEQ, nr[name], true="pid")
    asm.jump(JEQ, nr["setpriority"], true="setpriority()")
    asm.jump(JEQ, nr["socket"], true="socket()")
    asm.jump(JEQ, nr["socketpair"], true="socket()")
    asm.jump(JEQ, nr["fcntl"], true="fcntl()")
    asm.jump(JEQ, nr["ioctl"], true="ioctl()")
    asm.ret(RET_ALLOW)
    asm.label("deny")
    asm.ret(deny)
    asm.label("kill")
    asm.ret(RET_KILL_PROCESS)

    asm.label("kill()")  # kill(pid): 0 and -own are the job's own group
    asm.load(arg(0))
    for allowed in (0, own, -own & 0xFFFFFFFF):
        asm.jump(JEQ, allowed, true="kill().allow")
    asm.jump(JGE, NEGATIVE, true="kill().deny")
    asm.goto("protected")
    asm.label("kill().allow")
    asm.ret(RET_ALLOW)
    asm.label("kill().deny")
    asm.ret(deny)

    asm.label("setpriority()")  # setpriority(which, who): only PRIO_PROCESS of a task
    asm.load(arg(0))
    asm.jump(JEQ, PRIO_PROCESS, false="setpriority().deny")
    asm.load(arg(1))
    asm.goto("pid loaded")
    asm.label("setpriority().deny")
    asm.ret(deny)

    asm.label("socket()")
    asm.load(arg(0))
    for family in (AF_UNIX, *((AF_INET, AF_INET6, AF_NETLINK) if network else ())):
        asm.jump(JEQ, family, true="socket().allow")
    asm.ret(deny)
    asm.label("socket().allow")
    asm.ret(RET_ALLOW)

    for call, commands in (("fcntl()", (F_SETOWN, F_SETSIG, F_SETOWN_EX)),
                           ("ioctl()", (FIOSETOWN, SIOCSPGRP))):  # fmt: skip
        asm.label(call)
        asm.load(arg(1))
        for command in commands:
            asm.jump(JEQ, command, true=f"{call}.deny")
        asm.ret(RET_ALLOW)
        asm.label(f"{call}.deny")
        asm.ret(deny)

    asm.label("pid")  # tkill(tid), tgkill(tgid, ...), sched_*(pid), ...: 0 is the caller
    asm.load(arg(0))
    asm.label("pid loaded")
    asm.jump(JEQ, 0, true="pid.allow")
    asm.jump(JGE, NEGATIVE, true="pid.deny")
    asm.goto("protected")
    asm.label("pid.allow")
    asm.ret(RET_ALLOW)
    asm.label("pid.deny")
    asm.ret(deny)

    asm.label("protected")  # the pid in A: refused within any [low, high], ascending
    chunks = [protected[at : at + CHUNK] for at in range(0, len(protected), CHUNK)]
    for number, chunk in enumerate(chunks):
        here, after = f"chunk {number}", f"chunk {number + 1}"
        asm.label(here)
        asm.jump(JGT, chunk[-1][1], true=after)  # above all of this chunk: the next one
        for index, (low, high) in enumerate(chunk):
            # above this range: the next one; within it: refused; below it: in the gap
            asm.jump(JGT, high, true=f"{here} range {index + 1}")
            asm.jump(JGE, low, true=f"{here} deny", false=f"{here} allow")
            asm.label(f"{here} range {index + 1}")
        asm.label(f"{here} allow")
        asm.ret(RET_ALLOW)
        asm.label(f"{here} deny")
        asm.ret(deny)
    asm.label(f"chunk {len(chunks)}")
    asm.ret(RET_ALLOW)
    return asm.assemble()


def install(instructions: list[tuple[int, int, int, int]]) -> None:
    """Install the filter on this process (and all it will start), for good."""
    import ctypes

    from ..limits import check, libc

    class Instruction(ctypes.Structure):
        _fields_ = (
            ("code", ctypes.c_ushort),
            ("jt", ctypes.c_ubyte),
            ("jf", ctypes.c_ubyte),
            ("k", ctypes.c_uint),
        )

    class Program(ctypes.Structure):
        _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Instruction)))

    table = (Instruction * len(instructions))(*(Instruction(*i) for i in instructions))
    prog = Program(len(instructions), table)
    prctl = libc().prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    check(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    check(
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0),
        "prctl(PR_SET_SECCOMP)",
    )


def mode() -> int:
    """This process's seccomp mode from /proc/self/status (2: a filter; 0: none)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("Seccomp:"):
                return int(line.split()[1])
    return 0


def confine(confinement: Confinement) -> None:
    """Install the filter on this process as `confinement` says; ConfinementError if it
    cannot be (the caller must then not run the job)."""
    if not confinement.syscall_filter:
        return
    own = os.getpid()
    try:
        arch = arch_of(os.uname().machine)
        protected = exact_ranges(reachable_tasks(own))
        instructions = program(arch, own=own, protected=protected, network=confinement.network)
        if len(instructions) > MAX_INSTRUCTIONS:
            raise ConfinementError(
                f"{len(protected)} runs of tasks to protect do not fit one seccomp filter"
            )
        install(instructions)
    except ConfinementError:
        raise
    except OSError as exc:
        raise ConfinementError(exc.errno, f"cannot install the seccomp filter: {exc}") from exc
    if mode() != SECCOMP_MODE_FILTER:
        raise ConfinementError("the seccomp filter did not take effect")
