"""A job's process before its code runs: its slot, the process forked and specialised before
the request is known (still root, waiting on a pipe), and how the request and the go reach it.

Preparing needs nothing of the job, so a slot template keeps one prepared ahead (a spare,
slots.py) and a job's start costs only the delivery: its file, its input and the request
(which the process reads and takes its limits from while the start gate runs), then the go:
one byte on the same pipe, which the executor may write itself (job.py).
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass, field
from typing import NoReturn

from .. import files, protocol, reaper
from ..fds import high, unlinked_file
from ..inside import runner
from ..limits import MIB, Limits, set_child_subreaper
from ..protocol import Request, SandboxUnavailable
from . import cgroups, frames, mounts, specialise

RECORD_FD = 3  # in the job's process: 0 stdin, 1 stdout, 2 stderr, 3 the record
_LENGTH = struct.Struct(">Q")  # the request's length, before it on the pipe
SANDBOX_MEMORY = 32 * MIB  # pages the supervisors and slot templates may touch in a slot


@dataclass(frozen=True)
class SlotConfig:
    """How jobs of one slot run: as whom, in which cgroup, with what private /tmp."""

    uid: int | None  # a uid of its own, or None to stay the zygote's uid
    cgroup: cgroups.Slot | None
    tmp_bytes: int | None  # size of the private tmpfs; None without mount namespaces
    limits: Limits
    netns: int | None = None  # an fd of the slot's own network namespace (else the zygote's)
    env: dict[str, str] = field(default_factory=dict)  # the job environment's own variables
    keep: tuple[str, ...] = ()  # directories jobs need: bound back if a private /tmp hides one


@dataclass
class Prepared:
    """The supervisor's side of a prepared job process."""

    pid: int
    workdir: str
    points: list[str]  # the private tmpfs mounts (empty: the job shares the host's /tmp)
    stdin: int  # our copy of the job's stdin, an unlinked file the input is written into
    out_r: int
    err_r: int
    rec_r: int
    go_w: int  # the request, then the go, go here; closed without them, the process exits

    def discard(self) -> None:
        """Put the process down unused and close our ends."""
        for fd in (self.go_w, self.stdin, self.out_r, self.err_r, self.rec_r):
            _close(fd)
        reaper.kill_and_reap(self.pid)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:  # closed already
        pass


def clear_slot(slot: SlotConfig, job_uid: int | None) -> None:
    """Kill anything an earlier job of this slot left (only if its supervisor was killed);
    with `job_uid`, the slot's cgroup also holds the sandbox's own processes: only that uid's."""
    if slot.cgroup is not None:
        for directory in slot.cgroup.dirs:
            cgroups.kill_all(directory, uid=job_uid)
    elif slot.uid is not None:
        reaper.kill_uid(slot.uid)


def memory_limit(request: Request, slot: SlotConfig, in_slot: bool) -> int:
    """The slot cgroup's limit: the job's memory and its tmpfs, and, when the sandbox's own
    processes share the cgroup, room for what they touch and the output they hold."""
    margin = SANDBOX_MEMORY + 5 * request.max_output_bytes if in_slot else 0
    return request.memory_mb * MIB + (slot.tmp_bytes or 0) + margin


def prepare(slot: SlotConfig, *, in_slot: bool) -> Prepared:
    """In a fresh supervisor: the private /tmp and job directory, and the job's process
    forked and specialised up to the request (specialise.become_ready). SandboxUnavailable
    if that fails: nothing of a job ran.

    `in_slot`: this supervisor was forked from the slot's template, so it is already in the
    slot's cgroup and network namespace; leftovers of the slot are cleared at delivery,
    since a spare may be prepared while another job of the slot still runs.
    """
    try:
        if not in_slot:
            clear_slot(slot, None)
        set_child_subreaper()  # escaped descendants come back to us, to be killed
        if slot.netns is not None and not in_slot:
            # concurrent jobs would otherwise share abstract unix sockets: a channel
            mounts.setns(slot.netns, mounts.CLONE_NEWNET)
        points = mounts.private_tmp(slot.tmp_bytes, slot.keep) if slot.tmp_bytes else []
        workdir = tempfile.mkdtemp(prefix=f"jobbot-job-{os.getpid()}-", dir=mounts.TMP)
        if slot.uid is not None:
            os.chown(workdir, slot.uid, slot.uid)
        stdin = unlinked_file(workdir, b"")
        pipes = [tuple(high(fd) for fd in os.pipe()) for _ in range(5)]
    except OSError as exc:  # nothing of the job ran yet
        raise SandboxUnavailable(f"job setup failed: {exc}") from exc
    (out_r, out_w), (err_r, err_w), (rec_r, rec_w), (ready_r, ready_w), (go_r, go_w) = pipes
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        job = specialise.Slot(slot.uid, slot.cgroup, slot.limits, slot.env, in_slot)
        _child(job, workdir, {0: stdin, 1: out_w, 2: err_w, RECORD_FD: rec_w}, ready_w, go_r)
    ours = os.dup(stdin)  # the job reads its own copy from offset 0; we write with pwrite
    for fd in (stdin, out_w, err_w, rec_w, ready_w, go_r):
        os.close(fd)
    with os.fdopen(ready_r, "rb") as fh:
        message = fh.read(4096)
    if message != b"1":
        reaper.kill_and_reap(pid)
        for fd in (ours, out_r, err_r, rec_r, go_w):
            os.close(fd)
        raise SandboxUnavailable(message.decode(errors="replace") or "job setup died")
    return Prepared(pid, workdir, points, ours, out_r, err_r, rec_r, go_w)


def deliver(prepared: Prepared, request: Request, slot: SlotConfig, in_slot: bool) -> int:
    """Put the job's file, data files (read-only, beside an empty out/) and input in place
    and its memory limit on the slot, and hand the request to the job's process, which
    takes its limits from it and waits, still root, for the go (`release`); the OOM kills
    of the slot so far. SandboxUnavailable if that fails: nothing of the job ran."""
    try:
        path = os.path.join(prepared.workdir, request.file_name)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(request.code)
        if slot.uid is not None:
            os.chown(path, slot.uid, slot.uid)
        files.place(prepared.workdir, list(request.files), slot.uid)
        data = request.input_json.encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.pwrite(prepared.stdin, view, len(data) - len(view)) :]
        if in_slot:
            clear_slot(slot, slot.uid)
        oom_before = 0
        if slot.cgroup is not None:
            slot.cgroup.set_memory(memory_limit(request, slot, in_slot))
            oom_before = slot.cgroup.oom_kills()
        data = json.dumps(request.to_dict()).encode("utf-8")
        _write_all(prepared.go_w, _LENGTH.pack(len(data)) + data)
        return oom_before
    except OSError as exc:  # nothing of the job ran yet
        raise SandboxUnavailable(f"job setup failed: {exc}") from exc


def release(prepared: Prepared, *, go: bool) -> None:
    """Close our ends once the job's code may start; with `go`, start it ourselves (else
    the executor did, on its copy of the go pipe). A job process that died in its set-up
    is not started: its supervision reports the crash."""
    try:
        if go:
            os.write(prepared.go_w, frames.GO)
    except OSError:
        pass
    finally:
        os.close(prepared.go_w)
        os.close(prepared.stdin)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes, or fewer if the pipe closed first."""
    chunks, got = [], 0
    while got < size and (chunk := os.read(fd, min(size - got, 1 << 20))):
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _child(
    job: specialise.Slot, workdir: str, fds: dict[int, int], ready: int, go: int
) -> NoReturn:
    """In the forked child: get ready, wait for the request and take its limits, wait for
    the go (a closed pipe instead of either: exit without running anything), become the
    job and run the user code."""
    try:
        specialise.become_ready(job, workdir, fds, {ready, go})
        os.write(ready, b"1")
        os.close(ready)
    except BaseException as exc:
        try:
            os.write(ready, f"job setup failed: {exc!r}".encode())
        finally:
            os._exit(121)
    try:
        header = _read_exactly(go, _LENGTH.size)
        if len(header) < _LENGTH.size:
            os._exit(0)  # put down unused: nothing of the user's ran
        (size,) = _LENGTH.unpack(header)
        request = protocol.parse_request(json.loads(_read_exactly(go, size)))
        specialise.take_request(request, job)
        if os.read(go, 1) != frames.GO:
            os._exit(0)  # called off: nothing of the user's ran
        os.close(go)
        specialise.become_job(job)
    except BaseException:
        os._exit(121)  # the supervisor reports a crash: no record
    runner.execute(request, RECORD_FD)
