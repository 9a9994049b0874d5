"""The job environment the local sandbox runs jobs with, built (once, and only when the list
changed) by scripts/setup, for the tests and benchmarks that run real jobs."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

from bot.executors.jobenv import JobPackages, job_packages

REPO = Path(__file__).resolve().parents[1]
# resolved: a worktree may link .venv-jobs from another checkout, and jobs must see the
# packages where they really are (the checkout itself is hidden from jobs)
PYTHON = Path(os.path.realpath(REPO / ".venv-jobs")) / "bin" / "python"


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


def site_packages() -> str:
    """The job environment's packages, as a Lambda layer of the same Python version holds
    them (for the stand-in's /opt/python)."""
    found = subprocess.run(
        [job_python(), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.strip()
