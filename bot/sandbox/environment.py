"""The allow-list environment every job (and the zygote) gets; nothing is inherited."""

from __future__ import annotations

import os

# fixed values only: the bot's own variables (tokens, database URLs) must never reach a job
_BASE = {
    "PATH": os.defpath,
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    # BLAS/OpenMP start one thread per core by default and would trip the process limit
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


def base_env() -> dict[str, str]:
    """The environment of a process that is not a job (the zygote): no HOME."""
    return dict(_BASE)


def job_env(home: str) -> dict[str, str]:
    """The environment of one job, whose home is its working directory."""
    return {**_BASE, "HOME": home}
