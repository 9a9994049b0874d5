"""The package template: a child of the zygote that imports the offered packages once, then
forks the supervisor of each job that uses them (the zygote forwards those jobs to it)."""

from __future__ import annotations

import gc
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..limits import go_with
from . import preload

REPORT_LIMIT = 1 << 16
GO = b"go"  # the zygote sealed its namespaces: the slot templates may start


class Loop(Protocol):
    """The template's serving loop, prepared: the pids of what it started for it."""

    pids: list[int]

    def __call__(self) -> None:
        """Serve until the zygote closes its end."""


@dataclass
class PackageTemplate:
    """The zygote's handle on its package template."""

    pid: int
    sock: socket.socket  # forwards job sockets; closed once the template is gone
    report: dict[str, Any] = field(default_factory=dict)

    def release(self, timeout_s: float) -> list[int]:
        """Once the zygote sealed its namespaces: let the template start its slot templates
        (whose spare job processes copy the mount namespace as it is then); their pids."""
        try:
            self.sock.send(GO)
            self.sock.settimeout(timeout_s)
            data = self.sock.recv(REPORT_LIMIT)
        except OSError:
            data = b""
        finally:
            self.sock.settimeout(None)
        pids: list[int] = json.loads(data).get("slot_templates", []) if data else []
        self.report["slot_templates"] = pids
        return pids

    def forward(self, fd: int, msg: bytes) -> bool:
        """Hand a job's socket (and its message) to the template; False if it is gone (the
        caller runs the job itself: the packages then import in the job, slower but the
        same)."""
        try:
            socket.send_fds(self.sock, [msg], [fd])
        except OSError:
            self.sock.close()
            return False
        return True


def start(
    modules: list[str],
    serve: Callable[[socket.socket], Loop],
    timeout_s: float,
) -> PackageTemplate | None:
    """Fork the template and wait until it has imported `modules` (None if it died).

    Call it after the zygote entered its namespaces but before it sealed them: the template
    shares them, and some packages write on first import (matplotlib's config directory).
    In the template, once the imports are done and the zygote sealed its namespaces
    (PackageTemplate.release), `serve(sock)` prepares (the slot templates) and returns the
    loop to run until the zygote closes its end; release() returns its `pids`.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            ours.close()
            go_with(parent)  # the zygote's stop is the template's too
            _become_template(modules, theirs, serve)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    ours.settimeout(timeout_s)
    try:
        data = ours.recv(REPORT_LIMIT)
    except OSError:
        data = b""
    ours.settimeout(None)
    if not data:
        ours.close()
        return None
    return PackageTemplate(pid, ours, json.loads(data))


def _become_template(
    modules: list[str],
    sock: socket.socket,
    serve: Callable[[socket.socket], Loop],
) -> None:
    failed = preload.packages(modules)
    threads = preload.threads()
    report = {
        "pid": os.getpid(),
        "loaded": [m for m in modules if m not in failed],
        "failed": failed,
        "threads": threads,
        "rss_kb": preload.rss_kb(),
    }
    if threads != 1:  # a fork would copy a lock some other thread holds: serve nothing
        report["failed"] = {**failed, "*": f"{threads} threads after the imports"}
        sock.send(json.dumps(report).encode())
        return
    gc.collect()
    gc.freeze()  # keep the imported heap shared with every fork instead of copied by the GC
    sock.send(json.dumps(report).encode())
    # Slot templates prepare a spare job process ahead, which enters a mount namespace of its
    # own (its private /tmp): a copy of ours as it is then. Made before the zygote sealed the
    # host (read-only, the bot's directories hidden), that copy would show the spare's job
    # everything; so they start only once the zygote says it sealed.
    if sock.recv(len(GO)) != GO:
        return
    loop = serve(sock)
    sock.send(json.dumps({"slot_templates": loop.pids}).encode())
    loop()
