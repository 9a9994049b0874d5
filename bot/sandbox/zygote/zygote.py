"""The zygote: a secret-free, pre-imported, isolated server that forks one supervisor per job."""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import socket
import sys
import traceback
from dataclasses import asdict, replace
from typing import Any

from .. import reaper
from ..limits import Limits, libc
from . import cgroups, job, mounts

# imported once here so each job starts with them loaded (fork shares the pages)
PRELOAD = (
    *("base64", "bisect", "collections", "copy", "csv", "dataclasses", "datetime", "decimal"),
    *("enum", "fractions", "functools", "hashlib", "heapq", "itertools", "json", "linecache"),
    *("math", "operator", "pathlib", "random", "re", "socket", "statistics", "string"),
    *("struct", "subprocess", "textwrap", "threading", "time", "tokenize", "traceback"),
    *("typing",),
)
CONFIG_LIMIT = 1 << 20


def _preload() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    libc()  # ctypes and libc are needed after the harness directory may be hidden


def _stdlib_readable_by_others() -> bool:
    current = os.path.realpath(sys.base_prefix)
    while current not in ("/", ""):
        if not os.stat(current).st_mode & 0o001:
            return False
        current = os.path.dirname(current)
    return True


def setup(config: dict[str, Any]) -> tuple[list[job.SlotConfig], dict[str, Any]]:
    """Isolate this process as far as the host allows; (slot configs, hello for the executor)."""
    root = os.geteuid() == 0
    if config["namespaces"]:
        keep = [sys.base_prefix, os.path.dirname(sys.executable)]
        isolation = mounts.isolate(config["hide_paths"], keep)
    else:
        isolation = mounts.Isolation(False, False, False, False, (), ("disabled by configuration",))
    uid_base = config["uid_base"]
    uids = [uid_base + i for i in range(config["slots"])] if root and uid_base is not None else []
    limits = Limits(**config["limits"])
    if config["cgroups"]:
        if config["sweep"]:
            cgroups.sweep_stale()
        groups = cgroups.setup(config["cgroup_tag"], config["slots"], limits.max_procs)
    else:
        groups = cgroups.Cgroups(None, (), (), "disabled by configuration")
    if config["sweep"]:
        for uid in uids:  # leftovers of a previous bot that died with jobs running
            reaper.kill_uid(uid)
    tmp_bytes = config["tmp_bytes"] if isolation.mounts else None
    netns: list[int] = []
    if isolation.network:
        try:
            netns = mounts.network_namespaces(config["slots"])
        except OSError as exc:  # jobs then share the zygote's (still cut-off) namespace
            isolation = replace(isolation, notes=(*isolation.notes, f"no per-slot network: {exc}"))
    slots = [
        job.SlotConfig(
            uid=uids[i] if uids else None,
            cgroup=groups.slots[i] if groups.slots else None,
            tmp_bytes=tmp_bytes,
            limits=limits,
            netns=netns[i] if netns else None,
        )
        for i in range(config["slots"])
    ]
    hello = {
        "pid": os.getpid(),
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "euid": os.geteuid(),
        "uids": uids,
        "isolation": asdict(isolation),
        "cgroup": {"version": groups.version, "created": groups.created, "note": groups.note},
        # a job uid must be able to reach the standard library to import from it
        "stdlib_readable": not uids or isolation.mounts or _stdlib_readable_by_others(),
        "tmp_bytes": tmp_bytes,
    }
    return slots, hello


def _fork_supervisor(ctrl: socket.socket, fd: int, slots: list[job.SlotConfig]) -> None:
    if os.fork() != 0:
        os.close(fd)
        return
    code = 0
    try:
        ctrl.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # the supervisor reaps its own
        with socket.socket(fileno=fd) as sock:
            job.serve(sock, slots)
    except BaseException:
        traceback.print_exc()  # to the bot's stderr: a harness bug, not a job failure
        code = 1
    finally:
        os._exit(code)


def serve(ctrl: socket.socket, slots: list[job.SlotConfig]) -> None:
    """Fork a supervisor for each job socket received; return on "Q" or when the bot is gone."""
    while True:
        msg, fds, _, _ = socket.recv_fds(ctrl, 16, 4)
        if msg != b"J" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            if not msg or msg == b"Q":
                return
            continue
        _fork_supervisor(ctrl, fds[0], slots)


def main(argv: list[str]) -> None:
    """argv: [control socket fd]. Configure, say hello, then serve until told to stop."""
    ctrl = socket.socket(fileno=int(argv[0]))
    os.set_inheritable(ctrl.fileno(), False)
    config = json.loads(ctrl.recv(CONFIG_LIMIT))
    _preload()
    slots, hello = setup(config)
    ctrl.send(json.dumps(hello).encode())
    # supervisors are reaped by the kernel; each one restores SIGCHLD for its own children
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    gc.freeze()  # keep the preloaded heap shared with every fork instead of copied by the GC
    serve(ctrl, slots)
