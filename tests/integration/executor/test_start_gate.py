"""The start gate: the worker commits `invoked_at` while the sandbox sets the job's process up,
and the user's code starts only after the gate said yes. A "no" (the claim was lost) or a gate
that fails leaves nothing run, and the executor carries on."""

from __future__ import annotations

import os
import time

import pytest

from bot.core.models import Outcome, RunRequest
from bot.errors import CalledOff
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed.processes import descendants
from testbed.waiting import wait_until

from .conftest import IS_ROOT, processes_of

STAMP = "import time\nprint(repr(time.time()))\n"


def request(code: str, job_id: int = 41) -> RunRequest:
    return RunRequest(job_id, "gate.py", code, "{}", 10.0, 256, MIB)


def test_the_code_starts_only_after_the_gate_said_yes(executor: LocalExecutor) -> None:
    calls: list[float] = []

    def gate() -> bool:
        calls.append(time.time())
        return True

    result = executor.run(request(STAMP), gate)

    assert result.outcome is Outcome.OK, result
    assert len(calls) == 1
    assert float(result.stdout) >= calls[0]


def held_job_processes(executor: LocalExecutor) -> list[int]:
    """Job processes prepared and held (still root) in their job directory."""
    zygote = executor.zygote_pid
    assert zygote is not None
    found = []
    for pid in descendants(zygote):
        try:
            if os.path.basename(os.readlink(f"/proc/{pid}/cwd")).startswith("jobbot-job-"):
                found.append(pid)
        except OSError:  # gone meanwhile
            continue
    return found


@pytest.mark.skipif(not IS_ROOT, reason="another uid's processes are seen through /proc as root")
def test_the_job_process_is_ready_and_held_while_the_gate_runs(executor: LocalExecutor) -> None:
    """What makes the gate cheap: the job's process exists before the gate returns (a slot's
    spare is prepared before the job even arrives), held as root, not running any code: no
    process of a job uid exists yet. The code's clock starts after the gate returned."""
    seen: list[int] = []
    running: list[int] = []
    passed: list[float] = []

    def gate() -> bool:
        held = wait_until(lambda: held_job_processes(executor), message="a held process")
        seen.extend(os.stat(f"/proc/{pid}").st_uid for pid in held)
        running.extend(processes_of(executor.uids))
        passed.append(time.time())
        return True

    result = executor.run(request(STAMP), gate)

    assert seen, "a job process was up while the gate ran"
    assert set(seen) == {0}  # held as root
    assert running == []
    assert result.outcome is Outcome.OK, result
    assert float(result.stdout) >= passed[0]


def test_a_no_at_the_gate_runs_nothing_and_leaves_nothing(executor: LocalExecutor) -> None:
    calls: list[int] = []

    def gate() -> bool:
        calls.append(1)
        return False

    with pytest.raises(CalledOff):
        executor.run(request("print('ran')\n"), gate)

    assert calls == [1]
    if IS_ROOT:
        wait_until(lambda: not processes_of(executor.uids), message="no job process left")
    after = executor.run(request("print('next')\n", job_id=42))
    assert (after.outcome, after.stdout) == (Outcome.OK, "next\n")


def test_a_gate_that_fails_propagates_and_runs_nothing(executor: LocalExecutor) -> None:
    def gate() -> bool:
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        executor.run(request("print('ran')\n"), gate)

    if IS_ROOT:
        wait_until(lambda: not processes_of(executor.uids), message="no job process left")
    after = executor.run(request("print('next')\n", job_id=43))
    assert (after.outcome, after.stdout) == (Outcome.OK, "next\n")
