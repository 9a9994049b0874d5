"""The start gate: the worker commits `invoked_at` while the sandbox sets the job's process up,
and the user's code starts only after the gate said yes. A "no" (the claim was lost) or a gate
that fails leaves nothing run, and the executor carries on."""

from __future__ import annotations

import time

import pytest

from bot.core.models import Outcome, RunRequest
from bot.errors import CalledOff
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
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


@pytest.mark.skipif(not IS_ROOT, reason="the job's process is found by its uid, which needs root")
def test_the_job_process_is_set_up_while_the_gate_runs(executor: LocalExecutor) -> None:
    """The overlap that makes the gate cheap: the process exists (held, not running the code)
    before the gate returns, and the code's clock starts after the gate returned."""
    seen: list[int] = []
    passed: list[float] = []

    def gate() -> bool:
        seen.extend(wait_until(lambda: processes_of(executor.uids), message="the held process"))
        passed.append(time.time())
        return True

    result = executor.run(request(STAMP), gate)

    assert seen, "a job process was up while the gate ran"
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
