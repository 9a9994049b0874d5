"""The job's seccomp filter in this machine's kernel: a process that installed it cannot touch
what ran before it, and a child that cannot install it does not run the user's code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from bot.sandbox.fresh.spawn import run_fresh
from bot.sandbox.inside import seccomp

from .conftest import harness_request

REPO = Path(__file__).resolve().parents[3]

# Installs the filter, then tries everything; prints name -> "ok" or the errno's name.
TRY_EVERYTHING = """\
import ctypes, errno, fcntl, json, os, socket, subprocess, sys
sys.path.insert(0, sys.argv[1])
from bot.sandbox.inside import seccomp
seccomp.confine(seccomp.Confinement(network=sys.argv[2] == "on"))
parent, out = os.getppid(), {}
libc = ctypes.CDLL(None, use_errno=True)
nr = seccomp.arch_of(os.uname().machine).nr

def attempt(name, step):
    try:
        step()
        out[name] = "ok"
    except OSError as exc:
        out[name] = errno.errorcode.get(exc.errno, exc.errno)

def raw(name, *args):  # every int as a long: the kernel reads whole registers
    args = [ctypes.c_long(a) for a in args]
    if libc.syscall(ctypes.c_long(nr[name]), *args) == -1:
        raise OSError(ctypes.get_errno(), name)

child = subprocess.Popen(["sleep", "30"])
attempt("stop the parent", lambda: os.kill(parent, 19))
attempt("kill init", lambda: os.kill(1, 9))
attempt("kill -1", lambda: os.kill(-1, 9))
attempt("kill the parent's group", lambda: os.killpg(os.getpgid(parent), 19))
attempt("tgkill the parent", lambda: raw("tgkill", parent, parent, 19))
attempt("SIGIO to the parent", lambda: fcntl.fcntl(0, fcntl.F_SETOWN, parent))
attempt("renice the parent", lambda: os.setpriority(os.PRIO_PROCESS, parent, 19))
attempt("ptrace the parent", lambda: raw("ptrace", 16, parent, 0, 0))
attempt("io_uring", lambda: raw("io_uring_setup", 1, 0))
attempt("pidfd_send_signal", lambda: raw("pidfd_send_signal", os.pidfd_open(parent), 19, 0, 0))
attempt("inet socket", lambda: socket.socket(socket.AF_INET).close())
attempt("vsock socket", lambda: socket.socket(40).close())
attempt("unix socketpair", lambda: [s.close() for s in socket.socketpair()])
attempt("signal own child", lambda: os.kill(child.pid, 0))
attempt("kill own group", lambda: os.kill(0, 0))
attempt("renice itself", lambda: os.setpriority(os.PRIO_PROCESS, 0, 1))
child.kill()
print(json.dumps(out))
"""


def try_everything(network: str = "off") -> dict[str, str]:
    ran = subprocess.run(
        [sys.executable, "-c", TRY_EVERYTHING, str(REPO), network],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    return dict(json.loads(ran.stdout))


def test_the_filter_keeps_a_job_from_everything_that_ran_before_it() -> None:
    found = try_everything()

    refused = [name for name, answer in found.items() if answer == "EPERM"]
    allowed = [name for name, answer in found.items() if answer == "ok"]
    assert refused == list(found)[:12], found
    assert allowed == ["unix socketpair", "signal own child", "kill own group", "renice itself"]


def test_with_the_network_on_internet_sockets_are_allowed_and_vsock_is_not() -> None:
    found = try_everything("on")

    assert (found["inet socket"], found["vsock socket"]) == ("ok", "EPERM")
    assert found["stop the parent"] == "EPERM"


def test_a_call_of_another_abi_kills_the_process() -> None:
    arch = seccomp.arch_of(os.uname().machine)
    other = "0x40000000 | 39" if arch.x32 else "0"  # x32 getpid; aarch64 has no second ABI
    code = textwrap.dedent(f"""\
        import ctypes, sys
        sys.path.insert(0, {str(REPO)!r})
        from bot.sandbox.inside import seccomp
        seccomp.confine(seccomp.Confinement())
        ctypes.CDLL(None).syscall({other})
        print("survived")
        """)

    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

    if arch.x32:
        assert ran.returncode == -signal.SIGSYS and "survived" not in ran.stdout
    else:
        assert ran.returncode == 0, ran.stderr  # io_setup(0): an ordinary call, still allowed


# In a PID namespace of its own (a user namespace too, without root), with a fresh /proc:
# 100 tasks with a free pid between each two, then a job at pid 10000 that installs the filter
# and starts a child at one of those free pids, as after pids wrap around on a busy machine.
# Prints what signalling that child gave ("ok" or the errno's name).
MANY_TASKS = """\
import ctypes, errno, json, os, signal, sys
sys.path.insert(0, sys.argv[1])
from bot.sandbox.inside import seccomp
libc = ctypes.CDLL(None, use_errno=True)
NEWNS, NEWPID, NEWUSER, MS_REC, MS_PRIVATE = 0x20000, 0x20000000, 0x10000000, 16384, 1 << 18

def check(result, what):
    if result != 0:
        raise OSError(ctypes.get_errno(), what)

def next_pid(pid):
    with open("/proc/sys/kernel/ns_last_pid", "w") as fh:
        fh.write(str(pid - 1))

def sleeper():
    pid = os.fork()
    if pid == 0:
        while True:
            signal.pause()
    return pid

uid, gid = os.geteuid(), os.getegid()
if uid == 0:
    check(libc.unshare(NEWNS | NEWPID), "unshare")
else:
    check(libc.unshare(NEWUSER | NEWNS | NEWPID), "unshare")
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)
init = os.fork()
if init:
    _, status = os.waitpid(init, 0)
    sys.exit(os.waitstatus_to_exitcode(status))
check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "mount /")
check(libc.mount(b"proc", b"/proc", b"proc", 0, None), "mount /proc")
tasks = [sleeper() for _ in range(200)]
for pid in tasks[1::2]:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
kept = tasks[::2]
free = tasks[1]
next_pid(10000)
job = os.fork()
if job == 0:
    seccomp.confine(seccomp.Confinement())
    next_pid(free)
    child = sleeper()
    try:
        os.kill(child, 0)
        answer = "ok"
    except OSError as exc:
        answer = errno.errorcode[exc.errno]
    try:
        os.kill(kept[10], 0)
        protected = "ok"
    except OSError as exc:
        protected = errno.errorcode[exc.errno]
    print(json.dumps({"job": os.getpid(), "child": child, "free": free, "own child": answer,
                      "a task before it": protected, "tasks": len(kept)}), flush=True)
    os.kill(child, signal.SIGKILL)
    os._exit(0)
os.waitpid(job, 0)
"""


def test_a_job_can_signal_its_own_child_whatever_tasks_came_before_it() -> None:
    ran = subprocess.run(
        [sys.executable, "-c", MANY_TASKS, str(REPO)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    found = json.loads(ran.stdout)

    assert (found["job"], found["child"], found["tasks"]) == (10000, found["free"], 100)
    assert found["own child"] == "ok"
    assert found["a task before it"] == "EPERM"


# Runs a job in fresh mode from a process whose own filter fails PR_SET_SECCOMP with EINVAL
# (as a kernel without seccomp would): the child must refuse to run the user's code.
NO_SECCOMP = """\
import json, os, sys
sys.path.insert(0, sys.argv[1])
from bot.sandbox.inside import seccomp
from bot.sandbox.fresh.spawn import run_fresh
arch = seccomp.arch_of(os.uname().machine)
prctl = {"x86_64": 157, "aarch64": 167}[arch.name]
seccomp.install([
    (seccomp.LD_W_ABS, 0, 0, seccomp.OFFSET_NR),
    (seccomp.JEQ, 0, 3, prctl),
    (seccomp.LD_W_ABS, 0, 0, seccomp.arg(0)),
    (seccomp.JEQ, 0, 1, seccomp.PR_SET_SECCOMP),
    (seccomp.RET_K, 0, 0, seccomp.RET_ERRNO | 22),
    (seccomp.RET_K, 0, 0, seccomp.RET_ALLOW),
])
request = json.loads(sys.argv[2])
print(json.dumps(run_fresh(request)))
"""


def test_a_child_that_cannot_install_the_filter_runs_none_of_the_job(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    request = harness_request(f"open({str(marker)!r}, 'w').close()\nprint('ran')\n")

    ran = subprocess.run(
        [sys.executable, "-c", NO_SECCOMP, str(REPO), json.dumps(request)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    response = json.loads(ran.stdout)

    assert response["outcome"] == "error" and response["error_type"] == "ConfinementError"
    assert "none of it ran" in response["error_message"]
    assert response["stdout"] == "" and not marker.exists()


def test_a_fresh_job_runs_under_the_filter() -> None:
    code = "print(open('/proc/self/status').read().split('Seccomp:')[1].split()[0])\n"

    assert run_fresh(harness_request(code))["stdout"] == "2\n"
