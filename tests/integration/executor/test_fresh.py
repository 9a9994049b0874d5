"""Fresh mode (run_fresh, what the Lambda handler calls): cleanup, leftovers, deadlines, 3.13."""

from __future__ import annotations

import ctypes
import glob
import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from bot.sandbox.fresh import spawn
from bot.sandbox.fresh.spawn import run_fresh
from bot.sandbox.protocol import SandboxUnavailable
from testbed.pythons import require_lambda_python
from tests.support import probes

from .conftest import harness_request, memory_kb, reset_peak_memory
from .test_contract import CASES


def my_job_dirs() -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), f"{spawn.DIR_PREFIX}{os.getpid()}-*"))


def test_the_job_directory_is_the_cwd_and_home_and_is_removed_after_any_end() -> None:
    code = "import os\nprint(os.getcwd() == os.environ['HOME'], sorted(os.listdir('.')))\n"
    assert run_fresh(harness_request(code))["stdout"] == "True ['job.py', 'out']\n"
    assert my_job_dirs() == []
    run_fresh(harness_request("open('x', 'w').write('1')\nwhile True: pass", timeout_s=0.3))
    assert my_job_dirs() == []


def test_stale_job_directories_of_dead_runs_are_swept_and_live_ones_kept() -> None:
    root = tempfile.gettempdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.mkdtemp(prefix=f"{spawn.DIR_PREFIX}{dead.pid}-", dir=root))
    ours = Path(tempfile.mkdtemp(prefix=f"{spawn.DIR_PREFIX}{os.getpid()}-", dir=root))
    alive = Path(tempfile.mkdtemp(prefix=f"{spawn.DIR_PREFIX}1-", dir=root))
    try:
        run_fresh(harness_request("print(1)"))
        assert not stale.exists()
        assert not ours.exists()  # runs are serialised, so a directory of ours is stale
        assert alive.exists()
    finally:
        alive.rmdir()


def test_an_escapee_is_killed_and_unrelated_children_of_the_caller_survive() -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        request = harness_request(probes.DAEMON, {"linger": True}, timeout_s=0.5)
        response = run_fresh(request)
        assert response["outcome"] == "timeout"
        escapee = int(response["stdout"])  # alive when the job printed it
        assert not Path(f"/proc/{escapee}").exists()  # and gone (reaped) when run_fresh returned
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_the_caller_becomes_a_non_dumpable_subreaper() -> None:
    run_fresh(harness_request("pass"))
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(3, 0, 0, 0, 0) == 0  # PR_GET_DUMPABLE
    flag = ctypes.c_int(0)
    assert libc.prctl(37, ctypes.byref(flag), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
    assert flag.value == 1


def test_a_caller_deadline_shorter_than_the_timeout_is_the_limit() -> None:
    response = run_fresh(harness_request("while True: pass", timeout_s=10), deadline_s=0.4)
    assert response["outcome"] == "timeout"
    assert response["error_message"] == "the job ran longer than 0.4 s and was stopped"
    assert 400 <= response["duration_ms"] < 5_000  # well before its own 10 s limit


def test_a_malformed_request_gives_an_error_response() -> None:
    response = run_fresh({"v": 1, "code": "print(1)"})
    assert (response["outcome"], response["error_type"]) == ("error", "InvalidRequest")


def test_an_interpreter_that_cannot_start_raises_sandbox_unavailable() -> None:
    with pytest.raises(SandboxUnavailable, match="cannot start /nonexistent/python"):
        run_fresh(harness_request("print(1)"), python="/nonexistent/python")
    assert my_job_dirs() == []


def test_100_mb_of_output_keeps_the_callers_memory_bounded() -> None:
    fds = len(os.listdir("/proc/self/fd"))
    baseline = reset_peak_memory()
    code = (
        "import sys\nchunk = 'y' * (1 << 20)\nfor _ in range(100):\n    sys.stdout.write(chunk)\n"
    )
    response = run_fresh(harness_request(code, timeout_s=30))
    assert (response["outcome"], response["stdout_truncated"]) == ("ok", True)
    assert len(response["stdout"]) == 1 << 20
    assert memory_kb("VmHWM") - baseline < 30 * 1024
    assert len(os.listdir("/proc/self/fd")) == fds


@pytest.mark.parametrize("name", [n for n in CASES if "syntax" not in n and n != "exception"])
def test_the_contract_holds_on_python_3_13_like_in_lambda(name: str) -> None:
    case = CASES[name]
    response = run_fresh(
        harness_request(case.code, case.input, **case.changes), python=require_lambda_python()
    )
    assert {key: response[key] for key in case.expect} == case.expect


def test_errors_on_python_3_13_keep_their_type_line_and_trimmed_traceback() -> None:
    for name in ("exception", "syntax_error"):
        case = CASES[name]
        request = harness_request(case.code, case.input, **case.changes)
        response = run_fresh(request, python=require_lambda_python())
        assert response["error_type"] == case.expect["error_type"]
        assert response["error_message"] == case.expect["error_message"]
        assert 'File "job.py", line' in response["traceback"]
        assert "harness" not in json.dumps(response)
