"""Per-slot cgroups that bound all processes and memory of one job (v1, or v2 if delegated)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass

from .. import reaper

PREFIX = "jobbot-"
_CONTROLLERS = ("pids", "memory")


@dataclass(frozen=True)
class Slot:
    """The cgroup directories of one job slot: one per v1 controller, or one v2 group."""

    version: int
    pids_dir: str | None
    memory_dir: str | None

    @property
    def dirs(self) -> tuple[str, ...]:
        """Every directory a job of this slot joins."""
        return tuple(dict.fromkeys(d for d in (self.pids_dir, self.memory_dir) if d))

    def join(self) -> None:
        """Move the calling process (and so all its future children) into the slot."""
        for d in self.dirs:
            _write(os.path.join(d, "cgroup.procs"), str(os.getpid()))

    def set_memory(self, limit_bytes: int) -> None:
        """Cap the memory of all the slot's processes together (tmpfs pages included)."""
        if self.memory_dir is None:
            return
        if self.version == 2:
            _write(os.path.join(self.memory_dir, "memory.max"), str(limit_bytes))
            with contextlib.suppress(OSError):
                _write(os.path.join(self.memory_dir, "memory.swap.max"), "0")
            return
        limit = os.path.join(self.memory_dir, "memory.limit_in_bytes")
        memsw = os.path.join(self.memory_dir, "memory.memsw.limit_in_bytes")
        if not os.path.exists(memsw):
            _write(limit, str(limit_bytes))
            return
        # memsw must stay >= limit, so the order of the two writes depends on the direction
        try:
            _write(limit, str(limit_bytes))
            _write(memsw, str(limit_bytes))
        except OSError:
            _write(memsw, str(limit_bytes))
            _write(limit, str(limit_bytes))

    def oom_kills(self) -> int:
        """How many processes the kernel has killed in this slot for lack of memory, so far."""
        if self.memory_dir is None:
            return 0
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            with open(os.path.join(self.memory_dir, name)) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except OSError:
            pass
        return 0

    def procs(self, uid: int | None = None) -> list[int]:
        """The processes in the slot now (only those of `uid`, when given). Every process
        joins all of the slot's groups (`join`), so one group's list is the slot's."""
        return _procs(self.dirs[0], uid) if self.dirs else []


@dataclass(frozen=True)
class Cgroups:
    """What setup() achieved: the slots (empty when unavailable) and why, for `doctor`."""

    version: int | None
    slots: tuple[Slot, ...]
    created: tuple[str, ...]  # directories to remove at the end, children before parents
    note: str


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def _procs(directory: str, uid: int | None = None) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as fh:
            pids = [int(x) for x in fh.read().split()]
    except OSError:
        return []
    return pids if uid is None else [pid for pid in pids if _owner(pid) == uid]


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:  # gone meanwhile
        return None


def _mounts() -> list[tuple[str, str, str, set[str]]]:
    """(mount point, root, fstype, super options) of each cgroup mount."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
                point = fields[4].encode().decode("unicode_escape")
                found.append((point, fields[3], tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """controller -> our cgroup path (v1), and "" -> our v2 path."""
    paths = {}
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    return paths


def _join(point: str, root: str, path: str) -> str:
    if root != "/" and path.startswith(root):
        path = path[len(root) :]
    return os.path.join(point, path.lstrip("/"))


def bases() -> tuple[int | None, dict[str, str]]:
    """(version, controller -> the directory of our own cgroup) for pids and memory."""
    mounts, own = _mounts(), _own_paths()
    v1 = {}
    for point, root, fstype, options in mounts:
        for name in _CONTROLLERS:
            if fstype == "cgroup" and name in options and name in own:
                v1[name] = _join(point, root, own[name])
    if v1:
        return 1, v1
    for point, root, fstype, _ in mounts:
        if fstype == "cgroup2" and "" in own:
            base = _join(point, root, own[""])
            try:
                with open(os.path.join(base, "cgroup.controllers")) as fh:
                    available = set(fh.read().split())
            except OSError:
                continue
            return 2, {name: base for name in _CONTROLLERS if name in available}
    return None, {}


def setup(tag: str, slots: int, max_procs: int) -> Cgroups:
    """Create (or reuse) <our cgroup>/<tag>/slot-N groups; never raises, says why not."""
    version, base = bases()
    if not base:
        return Cgroups(None, (), (), "no pids or memory cgroup controller available")
    created: list[str] = []
    try:
        if version == 2:
            made = _setup_v2(base, tag, slots, max_procs, created)
        else:
            made = _setup_v1(base, tag, slots, max_procs, created)
    except OSError as exc:
        remove(created)
        return Cgroups(None, (), (), f"cgroup v{version} not usable: {exc}")
    missing = [name for name in _CONTROLLERS if name not in base]
    note = f"cgroup v{version}" + (f" (no {', '.join(missing)} controller)" if missing else "")
    return Cgroups(version, made, tuple(reversed(created)), note)


def _mkdir(path: str, created: list[str]) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:  # left by an earlier zygote of the same executor: empty it
        kill_all(path)
    created.append(path)


def _setup_v1(
    base: dict[str, str], tag: str, slots: int, max_procs: int, created: list[str]
) -> tuple[Slot, ...]:
    for path in base.values():
        _mkdir(os.path.join(path, tag), created)
    made = []
    for i in range(slots):
        dirs = {name: os.path.join(base[name], tag, f"slot-{i}") for name in base}
        for d in dirs.values():
            _mkdir(d, created)
        if "pids" in dirs:
            _write(os.path.join(dirs["pids"], "pids.max"), str(max_procs))
        made.append(Slot(1, dirs.get("pids"), dirs.get("memory")))
    return tuple(made)


def _setup_v2(
    base: dict[str, str], tag: str, slots: int, max_procs: int, created: list[str]
) -> tuple[Slot, ...]:
    root = next(iter(base.values()))
    wanted = " ".join(f"+{name}" for name in base)
    # fails with EBUSY unless our cgroup was delegated to us without processes in it
    _write(os.path.join(root, "cgroup.subtree_control"), wanted)
    parent = os.path.join(root, tag)
    _mkdir(parent, created)
    _write(os.path.join(parent, "cgroup.subtree_control"), wanted)
    made = []
    for i in range(slots):
        d = os.path.join(parent, f"slot-{i}")
        _mkdir(d, created)
        if "pids" in base:
            _write(os.path.join(d, "pids.max"), str(max_procs))
        made.append(Slot(2, d if "pids" in base else None, d if "memory" in base else None))
    return tuple(made)


def kill_all(directory: str, deadline_s: float = 2.0, *, uid: int | None = None) -> bool:
    """SIGKILL every process in a cgroup (of `uid`, when given) until none is left; False if
    some survived."""
    deadline = time.monotonic() + deadline_s
    while procs := _procs(directory, uid):
        for pid in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def remove(directories: Iterable[str]) -> None:
    """Empty and remove cgroup directories, given children before parents; best effort."""
    for d in directories:
        kill_all(d)
        for _ in range(100):  # a killed process leaves the group a moment later
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.01)


def sweep_stale() -> None:
    """Remove the groups of executors whose process is gone (tag jobbot-<pid>-...)."""
    _, base = bases()
    for parent in set(base.values()):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            pid = name[len(PREFIX) :].split("-", 1)[0]
            if not (name.startswith(PREFIX) and pid.isdigit()) or reaper.alive(int(pid)):
                continue
            top = os.path.join(parent, name)
            with contextlib.suppress(OSError):
                remove([os.path.join(top, s) for s in os.listdir(top) if s.startswith("slot-")])
            remove([top])
