"""Run by test_degraded.py as an unprivileged uid: a bot without root, like a developer laptop
(mode "executor") or the Lambda handler (mode "fresh"). Prints what it observed as JSON.

Usage: python -S unprivileged_bot.py <repo> executor|fresh <marker path>
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, sys.argv[1])

from bot.sandbox.fresh.spawn import run_fresh

ENV_PROBE = """
import json, os
out = {"env": dict(os.environ)}
for name, pid in (("bot", bot), ("parent", os.getppid())):
    try:
        out[name] = open(f"/proc/{pid}/environ", "rb").read().decode(errors="replace")
    except OSError as exc:
        out[name] = exc.errno
print(json.dumps(out))
"""
FORK_BOMB = """
import os, time
forked = failed = 0
for _ in range(500):
    try:
        pid = os.fork()
    except OSError:
        failed += 1
        continue
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    forked += 1
print(forked, failed)
"""
ESCAPE = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(1)
        open(marker, "w").write("survived")
        os._exit(0)
    os._exit(0)
time.sleep(30)
"""


def request(code: str, **input_: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "job_id": 1,
        "file_name": "job.py",
        "code": code,
        "input_json": json.dumps(input_),
        "timeout_s": 5.0,
        "memory_mb": 256,
        "max_output_bytes": 1 << 20,
    }


def my_processes() -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                if os.stat(f"/proc/{name}").st_uid == os.getuid():
                    found.append(int(name))
            except FileNotFoundError:  # exited meanwhile
                continue
    return found


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return f"{pid}: {fh.read()[:120]}"
    except OSError:
        return f"{pid}: gone"


def main() -> None:
    mode, marker = sys.argv[2], sys.argv[3]
    out: dict[str, Any] = {"uid": os.getuid()}
    if mode == "executor":
        from bot.executors.local import LocalExecutor

        executor = LocalExecutor(slots=2, uid_base=61000, max_procs=16, tmp_bytes=16 << 20)
        run = executor.run_harness
        out["describe"] = executor.describe()
        spared = {executor.zygote_pid}
    else:
        run = run_fresh
        spared = set()
    out["sum"] = run(request("def main(a, b):\n    return a + b\n", a=2, b=3))["result_json"]
    out["probe"] = json.loads(run(request(ENV_PROBE, bot=os.getpid()))["stdout"])
    out["forks"] = run(request(FORK_BOMB))["stdout"]
    escape = request(ESCAPE, marker=marker)
    escape["timeout_s"] = 0.5
    out["escape"] = run(escape)["outcome"]
    deadline = time.monotonic() + 5  # job supervisors exit right after answering
    while (left := set(my_processes()) - spared) and time.monotonic() < deadline:
        time.sleep(0.01)
    out["leftovers"] = [_describe(pid) for pid in sorted(left)]
    time.sleep(1.5)  # an observation window: the escapee would have written its marker by now
    out["marker"] = os.path.exists(marker)
    out["job_dirs"] = [
        name
        for name in os.listdir("/tmp")
        if name.startswith("jobbot-job-") and os.stat(f"/tmp/{name}").st_uid == os.getuid()
    ]
    if mode == "executor":
        executor.close()
    print(json.dumps(out))


main()
