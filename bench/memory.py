"""Memory of the warm templates: the templates' RSS, one pandas job's PSS (and USS, the pages
it alone holds) beside the same code in a fresh interpreter of the job environment, and 20
pandas jobs at once; target: the 20 fit in 2 GB (the sum of the PSS of every process of the
sandbox: templates, supervisors, jobs).

    .venv/bin/python -m bench.memory             # as root (slot uids, cgroups); ~1 minute
JOBBOT_BENCH_RUNS runs (5); medians and ranges over the runs.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.stats import median_range, table
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv
from testbed.processes import descendants

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
CONCURRENT = 20
BUDGET_MB = 2048
HOLD_S = 4.0
JOB = """\
import os, time
import numpy as np
import pandas as pd
frame = pd.DataFrame({"k": np.arange(100_000) % 100, "v": np.random.random(100_000)})
means = frame.groupby("k").v.mean()
open("ready", "w").close()
print(open("/proc/self/smaps_rollup").read().split("Pss:")[1].split()[0], flush=True)
time.sleep(HOLD)
print(len(means))
"""


def kb(pid: int, field: str, name: str = "status") -> int:
    """One kB field of /proc/<pid>/status or smaps_rollup (0 if the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/{name}").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def wait_for(check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the jobs")
        time.sleep(0.02)


def jobs_ready(executor: LocalExecutor, count: int) -> list[int]:
    """Pids of the job processes that wrote their marker (running as a slot's uid)."""
    found = []
    for pid in descendants(executor.zygote_pid or 0):
        try:
            if os.stat(f"/proc/{pid}").st_uid in executor.uids and os.path.exists(
                f"/proc/{pid}/cwd/ready"
            ):
                found.append(pid)
        except OSError:
            continue
    return found if len(found) >= count else []


def fresh_pss(python: str) -> int:
    """PSS (kB) of the same job under a new interpreter of the job environment."""
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1"}
    env["MPLBACKEND"] = "Agg"
    code = JOB.replace("HOLD", "0").replace('open("ready", "w").close()\n', "")
    done = subprocess.run([python, "-I", "-c", code], env=env, capture_output=True, check=True)
    return int(done.stdout.split()[0])


def run_once(executor: LocalExecutor, python: str) -> dict[str, float]:
    request = {
        "v": 1,
        "file_name": "pandas_job.py",
        "code": JOB.replace("HOLD", str(HOLD_S)),
        "input_json": "{}",
        "timeout_s": 30.0,
        "memory_mb": 256,
        "max_output_bytes": 1 << 20,
    }
    threads = [
        threading.Thread(target=executor.run_harness, args=({**request, "job_id": i},))
        for i in range(CONCURRENT)
    ]
    # one job alone first: its own PSS, while nothing else of a job shares its pages
    threads[0].start()
    wait_for(lambda: bool(jobs_ready(executor, 1)))
    alone = jobs_ready(executor, 1)[0]
    one = kb(alone, "Pss", "smaps_rollup")
    own = sum(kb(alone, f, "smaps_rollup") for f in ("Private_Clean", "Private_Dirty"))
    for thread in threads[1:]:
        thread.start()
    wait_for(lambda: bool(jobs_ready(executor, CONCURRENT)))
    zygote, template = executor.zygote_pid or 0, executor.package_template_pid or 0
    # the templates, slot templates, spares, supervisors and jobs: every process of the sandbox
    everything = {zygote} | descendants(zygote)
    total = sum(kb(pid, "Pss", "smaps_rollup") for pid in everything)
    for thread in threads:
        thread.join()
    return {
        "zygote rss": kb(zygote, "VmRSS") / 1024,
        "template rss": kb(template, "VmRSS") / 1024,
        "one job pss": one / 1024,
        "one job uss": own / 1024,
        "fresh pss": fresh_pss(python) / 1024,
        "total pss": total / 1024,
        "processes": len(everything),
    }


def main() -> None:
    python = jobenv.job_python()
    executor = LocalExecutor(
        python=python,
        packages=jobenv.packages(),
        slots=CONCURRENT,
        uid_base=63000,
        max_procs=64,
        tmp_bytes=16 * MIB,
    )
    runs = []
    try:
        for _ in range(RUNS):
            runs.append(run_once(executor, python))
    finally:
        executor.close()
    keys = list(runs[0])
    rows = [["run", *keys, "one job / fresh"]]
    for i, run in enumerate(runs, 1):
        values = [f"{run[k]:.1f} MB" if k != "processes" else str(run[k]) for k in keys]
        rows.append([str(i), *values, f"{run['one job pss'] / run['fresh pss']:.2f}"])
    print(
        f"Memory: templates' RSS; one pandas job's PSS (100,000-row DataFrame, groupby) beside "
        f"the same code in a fresh `{python}`; {CONCURRENT} such jobs at once, the PSS of every "
        "process of the sandbox summed"
    )
    print(table(rows))
    for key in keys:
        unit = "" if key == "processes" else " MB"
        print(f"{key}: {median_range([r[key] for r in runs], '{:.1f}')}{unit}")
    ratios = [r["one job pss"] / r["fresh pss"] for r in runs]
    print(f"one job / fresh interpreter: {median_range(ratios)}")
    totals = [r["total pss"] for r in runs]
    fits = sorted(totals)[len(totals) // 2] <= BUDGET_MB
    print(f"{CONCURRENT} jobs at once within {BUDGET_MB} MB: {'met' if fits else 'MISSED'}")


if __name__ == "__main__":
    main()
