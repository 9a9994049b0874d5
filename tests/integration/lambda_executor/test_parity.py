"""The shared contract suite: every user-code contract case through LocalExecutor and through
LambdaExecutor (real boto3, the stand-in, the real handler in an emulated environment), with
identical results expected, durations aside.

The cases are the engine's own (tests/integration/executor/test_contract.py), so a case added
there is checked on Lambda too.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.core.models import JobFile, RunRequest, RunResult
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv
from testbed.lambda_setup import lambda_on_standin
from testbed.pythons import require_lambda_python
from tests.integration.executor.file_cases import entry
from tests.integration.executor.test_contract import CASES, LIBRARY_ERROR, Case

REPO = Path(__file__).resolve().parents[3]
UID_BASE = 62500  # outside the engine tests' ranges (61000-62099): both may run at once
TIMEOUT_S = 10.0
# the RunResult fields a case's expectations can name (exit_code and signal stay in the harness)
RESULT_FIELDS = {f.name for f in dataclasses.fields(RunResult)}


def protocol_request(case: Case) -> dict[str, Any]:
    """The case as a protocol-v1 request (the engine suite's defaults)."""
    request: dict[str, Any] = {
        "v": 1,
        "job_id": 7,
        "file_name": "job.py",
        "code": case.code,
        "input_json": json.dumps(case.input),
        "timeout_s": TIMEOUT_S,
        "memory_mb": 256,
        "max_output_bytes": MIB,
    }
    request.update(case.changes)
    return request


def run_request(case: Case) -> RunRequest | None:
    """The case as a RunRequest, or None if it is about malformed protocol requests."""
    request = protocol_request(case)
    if request.pop("v") != 1 or not isinstance(request["memory_mb"], int):
        return None
    files = request.pop("files", [])
    inputs = tuple(JobFile(f["name"], base64.b64decode(f["data"])) for f in files)
    return RunRequest(**request, files=inputs)


def comparable(result: RunResult, key: str) -> Any:
    """A RunResult field as a case's expectations spell it (protocol values)."""
    value = getattr(result, key)
    if key == "files":
        return [entry(f.name, f.data) for f in value]
    return getattr(value, "value", value)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalExecutor]:
    """The local executor as the bot builds it (repository and HOME hidden)."""
    executor = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=2,
        uid_base=UID_BASE,
        max_procs=64,
        tmp_bytes=128 << 20,
        hide_paths=[str(REPO), str(Path.home())],
    )
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LambdaExecutor, Any]]:
    """(LambdaExecutor, a raw boto3 client) on one stand-in with warm environments."""
    with lambda_on_standin(
        tmp_path_factory.mktemp("aws"),
        TIMEOUT_S,
        timeout_s=function_timeout_s(TIMEOUT_S),
        max_concurrency=2,
        layer=jobenv.site_packages(),
    ) as (executor, _):
        client = boto3.client("lambda", region_name="us-east-1")
        yield executor, client
        client.close()


@pytest.fixture(scope="module")
def remote313(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaExecutor]:
    """A LambdaExecutor whose function runs on python3.13, as deployed."""
    python = require_lambda_python()  # missing, it fails: never a silent skip
    with lambda_on_standin(
        tmp_path_factory.mktemp("aws313"),
        TIMEOUT_S,
        timeout_s=function_timeout_s(TIMEOUT_S),
        max_concurrency=2,
        python=python,
    ) as (executor, _):
        yield executor


def without_timing(result: RunResult) -> RunResult:
    """The result with what may differ between executors blanked: duration and name."""
    return dataclasses.replace(result, duration_ms=0, executor="")


@pytest.mark.parametrize("name", CASES)
def test_contract_case_gives_identical_results_on_local_and_lambda(
    local: LocalExecutor, remote: tuple[LambdaExecutor, Any], name: str
) -> None:
    case = CASES[name]
    executor, client = remote
    request = run_request(case)
    if request is None:  # a malformed request: compare the raw protocol answers
        raw = protocol_request(case)
        here = local.run_harness(raw)
        answer = client.invoke(
            FunctionName="jobbot-runner", Payload=json.dumps(raw), TenantId="parity"
        )
        there = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer
        for response in (here, there):
            assert {key: response[key] for key in case.expect} == case.expect
        del here["duration_ms"], there["duration_ms"]
        assert here == there
        return

    on_local, on_lambda = local.run(request), executor.run(request)

    expected = {k: v for k, v in case.expect.items() if k in RESULT_FIELDS}
    for result in (on_local, on_lambda):
        assert {k: comparable(result, k) for k in expected} == expected
    assert (on_local.executor, on_lambda.executor) == ("local", "lambda")
    assert without_timing(on_local) == without_timing(on_lambda)


# What the interpreter itself words differently from one version to the next (traceback
# carets, some exception messages): equal only when the bot runs Lambda's Python version.
VERSION_WORDING = {"traceback", "error_message"}


@pytest.mark.parametrize("name", [n for n in CASES if run_request(CASES[n]) is not None])
def test_contract_case_gives_the_same_outcome_on_lambdas_python_version(
    local: LocalExecutor, remote313: LambdaExecutor, name: str
) -> None:
    request = run_request(CASES[name])
    assert request is not None

    on_local, on_lambda = local.run(request), remote313.run(request)

    blank = dict.fromkeys(VERSION_WORDING)
    assert dataclasses.replace(without_timing(on_local), **blank) == dataclasses.replace(
        without_timing(on_lambda), **blank
    )


def test_a_library_error_names_no_host_path_locally_or_on_lambdas_python_version(
    local: LocalExecutor, remote313: LambdaExecutor
) -> None:
    request = run_request(LIBRARY_ERROR)
    assert request is not None
    for result in (local.run(request), remote313.run(request)):
        assert result.error_type == "json.decoder.JSONDecodeError"
        assert result.traceback is not None
        assert 'File "job.py", line 4, in parse' in result.traceback
        assert 'File "json/decoder.py", line ' in result.traceback
        assert 'File "/' not in result.traceback, result.traceback


# The job environment's packages on both executors (locally the zygote's package template,
# on Lambda the layer at /opt/python), with data files in and figures out.
PACKAGE_CASES = {
    "numpy_pandas_and_matplotlib_import_at_the_same_versions": Case(
        "import numpy, pandas, matplotlib\n"
        "print(numpy.__version__, pandas.__version__, matplotlib.__version__,"
        " matplotlib.get_backend())\n",
        {"outcome": "ok"},
    ),
    "pandas_reads_a_data_file": Case(
        "import pandas as pd\nprint(pd.read_csv('data.csv').sum().to_dict())\n",
        {"outcome": "ok", "stdout": "{'a': 4, 'b': 6}\n", "files": []},
        changes={"files": [entry("data.csv", b"a,b\n1,2\n3,4\n")]},
    ),
    "an_open_figure_comes_back_as_a_png_beside_the_files_written": (
        Case(
            "import matplotlib.pyplot as plt\nplt.plot(range(10))\nplt.figure()\n"
            "plt.bar(['a', 'b'], [1, 2])\nopen('out/table.csv', 'w').write('x\\n1\\n')\n",
            {"outcome": "ok", "files_note": None},
        )
    ),
    "a_figure_too_large_to_draw_is_left_out_with_a_note": Case(
        "import matplotlib.pyplot as plt\nplt.figure(figsize=(1000, 1000), dpi=100)\n"
        "plt.plot([1, 2])\n",
        {
            "outcome": "ok",
            "files": [],
            "files_note": "left out: figure 1 (100000x100000 pixels, limit 50,000,000 pixels)",
        },
    ),
    "a_figure_whose_savefig_dpi_makes_it_too_large_is_left_out_before_it_is_drawn": Case(
        "import matplotlib.pyplot as plt\nplt.rcParams['savefig.dpi'] = 5000\nplt.plot([1, 2])\n",
        {
            "outcome": "ok",
            "files": [],
            "files_note": "left out: figure 1 (32000x24000 pixels, limit 50,000,000 pixels)",
        },
    ),
}


@pytest.mark.parametrize("name", PACKAGE_CASES)
def test_package_case_gives_identical_results_on_local_and_lambda(
    local: LocalExecutor, remote: tuple[LambdaExecutor, Any], name: str
) -> None:
    case = PACKAGE_CASES[name]
    request = run_request(case)
    assert request is not None

    on_local, on_lambda = local.run(request), remote[0].run(request)

    expected = {k: v for k, v in case.expect.items() if k in RESULT_FIELDS}
    for result in (on_local, on_lambda):
        assert {k: comparable(result, k) for k in expected} == expected, result
    assert without_timing(on_local) == without_timing(on_lambda)


def test_figures_come_back_as_pngs_named_by_their_number(local: LocalExecutor) -> None:
    request = run_request(
        PACKAGE_CASES["an_open_figure_comes_back_as_a_png_beside_the_files_written"]
    )
    assert request is not None

    result = local.run(request)

    assert [f.name for f in result.files] == ["figure-1.png", "figure-2.png", "table.csv"]
    for figure in result.files[:2]:
        assert figure.data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", figure.data[16:24])
        assert (width, height) == (640, 480)  # matplotlib's default 6.4 x 4.8 in at 100 dpi
