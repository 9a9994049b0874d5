"""Tests that need Lambda's Python (3.13) find it as a person would, and fail loudly where it
is missing: a skipped handler test on the deployed runtime's version would hide a breakage."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testbed import pythons

REPO = Path(__file__).resolve().parents[3]


def test_this_machine_has_lambdas_python_and_it_is_found() -> None:
    python = pythons.require_lambda_python()

    ran = subprocess.run([python, "-c", "import sys; print(sys.version_info[:2])"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert ran.stdout.strip() == "(3, 13)"


def test_without_python_3_13_the_tests_that_need_it_fail_instead_of_skipping(
    tmp_path: Path,
) -> None:
    # a machine with nothing of it: no JOBBOT_TEST_PYTHON313, no python3.13 or pyenv on PATH,
    # a HOME of its own
    bare = {
        k: v for k, v in os.environ.items() if k not in {pythons.ASK, "PYENV_ROOT", "PYENV_VERSION"}
    }
    bare.update(PATH="/usr/bin:/bin", HOME=str(tmp_path))
    test = "tests/integration/lambda_executor/test_parity.py"
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider", "-k",
         "lambdas_python_version and return_from_main"],
        cwd=REPO, env=bare, capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip

    assert ran.returncode != 0, ran.stdout
    assert "skipped" not in ran.stdout.splitlines()[-1]
    assert "none was found (not in $JOBBOT_TEST_PYTHON313, on PATH, or in pyenv)" in ran.stdout


def test_an_interpreter_of_another_version_is_not_taken_for_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(pythons.ASK, sys.executable)  # this one: 3.11 or 3.12, never 3.13 here
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("HOME", str(tmp_path))
    pythons.lambda_python.cache_clear()
    try:
        if sys.version_info[:2] == pythons.LAMBDA_VERSION:
            pytest.fail("run this suite under the bot's Python, not 3.13")
        assert pythons.lambda_python() is None
        with pytest.raises(AssertionError, match=r"pyenv install 3\.13"):
            pythons.require_lambda_python()
    finally:
        pythons.lambda_python.cache_clear()
