"""The job environment: numpy, pandas and matplotlib importable (preloaded), read-only, none of
the bot's packages, a hint after a failed import, and every job a fork of a template."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from bot.executors.local import LocalExecutor
from testbed import jobenv

from .conftest import REPO, harness_request

VENV = Path(jobenv.PYTHON).parents[1]


def run(executor: LocalExecutor, code: str, **changes: Any) -> dict[str, Any]:
    return executor.run_harness(harness_request(code, **changes))


def test_describe_names_the_job_environment_and_both_templates(executor: LocalExecutor) -> None:
    rows = {check: (detail, ok) for check, detail, ok in executor.describe()}
    offered = ", ".join(jobenv.packages().offered)
    assert rows["job environment"] == (
        f"{VENV}, read-only to jobs: the standard library and {offered}",
        True,
    )
    detail, ok = rows["templates"]
    assert ok, detail
    assert "packages: numpy, pandas, matplotlib.pyplot" in detail


def test_a_job_uses_numpy_pandas_and_matplotlib(executor: LocalExecutor) -> None:
    code = """\
import io
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

frame = pd.DataFrame({"x": np.arange(10), "y": np.arange(10) ** 2})
fig, ax = plt.subplots()
ax.plot(frame.x, frame.y)
png = io.BytesIO()
fig.savefig(png, format="png")
def main():
    return {
        "sum": int(frame.y.sum()),
        "backend": matplotlib.get_backend(),
        "png": png.getvalue()[:4] == b"\\x89PNG",
        "numpy": np.__file__,
    }
"""
    response = run(executor, code)
    assert response["outcome"] == "ok", response
    result = json.loads(response["result_json"])
    assert result["sum"] == 285
    assert result["backend"].lower() == "agg"
    assert result["png"] is True
    assert result["numpy"].startswith(f"{VENV}/lib/")


def test_blas_runs_one_thread_per_job(executor: LocalExecutor) -> None:
    code = (
        "import os, numpy as np\n"
        "a = np.random.random((300, 300))\n"
        "(a @ a).sum()\n"
        "print(len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'])\n"
    )
    response = run(executor, code)
    assert response["stdout"] == "1 1\n", response


@pytest.mark.parametrize("module", ["sqlalchemy", "slack_sdk", "slack_bolt", "boto3", "bot"])
def test_none_of_the_bots_packages_is_importable(executor: LocalExecutor, module: str) -> None:
    response = run(executor, f"import {module}\n")
    assert response["error_type"] == "ModuleNotFoundError"
    assert response["error_message"].startswith(f"No module named '{module}'. Jobs can import")


def test_a_missing_package_gets_a_hint_naming_what_is_available(executor: LocalExecutor) -> None:
    response = run(executor, "import torch\n")
    offered = ", ".join(jobenv.packages().offered)
    message = f"No module named 'torch'. Jobs can import the standard library and: {offered}."
    assert (response["outcome"], response["error_message"]) == ("error", message)
    assert response["traceback"].endswith(f"ModuleNotFoundError: {message}\n")
    assert offered.startswith("numpy 2.")


def test_a_missing_part_of_an_offered_package_gets_no_hint(executor: LocalExecutor) -> None:
    response = run(executor, "import numpy.nothing_here\n")
    assert response["error_message"] == "No module named 'numpy.nothing_here'"


def test_the_job_environment_is_read_only_to_jobs(executor: LocalExecutor) -> None:
    code = """\
import errno, os, sys
import numpy
site = next(p for p in sys.path if p.endswith("site-packages"))
targets = [
    numpy.__file__,
    os.path.join(site, "sitecustomize.py"),
    os.path.join(site, "extra.pth"),
    os.path.join(os.environ["MPLCONFIGDIR"], "matplotlibrc"),
    os.path.join(sys.prefix, "pyvenv.cfg"),
]
for target in targets:
    try:
        with open(target, "a") as fh:
            fh.write("x")
        print(target, "WRITTEN")
    except OSError as exc:
        print(target, errno.errorcode[exc.errno])
"""
    response = run(executor, code)
    lines = response["stdout"].splitlines()
    assert len(lines) == 5, response
    for line in lines:
        target, verdict = line.rsplit(" ", 1)
        assert target.startswith(str(VENV)), line
        assert verdict in ("EROFS", "EACCES"), line


def test_jobs_that_name_a_package_start_with_it_already_imported(
    executor: LocalExecutor,
) -> None:
    # the first names pandas, so it goes to the package template; the second names nothing
    heavy = run(
        executor, "import sys\nprint(sorted(m for m in ('pandas', 'numpy') if m in sys.modules))\n"
    )
    light = run(executor, "import sys\nprint(('pan' + 'das') in sys.modules)\n")
    assert heavy["stdout"] == "['numpy', 'pandas']\n", heavy
    assert light["stdout"] == "False\n", light


def test_a_package_a_job_does_not_name_still_imports(executor: LocalExecutor) -> None:
    # a name built at run time goes to the light template: the import is slower, not different
    code = (
        "import importlib\nmod = importlib.import_module('pan' + 'das')\nprint(mod.__version__)\n"
    )
    response = run(executor, code)
    assert response["outcome"] == "ok", response
    assert response["stdout"].strip() == jobenv.packages().installed["pandas"]


GRANDPARENT = """\
import os
def parent_of(pid):
    with open(f"/proc/{pid}/stat") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])
slot_template = parent_of(os.getppid())
print(slot_template, parent_of(slot_template), open("/proc/self/cmdline", "rb").read().hex())
"""


@pytest.mark.parametrize("template", ["light", "packages"])
def test_every_job_is_a_fork_of_a_template_without_a_new_interpreter(
    executor: LocalExecutor, template: str
) -> None:
    code = GRANDPARENT + ("import pandas\n" if template == "packages" else "")
    response = run(executor, code)
    slot_template, its_template, cmdline = response["stdout"].split()
    # job <- its supervisor <- the slot's template <- the template; the command line is the
    # zygote's, never a new one
    expected = executor.zygote_pid if template == "light" else executor.package_template_pid
    assert int(its_template) == expected
    assert int(slot_template) != executor.package_template_pid
    assert bytes.fromhex(cmdline) == Path(f"/proc/{executor.zygote_pid}/cmdline").read_bytes()


def test_the_package_template_is_single_threaded_and_in_the_zygotes_namespaces(
    executor: LocalExecutor,
) -> None:
    template, zygote = executor.package_template_pid, executor.zygote_pid
    assert template is not None and zygote is not None
    assert len(os.listdir(f"/proc/{template}/task")) == 1
    for kind in ("mnt", "net", "ipc"):
        assert os.readlink(f"/proc/{template}/ns/{kind}") == os.readlink(
            f"/proc/{zygote}/ns/{kind}"
        )


def test_the_first_package_job_of_every_slot_sees_the_host_sealed(bot_dir: Path) -> None:
    # every slot's first job runs in the spare its slot template prepared at start: those
    # must have been prepared once the zygote hid the bot's directories, not before
    executor = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=3,
        uid_base=62950,
        max_procs=32,
        tmp_bytes=64 << 20,
        hide_paths=[str(bot_dir), str(REPO)],
    )
    code = (
        "import time, pandas\n"
        "try:\n"
        f"    print(open({str(bot_dir / '.env')!r}).read())\n"
        "except OSError as exc:\n"
        "    print(type(exc).__name__)\n"
        "time.sleep(1)\n"  # the three run at once, one in each slot
    )
    try:
        with ThreadPoolExecutor(3) as pool:
            responses = list(pool.map(lambda _: run(executor, code), range(3)))
    finally:
        executor.close()

    assert [r["stdout"] for r in responses] == ["FileNotFoundError\n"] * 3
