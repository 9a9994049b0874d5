"""Run by test_degraded.py as an unprivileged uid: a bot without root, like a developer laptop
(mode "executor"), the same with a job environment (mode "packages", whose python is the
next argument) or the Lambda handler (mode "fresh"). Prints what it observed as JSON.

Usage: python -S unprivileged_bot.py <repo> executor|fresh|packages [job env python]
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

sys.path.insert(0, sys.argv[1])

from bot.sandbox.fresh.spawn import run_fresh
from bot.sandbox.limits import set_child_subreaper
from testbed.processes import descendants
from tests.support import probes


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


def my_processes() -> set[int]:
    """What this bot started and is still running. As a subreaper (main() makes it one) it
    inherits whatever escapes its children, so nothing it started can leave its tree; and the
    uid's other processes (the pytest that started it, when that is not root) are not its."""
    return descendants(os.getpid())


def _describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return f"{pid}: {fh.read()[:120]}"
    except OSError:
        return f"{pid}: gone"


def packages(python: str) -> None:
    """Jobs of a job environment (one package, `jobbot_probe`, preloaded) without root."""
    from bot.executors.jobenv import JobPackages, Pin
    from bot.executors.local import LocalExecutor

    pins = (Pin("jobbot-probe", "1.0", offered=True, preload=("jobbot_probe",)),)
    executor = LocalExecutor(
        python=python,
        packages=JobPackages(pins, {"jobbot-probe": "1.0"}),
        slots=2,
        uid_base=61000,
        max_procs=16,
        tmp_bytes=16 << 20,
    )
    run = executor.run_harness
    out: dict[str, Any] = {"describe": executor.describe()}
    out["preloaded"] = run(request("import sys\nprint('jobbot_probe' in sys.modules)\n"))["stdout"]
    out["value"] = run(request("import jobbot_probe\nprint(jobbot_probe.VALUE)\n"))["stdout"]
    out["hint"] = run(request("import torch\n"))["error_message"]
    escape = request(probes.DAEMON, linger=True)
    escape["timeout_s"] = 0.5
    run(escape)
    spared = {executor.zygote_pid, executor.package_template_pid}
    deadline = time.monotonic() + 5  # job supervisors exit right after answering
    while (left := my_processes() - spared) and time.monotonic() < deadline:
        time.sleep(0.01)
    out["leftovers"] = [_describe(pid) for pid in sorted(left)]
    executor.close()
    print(json.dumps(out))


def main() -> None:
    set_child_subreaper()
    mode = sys.argv[2]
    if mode == "packages":
        packages(sys.argv[3])
        return
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
    out["probe"] = json.loads(run(request(probes.ENVIRONS, pids={"bot": os.getpid()}))["stdout"])
    out["forks"] = run(request(probes.FORK_BOMB))["stdout"]
    escape = request(probes.DAEMON, linger=True)
    escape["timeout_s"] = 0.5
    escaped = run(escape)
    out["escape"] = escaped["outcome"]
    out["escapee_alive"] = os.path.exists(f"/proc/{int(escaped['stdout'])}")
    deadline = time.monotonic() + 5  # job supervisors exit right after answering
    while (left := my_processes() - spared) and time.monotonic() < deadline:
        time.sleep(0.01)
    out["leftovers"] = [_describe(pid) for pid in sorted(left)]
    out["job_dirs"] = [
        name
        for name in os.listdir("/tmp")
        if name.startswith("jobbot-job-") and os.stat(f"/tmp/{name}").st_uid == os.getuid()
    ]
    if mode == "executor":
        executor.close()
    print(json.dumps(out))


main()
