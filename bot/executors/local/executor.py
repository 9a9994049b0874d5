"""LocalExecutor: runs jobs on this machine, each forked from an isolated, secret-free zygote."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import queue
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from bot.core.models import RunRequest, RunResult
from bot.core.ports import StartGate
from bot.errors import CalledOff, ExecutorError, ExecutorUnavailable
from bot.executors.jobenv import JobPackages
from bot.executors.local import facts
from bot.executors.local.zygote_client import ZygoteClient, package_pattern
from bot.executors.results import result_from_response
from bot.sandbox import protocol
from bot.sandbox.limits import MIB, Limits, set_dumpable
from bot.sandbox.protocol import SandboxCalledOff, SandboxFailed, SandboxUnavailable

_LOCK_DIRS = ("/run/lock", tempfile.gettempdir())
_CLOSE_WAIT_S = 60.0
_UID_BLOCKS = 64  # how far past uid_base to look for uids no other executor holds
_SANDBOX = Limits()  # the sandbox's own file limits, which no setting changes


def _lock_block(directory: str, uids: Sequence[int]) -> list[int] | None:
    """Exclusive locks on every uid of a block, or None (and nothing held) if one is taken."""
    held: list[int] = []
    for uid in uids:
        path = os.path.join(directory, f"jobbot-uid-{uid}.lock")
        held.append(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        try:
            fcntl.flock(held[-1], fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            for fd in held:
                os.close(fd)
            return None
    return held


def _someones(uid: int) -> bool:
    try:
        return not pwd.getpwuid(uid).pw_name.startswith("jobbot")
    except KeyError:
        return False


def _claim_uids(uid_base: int, slots: int) -> tuple[int, list[int]]:
    """(first uid, locks) of the first free block of `slots` uids from uid_base on.

    Job uids must be this executor's alone: every process of them is killed as a job's
    leftover. So a block is skipped when another executor on this host holds it (say a
    `bot run` beside `bot serve`) or when a uid belongs to an account in the passwd database.
    """
    directory = next((d for d in _LOCK_DIRS if os.access(d, os.W_OK)), _LOCK_DIRS[-1])
    for block in range(_UID_BLOCKS):
        first = uid_base + block * slots
        uids = range(first, first + slots)
        if any(_someones(uid) for uid in uids):
            continue
        held = _lock_block(directory, uids)
        if held is not None:
            return first, held
    last = uid_base + _UID_BLOCKS * slots - 1
    raise ExecutorError(f"no free block of {slots} job uids in {uid_base}-{last}")


def _job_python(python: str | None) -> str:
    """The interpreter of the job environment; never one of the bot's own virtualenv."""
    if python is None:  # the interpreter itself, outside any virtualenv: the stdlib only
        return os.path.realpath(sys.executable)
    python = os.path.abspath(python)  # not resolved: a virtualenv's python is a symlink
    venv = os.path.dirname(os.path.dirname(python))
    ours = sys.prefix != sys.base_prefix and os.path.isdir(venv)
    if ours and os.path.samefile(venv, sys.prefix):
        raise ValueError(
            f"{python} is the bot's own environment: jobs would import the bot's packages"
        )
    return python


class LocalExecutor:
    """Runs jobs here, each in a fresh process forked from a pre-started, isolated zygote.

    The zygote is a separate `python -I -S -u -B` process of the job environment, exec'd
    with an allow-list environment, so it never holds the bot's secrets. It preloads the
    standard library and, in a second template, the offered packages; it isolates itself
    as far as the host allows (network, mount and IPC namespaces; host filesystem
    read-only; `/run` and `hide_paths` masked) and forks one supervisor per job, which
    forks the user process: no job starts an interpreter. Everything is probed at start;
    `describe()` says what is in force.

    Args (those without a default come from the settings, through the assembler):
        slots: jobs that may run at once; further `run()` calls wait for a free slot.
        python: the job environment's interpreter: a virtualenv's python (never the bot's
            own), whose site-packages jobs import read-only. None: this interpreter
            outside any virtualenv, so jobs import the standard library only.
        packages: the job environment's pins: which modules to preload, and what the
            hint after a failed import names.
        uid_base: when the bot runs as root, slot N runs as uid and gid `uid_base + N`.
            These uids must belong to this executor alone: if another executor on this
            host holds them (lock files in /run/lock) or one is a passwd account, the next
            free block of `slots` uids is used instead; `describe()` names the uids.
        max_procs: processes and threads per job (RLIMIT_NPROC and cgroup pids.max).
        max_file_bytes: largest file a job may write (RLIMIT_FSIZE).
        max_open_files: RLIMIT_NOFILE of a job.
        tmp_bytes: size of each job's private tmpfs, shared by its /tmp, /var/tmp,
            /dev/shm and /run/lock (also added to its memory cgroup limit).
        hide_paths: directories jobs must not see: the bot's working directory, the
            SQLite database directory, the bot's HOME.
        namespaces, cgroups: False runs without them (to test the degraded modes).
        start_timeout_s: how long the zygote may take to start.

    Raises ExecutorUnavailable if the zygote cannot be started.
    """

    name = "local"

    def __init__(
        self,
        *,
        slots: int,
        uid_base: int,
        max_procs: int,
        tmp_bytes: int,
        python: str | None = None,
        packages: JobPackages | None = None,
        max_file_bytes: int = _SANDBOX.max_file_bytes,
        max_open_files: int = _SANDBOX.max_open_files,
        hide_paths: Sequence[str] = (),
        namespaces: bool = True,
        cgroups: bool = True,
        start_timeout_s: float = 30.0,
    ) -> None:
        for name, value, least in (
            ("slots", slots, 1),
            ("max_procs", max_procs, 1),
            ("max_file_bytes", max_file_bytes, 1),
            ("max_open_files", max_open_files, 16),  # the interpreter itself needs a few
            ("tmp_bytes", tmp_bytes, MIB),  # and tmpfs reads size=0 as "unlimited"
        ):
            if value < least:
                raise ValueError(f"{name} must be at least {least}, not {value}")
        self._limits = Limits(max_procs, max_file_bytes, max_open_files)
        self._hide_paths = tuple(os.path.abspath(p) for p in hide_paths)
        self._packages = packages
        job_python = _job_python(python)
        root = os.geteuid() == 0
        self._locks: list[int] = []
        if root:
            uid_base, self._locks = _claim_uids(uid_base, slots)
        config: dict[str, Any] = {
            "slots": slots,
            "uid_base": uid_base if root else None,
            "limits": {
                "max_procs": max_procs,
                "max_file_bytes": max_file_bytes,
                "max_open_files": max_open_files,
            },
            "tmp_bytes": tmp_bytes,
            "hide_paths": list(self._hide_paths),
            "namespaces": namespaces,
            "cgroups": cgroups,
            "cgroup_tag": f"jobbot-{os.getpid()}-{uid_base}",
            "preload": packages.preload if packages else [],
            "offered": packages.offered if packages else [],
        }
        self._client = ZygoteClient(
            job_python,
            config,
            start_timeout_s=start_timeout_s,
            packages=package_pattern(config["preload"]),
        )
        try:
            hello = self._client.start()
        except SandboxUnavailable as exc:
            self._release_locks()
            raise ExecutorUnavailable(f"the local sandbox did not start: {exc}") from exc
        if not hello["uids"]:
            # jobs share our uid: keep /proc/<bot>/environ (the secrets) and ptrace from them
            set_dumpable(False)
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(slots):
            self._free.put(slot)
        self._slots = slots
        self._closed = False
        self._close_lock = threading.Lock()

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        """Run the request to completion within its time limit; the start gate is passed
        while the sandbox sets the job's process up."""
        response = self.run_harness(protocol.request_body(request), start)
        return result_from_response(response, self.name)

    def run_harness(
        self, request: dict[str, Any], start: StartGate | None = None
    ) -> dict[str, Any]:
        """One raw protocol-v1 round trip (what `run` uses; handy for tests and benchmarks)."""
        slot = self._free.get()
        if self._closed:
            self._free.put(slot)
            raise ExecutorUnavailable("the local executor is closed")
        try:
            timeout_s = request.get("timeout_s")
            limit = float(timeout_s) if isinstance(timeout_s, int | float) else 0.0
            response = self._client.run(slot, request, min(max(limit, 0.0), 3600.0), start)
        except SandboxCalledOff as exc:
            raise CalledOff() from exc
        except SandboxUnavailable as exc:
            raise ExecutorUnavailable(f"the local sandbox could not start the job: {exc}") from exc
        except SandboxFailed as exc:
            raise ExecutorError(f"the local sandbox failed: {exc}") from exc
        finally:
            self._free.put(slot)
        try:
            return protocol.check_response(response)
        except protocol.ProtocolError as exc:
            raise ExecutorError(f"the local sandbox answered nonsense: {exc}") from exc

    def stop(self, job_id: int) -> bool:
        """Stop the job's run: its supervisor kills the job's processes, and `run` returns
        a CANCELLED result with the output printed until then. A stop asked for while the
        job's process is still being set up takes effect as soon as its code may run.
        False when no run of that job is in progress here."""
        return self._client.stop(job_id)

    @property
    def uids(self) -> tuple[int, ...]:
        """The uids jobs run as, one per slot (empty when the bot is not root)."""
        return tuple(self._client.hello.get("uids", ()))

    @property
    def package_template_pid(self) -> int | None:
        """The pid of the zygote's package template (a child of the zygote), if it runs."""
        template = self._client.hello.get("packages")
        return None if template is None else int(template["pid"])

    @property
    def template_pids(self) -> tuple[int, ...]:
        """The zygote's long-lived descendants: its package template and the slot templates
        (a slot's cgroup and network joined once, for the jobs forked from it)."""
        hello = self._client.hello
        package = self.package_template_pid
        return (*([package] if package else []), *hello.get("slot_templates", ()))

    @property
    def zygote_pid(self) -> int | None:
        """The zygote's pid while it runs (it is restarted on the next job if it died)."""
        return self._client.pid

    def describe(self) -> list[tuple[str, str, bool]]:
        """Facts for `doctor`: (check, detail, ok)."""
        return facts.rows(
            self._client.hello, self._client.pid, self._limits, self._hide_paths, self._packages
        )

    def _release_locks(self) -> None:
        for fd in self._locks:
            os.close(fd)
        self._locks = []

    def close(self) -> None:
        """Wait for running jobs (up to a minute), stop the zygote, remove cgroups and locks."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + _CLOSE_WAIT_S
        taken = []
        with contextlib.suppress(queue.Empty):
            for _ in range(self._slots):
                taken.append(self._free.get(timeout=max(0.0, deadline - time.monotonic())))
        self._client.close()
        self._release_locks()
        for slot in taken:  # callers still waiting for a slot now see "closed"
            self._free.put(slot)
