"""Hostile code inside the emulated execution environment: the runtime's AWS credentials,
memory and descriptors stay out of reach, the runtime cannot be signalled, and nothing of one
job (processes, files) is there for the next one.

Each test also runs under AWS's own runtime client (awslambdaric) where the handler's process
is what matters, because there the handler lives in awslambdaric's process.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import JobStatus, Outcome
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from testbed.lambda_standin import FAKE_CREDENTIALS, LambdaStandIn
from testbed.pythons import require_lambda_python
from tests.integration.lambda_executor.conftest import (
    JOB_TIMEOUT,
    job,
    lambda_settings,
    weakened_handler,
)
from tests.support import probes

pytestmark = pytest.mark.usefixtures("aws_env")

# files in /tmp (one of them hard to delete), and a daemon (probes.DAEMON)
LEAVE_BEHIND = (
    """\
import pathlib
pathlib.Path("/tmp/left-by-job-1").write_text("user 1's secret")
pathlib.Path("/dev/shm/left-by-job-1").write_text("user 1's shared memory")
locked = pathlib.Path("/tmp/locked")
(locked / "deeper").mkdir(parents=True)
(locked / "deeper" / "file").write_text("x")
(locked / "deeper").chmod(0)
locked.chmod(0o500)
"""
    + probes.DAEMON
)


# SIGSTOP and SIGKILL to the runtime (the parent), init, its group and everything (-1):
# name -> "sent" or the errno
SIGNALS = """\
import json, os, signal
out, ppid = {}, os.getppid()
for name, pid in (("runtime", ppid), ("init", 1), ("group", -ppid), ("everything", -1)):
    for sig in ("SIGSTOP", "SIGKILL"):
        try:
            os.kill(pid, getattr(signal, sig))
            out[f"{name} {sig}"] = "sent"
        except OSError as exc:
            out[f"{name} {sig}"] = exc.errno
print(json.dumps(out))
"""

# The runtime's memory, mappings, descriptors and environment, and the system calls that
# read another process: each "read" or the error's class name
HANDLER_MEMORY = """\
import ctypes, json, os
ppid = os.getppid()
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": (101, 310, 438), "aarch64": (117, 270, 438)}[os.uname().machine]

def attempt(step):
    try:
        step()
        return "read"
    except OSError as exc:
        return type(exc).__name__

def syscall(nr, *args):  # every int as a long: the kernel reads whole registers
    args = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
    if libc.syscall(ctypes.c_long(nr), *args) == -1:
        raise OSError(ctypes.get_errno(), "refused")

def mem():
    with open(f"/proc/{ppid}/mem", "rb") as fh:
        fh.seek(0x400000)
        fh.read(16)

mine = ctypes.create_string_buffer(16)
local = (ctypes.c_size_t * 2)(ctypes.addressof(mine), 16)
remote = (ctypes.c_size_t * 2)(0x400000, 16)
print(json.dumps({
    "mem": attempt(mem),
    "maps": attempt(lambda: open(f"/proc/{ppid}/maps").read()),
    "fds": attempt(lambda: os.listdir(f"/proc/{ppid}/fd")),
    "environ": attempt(lambda: open(f"/proc/{ppid}/environ", "rb").read()),
    "process_vm_readv": attempt(lambda: syscall(NR[1], ppid, local, 1, remote, 1, 0)),
    "ptrace": attempt(lambda: syscall(NR[0], 16, ppid, 0, 0)),  # PTRACE_ATTACH
    "pidfd_getfd": attempt(lambda: syscall(NR[2], os.pidfd_open(ppid), 0, 0)),
}))
"""


@pytest.fixture(params=["bootstrap", "awslambdaric", "python3.13"])
def warm(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LambdaStandIn, LambdaExecutor]]:
    """One warm environment (concurrency 1): under the stdlib runtime loop, under AWS's
    runtime client, or under the stdlib loop on python3.13 (Lambda's runtime version)."""
    python = None
    if request.param == "python3.13":
        python = require_lambda_python()  # missing, it fails: never a silent skip
    with LambdaStandIn(
        timeout_s=function_timeout_s(JOB_TIMEOUT),
        max_concurrency=1,
        runtime="awslambdaric" if request.param == "awslambdaric" else "bootstrap",
        python=python,
    ) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        executor = build_lambda_executor(lambda_settings())
        yield standin, executor
        executor.close()


def test_user_code_cannot_read_the_runtimes_aws_credentials(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm

    result = executor.run(job(probes.ENVIRONS))

    assert result.outcome is Outcome.OK, standin.logs()
    seen = json.loads(result.stdout)
    assert seen["env"] == ["HOME", "LANG", "MKL_NUM_THREADS", "MPLBACKEND", "OMP_NUM_THREADS",
                           "OPENBLAS_NUM_THREADS", "PATH", "TZ"]  # fmt: skip
    # same uid as the handler, so only its non-dumpable flag stands in the way
    assert seen["uid"] == seen["parent_uid"] != 0
    assert seen["parent"] == "PermissionError"
    assert seen["parent_tasks"] == ["PermissionError"]
    assert seen["leaks"] == {}
    everything = json.dumps(result.__dict__, default=str)
    for secret in FAKE_CREDENTIALS.values():
        assert secret not in everything


def test_nothing_of_one_job_is_left_for_the_next(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm

    first = executor.run(job(LEAVE_BEHIND, job_id=1))
    second = executor.run(job(probes.LOOK_AROUND, job_id=2))

    assert first.outcome is Outcome.OK, standin.logs()
    assert int(first.stdout)  # the daemon's pid: it was alive when the job ended
    after = json.loads(second.stdout)
    assert after["others"] == []  # the daemon, and everything else of job 1, is gone
    assert after["tmp"] == [after["own_dir"]]  # /tmp holds only the running job's directory
    shared = executor.run(job("import os\nprint(os.listdir('/dev/shm'))\n", job_id=3))
    assert shared.stdout == "[]\n"
    assert standin.environments() == 1  # all ran warm in the same environment
    assert [r.environment for r in standin.records] == [0, 0, 0]


def test_the_job_cannot_signal_the_runtime_init_or_anything_but_its_own(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm

    tried = executor.run(job(SIGNALS))
    after = executor.run(job("print('next')"))

    assert tried.outcome is Outcome.OK, standin.logs()
    refused = json.loads(tried.stdout)
    assert refused == dict.fromkeys(refused, 1) and len(refused) == 8  # EPERM, every one
    assert after.result_json == '"next"'
    assert standin.environments() == 1  # the runtime never noticed


def test_the_runtimes_memory_and_descriptors_are_out_of_the_jobs_reach(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm

    result = executor.run(job(HANDLER_MEMORY))

    assert result.outcome is Outcome.OK, standin.logs()
    assert json.loads(result.stdout) == dict.fromkeys(
        ("mem", "maps", "fds", "environ", "process_vm_readv", "ptrace", "pidfd_getfd"),
        "PermissionError",
    )


def test_the_runtime_stays_non_dumpable_without_the_filter_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: with the filter off (a weakened handler), the runtime's
    non-dumpable flag alone still keeps its memory, descriptors and credentials away."""
    with LambdaStandIn(
        timeout_s=function_timeout_s(JOB_TIMEOUT), max_concurrency=1, **weakened_handler()
    ) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        executor = build_lambda_executor(lambda_settings())
        result = executor.run(job(HANDLER_MEMORY))
        executor.close()

    assert result.outcome is Outcome.OK, standin.logs()
    assert set(json.loads(result.stdout).values()) == {"PermissionError"}


def test_a_killed_runtime_fails_only_that_job(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm
    standin.kill_runtime(after_s=0.3)  # from outside: the job itself no longer can

    killed = executor.run(job("import time\ntime.sleep(5)\n"))
    after = executor.run(job("print('next')"))

    assert killed.status is JobStatus.ERROR
    assert killed.error_type == "LambdaFunctionError"
    assert killed.error_message is not None and "signal: killed" in killed.error_message
    assert after.result_json == '"next"'
    assert standin.environments() == 2


def test_the_function_code_and_the_interpreter_are_read_only(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm
    targets = [f"{sys.base_prefix}/jobbot-was-here", "/srv/task/sandbox/jobbot-was-here.py"]
    code = (
        "import json\n"
        "def main(paths):\n"
        "    errors = []\n"
        "    for path in paths:\n"
        "        try:\n"
        "            open(path, 'w').close()\n"
        "            errors.append(None)\n"
        "        except OSError as exc:\n"
        "            errors.append(type(exc).__name__)\n"
        "    return errors\n"
    )

    result = executor.run(job(code, json.dumps({"paths": targets})))

    assert result.outcome is Outcome.OK, standin.logs()
    assert None not in json.loads(result.result_json or "[]")
    assert not Path(targets[0]).exists()


def test_a_bounded_fork_bomb_ends_and_leaves_nothing_behind(
    warm: tuple[LambdaStandIn, LambdaExecutor],
) -> None:
    standin, executor = warm
    result = executor.run(job(probes.FORK_BOMB))
    after = executor.run(job(probes.LOOK_AROUND))

    assert result.outcome is Outcome.OK, standin.logs()
    made, failed = map(int, result.stdout.split())
    if not standin.runtime_is_host_root:
        assert made < 100 and failed > 400  # the process limit held
    assert json.loads(after.stdout)["others"] == []
