"""A project whose job environment lies under /tmp (a checkout in /tmp): each job's private
/tmp would cover it, so the sandbox binds it back, read-only, and hides the rest as before."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv

from .conftest import harness_request

PROBE = """\
import json, os, sys
import tmpprobe
try:
    open(os.path.join(os.path.dirname(tmpprobe.__file__), "mine"), "w")
    wrote = True
except OSError:
    wrote = False
print(json.dumps({
    "value": tmpprobe.VALUE,
    "prefix": sys.prefix,
    "wrote": wrote,
    "secret": os.path.exists(PROJECT + "/secret.txt"),
    "tmp": sorted(os.listdir("/tmp")),
}))
"""


@pytest.fixture(scope="module")
def project() -> Iterator[Path]:
    """A project under /tmp with a job environment of its own: a virtualenv of the job
    interpreter's base Python, holding one small package."""
    base = subprocess.run(
        [jobenv.job_python(), "-c", "import sys; print(sys._base_executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    root = Path(tempfile.mkdtemp(prefix="jobbot-checkout-", dir="/tmp"))
    root.chmod(0o755)
    venv = root / ".venv-jobs"
    subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    (site / "tmpprobe").mkdir()
    (site / "tmpprobe" / "__init__.py").write_text("VALUE = 42\n")
    (root / "secret.txt").write_text("the project's own files stay hidden\n")
    yield root
    shutil.rmtree(root)


@pytest.fixture(scope="module")
def executor(project: Path) -> Iterator[LocalExecutor]:
    ex = LocalExecutor(
        python=str(project / ".venv-jobs" / "bin" / "python"),
        slots=1,
        uid_base=61700,
        max_procs=32,
        tmp_bytes=16 * MIB,
        hide_paths=[str(project)],
    )
    yield ex
    ex.close()


def test_a_job_environment_under_tmp_is_importable_read_only_and_alone(
    executor: LocalExecutor, project: Path
) -> None:
    (isolation,) = [detail for check, detail, _ in executor.describe() if check == "isolation"]
    if "NO private mounts" in isolation:
        pytest.skip("no mount namespace here: jobs share the host's /tmp anyway")
    code = f"PROJECT = {str(project)!r}\n" + PROBE
    response = executor.run_harness(harness_request(code))

    assert response["outcome"] == "ok", response
    seen = json.loads(response["stdout"])
    assert seen["value"] == 42
    assert seen["prefix"] == str(project / ".venv-jobs")
    assert seen["wrote"] is False  # bound back read-only
    assert seen["secret"] is False  # only the job environment, not the project
    # the job's /tmp is its own: its working directory, and the path down to the environment
    assert project.name in seen["tmp"]
    assert not list((project / ".venv-jobs").glob("lib/python*/site-packages/tmpprobe/mine"))
