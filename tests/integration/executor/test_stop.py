"""Stopping a running job (Executor.stop): its processes killed, the output so far kept, the
outcome `cancelled`; and the slot fit for the next job."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import pytest

from bot.core.models import JobStatus, Outcome, RunRequest, RunResult
from bot.executors.local import LocalExecutor
from testbed.waiting import wait_until

from .conftest import IS_ROOT, processes_of

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the job's files are watched through /proc")

# prints, then says it is running (a file in its working directory), then would run for long
LONG = """\
import os, subprocess, sys, time
print("started", flush=True)
print("to stderr", file=sys.stderr, flush=True)
subprocess.Popen(["sleep", "60"])
open("running", "w").close()
time.sleep(60)
print("never")
"""


def request(job_id: int, code: str = LONG) -> RunRequest:
    return RunRequest(
        job_id=job_id,
        file_name="long.py",
        code=code,
        input_json="{}",
        timeout_s=30.0,
        memory_mb=256,
        max_output_bytes=1 << 20,
    )


def job_is_running(executor: LocalExecutor) -> bool:
    """True once a process of the job's uids has written its `running` marker."""
    for pid in processes_of(executor.uids):
        try:
            if os.path.exists(f"/proc/{pid}/cwd/running"):
                return True
        except OSError:
            continue
    return False


def in_background(fn: Callable[[], RunResult]) -> tuple[threading.Thread, list[RunResult]]:
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(fn()))
    thread.start()
    return thread, results


def test_a_running_job_is_stopped_with_its_output_so_far(executor: LocalExecutor) -> None:
    thread, results = in_background(lambda: executor.run(request(9101)))
    wait_until(lambda: job_is_running(executor), message="the job to run")

    assert executor.stop(9101) is True
    thread.join(30)

    result = results[0]
    assert result.outcome is Outcome.CANCELLED
    assert result.status is JobStatus.CANCELLED
    assert (result.stdout, result.stderr) == ("started\n", "to stderr\n")
    assert result.error_type == "Cancelled"
    assert result.error_message == (
        "the job was stopped while it ran (what it printed until then is kept)"
    )
    wait_until(lambda: not processes_of(executor.uids), message="the job's processes to go")


def test_a_stop_asked_before_the_code_may_start_takes_effect_when_it_may(
    executor: LocalExecutor,
) -> None:
    def gate() -> bool:
        assert executor.stop(9102) is True  # the run is being set up; its code not yet running
        return True

    result = executor.run(
        request(9102, "import time\nprint('x', flush=True)\ntime.sleep(60)\n"), gate
    )

    assert result.outcome is Outcome.CANCELLED


def test_stopping_a_job_that_is_not_running_here_does_nothing(executor: LocalExecutor) -> None:
    assert executor.stop(9103) is False
    result = executor.run(request(9103, "print('fine')\n"))
    assert (result.outcome, result.stdout) == (Outcome.OK, "fine\n")
    assert executor.stop(9103) is False  # finished: nothing to stop
