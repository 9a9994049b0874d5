"""Entry point of a fresh child (fresh mode): read the request, set limits, confine, run the job."""

from __future__ import annotations

import json
import os

from .. import limits, protocol
from ..inside import hints, runner, seccomp
from . import layer

# fds the parent sets up: 0 stdin (the input JSON), 1 stdout, 2 stderr, then these
REQUEST_FD = 3
RECORD_FD = 4
JOB_RECORD_FD = 3  # where the job finds the record pipe, as in the zygote's user process


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def main(argv: list[str]) -> None:
    """argv: [job directory]. Never returns: runner.execute exits the process."""
    limits.close_all_but(set(range(RECORD_FD + 1)))  # nothing else of the caller's
    raw = json.loads(_read_all(REQUEST_FD))
    os.dup2(RECORD_FD, JOB_RECORD_FD)  # the same fd table as a job forked by the zygote
    os.close(RECORD_FD)
    request = protocol.parse_request(raw["request"])
    lim = limits.Limits(**raw["limits"])
    os.chdir(argv[0])
    hints.offer(layer.enter(home=argv[0]))  # a Lambda layer's packages, when there is one
    # the uid may run other processes (the Lambda runtime): they count, this one does not
    nproc = limits.threads_of(os.getuid()) - 1 + lim.max_procs
    limits.apply_rlimits(lim, nproc=nproc)
    # a fresh interpreter maps little of its own: the address space is the job's memory
    limits.apply_job_rlimits(request.memory_mb * limits.MIB, raw["timeout_s"])
    # no_new_privs comes from the caller (spawn._prepare_caller), inherited across exec; the
    # filter comes last, as it binds everything after it
    try:
        seccomp.confine(seccomp.Confinement(**raw["confinement"]))
    except seccomp.ConfinementError as exc:
        message = f"jobbot could not confine the job here ({exc}), so none of it ran"
        runner.refuse(JOB_RECORD_FD, "ConfinementError", message)
    runner.execute(request, JOB_RECORD_FD)
