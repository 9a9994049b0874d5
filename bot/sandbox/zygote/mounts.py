"""Namespaces and mounts that hide the host: zygote-wide masks, per-job private tmpfs."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..limits import check, libc

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# per-mount options a bind remount must repeat, or it would clear them (nosuid!)
_OPTION_FLAGS = {
    "nosuid": MS_NOSUID,
    "nodev": MS_NODEV,
    "noexec": MS_NOEXEC,
    "noatime": MS_NOATIME,
    "nodiratime": MS_NODIRATIME,
    "relatime": MS_RELATIME,
    "strictatime": MS_STRICTATIME,
}
_LIVE_TREES = ("/proc", "/sys", "/dev")  # kernel interfaces: stay as they are
ALWAYS_MASKED = ("/run", "/var/run")  # database and other daemons' unix sockets
# the world-writable places each job gets privately: (mount point, directory in the tmpfs)
TMP = "/tmp"  # noqa: S108 - we mount over these paths, not create files in them
_TMP_TARGETS = (("/var/tmp", "var-tmp"), ("/dev/shm", "shm"), ("/run/lock", "lock"), (TMP, "tmp"))  # noqa: S108


@dataclass(frozen=True)
class Isolation:
    """What the zygote's namespaces achieved, and why not where they failed."""

    network: bool
    ipc: bool
    mounts: bool
    readonly: bool
    masked: tuple[str, ...]
    notes: tuple[str, ...]


def unshare(flags: int) -> None:
    """Move this (single-threaded) process into new namespaces."""
    check(libc().unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    """Move this (single-threaded) process into the namespace `fd` refers to."""
    check(libc().setns(fd, nstype), "setns")


def network_namespaces(count: int) -> list[int]:
    """`count` new, empty network namespaces, held open by the fds returned (this process
    stays in its own). A job's supervisor enters its slot's with `setns`: as private as a
    namespace per job (a slot runs one job at a time, and each job's processes are all gone
    before the next starts), without paying for creating and tearing one down per job."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    made: list[int] = []
    try:
        for _ in range(count):
            unshare(CLONE_NEWNET)
            made.append(os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC))
            setns(home, CLONE_NEWNET)
    except OSError:
        for fd in made:
            os.close(fd)
        raise
    finally:
        os.close(home)
    return made


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2); raises OSError naming the target."""
    fn = libc().mount
    fn.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    src = source.encode() if source is not None else None
    kind = fstype.encode() if fstype is not None else None
    check(fn(src, target.encode(), kind, flags, data.encode() or None), f"mount {target}")


def detach(target: str) -> None:
    """Lazily unmount `target` (the top mount there)."""
    fn = libc().umount2
    fn.argtypes = [ctypes.c_char_p, ctypes.c_int]
    check(fn(target.encode(), MNT_DETACH), f"umount {target}")


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _mountinfo() -> list[tuple[str, int]]:
    """(mount point, per-mount flags) of every mount we can see, shallowest first."""
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            flags = 0
            for option in fields[5].split(","):
                flags |= _OPTION_FLAGS.get(option, 0)
            found.append((point, flags))
    return sorted(found, key=lambda item: item[0].count("/"))


def _readonly_host(notes: list[str]) -> bool:
    """Remount every host mount read-only (in our namespace); True if "/" is."""
    root_ok = False
    for point, flags in _mountinfo():
        if _under(point, _LIVE_TREES):
            continue
        try:
            mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | flags)
            root_ok = root_ok or point == "/"
        except OSError as exc:
            notes.append(f"could not make {point} read-only: {exc.strerror}")
    return root_ok


def _closed_ancestors(path: str) -> list[str]:
    """Directories above `path` that other users cannot search (so a job uid cannot pass)."""
    found, current = [], os.path.dirname(path)
    while current not in ("/", ""):
        if not os.stat(current).st_mode & 0o001:
            found.append(current)
        current = os.path.dirname(current)
    return found


def _mask(path: str, keep: dict[str, int]) -> None:
    """An empty read-only tmpfs over `path`, with the `keep` paths under it bound back."""
    mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
    for kept, fd in keep.items():
        if _under(kept, [path]) and kept != path:
            os.makedirs(kept, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", kept, None, MS_BIND | MS_REC)
            mount(None, kept, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    if path == "/run":
        os.mkdir("/run/lock")  # mount point of each job's private /run/lock
        os.symlink("/dev/shm", "/run/shm")  # noqa: S108 - a compatibility link, as on the host
    mount(None, path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


@dataclass
class Namespaces:
    """The zygote's namespaces, entered before anything is preloaded and sealed after."""

    done: dict[str, bool]
    notes: list[str]


def enter() -> Namespaces:
    """In the zygote: new net, IPC and mount namespaces (as far as the host allows).

    Processes forked from here on share them, so what `seal` mounts later shows in all.
    """
    notes: list[str] = []
    done = {}
    for name, flag in (("network", CLONE_NEWNET), ("ipc", CLONE_NEWIPC), ("mounts", CLONE_NEWNS)):
        try:
            unshare(flag)
            done[name] = True
        except OSError as exc:
            done[name] = False
            notes.append(f"no {name} namespace: {exc.strerror}")
    if done["mounts"]:
        mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks to the host
    return Namespaces(done, notes)


def seal(spaces: Namespaces, hide: Sequence[str], keep: Sequence[str]) -> Isolation:
    """In the zygote, once everything is preloaded: the host read-only, `hide` masked.

    `keep` are directories jobs still need (the interpreter's prefix, the job environment):
    they stay visible, read-only, even under a mask, and directories above them that a job
    uid could not search are masked too (so /root, 0700, is hidden while /root/.pyenv/...
    stays reachable).
    """
    done, notes = spaces.done, list(spaces.notes)
    if not done["mounts"]:
        return Isolation(done["network"], done["ipc"], False, False, (), tuple(notes))
    readonly = _readonly_host(notes)
    # Each kept directory by its real path and by the path it is named by, which differ
    # when it is reached through a symlink (a job environment linked into the project):
    # jobs use the named one (sys.executable), so it must survive a mask over its parent.
    named = {
        path: os.path.realpath(k)
        for k in keep
        if os.path.isdir(k)
        for path in (os.path.realpath(k), os.path.abspath(k))
    }
    wanted = {os.path.realpath(p) for p in (*ALWAYS_MASKED, *hide)}
    for kept in named:
        wanted.update(_closed_ancestors(kept))
    fds = {k: os.open(real, os.O_PATH | os.O_DIRECTORY) for k, real in named.items()}
    masked = []
    try:
        for path in sorted(wanted, key=lambda p: p.count("/")):
            if not os.path.isdir(path):  # gone, a file, or already hidden by a wider mask
                if os.path.exists(path):
                    notes.append(f"cannot hide {path}: not a directory")
                continue
            try:
                _mask(path, fds)
                masked.append(path)
            except OSError as exc:
                notes.append(f"could not hide {path}: {exc.strerror}")
    finally:
        for fd in fds.values():
            os.close(fd)
    return Isolation(done["network"], done["ipc"], True, readonly, tuple(masked), tuple(notes))


def _hidden_by_private_tmp(keep: Sequence[str]) -> list[tuple[str, str]]:
    """(path as named, real path) of the `keep` directories a private /tmp would cover: a
    job environment in a checkout under /tmp, say."""
    roots = [target for target, _ in _TMP_TARGETS]
    found = []
    for path in keep:
        real = os.path.realpath(path)
        if not os.path.isdir(real):
            continue
        for named in dict.fromkeys((os.path.abspath(path), real)):
            if _under(named, roots):
                found.append((named, real))
    return found


def private_tmp(size_bytes: int, keep: Sequence[str] = ()) -> list[str]:
    """In a job supervisor: new mount and IPC namespaces with one fresh tmpfs of
    `size_bytes` behind /tmp, /var/tmp, /dev/shm and /run/lock (one shared budget).

    `keep` are directories jobs need (the interpreter, the job environment): one that lies
    under those places is bound back, read-only, at the same path inside the fresh tmpfs.
    Returns the mount points to detach afterwards, in order.
    """
    unshare(CLONE_NEWNS | CLONE_NEWIPC)
    kept = _hidden_by_private_tmp(keep)
    # opened before the tmpfs covers them: the fds still reach the host's directories
    fds = [os.open(real, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) for _, real in kept]
    try:
        inodes = max(1024, size_bytes // 4096)  # size alone does not bound empty files
        options = f"size={size_bytes},nr_inodes={inodes},mode=1777"
        mount("tmpfs", TMP, "tmpfs", MS_NOSUID | MS_NODEV, options)
        points = [TMP]
        # /tmp itself last: until then the tmpfs root is still reachable at /tmp
        for target, sub in _TMP_TARGETS:
            if target == TMP or (os.path.isdir(target) and not os.path.islink(target)):
                source = os.path.join(TMP, sub)
                os.mkdir(source)
                os.chmod(source, 0o1777)  # noqa: S103 - sticky and world-writable, like /tmp
                mount(source, target, None, MS_BIND)
                points.append(target)
        for (named, _), fd in zip(kept, fds, strict=True):
            # the directories above it are the supervisor's, so the job cannot move them
            os.makedirs(named, mode=0o755, exist_ok=True)
            mount(f"/proc/self/fd/{fd}", named, None, MS_BIND | MS_REC)
            flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV
            mount(None, named, None, flags)
            points.append(named)
    finally:
        for fd in fds:
            os.close(fd)
    return points[::-1]
