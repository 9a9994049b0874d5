"""The executor's lifecycle: zygote restart, concurrency, close, uid ownership, hide_paths."""

from __future__ import annotations

import json
import os
import pwd
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import Outcome, RunRequest
from bot.errors import ExecutorUnavailable
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from bot.sandbox.zygote import cgroups
from testbed.processes import descendants
from testbed.waiting import wait_until

from .conftest import (
    IS_ROOT,
    REPO,
    harness_request,
    processes_of,
    under_private_tmp,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def tag_dirs(uid_base: int) -> list[str]:
    """The cgroup directories an executor of this process with this uid base would own."""
    _, bases = cgroups.bases()
    tag = f"jobbot-{os.getpid()}-{uid_base}"
    return [os.path.join(base, tag) for base in bases.values()]


@pytest.fixture
def own_executor(secret_env: dict[str, str]) -> Iterator[LocalExecutor]:
    """A private executor with 2 slots (uids from 61200 on) for tests that disturb it."""
    ex = LocalExecutor(slots=2, uid_base=61200, max_procs=16, tmp_bytes=16 * MIB)
    yield ex
    ex.close()


def test_a_killed_zygote_is_restarted_by_the_next_job(own_executor: LocalExecutor) -> None:
    old = own_executor.zygote_pid
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_until(lambda: own_executor.zygote_pid is None, message="the zygote to die")
    response = own_executor.run_harness(harness_request("print('back')"))
    assert response["stdout"] == "back\n"
    new = own_executor.zygote_pid
    assert new is not None and new != old
    rows = {check: ok for check, _, ok in own_executor.describe()}
    assert rows["zygote"] and rows["network isolation"] == IS_ROOT


def test_a_job_running_when_the_zygote_dies_still_finishes(own_executor: LocalExecutor) -> None:
    results = []
    thread = threading.Thread(
        target=lambda: results.append(
            own_executor.run_harness(harness_request("import time\ntime.sleep(0.5)\nprint('done')"))
        )
    )
    zygote = own_executor.zygote_pid
    assert zygote is not None
    templates = set(own_executor.template_pids)
    uids = own_executor.uids
    thread.start()
    # once the job's supervisor has it, the job no longer depends on the zygote (nor on the
    # slot template that forked the supervisor, which dies with the zygote): as root, the
    # job's process has taken its slot's uid; otherwise a supervisor was forked for it
    wait_until(
        lambda: processes_of(uids) if uids else descendants(zygote) - templates,
        message="the job to start",
    )
    os.kill(zygote, signal.SIGKILL)
    thread.join()
    assert results[0]["stdout"] == "done\n"


def test_more_concurrent_runs_than_slots_all_complete(own_executor: LocalExecutor) -> None:
    code = "import os, time\ntime.sleep(0.2)\nprint(os.getuid())"
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        uid = int(own_executor.run_harness(harness_request(code))["stdout"])
        with lock:
            results.append(uid)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6
    if IS_ROOT:
        assert set(results) <= set(own_executor.uids)


def test_close_stops_the_zygote_and_removes_cgroups_and_uid_locks(
    secret_env: dict[str, str],
) -> None:
    ex = LocalExecutor(slots=2, uid_base=61300, max_procs=64, tmp_bytes=16 * MIB)
    first_uid = ex.uids[0] if IS_ROOT else 61300  # the cgroup tag names the uid block
    zygote = ex.zygote_pid
    assert zygote is not None
    assert ex.run_harness(harness_request("print(1)"))["outcome"] == "ok"
    if IS_ROOT:
        assert all(os.path.isdir(d) for d in tag_dirs(first_uid))
    ex.close()
    ex.close()  # idempotent
    wait_until(lambda: not _alive(zygote), message="the zygote to exit")
    assert not any(os.path.exists(d) for d in tag_dirs(first_uid))
    with pytest.raises(ExecutorUnavailable, match="closed"):
        ex.run(RunRequest(1, "a.py", "print(1)", "{}", 5.0, 256, MIB))
    again = LocalExecutor(slots=2, uid_base=first_uid, max_procs=64, tmp_bytes=16 * MIB)
    try:
        assert again.uids == ex.uids or not IS_ROOT  # the uids were released
    finally:
        again.close()


@pytest.mark.skipif(not IS_ROOT, reason="uids are only used (and locked) as root")
def test_a_second_executor_takes_the_next_free_block_of_uids(own_executor: LocalExecutor) -> None:
    taken = own_executor.uids
    second = LocalExecutor(slots=2, uid_base=taken[1], max_procs=64, tmp_bytes=16 * MIB)
    try:
        uids = second.uids
        assert uids[0] >= taken[1] + 2 and uids[1] == uids[0] + 1  # a later, whole block
        rows = {check: detail for check, detail, _ in second.describe()}
        assert rows["privileges"] == f"jobs run as uid {uids[0]}-{uids[1]}, no_new_privs"
        uid = second.run_harness(harness_request("import os\nprint(os.getuid())"))["stdout"]
        assert int(uid) in uids
        assert own_executor.run_harness(harness_request("print(1)"))["outcome"] == "ok"
    finally:
        second.close()


@pytest.mark.skipif(not IS_ROOT, reason="uids are only used (and locked) as root")
def test_uids_of_passwd_accounts_are_never_job_uids(secret_env: dict[str, str]) -> None:
    nobody = 65534  # "nobody" exists on every Linux system
    ex = LocalExecutor(slots=1, uid_base=nobody, max_procs=64, tmp_bytes=16 * MIB)
    try:
        (uid,) = ex.uids
        assert uid > nobody
        with pytest.raises(KeyError):
            pwd.getpwuid(uid)
    finally:
        ex.close()


def test_each_hide_path_is_masked_on_its_own(secret_env: dict[str, str], bot_dir: Path) -> None:
    ex = LocalExecutor(
        slots=1, uid_base=61400, max_procs=64, tmp_bytes=16 * MIB, hide_paths=[str(bot_dir)]
    )
    try:
        code = (
            "import json\nout = []\nfor path in paths:\n"
            "    try:\n        out.append(open(path).read(20))\n"
            "    except OSError as exc:\n        out.append(type(exc).__name__)\n"
            "print(json.dumps(out))\n"
        )
        # another of the host's files, not hidden (a checkout in /tmp is behind the job's tmpfs)
        other = Path(json.__file__) if under_private_tmp(REPO) else REPO / "pyproject.toml"
        paths = [str(bot_dir / ".env"), str(other)]
        found = json.loads(ex.run_harness(harness_request(code, {"paths": paths}))["stdout"])
        if IS_ROOT:
            assert found == ["FileNotFoundError", other.read_text()[:20]]
        else:  # no mount namespace: hide_paths cannot be honoured, and describe() says so
            assert found[0].startswith("SLACK_BOT_TOKEN")
            rows = {check: (detail, ok) for check, detail, ok in ex.describe()}
            assert rows["filesystem"][1] is False
    finally:
        ex.close()


@pytest.mark.skipif(not IS_ROOT, reason="leftovers are found by their uid, which needs root")
def test_a_crashed_bots_leftover_job_processes_are_killed_at_start(
    secret_env: dict[str, str],
) -> None:
    probe = LocalExecutor(slots=1, uid_base=61500, max_procs=64, tmp_bytes=16 * MIB)
    (uid,) = probe.uids  # a free slot uid (released again by close)
    probe.close()
    # a process of that uid, as if left behind by a bot that crashed mid-job
    leftover = subprocess.Popen(["sleep", "60"], user=uid, group=uid, extra_groups=[])
    try:
        wait_until(lambda: processes_of([uid]) == [leftover.pid])
        ex = LocalExecutor(slots=1, uid_base=uid, max_procs=64, tmp_bytes=16 * MIB)
        assert ex.uids == (uid,)
        ex.close()
        assert leftover.wait(timeout=5) == -signal.SIGKILL
    finally:
        leftover.kill()
        leftover.wait()


SENSIBLE = {"slots": 1, "uid_base": 61600, "max_procs": 16, "tmp_bytes": 16 * MIB}


@pytest.mark.parametrize(
    ("option", "value"), [("slots", 0), ("tmp_bytes", 0), ("max_procs", 0), ("max_open_files", 3)]
)
def test_nonsensical_limits_are_refused_before_anything_starts(option: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"{option} must be at least"):
        LocalExecutor(**{**SENSIBLE, option: value})  # type: ignore[arg-type]


def test_a_broken_python_makes_the_executor_unavailable(secret_env: dict[str, str]) -> None:
    with pytest.raises(ExecutorUnavailable, match="did not start"):
        LocalExecutor(**SENSIBLE, python="/nonexistent/python3")  # type: ignore[arg-type]
    LocalExecutor(**SENSIBLE).close()  # type: ignore[arg-type]  # locks were released


def test_run_results_carry_the_executor_name_and_outcome(own_executor: LocalExecutor) -> None:
    result = own_executor.run(RunRequest(3, "t.py", "while True: pass", "{}", 0.5, 256, MIB))
    assert (result.outcome, result.executor) == (Outcome.TIMEOUT, "local")
    assert result.error_message == "the job ran longer than 0.5 s and was stopped"
