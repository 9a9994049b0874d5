"""One job in the zygote's per-job supervisor: job dir, the user process, supervision, cleanup."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from .. import protocol, reaper, supervisor, verdict
from ..fds import high, unlinked_file
from ..inside import runner
from ..limits import MIB, Limits, set_child_subreaper
from ..protocol import Request, SandboxCalledOff, SandboxUnavailable
from . import cgroups, frames, mounts, specialise

REQUEST_LIMIT = 256 * MIB
READ_TIMEOUT_S = 30.0
GO_TIMEOUT_S = 600.0  # how long a prepared job waits for its start gate (the executor's commit)
RECORD_FD = 3  # in the user process: 0 stdin, 1 stdout, 2 stderr, 3 the record
_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # noqa: S108 - cleaned, not used


@dataclass(frozen=True)
class SlotConfig:
    """How jobs of one slot run: as whom, in which cgroup, with what private /tmp."""

    uid: int | None  # a uid of its own, or None to stay the zygote's uid
    cgroup: cgroups.Slot | None
    tmp_bytes: int | None  # size of the private tmpfs; None without mount namespaces
    limits: Limits
    netns: int | None = None  # an fd of the slot's own network namespace (else the zygote's)
    env: dict[str, str] = field(default_factory=dict)  # the job environment's own variables


def serve(sock: socket.socket, slots: list[SlotConfig]) -> None:
    """Run in a freshly forked supervisor: read one job, run it, send back the result.

    While the job runs, anything from the executor on `sock` (a stop frame, or the end of
    the connection) stops it: the job then ends "cancelled" with the output so far.
    """
    frame = frames.recv(sock, REQUEST_LIMIT, time.monotonic() + READ_TIMEOUT_S)
    if frame is None:
        return
    # from here on the executor knows the job was received, so a silence means "may have run"
    frames.send(sock, {"ack": os.getpid()}, time.monotonic() + READ_TIMEOUT_S)
    gate = (lambda: _await_go(sock)) if frame.get("gated") else None
    try:
        request = protocol.parse_request(frame.get("request"))
    except protocol.ProtocolError as exc:
        reply: dict[str, Any] = {"response": protocol.error_response(str(exc))}
    else:
        try:
            reply = {"response": run(request, slots[frame["slot"]], gate, sock.fileno())}
        except SandboxCalledOff:
            reply = {"called_off": True}
        except SandboxUnavailable as exc:
            reply = {"unavailable": str(exc)}
    try:
        frames.send(sock, reply, time.monotonic() + READ_TIMEOUT_S)
    except OSError:
        if "called_off" not in reply:  # a called-off executor need not stay for the answer
            raise


def _await_go(sock: socket.socket) -> bool:
    """The executor's start gate: True only for an explicit go."""
    try:
        frame = frames.recv(sock, 4096, time.monotonic() + GO_TIMEOUT_S)
    except OSError:
        return False
    return isinstance(frame, dict) and frame.get("go") is True


def _make_workdir(request: Request, slot: SlotConfig) -> str:
    path = tempfile.mkdtemp(prefix=f"jobbot-job-{os.getpid()}-", dir=mounts.TMP)
    file_path = os.path.join(path, request.file_name)
    with open(file_path, "w", encoding="utf-8") as fh:
        fh.write(request.code)
    if slot.uid is not None:
        os.chown(path, slot.uid, slot.uid)
        os.chown(file_path, slot.uid, slot.uid)
    return path


def _user_process(
    request: Request,
    slot: SlotConfig,
    workdir: str,
    fds: dict[int, int],
    ready: int,
    *,
    go: int | None,
) -> NoReturn:
    """In the forked child: become the job (specialise.py), wait for the go (when gated),
    then run the user code."""
    try:
        job = specialise.Slot(slot.uid, slot.cgroup, slot.limits, slot.env)
        specialise.become_job(request, job, workdir, fds, {ready, *([] if go is None else [go])})
        os.write(ready, b"1")
        os.close(ready)
    except BaseException as exc:
        try:
            os.write(ready, f"job setup failed: {exc!r}".encode())
        finally:
            os._exit(121)
    if go is not None:
        try:
            held = os.read(go, 1)  # nothing of the user's runs before the executor's go
        except BaseException:
            os._exit(0)
        if held != b"1":
            os._exit(0)
        os.close(go)
    runner.execute(request, RECORD_FD)


def _wait_ready(pid: int, ready: int) -> None:
    """Raise SandboxUnavailable (after reaping the child) unless its setup succeeded."""
    with os.fdopen(ready, "rb") as fh:
        message = fh.read(4096)
    if message != b"1":
        reaper.kill_and_reap(pid)
        raise SandboxUnavailable(message.decode(errors="replace") or "job setup died")


def _open_gate(pid: int, go_w: int, gate: Callable[[], bool] | None) -> None:
    """Let the prepared job process start its code if the gate says yes; else kill it."""
    try:
        go = gate is not None and gate()
        if go:
            os.write(go_w, b"1")
    finally:
        os.close(go_w)
    if not go:
        reaper.kill_and_reap(pid)
        raise SandboxCalledOff("the run was called off before it started")


def _clean_shared_tmp(uid: int) -> None:
    """Without a private /tmp: delete what the job's uid left in world-writable places."""
    for top in _SHARED_TMP:
        try:
            entries = list(os.scandir(top))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                continue


def _clear_slot(slot: SlotConfig) -> None:
    """Kill anything an earlier job of this slot left (only if its supervisor was killed)."""
    if slot.cgroup is not None:
        for directory in slot.cgroup.dirs:
            cgroups.kill_all(directory)
    elif slot.uid is not None:
        reaper.kill_uid(slot.uid)


def _prepare(request: Request, slot: SlotConfig) -> tuple[list[str], str, int, int]:
    """(mount points, job dir, stdin fd, OOM kills so far); SandboxUnavailable if impossible."""
    try:
        _clear_slot(slot)
        set_child_subreaper()  # escaped descendants come back to us, to be killed
        if slot.netns is not None:
            # concurrent jobs would otherwise share abstract unix sockets: a channel
            mounts.setns(slot.netns, mounts.CLONE_NEWNET)
        points = mounts.private_tmp(slot.tmp_bytes) if slot.tmp_bytes else []
        workdir = _make_workdir(request, slot)
        stdin = unlinked_file(workdir, request.input_json.encode("utf-8"))
        if slot.cgroup is None:
            return points, workdir, stdin, 0
        slot.cgroup.set_memory(request.memory_mb * MIB + (slot.tmp_bytes or 0))
        return points, workdir, stdin, slot.cgroup.oom_kills()
    except OSError as exc:  # nothing of the job ran yet
        raise SandboxUnavailable(f"job setup failed: {exc}") from exc


def run(
    request: Request,
    slot: SlotConfig,
    gate: Callable[[], bool] | None = None,
    stop_fd: int | None = None,
) -> dict[str, Any]:
    """Run one job in this supervisor process and return its v1 response.

    With a `gate`, the job's process is set up first and the user code starts only once
    `gate()` said yes; on a no it is killed (SandboxCalledOff): nothing of the user's ran.
    `stop_fd` turning readable while the job runs stops it (outcome "cancelled").
    With a private /tmp, nothing is left to clean once the job's processes are gone: the
    mounts go with this process's mount namespace when it exits, after the answer.
    """
    points, workdir, stdin, oom_before = _prepare(request, slot)
    pipes = [tuple(high(fd) for fd in os.pipe()) for _ in range(4 if gate is None else 5)]
    (out_r, out_w), (err_r, err_w), (rec_r, rec_w), (ready_r, ready_w) = pipes[:4]
    go_r, go_w = pipes[4] if gate is not None else (None, None)
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        if go_w is not None:
            os.close(go_w)
        fds = {0: stdin, 1: out_w, 2: err_w, RECORD_FD: rec_w}
        _user_process(request, slot, workdir, fds, ready_w, go=go_r)
    procs = slot.cgroup.procs if slot.cgroup is not None else None
    try:
        for fd in (stdin, out_w, err_w, rec_w, ready_w, go_r):
            if fd is not None:
                os.close(fd)
        try:
            _wait_ready(pid, ready_r)
            if go_w is not None:
                _open_gate(pid, go_w, gate)
        except SandboxUnavailable:
            for fd in (out_r, err_r, rec_r):
                os.close(fd)
            raise
        obs = supervisor.supervise(
            pid,
            out_r,
            err_r,
            rec_r,
            timeout_s=request.timeout_s,
            max_output_bytes=request.max_output_bytes,
            max_record_bytes=runner.record_limit(request),
            kill_rest=lambda: reaper.sweep_own(pid, cgroup_procs=procs, uid=slot.uid),
            stop_fd=stop_fd,
        )
        oom = slot.cgroup is not None and slot.cgroup.oom_kills() > oom_before
        return verdict.build(request, obs, oom=oom)
    finally:
        reaper.sweep_own(pid, cgroup_procs=procs, uid=slot.uid)
        if not points:  # the job shared the host's /tmp: clean it before the slot's next job
            shutil.rmtree(workdir, ignore_errors=True)
            if slot.uid is not None:
                _clean_shared_tmp(slot.uid)
