"""The allow-list environment every job (and the zygote) gets; nothing is inherited.

BLAS runs one thread per job: the zygote must stay single-threaded to fork safely, and a job's
threads count against its process limit."""

from __future__ import annotations

import os
from collections.abc import Mapping

# fixed values only: the bot's own variables (tokens, database URLs) must never reach a job
_BASE = {
    "PATH": os.defpath,
    "LANG": "C.UTF-8",
    "TZ": "UTC",
    # BLAS/OpenMP start one thread per core by default and would trip the process limit
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    # figures render to files, never to a display
    "MPLBACKEND": "Agg",
}


def base_env() -> dict[str, str]:
    """The environment of a process that is not a job (the zygote): no HOME."""
    return dict(_BASE)


def job_env(home: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one job, whose home is its working directory; `extra` are fixed
    values of the job environment (its read-only MPLCONFIGDIR)."""
    return {**_BASE, **(extra or {}), "HOME": home}
