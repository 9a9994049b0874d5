"""Hostile code against the preloaded packages, through both executors: a job that tampers
with numpy, pandas and json in memory, tries to rewrite their files and to plant modules
that a later import would find, cannot reach the next job of the same user, which runs where
it ran (locally: the same slot, forked from the same package template; on Lambda: the same
warm execution environment, the python3.13 runtime with the packages layer at /opt).

The local sandbox's finer state checks (builtins, RNG, /tmp) are in
tests/integration/executor/test_state.py; this is the resilience suite's entry for "a job that
tampers with a preloaded module to reach the next job" (issue 11), on both executors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.models import Identity, Outcome, RunRequest, RunResult
from bot.core.ports import Executor
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv
from testbed.lambda_layer import layer_dir
from testbed.lambda_setup import lambda_on_standin
from testbed.pythons import require_lambda_python

TIMEOUT_S = 20.0  # the first import of pandas on a cold environment takes seconds
OWNER = Identity("local", "test", "mallory")  # both jobs are hers: one slot, one environment

TAMPER = """\
import errno, json, os, sys
import numpy as np
import pandas as pd

# in memory: the preloaded packages and a preloaded standard module
pd.DataFrame.sum = lambda self, *a, **k: "tampered"
pd.read_csv = lambda *a, **k: "tampered"
np.mean = lambda *a, **k: "tampered"
np.pi = 3
np.TAMPERED = pd.TAMPERED = True
json.loads = lambda *a, **k: "tampered"
sys.modules["json"].JOBBOT_MARK = True
os.environ["PYTHONSTARTUP"] = os.environ["TAMPERED"] = "/tmp/evil.py"

tried = {}
def attempt(path, text):
    try:
        with open(path, "a") as fh:
            fh.write(text)
        tried[path] = "WRITTEN"
    except OSError as exc:
        tried[path] = errno.errorcode[exc.errno]

# on disk: the packages' own files, and modules a later import would find first
for module in (np, pd, json):
    attempt(module.__file__, "\\nTAMPERED = True\\n")
for directory in dict.fromkeys([os.getcwd(), "/tmp", os.path.expanduser("~"), *sys.path]):
    if directory and os.path.isdir(directory):
        for name in ("sitecustomize.py", "usercustomize.py", "pandas.py", "numpy.py"):
            attempt(os.path.join(directory, name), "raise SystemExit('tampered')\\n")
print(json.dumps({"tried": tried, "cwd": os.getcwd()}))
"""

CHECK = """\
import json, os, sys
import numpy as np
import pandas as pd

def main():
    return {
        "sum": int(pd.DataFrame({"a": [1, 2]}).sum().iloc[0]),
        "read_csv": pd.read_csv.__name__,
        "mean": float(np.mean([1, 3])),
        "pi": np.pi,
        "json": json.loads("[1]"),
        "marks": [hasattr(np, "TAMPERED"), hasattr(pd, "TAMPERED"), hasattr(json, "JOBBOT_MARK")],
        "env": [os.environ.get(n) for n in ("TAMPERED", "PYTHONSTARTUP")],
        "site": [m for m in ("sitecustomize", "usercustomize") if m in sys.modules],
        "planted": [p for p in ("/tmp/pandas.py", "/tmp/sitecustomize.py") if os.path.exists(p)],
    }
"""


def request(code: str, job_id: int) -> RunRequest:
    return RunRequest(job_id, "job.py", code, "{}", TIMEOUT_S, 512, 256 * 1024, owner=OWNER)


@pytest.fixture(scope="module")
def local() -> Iterator[Executor]:
    """One slot: the next job runs exactly where the hostile one did."""
    executor = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=1,
        uid_base=62900,
        max_procs=32,
        tmp_bytes=64 * MIB,
    )
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def on_lambda(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executor]:
    """One warm environment for her (per-user tenancy), python3.13 with the layer at /opt."""
    with lambda_on_standin(
        tmp_path_factory.mktemp("aws"),
        TIMEOUT_S,
        timeout_s=TIMEOUT_S + 5,
        max_concurrency=1,
        python=require_lambda_python(),
        opt=layer_dir(),
    ) as (executor, standin):
        yield executor
        assert standin.environments() == 1, "both jobs ran in the one warm environment"


@pytest.fixture(params=["local", "lambda"])
def executor(request: pytest.FixtureRequest) -> Executor:
    found: Executor = request.getfixturevalue("local" if request.param == "local" else "on_lambda")
    return found


def ok(result: RunResult) -> RunResult:
    assert result.outcome is Outcome.OK, (result.error_type, result.error_message, result.stderr)
    return result


def test_tampering_with_preloaded_packages_cannot_reach_the_next_job(executor: Executor) -> None:
    tampered = json.loads(ok(executor.run(request(TAMPER, 1))).stdout)
    cwd = Path(tampered["cwd"])
    for path, verdict in tampered["tried"].items():
        own = Path(path).parent in (cwd, Path("/tmp"))
        if not own:  # the packages, the runtime, the layer, the interpreter: out of reach
            assert verdict in ("EACCES", "EROFS", "EPERM", "ENOENT"), (path, verdict)
    assert any(p.endswith("pandas/__init__.py") for p in tampered["tried"])

    after = ok(executor.run(request(CHECK, 2)))

    assert json.loads(after.result_json or "null") == {
        "sum": 3,
        "read_csv": "read_csv",
        "mean": 2.0,
        "pi": pytest.approx(3.141592653589793),
        "json": [1],
        "marks": [False, False, False],
        "env": [None, None],
        "site": [],
        "planted": [],
    }
