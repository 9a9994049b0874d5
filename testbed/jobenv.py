"""The job environment the local sandbox runs jobs with, built (once, and only when the list
changed) by scripts/setup, for the tests and benchmarks that run real jobs."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from bot.executors.jobenv import JobPackages, job_packages

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv-jobs" / "bin" / "python"


@functools.cache
def job_python() -> str:
    """The job environment's interpreter, after `scripts/setup jobs` made sure it is up to
    date (a no-op when it is; concurrent callers wait for one build)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "setup"), "jobs"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/setup jobs failed:\n{done.stderr}")
    return str(PYTHON)


def packages() -> JobPackages:
    """The pins of requirements-jobs.txt with the versions installed for the tests."""
    return job_packages(REPO / "requirements-jobs.txt", job_python())
