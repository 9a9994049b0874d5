"""Hostile jobs shared by the sandbox suites (containment, fresh mode, Lambda isolation, the
hostile-code matrix): each takes its targets from the job's input and prints what it found
as JSON (or plain numbers), so every suite asserts its own executor's documented answer."""

from __future__ import annotations

# Processes and threads: 500 forks at most (a containment failure cannot take the machine
# down), each child sleeping. Prints "made failed".
FORK_BOMB = """\
import os, time
made = failed = 0
for _ in range(500):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    made += 1
print(made, failed)
"""

# A daemon: a new session whose parent is gone. Prints its pid once it is alive; with the
# input `linger` true the job then sleeps 30 s (to be stopped at its limit).
DAEMON = """\
import os, time
r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.write(w, str(os.getpid()).encode())
        time.sleep(300)
    os._exit(0)
os.close(w)
pid = int(os.read(r, 32))
os.kill(pid, 0)  # alive as the job goes on
print(pid, flush=True)
if globals().get("linger"):
    time.sleep(30)
"""

# What a job sees of earlier jobs: other processes, and what /tmp holds.
LOOK_AROUND = """\
import json, os
me, parent = os.getpid(), os.getppid()
print(json.dumps({
    "others": sorted(int(p) for p in os.listdir("/proc")
                     if p.isdigit() and int(p) not in (1, me, parent)),
    "tmp": sorted(os.listdir("/tmp")),
    "own_dir": os.path.basename(os.getcwd()),
}))
"""

# The environment and the environ of every process in reach: the job's own variables, the
# parent's (every thread), init's, and those of the input's `pids` (name -> pid, or null);
# each read is its text or the error's class name. `readable`: other processes whose
# environ could be read; `leaks`: /proc entries that mention AWS_ or a stand-in secret.
ENVIRONS = """\
import json, os
ppid = os.getppid()

def read(path):
    try:
        with open(path, "rb") as fh:
            return fh.read().decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__

def uid_of(pid):
    for line in read(f"/proc/{pid}/status").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])

others = [p for p in os.listdir("/proc") if p.isdigit() and p != str(os.getpid())]
leaks = {}
for pid in others:
    for name in ("environ", "cmdline"):
        text = read(f"/proc/{pid}/{name}")
        if "AWS_" in text or "standin-" in text:
            leaks[f"{pid}/{name}"] = text
print(json.dumps({
    "env": sorted(os.environ),
    "parent": read(f"/proc/{ppid}/environ"),
    "parent_tasks": sorted({read(f"/proc/{ppid}/task/{t}/environ")
                            for t in os.listdir(f"/proc/{ppid}/task")}),
    "init": read("/proc/1/environ"),
    "named": {name: read(f"/proc/{pid}/environ")
              for name, pid in globals().get("pids", {}).items() if pid},
    "readable": sorted(p for p in others if not read(f"/proc/{p}/environ").endswith("Error")),
    "uid": os.getuid(),
    "parent_uid": uid_of(ppid),
    "leaks": leaks,
}))
"""

# Reads the input's `paths` ("{ppid}" stands for the parent's pid): path -> the first 200
# characters, or the error's class name.
READ_FILES = """\
import json, os
out = {}
for path in paths:
    path = path.replace("{ppid}", str(os.getppid()))
    try:
        with open(path, "rb") as fh:
            out[path] = fh.read(200).decode(errors="replace")
    except OSError as exc:
        out[path] = type(exc).__name__
print(json.dumps(out))
"""

# Writes "x" to each of the input's `targets`: path -> "written", or the errno.
WRITE_FILES = """\
import json
out = {}
for path in targets:
    try:
        with open(path, "w") as fh:
            fh.write("x")
        out[path] = "written"
    except OSError as exc:
        out[path] = exc.errno
print(json.dumps(out))
"""

# Connects to 127.0.0.1 on each of the input's `ports`, and to the MySQL and PostgreSQL unix
# sockets: port or path -> "connected", or the errno.
NETWORK = """\
import json, socket
out = {}
for port in ports:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        out[port] = "connected"
    except OSError as exc:
        out[port] = exc.errno
for path in ("/run/mysqld/mysqld.sock", "/var/run/postgresql/.s.PGSQL.5432"):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        out[path] = "connected"
    except OSError as exc:
        out[path] = exc.errno
    finally:
        s.close()
print(json.dumps(out))
"""

# Fills each of the input's `wheres` with 1 MiB files until a write fails (2 GiB at most in
# all): a JSON list of [errno or null, MiB written] per place.
DISK_FILLER = """\
import json
chunk = b"q" * (1 << 20)
written, found = 0, []
for where in wheres:
    mib, errno = 0, None
    try:
        while written < (2 << 30):
            with open(f"{where}/fill-{mib}", "wb") as fh:
                fh.write(chunk)
            written += len(chunk)
            mib += 1
    except OSError as exc:
        errno = exc.errno
    found.append([errno, mib])
print(json.dumps(found))
"""

# 100 MiB on each of the input's `streams` ("stdout", "stderr"), then "done" on stderr.
OUTPUT_FLOOD = """\
import sys
chunk = "y" * (1 << 20)
for _ in range(100):
    for name in streams:
        getattr(sys, name).write(chunk)
print("done", file=sys.stderr)
"""
