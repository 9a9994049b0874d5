"""Fresh mode: one new `python -I -S -u -B` child per job (what the Lambda handler calls)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
import threading
from typing import Any

from .. import boot, files, protocol, reaper, supervisor, verdict
from ..environment import job_env
from ..fds import high, unlinked_file
from ..inside import runner
from ..inside.seccomp import Confinement
from ..limits import Limits, forbid_new_privileges, set_child_subreaper, set_dumpable
from ..protocol import Request, SandboxUnavailable
from . import entry

DIR_PREFIX = "jobbot-job-"
MIN_TIMEOUT_S = 0.05

# One job at a time per process: the orphan sweep treats every new child of this
# process as the job's, so concurrent fresh runs (or other spawning) would be mistaken.
_lock = threading.Lock()


@functools.cache
def _prepare_caller() -> None:
    """Once per process (both settings are process-wide and permanent)."""
    # secrets in our own environment stay out of reach of /proc/<ppid>/environ (same uid)
    set_dumpable(False)
    # setsid + double-fork escapees become our children, so the sweep can find them
    set_child_subreaper()
    # inherited by every child: no exec can gain privileges (setuid binaries stay inert);
    # set here, not in the child, which then never needs to load ctypes
    forbid_new_privileges()


def sweep_stale_dirs(root: str | None = None) -> None:
    """Remove job directories left behind by a cut-off run (ours, or a dead process's)."""
    root = root or tempfile.gettempdir()
    for name in os.listdir(root):
        if not name.startswith(DIR_PREFIX):
            continue
        pid_text = name[len(DIR_PREFIX) :].split("-", 1)[0]
        if pid_text.isdigit() and (int(pid_text) == os.getpid() or not reaper.alive(int(pid_text))):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _start(
    python: str, workdir: str, request: Request, payload: bytes
) -> tuple[int, list[int], set[int]]:
    """Spawn the child; (pid, [stdout, stderr, record] read ends, our children before it)."""
    ends: dict[int, int] = {}  # the child's fd number -> our fd that becomes it
    reads: list[int] = []
    try:
        ends[0] = unlinked_file(workdir, request.input_json.encode("utf-8"))
        ends[entry.REQUEST_FD] = unlinked_file(workdir, payload)
        for target in (1, 2, entry.RECORD_FD):
            read, write = os.pipe()
            reads.append(high(read))
            ends[target] = high(write)
        actions = [(os.POSIX_SPAWN_DUP2, src, dst) for dst, src in sorted(ends.items())]
        before = reaper.children(os.getpid())
        try:
            pid = os.posix_spawn(
                python,
                boot.command(python, "fresh.entry", "main", workdir),
                job_env(workdir),
                file_actions=actions,
                setsid=True,  # its own session and process group, killed as one
            )
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start {python}: {exc}") from exc
    except BaseException:
        for fd in reads:
            os.close(fd)
        raise
    finally:
        for fd in ends.values():
            os.close(fd)
    return pid, reads, before


def _run(
    request: Request, timeout_s: float, python: str, lim: Limits, confinement: Confinement
) -> dict[str, Any]:
    # Until the child exists nothing of the user's has run: a failure here (full disk, no
    # file descriptors) is the sandbox being unavailable, which callers may retry.
    try:
        workdir = tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-")
    except OSError as exc:
        raise SandboxUnavailable(f"cannot create a job directory: {exc}") from exc
    try:
        try:
            with open(os.path.join(workdir, request.file_name), "w", encoding="utf-8") as fh:
                fh.write(request.code)
            files.place(workdir, list(request.files), None)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot write the job's files: {exc}") from exc
        payload = {
            "request": request.to_dict(),
            "limits": lim._asdict(),
            "timeout_s": timeout_s,
            "confinement": confinement._asdict(),
        }
        try:
            pid, reads, before = _start(python, workdir, request, json.dumps(payload).encode())
        except OSError as exc:  # pipes or descriptors could not be made: nothing ran
            raise SandboxUnavailable(f"cannot set up the job: {exc}") from exc
        obs = supervisor.supervise(
            pid,
            *reads,
            timeout_s=timeout_s,
            max_output_bytes=request.max_output_bytes,
            max_record_bytes=runner.record_limit(request),
            kill_rest=lambda: reaper.sweep_orphans(pid, before),
        )
        response = verdict.build(request, obs, timeout_s=timeout_s)
        # the orphan sweep is done: no process of the job is left to change out/
        files.attach(response, workdir, request.max_files_out, request.max_files_out_bytes)
        return response
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_fresh(
    request: dict[str, Any],
    *,
    deadline_s: float | None = None,
    python: str | None = None,
    limits: Limits | None = None,
    confinement: Confinement | None = None,
) -> dict[str, Any]:
    """Run one protocol-v1 request in a fresh interpreter and return the v1 response.

    `deadline_s` is the time the caller has left (Lambda: remaining time minus a margin);
    the job gets min(timeout_s, deadline_s). `confinement` says how the child confines
    itself before the user's code (inside/seccomp.py; a child that cannot is refused).
    Malformed requests give an "error" response. Raises SandboxUnavailable only when the
    interpreter cannot be started.
    """
    try:
        req = protocol.parse_request(request)
    except protocol.ProtocolError as exc:
        return protocol.error_response(str(exc))
    timeout_s = req.timeout_s if deadline_s is None else min(req.timeout_s, deadline_s)
    timeout_s = max(timeout_s, MIN_TIMEOUT_S)
    with _lock:
        _prepare_caller()
        sweep_stale_dirs()
        return _run(
            req,
            timeout_s,
            python or sys.executable,
            limits or Limits(),
            confinement or Confinement(),
        )
