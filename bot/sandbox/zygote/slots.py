"""Slot templates: per job slot, a fork of each template that joined the slot's cgroup and
network namespace once, and keeps one job process prepared ahead (a spare), so that a job's
start costs neither a cgroup move nor a fork.

Moving a process into a cgroup v1 group waits for an RCU grace period (milliseconds, tens of
them on a busy host): paid once per slot at start instead of once per job. The slot
template, its spare, the supervisors it forks and the job share the slot's cgroup; the
sandbox's own processes are root until a job's process takes its request and drops to the
slot's uid, so no job can signal, trace or read a spare, and the OOM killer picks the job's
processes first (oom_score_adj 1000). The slot's limits leave room for the sandbox's own.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from ..limits import die_with_parent, go_with
from ..protocol import SandboxUnavailable
from . import job, jobprocess, mounts

# the sandbox's own processes in a slot's pids cgroup beside the job's: the slot's two slot
# templates, their spares (a supervisor and a job process each), the ending job's supervisor
SANDBOX_PIDS = 12

# starts a supervisor for a job socket: (fd, sockets it must close, born in the slot?)
Spawn = Callable[[int, list[socket.socket], bool], None]


def usable(slot: jobprocess.SlotConfig) -> bool:
    """Slot templates need a cgroup to share and a uid to tell the job's processes by."""
    return slot.cgroup is not None and slot.uid is not None


@dataclass
class SlotTemplates:
    """One template's slot templates: the socket to hand each slot's jobs on, and the pids."""

    routes: dict[int, socket.socket] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)


def start(
    config: list[jobprocess.SlotConfig], spawn: Spawn, close: list[socket.socket]
) -> SlotTemplates:
    """Fork one slot template per usable slot (each closes `close`, the caller's channels)."""
    made = SlotTemplates()
    parent = os.getpid()
    for index, slot in enumerate(config):
        if not usable(slot):
            continue
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                for sock in (*close, ours, *made.routes.values()):
                    sock.close()
                go_with(parent)
                _enter(slot)
                _serve(theirs, index, config, spawn)
            except BaseException:
                traceback.print_exc()  # to the bot's stderr: a harness bug
                code = 1
            finally:
                os._exit(code)
        theirs.close()
        made.routes[index] = ours
        made.pids.append(pid)
    return made


def hand(routes: dict[int, socket.socket], slot: int, fd: int) -> bool:
    """Pass a job's socket to the slot's template; False (and the route dropped) if there
    is none or it is gone: the caller then starts the supervisor itself."""
    sock = routes.get(slot)
    if sock is None:
        return False
    try:
        socket.send_fds(sock, [b"J"], [fd])
    except OSError:
        sock.close()
        del routes[slot]
        return False
    return True


def _enter(slot: jobprocess.SlotConfig) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its supervisors are reaped by the kernel
    if slot.netns is not None:
        mounts.setns(slot.netns, mounts.CLONE_NEWNET)
    if slot.cgroup is not None:
        slot.cgroup.join()


@dataclass
class _Spare:
    """A supervisor forked ahead with its job process prepared, waiting for a job socket."""

    pid: int
    sock: socket.socket

    def take(self, fd: int) -> bool:
        """Give it the job; False if it is gone (it failed to prepare, or was killed)."""
        try:
            socket.send_fds(self.sock, [b"J"], [fd])
            return True
        except OSError:
            return False
        finally:
            self.sock.close()


def _serve(
    sock: socket.socket, index: int, config: list[jobprocess.SlotConfig], spawn: Spawn
) -> None:
    """The slot template's loop: each job goes to the spare, and once that job's supervisor
    has answered and exited, the next spare is prepared: while the executor records the
    result and the slot waits for its next job, not while the job runs."""
    spare = _fork_spare(sock, index, config)
    while True:
        msg, fds, _, _ = socket.recv_fds(sock, 16, 1)
        if not fds:
            if not msg:
                return
            continue
        if spare is not None and spare.take(fds[0]):
            os.close(fds[0])
            _wait_for_exit(spare.pid)
        else:  # no spare: a supervisor that prepares the job's process itself
            spawn(fds[0], [sock], True)
        spare = _fork_spare(sock, index, config)


def _wait_for_exit(pid: int) -> None:
    """Until process `pid` (a child, reaped by the kernel) has exited."""
    try:
        fd = os.pidfd_open(pid)
    except OSError:  # gone already, or no pidfds (Linux < 5.3): prepare the next one now
        return
    try:
        select.select([fd], [], [])
    finally:
        os.close(fd)


def _fork_spare(
    channel: socket.socket, index: int, config: list[jobprocess.SlotConfig]
) -> _Spare | None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:
        ours.close()
        theirs.close()
        return None
    if pid == 0:
        code = 0
        try:
            channel.close()
            ours.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # a supervisor reaps its own
            go_with(parent)  # an idle spare goes with its slot template
            _wait_for_job(theirs, index, config)
        except SandboxUnavailable:
            pass  # the slot template finds it gone and prepares the job another way
        except BaseException:
            traceback.print_exc()  # to the bot's stderr: a harness bug
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    return _Spare(pid, ours)


def _wait_for_job(sock: socket.socket, index: int, config: list[jobprocess.SlotConfig]) -> None:
    prepared = jobprocess.prepare(config[index], in_slot=True)
    job.warm_up(prepared, config[index])
    _, fds, _, _ = socket.recv_fds(sock, 16, 1)
    sock.close()
    if not fds:
        prepared.discard()
        return
    die_with_parent(0)  # a job, once taken, outlives the zygote and its templates
    with socket.socket(fileno=fds[0]) as job_sock:
        job.serve(job_sock, config, in_slot=True, spare=(index, prepared))
