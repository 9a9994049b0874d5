"""Degraded modes, asserted rather than skipped: no namespaces/cgroups, and a bot without root
(a developer laptop, or the Lambda handler in fresh mode), simulated here with another uid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv

from .conftest import IS_ROOT, REPO, SECRETS, harness_request, processes_of

# as root, the "non-root bot" runs as this uid; one per test run, since the checks look at
# every process of the uid and test runs on one machine may overlap
UNPRIVILEGED = 60100 + os.getpid() % 800
HELPER = Path(__file__).with_name("unprivileged_bot.py")


def searchable_by_others(path: str) -> bool:
    """Whether a uid with no relation to the file's owner can reach and run `path`."""
    current = path
    while current not in ("/", ""):
        current = os.path.dirname(current)
        if not os.stat(current).st_mode & 0o001:
            return False
    return bool(os.stat(path).st_mode & 0o001)


def unprivileged_python() -> str:
    """A Python 3.11+ an unprivileged uid can run (the bot's own may sit under /root, 0700)."""
    candidates = [os.path.realpath(sys.executable), "/usr/bin/python3.11", "/usr/bin/python3"]
    for candidate in candidates:
        if os.path.exists(candidate) and searchable_by_others(candidate):
            check = [candidate, "-S", "-c", "import sys; assert sys.version_info >= (3, 11)"]
            if subprocess.run(check, check=False).returncode == 0:
                return candidate
    pytest.fail(f"no Python 3.11+ runnable by an unprivileged uid among {candidates}")


def run_unprivileged_bot(mode: str, *args: str) -> dict[str, Any]:
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", **SECRETS}
    switch: dict[str, Any] = {}
    if IS_ROOT:
        switch = {"user": UNPRIVILEGED, "group": UNPRIVILEGED, "extra_groups": []}
    command = [unprivileged_python(), "-S", "-B", str(HELPER), str(REPO), mode, *args]
    done = subprocess.run(
        command, env=env, cwd="/tmp", capture_output=True, text=True, check=False, **switch
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def assert_contained_without_root(found: dict[str, Any], max_procs: int) -> None:
    assert found["sum"] == "5"
    probe = found["probe"]
    assert set(probe["env"]) == {
        "PATH", "LANG", "TZ", "HOME", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
        "MPLBACKEND",
    }  # fmt: skip
    assert probe["named"] == {"bot": "PermissionError"}  # the bot made itself non-dumpable
    assert not any(secret in json.dumps(probe) for secret in SECRETS.values())
    forked, failed = map(int, found["forks"].split())
    # RLIMIT_NPROC counts the whole shared uid, so what else it runs can shift this by one
    assert max_procs - 2 <= forked <= max_procs and forked + failed == 500
    assert found["escape"] == "timeout"
    assert found["escapee_alive"] is False  # the setsid escapee was reaped by the subreaper sweep
    assert found["leftovers"] == []
    assert found["job_dirs"] == []


def test_a_bot_without_root_runs_jobs_with_documented_degraded_isolation() -> None:
    found = run_unprivileged_bot("executor")
    assert found["uid"] == (UNPRIVILEGED if IS_ROOT else os.getuid())
    rows = {check: (detail, ok) for check, detail, ok in found["describe"]}
    assert rows["network isolation"][1] is False
    assert rows["network isolation"][0].startswith("NOT isolated: namespaces unavailable")
    assert rows["privileges"] == (
        f"NOT dropped: jobs run as the bot's uid {found['uid']} (bot is non-dumpable)",
        False,
    )
    assert rows["filesystem"][1] is False
    assert rows["zygote"][1] is True
    assert_contained_without_root(found, max_procs=16)
    # same uid, but the supervisor is non-dumpable like the templates it was forked from
    assert found["probe"]["parent"] == "PermissionError"


def test_fresh_mode_without_root_is_contained_like_in_lambda() -> None:
    found = run_unprivileged_bot("fresh")
    assert_contained_without_root(found, max_procs=64)
    assert found["probe"]["parent"] == "PermissionError"  # the caller: the bot, non-dumpable


@pytest.fixture(scope="module")
def probe_environment() -> Iterator[str]:
    """A job environment an unprivileged uid can run: a virtualenv of that uid's Python with
    one small package, `jobbot_probe` (numpy's environment sits where it cannot reach)."""
    root = tempfile.mkdtemp(prefix="jobbot-probe-env-")
    venv = Path(root) / "venv"
    subprocess.run([unprivileged_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "jobbot_probe").mkdir()
    (site / "jobbot_probe" / "__init__.py").write_text("VALUE = 42\n")
    info = site / "jobbot_probe-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: jobbot-probe\nVersion: 1.0\n")
    Path(root).chmod(0o755)  # mkdtemp's 0700; what is inside has the usual modes
    yield str(venv / "bin" / "python")
    shutil.rmtree(root)


def test_a_bot_without_root_forks_package_jobs_from_its_package_template(
    probe_environment: str,
) -> None:
    found = run_unprivileged_bot("packages", probe_environment)
    rows = {check: (detail, ok) for check, detail, ok in found["describe"]}
    assert rows["templates"][1] is True
    assert "packages: jobbot_probe" in rows["templates"][0]
    assert (found["preloaded"], found["value"]) == ("True\n", "42\n")
    assert found["hint"] == (
        "No module named 'torch'. Jobs can import the standard library and: jobbot-probe 1.0."
    )
    assert found["leftovers"] == []


@pytest.mark.skipif(not IS_ROOT, reason="switching to another uid needs root")
def test_another_uid_can_start_the_bots_interpreter_only_if_its_path_is_searchable() -> None:
    # A quick `setpriv --reuid=... python3.11 -c 'import json'` finds /usr/bin/python3.11 on
    # PATH, a different interpreter and standard library. The bot's own binary (here under
    # /root, 0700) is out of reach of other uids; jobs use it anyway, forked from the zygote
    # with the interpreter's prefix kept visible (test_containment checks sys.version).
    real = os.path.realpath(sys.executable)
    command = [real, "-I", "-S", "-c", "import sys; print(sys.version)"]
    switch = {"user": UNPRIVILEGED, "group": UNPRIVILEGED, "extra_groups": []}
    if searchable_by_others(real):
        done = subprocess.run(command, capture_output=True, text=True, check=True, **switch)
        assert done.stdout.strip() == sys.version
    else:
        with pytest.raises(PermissionError):
            subprocess.run(command, capture_output=True, check=False, **switch)


@pytest.fixture
def bare_executor(secret_env: dict[str, str]) -> Iterator[LocalExecutor]:
    """Root, but with namespaces and cgroups turned off (like a container without them)."""
    ex = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=2,
        uid_base=61700,
        max_procs=64,
        tmp_bytes=16 * MIB,
        namespaces=False,
        cgroups=False,
    )
    yield ex
    ex.close()


@pytest.mark.skipif(not IS_ROOT, reason="without root this is the unprivileged case above")
def test_root_without_namespaces_still_drops_privileges_and_says_what_is_missing(
    bare_executor: LocalExecutor,
) -> None:
    rows = {check: (detail, ok) for check, detail, ok in bare_executor.describe()}
    assert rows["network isolation"][1] is False
    assert rows["filesystem"] == (
        "NOT isolated: jobs see the host filesystem (job dir in /tmp, removed after)",
        False,
    )
    uids = bare_executor.uids
    assert rows["privileges"] == (f"jobs run as uid {uids[0]}-{uids[1]}, no_new_privs", True)
    assert rows["process limit"][1] is True  # the slot's own uid makes RLIMIT_NPROC count
    assert rows["memory limit"][1] is False
    stdlib_hidden = not searchable_by_others(os.path.realpath(sys.base_prefix))
    assert ("standard library" in rows) == stdlib_hidden
    code = "import os\ndef main(a):\n    return [a, os.getuid()]\n"
    response = bare_executor.run_harness(harness_request(code, {"a": 1}))
    assert response["result_json"] in (f"[1, {uids[0]}]", f"[1, {uids[1]}]")
    probe = bare_executor.run_harness(harness_request("import sqlite3"))
    if stdlib_hidden:  # only the modules the zygote preloaded can be imported
        assert probe["error_type"] == "ModuleNotFoundError"
    else:
        assert probe["outcome"] == "ok"


@pytest.mark.skipif(not IS_ROOT, reason="without root this is the unprivileged case above")
def test_root_without_namespaces_cleans_the_jobs_files_and_processes(
    bare_executor: LocalExecutor,
) -> None:
    name = f"jobbot-left-{uuid.uuid4().hex}"
    code = (
        "import os, time\n"
        "for top in ('/tmp', '/var/tmp', '/dev/shm'):\n"
        "    open(f'{top}/{name}', 'w').write('x')\n"
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n    os._exit(0)\n"
        "print(os.getcwd())\n"
    )
    response = bare_executor.run_harness(harness_request(code, {"name": name}))
    workdir = response["stdout"].strip()
    assert workdir.startswith("/tmp/jobbot-job-")
    assert not os.path.exists(workdir)
    for top in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not os.path.exists(f"{top}/{name}")
    assert processes_of(bare_executor.uids) == []


@pytest.mark.skipif(not IS_ROOT, reason="without root this is the unprivileged case above")
def test_root_without_namespaces_runs_package_jobs_that_cannot_write_the_environment(
    bare_executor: LocalExecutor,
) -> None:
    code = """\
import numpy as np
import pandas as pd
frame = pd.DataFrame({"x": np.arange(4)})
try:
    open(np.__file__, "a")
    written = "WRITTEN"
except OSError as exc:
    written = exc.strerror
print(int(frame.x.sum()), written)
"""
    response = bare_executor.run_harness(harness_request(code))
    assert response["stdout"] == "6 Permission denied\n", response
    rows = {check: (detail, ok) for check, detail, ok in bare_executor.describe()}
    assert rows["templates"][1] is True
    # without private mounts RLIMIT_AS is the only memory limit: memory_mb above the template
    assert rows["memory limit"] == (
        "address space (RLIMIT_AS) = the job's memory_mb above the template, per process only",
        False,
    )
