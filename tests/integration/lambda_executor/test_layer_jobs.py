"""Jobs on Lambda import the job packages from the layer `lambda deploy` builds: the stand-in
runs the real handler on python3.13 with that layer (built by deploy's own builder for this
machine) unpacked at /opt, as Lambda unpacks it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from bot.core.models import Outcome
from bot.executors.aws_lambda.doctor import lambda_checks
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from bot.executors.jobenv import read_pins
from testbed.lambda_layer import REQUIREMENTS, layer_dir
from testbed.lambda_setup import fake_aws, lambda_settings
from testbed.lambda_standin import LambdaStandIn
from testbed.pythons import require_lambda_python
from tests.integration.lambda_executor.conftest import job

TIMEOUT_S = 20.0
PINS = {pin.name: pin.version for pin in read_pins(REQUIREMENTS)}
OFFERED = [f"{pin.name} {pin.version}" for pin in read_pins(REQUIREMENTS) if pin.offered]


@pytest.fixture(scope="module")
def with_layer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaExecutor]:
    """A LambdaExecutor whose function runs python3.13 with the packages layer at /opt."""
    python = require_lambda_python()
    opt = layer_dir()
    with pytest.MonkeyPatch.context() as patch:
        fake_aws(patch, tmp_path_factory.mktemp("aws"))
        with LambdaStandIn(timeout_s=TIMEOUT_S + 5, max_concurrency=1, python=python, opt=opt) as s:
            patch.setenv("AWS_ENDPOINT_URL_LAMBDA", s.endpoint_url)
            executor = build_lambda_executor(lambda_settings(JOBBOT_JOB_TIMEOUT=f"{TIMEOUT_S:g}"))
            yield executor
            executor.close()


def test_a_job_imports_numpy_pandas_and_matplotlib_at_the_pinned_versions(
    with_layer: LambdaExecutor,
) -> None:
    code = """\
import io, os, sys
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

frame = pd.DataFrame({"x": np.arange(10), "y": np.arange(10) ** 2})
product = np.ones((200, 200)) @ np.ones((200, 200))
fig, ax = plt.subplots()
ax.plot(frame.x, frame.y)
png = io.BytesIO()
fig.savefig(png, format="png")

def main():
    return {
        "versions": [np.__version__, pd.__version__, matplotlib.__version__],
        "sum": int(frame.y.sum()),
        "product": float(product[0, 0]),
        "backend": matplotlib.get_backend(),
        "png": png.getvalue()[:4] == b"\\x89PNG",
        "threads": len(os.listdir("/proc/self/task")),
        "numpy": np.__file__,
    }
"""
    result = with_layer.run(job(code, timeout_s=TIMEOUT_S))

    assert result.outcome is Outcome.OK, result
    found = json.loads(result.result_json or "null")
    assert found["versions"] == [PINS["numpy"], PINS["pandas"], PINS["matplotlib"]]
    assert found["sum"] == 285 and found["product"] == 200.0
    assert found["backend"].lower() == "agg" and found["png"]
    assert found["threads"] == 1  # BLAS runs one thread per job, after a matrix product too
    assert found["numpy"].startswith("/opt/python/numpy/")


def test_matplotlib_uses_the_font_list_of_the_layer_instead_of_building_one(
    with_layer: LambdaExecutor,
) -> None:
    code = """\
import glob, os
[cached] = glob.glob(os.path.expanduser("~/.cache/matplotlib/fontlist-v*.json"))
seeded = os.stat(cached).st_mtime_ns
import matplotlib.pyplot as plt
from matplotlib import font_manager
plt.title("text needs a font")
plt.savefig("chart.png")
print(os.stat(cached).st_mtime_ns == seeded, font_manager.fontManager.defaultFont["ttf"])
"""
    result = with_layer.run(job(code, timeout_s=TIMEOUT_S))

    assert result.outcome is Outcome.OK, result
    unchanged, font = result.stdout.split()
    assert unchanged == "True"  # matplotlib read the list: it did not build and write one
    assert font == "/opt/python/matplotlib/mpl-data/fonts/ttf/DejaVuSans.ttf"


def test_a_missing_package_names_what_the_layer_offers(with_layer: LambdaExecutor) -> None:
    result = with_layer.run(job("import torch\n"))

    assert result.outcome is Outcome.ERROR, result
    assert result.error_message == (
        "No module named 'torch'. Jobs can import the standard library and: "
        + ", ".join(OFFERED)
        + "."
    )


def test_the_layer_is_read_only_to_jobs(with_layer: LambdaExecutor) -> None:
    code = """\
import numpy
try:
    open(numpy.__file__, "a").close()
    print("writable")
except OSError:  # EROFS on Lambda; here EACCES comes first (the files are not the runtime's)
    print("refused")
"""
    result = with_layer.run(job(code))

    assert result.outcome is Outcome.OK and result.stdout.strip() == "refused", result


def test_doctor_reports_the_layer_as_up_to_date(with_layer: LambdaExecutor) -> None:
    rows = {
        name: (detail, ok) for name, detail, ok in lambda_checks(lambda_settings(), REQUIREMENTS)
    }

    detail, ok = rows["lambda packages"]
    assert ok, detail
    assert detail == "layer up to date: the standard library and " + ", ".join(OFFERED)


def test_doctor_fails_the_packages_row_of_a_function_without_the_layer(
    standin: LambdaStandIn,
) -> None:
    rows = {
        name: (detail, ok) for name, detail, ok in lambda_checks(lambda_settings(), REQUIREMENTS)
    }

    detail, ok = rows["lambda packages"]
    assert not ok and detail.startswith("NONE: the function has no packages layer")
    assert "run `python -m bot lambda deploy`" in detail
