"""P1, warm packages: a job that imports numpy, pandas and matplotlib.pyplot and prints `ok`,
submit -> result stored (MariaDB, workers in process, the local sandbox), p50; beside it, in
the same run, the same file run by a fresh interpreter of the job environment.

    .venv/bin/python -m bench.packages           # JOBBOT_BENCH_MYSQL_URL, default local root
JOBBOT_BENCH_RUNS runs (5) of JOBBOT_BENCH_P1 jobs (10) and 5 fresh interpreters each; the
median and range of the runs' ratios; target median ratio <= 0.1.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench.engine import Engine
from bench.stats import median_range, ms, summary, table, verdict
from bot.app.wiring.parts import job_python

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
SAMPLES = int(os.environ.get("JOBBOT_BENCH_P1", "10"))
FRESH = 5
CODE = b"import numpy\nimport pandas\nimport matplotlib.pyplot\nprint('ok')\n"


def fresh(python: str, path: str, samples: int) -> list[float]:
    """The file under a new interpreter of the job environment, with the jobs' variables."""
    venv = Path(python).parents[1]
    env = {
        "PATH": os.defpath,
        "LANG": "C.UTF-8",
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(venv / "mplconfig"),
    }
    out = []
    for _ in range(samples):
        start = time.perf_counter()
        done = subprocess.run([python, "-I", path], env=env, capture_output=True, check=True)
        out.append(time.perf_counter() - start)
        if done.stdout != b"ok\n":
            raise SystemExit(f"the fresh interpreter said {done.stdout!r}")
    return out


def main() -> None:
    engine = Engine("jobbot_bench_packages", workers=2)
    python = job_python(engine.settings)
    rows = [["run", "job p50", "fresh interpreter p50", "ratio"]]
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "plot.py")
        Path(path).write_bytes(CODE)
        try:
            for i in range(3):  # warm-up: the zygote's templates, pools, caches
                engine.one(i, "plot.py", CODE)
            for run in range(1, RUNS + 1):
                jobs = []
                for i in range(SAMPLES):
                    took, job_id = engine.one(i, "plot.py", CODE)
                    if engine.result(job_id) != "ok":
                        raise SystemExit(f"job {job_id} did not print ok")
                    jobs.append(took)
                base = fresh(python, path, FRESH)
                job_p50, base_p50 = summary(jobs)["p50"], summary(base)["p50"]
                ratios.append(job_p50 / base_p50)
                rows.append([str(run), ms(job_p50), ms(base_p50), f"{ratios[-1]:.3f}"])
        finally:
            engine.close()
    print(
        f"P1 warm packages: `import numpy, pandas, matplotlib.pyplot; print('ok')`, submit -> "
        f"result stored, {RUNS} runs of {SAMPLES} jobs, each beside {FRESH} fresh "
        f"`{python} -I plot.py`"
    )
    print(table(rows))
    print(f"P1 ratio: {median_range(ratios, '{:.3f}')}; {verdict(ratios, 0.1)}")


if __name__ == "__main__":
    main()
