"""Spawn cost of one trivial job: the local executor (zygote, with and without its isolation)
and fresh mode (run_fresh, as in Lambda), beside a bare `python -I -S -c pass` in the same run.

    .venv/bin/python -m bench.executor_spawn     # as root for the full isolation; < 1 minute
Every figure is a full round trip for a job that prints `a + b`: request in, response out.
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
from bot.app.config import load_settings
from bot.executors.local import LocalExecutor
from bot.sandbox.fresh.spawn import run_fresh
from testbed import jobenv

SAMPLES = int(os.environ.get("JOBBOT_BENCH_SPAWN", "60"))
WARMUP = 5
DEFAULTS = load_settings({}, env_file=None)  # the sandbox limits a default install runs with
INTERPRETER = str(Path(sys.executable).resolve())  # the real binary, never a shim
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


def measure(run: Callable[[], object], samples: int = SAMPLES) -> list[float]:
    """Seconds per call, after a short warm-up."""
    for _ in range(WARMUP):
        run()
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times


def checked(response: dict[str, Any]) -> None:
    """Stop the benchmark if the job did not give its result."""
    if response["result_json"] != '"8"':
        raise SystemExit(f"the benchmark job failed: {response}")


def main() -> None:
    """Measure and print p50/p95 and the ratios to the bare interpreter."""
    results: dict[str, list[float]] = {}
    bare = [INTERPRETER, "-I", "-S", "-c", "pass"]
    results["bare python -I -S -c pass"] = measure(lambda: subprocess.run(bare, check=True))
    for label, options in (
        ("zygote (full isolation)", {}),
        ("zygote (no namespaces/cgroups)", {"namespaces": False, "cgroups": False}),
    ):
        executor = LocalExecutor(
            python=jobenv.job_python(),
            packages=jobenv.packages(),
            slots=1,
            uid_base=61900,
            max_procs=DEFAULTS.sandbox_max_procs,
            tmp_bytes=DEFAULTS.sandbox_tmp_mb << 20,
            **options,  # type: ignore[arg-type]
        )
        try:
            results[label] = measure(lambda ex=executor: checked(ex.run_harness(REQUEST)))
        finally:
            executor.close()
    results["fresh mode (run_fresh)"] = measure(lambda: checked(run_fresh(REQUEST)))
    base = summary(results["bare python -I -S -c pass"])["p50"]
    rows = [["path", "p50", "p95", "p50 / bare"]]
    for label, values in results.items():
        stats = summary(values)
        rows.append([label, ms(stats["p50"]), ms(stats["p95"]), f"{stats['p50'] / base:.2f}x"])
    print(f"{SAMPLES} samples each, {INTERPRETER}, euid {os.geteuid()}")
    print(table(rows))


if __name__ == "__main__":
    main()
