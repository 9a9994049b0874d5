"""The zygote: a secret-free, preloaded, isolated server that forks one supervisor per job.

It runs as the job environment's interpreter and holds two templates, both single-threaded:
itself, with the standard library imported, and a child that also imported the offered
packages (numpy, pandas, matplotlib.pyplot). A job's supervisor is forked from the template
the executor asks for, and the job's process is forked from its supervisor: no job ever
starts an interpreter. A fork of the package template costs more (it maps every package's
pages), so jobs that name no package go to the light one.
"""

from __future__ import annotations

import functools
import gc
import json
import os
import signal
import socket
import sys
import traceback
from dataclasses import asdict
from typing import Any

from .. import reaper
from ..inside import hints
from ..limits import Limits, libc, set_dumpable
from . import cgroups, job, mounts, packages, preload, slots

CONFIG_LIMIT = 1 << 20
# a job arrives as its socket, with the template asked for and the slot: b"J3", b"H0"
LIGHT, HEAVY = b"J", b"H"


def _stdlib_readable_by_others() -> bool:
    current = os.path.realpath(sys.base_prefix)
    while current not in ("/", ""):
        if not os.stat(current).st_mode & 0o001:
            return False
        current = os.path.dirname(current)
    return True


def _slots(
    config: dict[str, Any], spaces: mounts.Namespaces, keep: list[str]
) -> tuple[list[job.SlotConfig], cgroups.Cgroups]:
    """The job slots (uid, cgroup, network namespace, private /tmp size) and the cgroups;
    `keep` are the directories every job needs (see mounts.private_tmp)."""
    root = os.geteuid() == 0
    uid_base = config["uid_base"]
    uids = [uid_base + i for i in range(config["slots"])] if root and uid_base is not None else []
    limits = Limits(**config["limits"])
    if config["cgroups"]:
        if config["sweep"]:
            cgroups.sweep_stale()
        # with a uid per slot the job's limit is its uid's RLIMIT_NPROC; pids.max leaves room
        # for the sandbox's own processes in the slot (slot templates, supervisors)
        pids = limits.max_procs + (slots.SANDBOX_PIDS if uids else 0)
        groups = cgroups.setup(config["cgroup_tag"], config["slots"], pids)
    else:
        groups = cgroups.Cgroups(None, (), (), "disabled by configuration")
    if config["sweep"]:
        for uid in uids:  # leftovers of a previous bot that died with jobs running
            reaper.kill_uid(uid)
    tmp_bytes = config["tmp_bytes"] if spaces.done["mounts"] else None
    netns: list[int] = []
    if spaces.done["network"]:
        try:
            netns = mounts.network_namespaces(config["slots"])
        except OSError as exc:  # jobs then share the zygote's (still cut-off) namespace
            spaces.notes.append(f"no per-slot network: {exc}")
    made = [
        job.SlotConfig(
            uid=uids[i] if uids else None,
            cgroup=groups.slots[i] if groups.slots else None,
            tmp_bytes=tmp_bytes,
            limits=limits,
            netns=netns[i] if netns else None,
            env=dict(config.get("env", {})),
            keep=tuple(keep),
        )
        for i in range(config["slots"])
    ]
    return made, groups


def _fork_supervisor(
    fd: int, config: list[job.SlotConfig], close: list[socket.socket], *, in_slot: bool
) -> None:
    if os.fork() != 0:
        os.close(fd)
        return
    code = 0
    try:
        for sock in close:  # the zygote's channels are none of a job's business
            sock.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the supervisor reaps its own
        with socket.socket(fileno=fd) as sock:
            job.serve(sock, config, in_slot=in_slot)
    except BaseException:
        traceback.print_exc()  # to the bot's stderr: a harness bug, not a job failure
        code = 1
    finally:
        os._exit(code)


def _job(msg: bytes, fds: list[int]) -> tuple[bytes, int] | None:
    """(template, slot) of a job message, or None for anything else."""
    kind, digits = msg[:1], msg[1:]
    if len(fds) != 1 or kind not in (LIGHT, HEAVY) or not digits.isdigit():
        return None
    return kind, int(digits)


def serve(
    ctrl: socket.socket,
    config: list[job.SlotConfig],
    template: packages.PackageTemplate | None = None,
    routes: dict[int, socket.socket] | None = None,
) -> None:
    """Start a supervisor for each job socket received, from the template asked for and the
    slot's template when there is one; return on "Q" or when the other end is gone."""
    routes = {} if routes is None else routes
    while True:
        msg, fds, _, _ = socket.recv_fds(ctrl, 16, 4)
        parsed = _job(msg, fds)
        if parsed is None:
            for fd in fds:
                os.close(fd)
            if not msg or msg == b"Q":
                return
            continue
        (kind, slot), fd = parsed, fds[0]
        if kind == HEAVY and template is not None:
            if template.forward(fd, LIGHT + str(slot).encode()):
                os.close(fd)
                continue
            template = None  # it died: jobs import the packages themselves from now on
        if slots.hand(routes, slot, fd):
            os.close(fd)
            continue
        own = [ctrl, *routes.values(), *([template.sock] if template else [])]
        _fork_supervisor(fd, config, own, in_slot=False)


def _spawner(config: list[job.SlotConfig]) -> slots.Spawn:
    """How a slot template starts a supervisor that prepares the job's process itself."""

    def spawn(fd: int, close: list[socket.socket], in_slot: bool) -> None:
        _fork_supervisor(fd, config, close, in_slot=in_slot)

    return spawn


class _PackageLoop:
    """The package template's loop, with its slot templates already started."""

    def __init__(self, sock: socket.socket, config: list[job.SlotConfig]) -> None:
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        self.sock, self.config = sock, config
        self.templates = slots.start(config, _spawner(config), [sock])
        self.pids = self.templates.pids

    def __call__(self) -> None:
        serve(self.sock, self.config, routes=self.templates.routes)


def main(argv: list[str]) -> None:
    """argv: [control socket fd]. Preload, isolate, say hello, then serve until told to stop.

    The order matters: the namespaces are entered first, so the package template (forked
    next) shares them; it imports while the host is still writable in them; only then are
    the host made read-only and the bot's directories hidden, for both templates at once.
    """
    ctrl = socket.socket(fileno=int(argv[0]))
    os.set_inheritable(ctrl.fileno(), False)
    config = json.loads(ctrl.recv(CONFIG_LIMIT))
    # jobs that share our uid (no root) must not ptrace or read the templates; forks inherit it
    set_dumpable(False)
    venv = preload.job_environment()
    config["env"] = preload.enter(venv)
    preload.stdlib()
    libc()  # ctypes and libc are needed after the harness directory may be hidden
    hints.offer(config.get("offered", []))
    if config["namespaces"]:
        spaces = mounts.enter()
    else:
        off = {"network": False, "ipc": False, "mounts": False}
        spaces = mounts.Namespaces(off, ["disabled by configuration"])
    # what jobs need to see: the interpreter and the job environment
    keep = [sys.base_prefix, os.path.dirname(sys.executable), *([venv] if venv else [])]
    config_slots, groups = _slots(config, spaces, keep)
    template = None
    if venv is not None and config.get("preload"):
        loop = functools.partial(_PackageLoop, config=config_slots)
        template = packages.start(config["preload"], loop, config["start_s"])
    isolation = mounts.seal(spaces, config["hide_paths"], keep)
    uids = [s.uid for s in config_slots if s.uid is not None]
    tmp_bytes = config_slots[0].tmp_bytes if config_slots else None
    hello = {
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "job_environment": venv,
        "euid": os.geteuid(),
        "uids": uids,
        "isolation": asdict(isolation),
        "cgroup": {"version": groups.version, "created": groups.created, "note": groups.note},
        # a job uid must be able to reach the standard library to import from it
        "stdlib_readable": not uids or isolation.mounts or _stdlib_readable_by_others(),
        "tmp_bytes": tmp_bytes,
        "rss_kb": preload.rss_kb(),
        "packages": None if template is None else template.report,
    }
    own = [ctrl, *([template.sock] if template else [])]
    light = slots.start(config_slots, _spawner(config_slots), own)
    heavy = template.release(config["start_s"]) if template else []
    hello["slot_templates"] = light.pids + heavy
    ctrl.send(json.dumps(hello).encode())
    # supervisors are reaped by the kernel; each one restores SIGCHLD for its own children
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.collect()
    gc.freeze()  # keep the preloaded heap shared with every fork instead of copied by the GC
    serve(ctrl, config_slots, template, light.routes)
