"""One emulated Lambda execution environment: `python lambda_environment.py < CONFIG`.

What a Lambda execution environment gives the runtime, rebuilt with Linux namespaces so the
real handler can be tested as it runs there, and so its prctl, subreaper and `/tmp` effects
stay out of the test process:

- a PID namespace of its own (this process's child is its init): killing this process kills
  everything in it, as Lambda does when it resets an environment after a timeout;
- a mount namespace with a private, empty tmpfs `/tmp` (Lambda's only writable directory,
  kept between warm invocations), a private `/dev/shm` and a fresh `/proc`;
- the function code read-only at the task root and the interpreter read-only, while the
  host's project directory and home are hidden (they do not exist inside Lambda);
- the runtime runs as an unprivileged uid (Lambda: sbx_user1051, uid 993), with the
  function's environment, AWS credentials included;
- optionally ("forward" set) a network namespace of its own, whose loopback, like a
  microVM's, has nothing listening but the Runtime API: each [inner, outer] pair in
  "forward" relays 127.0.0.1:inner in here to 127.0.0.1:outer on the host (the Runtime API
  at 9001 as on Lambda, and the stand-in's beacons as a stand-in for the internet),
  everything else on 127.0.0.1 is refused;
- when the runtime ends by itself, how it ended ("exit N" or "signal N") is written to
  "status_fd", which the runtime does not inherit (rapid reports it as
  "Runtime exited with error: ...").

The CONFIG JSON comes on stdin (argv would show it in /proc/1/cmdline):
{"uid", "gid", "tmp_mb", "binds": [[host, target], ...], "hide": [dir, ...], "env": {...},
"argv": [...], "cwd", "forward": [[inner, outer], ...], "status_fd"}.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import signal
import socket
import struct
import sys
import threading

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
# mount flags a user namespace may not drop from a bind mount: keep what the source has
_LOCKED = {
    os.ST_NOSUID: MS_NOSUID,
    os.ST_NODEV: MS_NODEV,
    os.ST_NOEXEC: 8,
    os.ST_NOATIME: 1024,
    os.ST_NODIRATIME: 2048,
    os.ST_RELATIME: MS_RELATIME,
}
PR_SET_PDEATHSIG = 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
STAGE = "/srv"  # an empty directory covered by a tmpfs: staging for bind mounts

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str = "") -> None:
    """mount(2), raising OSError."""
    _check(
        _libc.mount(
            None if source is None else source.encode(),
            target.encode(),
            None if fstype is None else fstype.encode(),
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def bind_readonly(source: str, target: str) -> None:
    """Bind `source` at `target`, read-only."""
    os.makedirs(target, exist_ok=True)
    mount(source, target, None, MS_BIND | MS_REC)
    kept = os.statvfs(target).f_flag
    flags = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID
    flags |= sum(ms for st, ms in _LOCKED.items() if kept & st)
    mount(None, target, None, flags)


def tmpfs(target: str, size_mb: int, mode: str) -> None:
    """A fresh tmpfs at `target`."""
    mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode={mode}")


def build_filesystem(config: dict) -> None:
    """The environment's view of the filesystem (in our own mount namespace)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we do here reaches the host
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)
    tmpfs(STAGE, 16, "755")
    staged = []
    for index, (source, target) in enumerate(config["binds"]):
        stage = f"{STAGE}/.stage{index}"
        bind_readonly(source, stage)
        staged.append((stage, target))
    for hidden in config["hide"]:
        if os.path.isdir(hidden):
            tmpfs(hidden, 1, "755")
    for stage, target in staged:
        # the target may lie under a hidden directory: its tmpfs takes the mount point
        os.makedirs(target, exist_ok=True)
        mount(stage, target, None, MS_BIND | MS_REC)
    tmpfs("/tmp", config["tmp_mb"], "1777")
    if os.path.isdir("/dev/shm"):
        tmpfs("/dev/shm", 16, "1777")


def enter_namespaces(config: dict) -> None:
    """New mount and PID namespaces (and network, with "forward"); as a non-root user (or
    with "userns" set), inside a new user namespace whose only uid and gid (the runtime's)
    map to ours."""
    flags = CLONE_NEWNS | CLONE_NEWPID | (CLONE_NEWNET if config.get("forward") else 0)
    if not config["userns"]:
        _check(_libc.unshare(flags), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(CLONE_NEWUSER | flags), "unshare")
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{config['uid']} {uid} 1"),
        ("gid_map", f"{config['gid']} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as fh:
            fh.write(text)


def start_relay() -> socket.socket:
    """Fork a relay that stays in the host's PID and network namespaces (a process that has
    unshared CLONE_NEWPID can no longer start threads); our end of its control socket.

    The relay receives the listening sockets made inside the new network namespace (a
    socket keeps the namespace it was made in) and relays each connection to the same port
    on the host's loopback.
    """
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.fork() != 0:
        theirs.close()
        return ours
    ours.close()
    try:
        _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
        data, fds, _, _ = socket.recv_fds(theirs, 4096, 16)
        for fd, outer in zip(fds, json.loads(data), strict=True):
            listener = socket.socket(fileno=fd)
            threading.Thread(target=_serve, args=(listener, outer), daemon=True).start()
        theirs.recv(1)  # until the launcher is gone
    finally:
        os._exit(0)


def _serve(listener: socket.socket, port: int) -> None:
    while True:
        inner, _ = listener.accept()
        try:
            outer = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            inner.close()
            continue
        outer.settimeout(None)
        for sock in (inner, outer):  # relayed writes must not wait for delayed ACKs
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for source, sink in ((inner, outer), (outer, inner)):
            threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def loopback_up() -> None:
    """Bring up `lo` in our (new) network namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def forward(pairs: list[list[int]], relay: socket.socket) -> None:
    """Listen on 127.0.0.1:inner in here for each [inner, outer] pair and hand the listeners
    (and the ports they relay to) to the relay."""
    listeners = [socket.create_server(("127.0.0.1", inner), backlog=64) for inner, _ in pairs]
    outers = json.dumps([outer for _, outer in pairs]).encode()
    socket.send_fds(relay, [outers], [listener.fileno() for listener in listeners])
    for listener in listeners:
        listener.close()


def run_runtime(config: dict) -> int:
    """Start the runtime as the unprivileged uid, be its init, and return its exit status.

    As root, the runtime gets a user namespace of its own whose only uid and gid (the
    runtime's) map to the same ids on the host. The kernel counts RLIMIT_NPROC per user
    namespace and uid, so this environment's runtime counts only its own threads, as in a
    microVM of its own; without it every environment on the machine shared one count for
    uid 993, and a job's thread limit (set from the threads it sees in its own /proc) was
    used up by other environments' threads."""
    own_userns = os.getuid() != config["uid"]  # root: the runtime drops to its uid for good
    ready, mapped = os.pipe(), os.pipe()  # the user namespace's handshake (as root)
    runtime = os.fork()
    if runtime == 0:
        try:
            if own_userns:
                _check(_libc.unshare(CLONE_NEWUSER), "unshare")
                os.write(ready[1], b"u")
                if os.read(mapped[0], 1) != b"m":
                    raise OSError("the user namespace's ids were not mapped")
                os.setgroups([])
            os.setresgid(config["gid"], config["gid"], config["gid"])
            os.setresuid(config["uid"], config["uid"], config["uid"])
            os.chdir(config["cwd"])
            os.execve(config["argv"][0], config["argv"], config["env"])  # noqa: S606
        except BaseException as exc:
            print(f"lambda environment: cannot start the runtime: {exc!r}", file=sys.stderr)
        os._exit(127)
    os.close(ready[1])  # a runtime that dies before it asks leaves us end-of-file
    if own_userns and os.read(ready[0], 1) == b"u":
        for name, base in (("uid_map", config["uid"]), ("gid_map", config["gid"])):
            with open(f"/proc/{runtime}/{name}", "w") as fh:
                fh.write(f"{base} {base} 1")
        os.write(mapped[1], b"m")
    for fd in (ready[0], mapped[0], mapped[1]):
        os.close(fd)
    while True:  # init: reap whatever gets re-parented here until the runtime is gone
        pid, status = os.wait()
        if pid == runtime:
            if os.WIFSIGNALED(status):
                ended = f"signal {os.WTERMSIG(status)}"
            else:
                ended = f"exit {os.waitstatus_to_exitcode(status)}"
            if config.get("status_fd") is not None:
                os.write(config["status_fd"], ended.encode() + b"\n")
            return os.waitstatus_to_exitcode(status)


def main() -> None:
    """Enter new namespaces and run the runtime inside them."""
    config = json.loads(sys.stdin.read())
    if config.get("status_fd") is not None:  # ours and init's, never the runtime's
        os.set_inheritable(config["status_fd"], False)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    relay = start_relay() if config.get("forward") else None
    enter_namespaces(config)
    if relay is not None:
        loopback_up()
        forward(config["forward"], relay)  # listening before the runtime starts
    init = os.fork()
    if init == 0:
        try:
            _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
            build_filesystem(config)
            code = run_runtime(config)
        except BaseException as exc:
            print(f"lambda environment: {exc!r}", file=sys.stderr, flush=True)
            code = 125
        os._exit(code & 0xFF)
    _, status = os.waitpid(init, 0)
    sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)


if __name__ == "__main__":
    main()
