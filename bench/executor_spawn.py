"""Spawn cost of one trivial job: the local executor (zygote, with and without its isolation)
and fresh mode (run_fresh, as in Lambda), each sample beside a bare `python -I -S -c pass` run
right after it, so both see the same machine.

    .venv/bin/python -m bench.executor_spawn     # as root for the full isolation; ~1 minute
Every figure is a full round trip for a job that prints `a + b`: request in, response out.
With one slot, each job reuses the slot at once and may wait for its spare to be prepared;
with four (the default JOBBOT_WORKERS) a slot's spare is ready when its next job comes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.stats import ms, summary, table
from bot.app.environment import load_settings
from bot.executors.local import LocalExecutor
from bot.sandbox.fresh.spawn import run_fresh
from testbed import jobenv

SAMPLES = int(os.environ.get("JOBBOT_BENCH_SPAWN", "60"))
WARMUP = 5
DEFAULTS = load_settings({}, env_file=None)  # the sandbox limits a default install runs with
INTERPRETER = str(Path(sys.executable).resolve())  # the real binary, never a shim
BARE = [INTERPRETER, "-I", "-S", "-c", "pass"]
DEGRADED = {"namespaces": False, "cgroups": False}
REQUEST = {
    "v": 1,
    "job_id": 1,
    "file_name": "bench.py",
    "code": "print(a + b)\n",
    "input_json": json.dumps({"a": 5, "b": 3}),
    "timeout_s": 10.0,
    "memory_mb": 256,
    "max_output_bytes": 1 << 20,
}


def measure(run: Callable[[], object]) -> tuple[list[float], list[float]]:
    """(seconds per call, seconds per bare interpreter run right after each call)."""
    for _ in range(WARMUP):
        run()
    times, bare = [], []
    for _ in range(SAMPLES):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
        start = time.perf_counter()
        subprocess.run(BARE, check=True)
        bare.append(time.perf_counter() - start)
    return times, bare


def checked(response: dict[str, Any]) -> None:
    """Stop the benchmark if the job did not give its result."""
    if response["result_json"] != '"8"':
        raise SystemExit(f"the benchmark job failed: {response}")


def main() -> None:
    """Measure and print p50/p95 and the ratios to the bare interpreter beside each."""
    rows = [["path", "p50", "p95", "bare p50 (beside)", "p50 / bare"]]
    for label, options in (
        ("zygote, full isolation, 4 slots", {"slots": 4}),
        ("zygote, full isolation, 1 slot", {"slots": 1}),
        (
            "zygote, no namespaces/cgroups, 4 slots",
            {"slots": 4, "namespaces": False, "cgroups": False},
        ),
    ):
        executor = LocalExecutor(
            python=jobenv.job_python(),
            packages=jobenv.packages(),
            uid_base=61900,
            max_procs=DEFAULTS.sandbox_max_procs,
            tmp_bytes=DEFAULTS.sandbox_tmp_mb << 20,
            **options,  # type: ignore[arg-type]
        )
        try:
            times, bare = measure(lambda ex=executor: checked(ex.run_harness(REQUEST)))
        finally:
            executor.close()
        rows.append(row(label, times, bare))
    times, bare = measure(lambda: checked(run_fresh(REQUEST)))
    rows.append(row("fresh mode (run_fresh, as in Lambda)", times, bare))
    print(f"{SAMPLES} samples each, {INTERPRETER}, euid {os.geteuid()}")
    print(table(rows))


def row(label: str, times: list[float], bare: list[float]) -> list[str]:
    stats, base = summary(times), summary(bare)["p50"]
    return [label, ms(stats["p50"]), ms(stats["p95"]), ms(base), f"{stats['p50'] / base:.2f}x"]


if __name__ == "__main__":
    main()
