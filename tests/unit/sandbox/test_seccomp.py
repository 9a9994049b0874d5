"""The job's seccomp filter, decided instruction by instruction for both architectures it is
built for (x86_64 and Lambda's aarch64) by a classic-BPF interpreter written here; the kernel
runs it in tests/integration/executor/test_seccomp.py (on this machine's architecture)."""

from __future__ import annotations

import struct

import pytest

from bot.sandbox.inside import seccomp
from bot.sandbox.inside.seccomp import (
    ARCHES,
    JA,
    JEQ,
    JGE,
    JGT,
    LD_W_ABS,
    RET_ALLOW,
    RET_ERRNO,
    RET_K,
    RET_KILL_PROCESS,
    Arch,
)

DENY = RET_ERRNO | 1  # EPERM
OWN = 5000  # the job
RUNTIME, INIT, THREAD = 20, 1, 23  # tasks that existed before the job
CHILD = 5003  # a process the job started
PROTECTED = seccomp.exact_ranges([INIT, RUNTIME, 21, 22, THREAD])
GETPID = {"x86_64": 39, "aarch64": 172}  # a call the filter has nothing to say about
AUDIT_ARCH_I386 = 0x40000003


def run(program: list[tuple[int, int, int, int]], nr: int, arch: int, *args: int) -> int:
    """What the kernel would return for this system call (a classic-BPF interpreter)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    a, pc = 0, 0
    while True:
        code, jt, jf, k = program[pc]
        pc += 1
        if code == LD_W_ABS:
            (a,) = struct.unpack_from("<I", data, k)
        elif code == JA:
            pc += k
        elif code in (JEQ, JGT, JGE):
            taken = {JEQ: a == k, JGT: a > k, JGE: a >= k}[code]
            pc += jt if taken else jf
        elif code == RET_K:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


def call(arch: Arch, name: str, *args: int, network: bool = False) -> int:
    """The filter's answer to one named call on `arch`."""
    program = seccomp.program(arch, own=OWN, protected=PROTECTED, network=network)
    return run(program, arch.nr[name], arch.audit, *args)


def neg(pid: int) -> int:
    """-pid as the 64-bit register a libc call leaves (sign-extended)."""
    return pid & 0xFFFFFFFFFFFFFFFF


@pytest.fixture(params=sorted(ARCHES))
def arch(request: pytest.FixtureRequest) -> Arch:
    return ARCHES[request.param]


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (RUNTIME, DENY),
        (INIT, DENY),
        (THREAD, DENY),
        (neg(-RUNTIME), DENY),  # the runtime's process group
        (neg(-1), DENY),  # everything the uid may signal
        (0xFFFFFFFF, DENY),  # -1 zero-extended
        ((1 << 32) | RUNTIME, DENY),  # junk in the upper half: the kernel reads an int
        (0, RET_ALLOW),  # the job's own group
        (OWN, RET_ALLOW),
        (neg(-OWN), RET_ALLOW),
        (CHILD, RET_ALLOW),
    ],
)
def test_kill_reaches_only_the_jobs_own_processes(arch: Arch, target: int, expected: int) -> None:
    assert call(arch, "kill", target, 19) == expected  # SIGSTOP


@pytest.mark.parametrize(
    "name",
    ["tkill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sched_setparam",
     "sched_setscheduler", "sched_setaffinity", "sched_setattr"],
)  # fmt: skip
def test_thread_signals_and_scheduling_spare_the_tasks_that_were_there(
    arch: Arch, name: str
) -> None:
    assert call(arch, name, RUNTIME, RUNTIME) == DENY
    assert call(arch, name, THREAD, THREAD) == DENY
    assert call(arch, name, neg(-5), 5) == DENY
    assert call(arch, name, CHILD, CHILD) == RET_ALLOW
    assert call(arch, name, 0, 0) == RET_ALLOW


def test_priority_changes_only_for_single_tasks_of_the_job(arch: Arch) -> None:
    assert call(arch, "setpriority", 0, 0, 10) == RET_ALLOW  # PRIO_PROCESS, itself
    assert call(arch, "setpriority", 0, CHILD, 10) == RET_ALLOW
    assert call(arch, "setpriority", 0, RUNTIME, 10) == DENY
    assert call(arch, "setpriority", 1, 0, 10) == DENY  # PRIO_PGRP
    assert call(arch, "setpriority", 2, 993, 10) == DENY  # PRIO_USER: the runtime's too


@pytest.mark.parametrize(
    "name",
    ["ptrace", "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd",
     "pidfd_send_signal", "io_uring_setup", "io_uring_enter", "io_uring_register"],
)  # fmt: skip
def test_reaching_into_other_processes_and_io_uring_are_refused(arch: Arch, name: str) -> None:
    assert call(arch, name, OWN, 0) == DENY


@pytest.mark.parametrize(
    ("family", "off", "on"),
    [
        (1, RET_ALLOW, RET_ALLOW),  # AF_UNIX
        (2, DENY, RET_ALLOW),  # AF_INET: the Runtime API is TCP on loopback
        (10, DENY, RET_ALLOW),  # AF_INET6
        (16, DENY, RET_ALLOW),  # AF_NETLINK
        (17, DENY, DENY),  # AF_PACKET
        (40, DENY, DENY),  # AF_VSOCK: the microVM's channel to its host
    ],
)
def test_sockets_follow_the_network_setting(arch: Arch, family: int, off: int, on: int) -> None:
    for name in ("socket", "socketpair"):
        assert call(arch, name, family, 1, 0) == off
        assert call(arch, name, family, 1, 0, network=True) == on


def test_sigio_cannot_be_pointed_at_another_process(arch: Arch) -> None:
    assert call(arch, "fcntl", 3, 8, RUNTIME) == DENY  # F_SETOWN
    assert call(arch, "fcntl", 3, 10, 19) == DENY  # F_SETSIG
    assert call(arch, "fcntl", 3, 15, 0) == DENY  # F_SETOWN_EX
    assert call(arch, "fcntl", 3, 3, 0) == RET_ALLOW  # F_GETFL
    assert call(arch, "ioctl", 3, 0x8901, 0) == DENY  # FIOSETOWN
    assert call(arch, "ioctl", 3, 0x8902, 0) == DENY  # SIOCSPGRP
    assert call(arch, "ioctl", 3, 0x541B, 0) == RET_ALLOW  # FIONREAD


def test_other_calls_pass_and_other_abis_are_killed(arch: Arch) -> None:
    program = seccomp.program(arch, own=OWN, protected=PROTECTED, network=False)

    assert run(program, GETPID[arch.name], arch.audit) == RET_ALLOW
    assert run(program, 37, AUDIT_ARCH_I386, RUNTIME, 19) == RET_KILL_PROCESS  # i386 kill
    other = ARCHES["aarch64" if arch.name == "x86_64" else "x86_64"]
    assert run(program, GETPID[arch.name], other.audit) == RET_KILL_PROCESS
    if arch.x32:
        assert run(program, 0x40000000 | 62, arch.audit, RUNTIME, 19) == RET_KILL_PROCESS


def test_the_two_architectures_number_the_same_calls() -> None:
    assert ARCHES["x86_64"].nr.keys() == ARCHES["aarch64"].nr.keys()
    assert len(set(ARCHES["aarch64"].nr.values())) == len(ARCHES["aarch64"].nr)
    assert len(set(ARCHES["x86_64"].nr.values())) == len(ARCHES["x86_64"].nr)


def test_protected_tasks_are_exact_runs_of_consecutive_pids() -> None:
    assert seccomp.exact_ranges([23, 1, 20, 21, 21]) == [(1, 1), (20, 21), (23, 23)]
    assert seccomp.exact_ranges([]) == []


def test_with_many_tasks_the_jobs_own_child_in_a_gap_between_them_can_be_signalled(
    arch: Arch,
) -> None:
    # 400 tasks with one free pid between each two, below the job; pids then wrap around, so
    # the job's child gets one of the free ones (a merged range used to cover it)
    tasks = list(range(300, 1100, 2))
    child = 301
    protected = seccomp.exact_ranges(tasks)
    program = seccomp.program(arch, own=30000, protected=protected, network=False)

    assert run(program, arch.nr["kill"], arch.audit, child, 9) == RET_ALLOW
    assert run(program, arch.nr["tgkill"], arch.audit, child, child, 9) == RET_ALLOW
    for task in (300, 302, 700, 1098):
        assert run(program, arch.nr["kill"], arch.audit, task, 9) == DENY
    assert run(program, arch.nr["kill"], arch.audit, 1099, 9) == RET_ALLOW  # above them all
    assert run(program, arch.nr["kill"], arch.audit, 299, 9) == RET_ALLOW  # below them all


def test_every_task_is_refused_and_every_other_pid_allowed(arch: Arch) -> None:
    tasks = [1, 2, 3, 7, 40, 41, 100, *range(200, 2000, 3), 5001, 5002, 9000]
    program = seccomp.program(arch, own=5000, protected=seccomp.exact_ranges(tasks), network=False)
    protected = set(tasks)

    for pid in range(1, 9100):
        expected = DENY if pid in protected else RET_ALLOW
        assert run(program, arch.nr["kill"], arch.audit, pid, 0) == expected, pid


def test_the_program_fits_the_kernel_with_a_busy_machines_tasks(arch: Arch) -> None:
    # 1,500 runs of tasks: more than a loaded test machine has (Lambda has a handful)
    busy = seccomp.exact_ranges(list(range(2, 6000, 4)))
    program = seccomp.program(arch, own=9000, protected=busy, network=True)

    assert len(busy) == 1500
    assert len(program) <= seccomp.MAX_INSTRUCTIONS
    assert run(program, arch.nr["kill"], arch.audit, 5998, 9) == DENY
    assert run(program, arch.nr["kill"], arch.audit, 5999, 9) == RET_ALLOW


def test_an_architecture_without_a_filter_is_refused() -> None:
    with pytest.raises(seccomp.ConfinementError, match="riscv64"):
        seccomp.arch_of("riscv64")
