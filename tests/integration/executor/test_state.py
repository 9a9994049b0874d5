"""No state passes from one job to the next: each is a fresh fork of a template, on one slot
here, so that the second job runs exactly where the first one did."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv

from .conftest import harness_request

DIRTY = """\
import builtins, json, random, sys
import numpy as np
import pandas as pd

first = {"random": random.random(), "numpy": float(np.random.random())}
for _ in range(1000):
    random.random()
    np.random.random()
then = {"random": random.random(), "numpy": float(np.random.random())}
for top in ("/tmp", "/var/tmp", "/dev/shm"):
    open(f"{top}/left-behind", "w").write("x")
json.loads_was = json.loads
json.loads = lambda *a, **k: "tampered"
sys.modules["json"].JOBBOT_MARK = 1
builtins.len = lambda obj: -1
builtins.MARK = "tampered"
pd.read_csv = lambda *a, **k: "tampered"
pd.DataFrame.sum = lambda self, *a, **k: "tampered"
np.pi = 3
random.seed(1)
np.random.seed(1)
print(json.dumps({"first": first, "then": then}))
"""

CLEAN = """\
import builtins, json, os, random
import numpy as np
import pandas as pd

def main():
    return {
        "draws": {"random": random.random(), "numpy": float(np.random.random())},
        "json": json.loads('"fine"'),
        "mark": hasattr(json, "JOBBOT_MARK") or hasattr(builtins, "MARK"),
        "len": len([1, 2]),
        "read_csv": pd.read_csv.__name__,
        "sum": int(pd.DataFrame({"a": [1, 2]}).sum().iloc[0]),
        "pi": np.pi,
        "left": [t for t in ("/tmp", "/var/tmp", "/dev/shm") if os.path.exists(f"{t}/left-behind")],
    }
"""


@pytest.fixture(scope="module")
def one_slot(secret_env: dict[str, str]) -> Iterator[LocalExecutor]:
    """One slot: every job runs in the same slot (uid, cgroup, network namespace)."""
    ex = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=1,
        uid_base=61500,
        max_procs=32,
        tmp_bytes=16 * MIB,
    )
    yield ex
    ex.close()


def run(executor: LocalExecutor, code: str) -> dict[str, Any]:
    response = executor.run_harness(harness_request(code))
    assert response["outcome"] == "ok", response
    return response


def test_a_job_sees_nothing_the_previous_job_changed(one_slot: LocalExecutor) -> None:
    dirty = json.loads(run(one_slot, DIRTY)["stdout"])
    clean = json.loads(run(one_slot, CLEAN)["result_json"])

    assert clean["json"] == "fine"
    assert clean["mark"] is False
    assert clean["len"] == 2
    assert clean["read_csv"] == "read_csv"
    assert clean["sum"] == 3
    assert clean["pi"] == pytest.approx(3.141592653589793)
    assert clean["left"] == []
    # randomness: neither the first job's stream, nor where it left it, nor the seed it set
    for kind in ("random", "numpy"):
        assert clean["draws"][kind] not in (dirty["first"][kind], dirty["then"][kind])
    assert clean["draws"]["random"] != 0.13436424411240122  # random.seed(1)'s first draw
    assert clean["draws"]["numpy"] != pytest.approx(0.417022004702574)  # np.random.seed(1)


def test_two_fresh_jobs_draw_different_random_numbers(one_slot: LocalExecutor) -> None:
    code = "import random\nimport numpy as np\nprint(random.random(), np.random.random())\n"
    first = run(one_slot, code)["stdout"].split()
    second = run(one_slot, code)["stdout"].split()
    assert first[0] != second[0]
    assert first[1] != second[1]
