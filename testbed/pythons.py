"""Lambda's Python on this machine: the interpreter tests run the handler and the fresh child
under, found as a person would find it (never a hard-coded path)."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

LAMBDA_VERSION = (3, 13)  # the function's runtime: python3.13
ASK = "JOBBOT_TEST_PYTHON313"  # an explicit interpreter wins


def _version(python: str) -> tuple[int, ...] | None:
    """(major, minor) of a working interpreter, or None."""
    try:
        ran = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except OSError:
        return None
    if ran.returncode != 0:
        return None
    return tuple(int(part) for part in ran.stdout.split())


def _pyenv_candidates() -> list[str]:
    """python3.13 of every 3.13 version pyenv knows (its shim alone may not be selected)."""
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return []
    versions = subprocess.run(
        [pyenv, "versions", "--bare"], capture_output=True, text=True, check=False
    ).stdout.split()
    found = []
    for version in sorted(v for v in versions if v.startswith("3.13")):
        prefix = subprocess.run(
            [pyenv, "prefix", version], capture_output=True, text=True, check=False
        ).stdout.strip()
        if prefix:
            found.append(os.path.join(prefix, "bin", "python3.13"))
    return found


@functools.cache
def lambda_python() -> str | None:
    """A working python3.13: $JOBBOT_TEST_PYTHON313, `python3.13` on PATH, or pyenv's."""
    candidates = [os.environ.get(ASK), shutil.which("python3.13"), *_pyenv_candidates()]
    for candidate in filter(None, candidates):
        if _version(candidate) == LAMBDA_VERSION:
            return candidate
    return None


def require_lambda_python() -> str:
    """lambda_python(), or an AssertionError saying how to provide one: a test that needs
    Lambda's Python fails, loudly, where it is missing."""
    python = lambda_python()
    if python is None:
        raise AssertionError(
            "these tests run the Lambda handler on python3.13, Lambda's runtime, and none was "
            f"found (not in ${ASK}, on PATH, or in pyenv): install one (`pyenv install 3.13`) "
            f"or point {ASK} at it"
        )
    return python
