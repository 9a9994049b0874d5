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
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.core.models import JobFile, Outcome, RunRequest, RunResult
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor
from bot.executors.jobenv import read_pins
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv
from testbed.lambda_layer import REQUIREMENTS, layer_dir
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


# The same jobs on Lambda as deployed: python3.13 with the packages layer deploy's own builder
# makes (testbed/lambda_layer.py) unpacked at /opt, against the local job environment. The
# cases above run Lambda with the local environment's packages; these run the real layer.
PINS = {pin.name: pin.version for pin in read_pins(REQUIREMENTS)}
SALES = b"region,month,units,price\nnorth,1,10,2.5\nsouth,1,4,3.0\nnorth,2,7,2.5\nsouth,2,9,3.25\n"
DEPLOYED_CASES = {
    "numpy_pandas_and_matplotlib_import_at_the_pins_and_compute_the_same": Case(
        """\
import matplotlib, numpy as np, pandas as pd

def main(n):
    frame = pd.DataFrame({"x": np.arange(n), "y": np.arange(n) ** 2})
    solved = np.linalg.solve(np.array([[3.0, 1.0], [1.0, 2.0]]), np.array([9.0, 8.0]))
    return {
        "versions": [np.__version__, pd.__version__, matplotlib.__version__],
        "backend": matplotlib.get_backend().lower(),
        "sum": int(frame.y.sum()),
        "mean": float(frame.y.mean()),
        "solved": solved.tolist(),
        "quartile": float(np.quantile(np.arange(11), 0.25)),
    }
""",
        {
            "outcome": "ok",
            "result_json": json.dumps(
                {
                    "versions": [PINS["numpy"], PINS["pandas"], PINS["matplotlib"]],
                    "backend": "agg",
                    "sum": 285,
                    "mean": 28.5,
                    "solved": [2.0, 3.0],
                    "quartile": 2.5,
                }
            ),
            "result_kind": "return",
            "files": [],
            "files_note": None,
        },
        {"n": 10},
    ),
    "pandas_computes_the_same_from_a_data_file_passed_in": Case(
        """\
import pandas as pd

def main():
    sales = pd.read_csv("sales.csv")
    sales["revenue"] = sales.units * sales.price
    by_region = sales.groupby("region").revenue.sum().round(4)
    return {"rows": len(sales), "by_region": by_region.to_dict(), "columns": list(sales)}
""",
        {
            "outcome": "ok",
            "result_json": '{"rows": 4, "by_region": {"north": 42.5, "south": 41.25},'
            ' "columns": ["region", "month", "units", "price", "revenue"]}',
            "files": [],
        },
        changes={"files": [entry("sales.csv", SALES)]},
    ),
    "files_written_under_out_come_back_with_the_same_names_and_bytes": Case(
        """\
import json, numpy as np, pandas as pd

frame = pd.DataFrame({"n": np.arange(5), "square": np.arange(5) ** 2})
frame.to_csv("out/squares.csv", index=False)
np.savetxt("out/matrix.txt", np.arange(12).reshape(3, 4), fmt="%d")
json.dump({"total": int(frame.square.sum())}, open("out/summary.json", "w"))
open("out/raw.bin", "wb").write(bytes(range(256)) * 4)
""",
        {
            "outcome": "ok",
            "files": [
                entry("matrix.txt", b"0 1 2 3\n4 5 6 7\n8 9 10 11\n"),
                entry("raw.bin", bytes(range(256)) * 4),
                entry("squares.csv", b"n,square\n0,0\n1,1\n2,4\n3,9\n4,16\n"),
                entry("summary.json", b'{"total": 30}'),
            ],
            "files_note": None,
        },
    ),
    "too_many_files_out_with_a_figure_give_the_same_note": Case(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\n"
        "for i in range(11):\n    open(f'out/{i:02}.txt', 'w').write(str(i))\n",
        {
            "outcome": "ok",
            "files": [entry(f"{i:02}.txt", str(i).encode()) for i in range(10)],
            "files_note": "2 more files left out: at most 10 files are kept",
        },
    ),
    "a_figure_over_the_byte_limit_is_left_out_with_the_same_note": Case(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2])\nopen('out/a.txt', 'w').write('a')\n",
        {"outcome": "ok", "files": [entry("a.txt", b"a")]},
        changes={"max_files_out_bytes": 2000},
    ),
    "a_chart_can_use_the_same_fonts_matplotlib_ships_and_no_other": Case(
        """\
import os, matplotlib
from matplotlib import font_manager

data = os.path.join(matplotlib.get_data_path(), "")
listed = font_manager.fontManager.ttflist
print("only matplotlib's:", all(font.fname.startswith(data) for font in listed), len(listed))
print(sorted({(f.name, f.style, f.weight, os.path.basename(f.fname)) for f in listed}))
for family in ("sans-serif", "serif", "monospace"):
    print(os.path.basename(font_manager.findfont(font_manager.FontProperties(family=[family]))))
""",
        {"outcome": "ok", "stderr": ""},
    ),
}
# how a field starts where the rest names what may change with the pins (a PNG's size, the
# number of fonts matplotlib ships): the rest must still be the same on both
STARTS = {
    "a_figure_over_the_byte_limit_is_left_out_with_the_same_note": (
        "files_note",
        "left out: figure-1.png (",
    ),
    "a_chart_can_use_the_same_fonts_matplotlib_ships_and_no_other": (
        "stdout",
        "only matplotlib's: True ",
    ),
}


# An open figure is drawn by the job's own matplotlib on both: the same fonts (matplotlib's
# own: the font lists of the layer and of the local job environment hold nothing else), the
# same pinned matplotlib with its FreeType, and the same Pillow writing the PNG. So beyond what
# must match whatever the fonts (the names, a well-formed PNG, its pixel size), the bytes match.
FIGURES = Case(
    """\
import matplotlib.pyplot as plt, numpy as np

x = np.linspace(0, 10, 200)
plt.plot(x, np.sin(x), label="sin")
plt.title("a title needs a font")
plt.legend()
fig, ax = plt.subplots(figsize=(3, 2), dpi=50)
ax.bar(["a", "b"], [1, 2])
open("out/table.csv", "w").write("x\\n1\\n")
""",
    {"outcome": "ok", "files_note": None},
)


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a well-formed PNG: every chunk's CRC right, IHDR first, IEND last,
    and the IDAT stream inflating to exactly one filter byte and row per line (8-bit RGBA,
    as matplotlib's Agg writes). AssertionError otherwise."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n"), data[:8]
    at, chunks, idat = 8, [], b""
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        chunks.append(kind)
        idat += body if kind == b"IDAT" else b""
        at += 12 + length
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND", chunks
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    assert (depth, colour) == (8, 6)  # 8-bit RGBA
    assert len(zlib.decompress(idat)) == height * (1 + 4 * width)
    return width, height


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaExecutor]:
    """A LambdaExecutor whose function runs python3.13 with the packages layer at /opt."""
    python = require_lambda_python()  # missing, it fails: never a silent skip
    with lambda_on_standin(
        tmp_path_factory.mktemp("deployed"),
        TIMEOUT_S,
        timeout_s=function_timeout_s(TIMEOUT_S),
        max_concurrency=2,
        python=python,
        opt=layer_dir(),
    ) as (executor, _):
        yield executor


@pytest.mark.parametrize("name", [*PACKAGE_CASES, *DEPLOYED_CASES])
def test_package_case_gives_the_same_outcome_on_lambda_as_deployed(
    local: LocalExecutor, deployed: LambdaExecutor, name: str
) -> None:
    case = PACKAGE_CASES.get(name) or DEPLOYED_CASES[name]
    request = run_request(case)
    assert request is not None

    on_local, on_lambda = local.run(request), deployed.run(request)

    expected = {k: v for k, v in case.expect.items() if k in RESULT_FIELDS}
    for result in (on_local, on_lambda):
        assert {k: comparable(result, k) for k in expected} == expected, result
        field, start = STARTS.get(name, ("stdout", ""))
        assert (getattr(result, field) or "").startswith(start), result
    assert without_timing(on_local) == without_timing(on_lambda)


def test_open_figures_come_back_as_the_same_pngs_locally_and_on_lambda_as_deployed(
    local: LocalExecutor, deployed: LambdaExecutor
) -> None:
    request = run_request(FIGURES)
    assert request is not None

    on_local, on_lambda = local.run(request), deployed.run(request)

    for result in (on_local, on_lambda):
        assert result.outcome is Outcome.OK and result.files_note is None, result
        assert [f.name for f in result.files] == ["figure-1.png", "figure-2.png", "table.csv"]
        assert [png_size(f.data) for f in result.files[:2]] == [(640, 480), (150, 100)]
        assert result.files[2].data == b"x\n1\n"
    assert on_local.files == on_lambda.files  # the same fonts, matplotlib and Pillow: see FIGURES
    assert without_timing(on_local) == without_timing(on_lambda)
