"""One job in the zygote's per-job supervisor: the job's process prepared (or a spare's taken
over), the start gate, supervision, and cleanup before the answer."""

from __future__ import annotations

import functools
import os
import shutil
import socket
import time
from collections.abc import Callable
from typing import Any

from .. import files, protocol, reaper, supervisor, verdict
from ..capture import Capture
from ..inside import runner
from ..limits import MIB
from ..protocol import Request, SandboxCalledOff, SandboxUnavailable
from . import frames
from .jobprocess import Prepared, SlotConfig, deliver, prepare, release

REQUEST_LIMIT = 256 * MIB
READ_TIMEOUT_S = 30.0
GO_TIMEOUT_S = 600.0  # how long a prepared job waits for its start gate (the executor's commit)
_SHARED_TMP = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock")  # noqa: S108 - cleaned, not used

__all__ = ["SlotConfig", "run", "serve"]


def serve(
    sock: socket.socket,
    slots: list[SlotConfig],
    *,
    in_slot: bool = False,
    spare: tuple[int, Prepared] | None = None,
) -> None:
    """Run in a freshly forked supervisor: read one job, run it, send back the result.

    While the job runs, anything from the executor on `sock` (a stop frame, or the end of
    the connection) stops it: the job then ends "cancelled" with the output so far.
    `in_slot`: forked from the slot's template, so already in its cgroup and network.
    `spare`: (slot, its job process) prepared before this job arrived.
    """
    frame = frames.recv(sock, REQUEST_LIMIT, time.monotonic() + READ_TIMEOUT_S)
    if frame is None:
        return
    # from here on the executor knows the job was received, so a silence means "may have run"
    frames.send(sock, {"ack": os.getpid()}, time.monotonic() + READ_TIMEOUT_S)
    gate = functools.partial(_await_go, sock) if frame.get("gated") else None
    try:
        request = protocol.parse_request(frame.get("request"))
    except protocol.ProtocolError as exc:
        reply: dict[str, Any] = {"response": protocol.error_response(str(exc))}
    else:
        index = frame["slot"]
        ready = spare[1] if spare is not None and spare[0] == index else None
        if spare is not None and ready is None:
            spare[1].discard()  # another slot's: never mix slots
        try:
            response = run(
                request, slots[index], gate, sock.fileno(), in_slot=in_slot, prepared=ready
            )
            reply = {"response": response}
        except SandboxCalledOff:
            reply = {"called_off": True}
        except SandboxUnavailable as exc:
            reply = {"unavailable": str(exc)}
    try:
        frames.send(sock, reply, time.monotonic() + READ_TIMEOUT_S)
    except OSError:
        if "called_off" not in reply:  # a called-off executor need not stay for the answer
            raise


_WARM_UP = {"v": 1, "job_id": 0, "file_name": "warm_up.py", "code": "", "input_json": "{}"}
_WARM_UP.update(timeout_s=1.0, memory_mb=protocol.MIN_MEMORY_MB, max_output_bytes=1024)


def warm_up(prepared: Prepared, slot: SlotConfig) -> None:
    """In a spare, before any job: build the answer of a made-up run once, reading what the
    answer reads (nothing is killed, written or sent). A spare shares its template's memory
    copy-on-write, and the first write to each page (a reference count will do) copies it:
    some hundred page faults on the way from a job's end to its answer, a few tenths of a
    millisecond, paid here while the slot waits instead."""
    request = protocol.parse_request(_WARM_UP)
    record = Capture(1024)
    record.feed(runner.Record("ok").encode())
    output = Capture(1024)
    output.feed(b"warm\n")
    obs = supervisor.Observation(output, Capture(1024), record, 0, False, 0)
    response = verdict.build(request, obs, oom=False)
    reaper.children(os.getpid())
    if slot.cgroup is not None:
        slot.cgroup.procs(slot.uid)
        slot.cgroup.oom_kills()
    files.attach(response, prepared.workdir, request.max_files_out, 0)
    frames.encode({"response": response})


def _await_go(sock: socket.socket, go_fd: int) -> bool:
    """The executor's start gate, once the job is delivered: the job process's go pipe goes
    to the executor, which starts the code itself when its gate said yes (one hand-off
    less than through this process), then says so. True only for an explicit go; on
    anything else the job's process is put down, whether it got the go or not."""
    try:
        frames.send_fd(sock, {"ready": True}, go_fd, time.monotonic() + READ_TIMEOUT_S)
        frame = frames.recv(sock, 4096, time.monotonic() + GO_TIMEOUT_S)
    except OSError:
        return False
    return isinstance(frame, dict) and frame.get("go") is True


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


def _start(
    prepared: Prepared,
    request: Request,
    slot: SlotConfig,
    gate: Callable[[int], bool] | None,
    in_slot: bool,
) -> int:
    """Deliver the job and, once the gate says yes, let its code run; the slot's OOM kills
    before it. The gate gets the job process's go pipe and starts the code itself; without
    a gate, this process starts it. On a no the prepared process is put down
    (SandboxCalledOff): nothing ran."""
    try:
        oom_before = deliver(prepared, request, slot, in_slot)
        go = gate is None or gate(prepared.go_w)
    except BaseException:
        prepared.discard()
        raise
    if not go:
        prepared.discard()
        raise SandboxCalledOff("the run was called off before it started")
    release(prepared, go=gate is None)
    return oom_before


def run(
    request: Request,
    slot: SlotConfig,
    gate: Callable[[int], bool] | None = None,
    stop_fd: int | None = None,
    *,
    in_slot: bool = False,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Run one job in this supervisor process and return its v1 response.

    The job's process is `prepared` (a spare) or prepared now. With a `gate`, the user
    code starts only once `gate(go_fd)` said yes, having written the go on the job
    process's `go_fd` itself; on a no the process is killed (SandboxCalledOff): nothing of
    the user's ran. `stop_fd` turning readable while the job
    runs stops it (outcome "cancelled"). With a private /tmp nothing is left to clean once
    the job's processes are gone: the mounts go with this process's mount namespace when it
    exits, after the answer.
    """
    job = prepared or prepare(slot, in_slot=in_slot)
    pid = job.pid
    cgroup, uid = slot.cgroup, slot.uid if in_slot else None
    procs = (lambda: cgroup.procs(uid)) if cgroup is not None else None
    swept: list[bool] = []

    def sweep() -> None:
        swept.append(reaper.sweep_own(pid, cgroup_procs=procs, uid=slot.uid))

    try:
        oom_before = _start(job, request, slot, gate, in_slot)
        obs = supervisor.supervise(
            pid,
            job.out_r,
            job.err_r,
            job.rec_r,
            timeout_s=request.timeout_s,
            max_output_bytes=request.max_output_bytes,
            max_record_bytes=runner.record_limit(request),
            kill_rest=sweep,
            stop_fd=stop_fd,
        )
        oom = slot.cgroup is not None and slot.cgroup.oom_kills() > oom_before
        response = verdict.build(request, obs, oom=oom)
        if swept != [True] and not reaper.sweep_own(pid, cgroup_procs=procs, uid=slot.uid):
            response["files_note"] = "no file was kept: processes of the job outlived it"
            return response
        swept[:] = [True]
        # every process of the job is gone: nothing can change out/ while it is read
        files.attach(response, job.workdir, request.max_files_out, request.max_files_out_bytes)
        return response
    finally:
        if swept != [True]:  # supervision did not get to it, or something survived it
            reaper.sweep_own(pid, cgroup_procs=procs, uid=slot.uid)
        if not job.points:  # the job shared the host's /tmp: clean it before the slot's next
            shutil.rmtree(job.workdir, ignore_errors=True)
            if slot.uid is not None:
                _clean_shared_tmp(slot.uid)
