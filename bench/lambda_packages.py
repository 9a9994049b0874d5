"""L3, packages on Lambda: what a job that imports numpy, pandas and matplotlib.pyplot costs on
the Lambda path, where every job is a fresh interpreter (the runner forks no warm template).

    .venv/bin/python -m bench.lambda_packages     # JOBBOT_BENCH_RUNS runs (5), ~2 min

The loopback Lambda (testbed/lambda_standin.py) runs the real handler on python3.13 with the
real packages layer (testbed/lambda_layer.py: deploy's builder, this machine's architecture)
at /opt, in one warm environment. Per run, one after another through LambdaExecutor: the
trivial job `print('ok')` (the baseline, same run), the P1 job `import numpy, pandas,
matplotlib.pyplot; print('ok')`, and a job that times each import itself. Reported: p50 of
each, the P1 job's cost over the trivial one, and their ratio; the median and range of the
runs. What a warm template would save is about that cost (a fork of a template that imported
them runs P1 at the trivial job's price: bench/packages.py, locally).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time

from bench.stats import median_range, ms, summary, table
from bot.app.environment import load_settings
from bot.core.models import Identity, Outcome, RunRequest
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from testbed.lambda_layer import layer_dir
from testbed.lambda_standin import LambdaStandIn
from testbed.pythons import require_lambda_python

RUNS = int(os.environ.get("JOBBOT_BENCH_RUNS", "5"))
SAMPLES = 3
TIMEOUT_S = 30.0
TRIVIAL = "print('ok')\n"
P1 = "import numpy\nimport pandas\nimport matplotlib.pyplot\nprint('ok')\n"
TIMED = """\
import json, time
marks = [time.perf_counter()]
import numpy
marks.append(time.perf_counter())
import pandas
marks.append(time.perf_counter())
import matplotlib
marks.append(time.perf_counter())
import matplotlib.pyplot
marks.append(time.perf_counter())
print(json.dumps([b - a for a, b in zip(marks, marks[1:])]))
"""
IMPORTS = ("numpy", "pandas", "matplotlib", "matplotlib.pyplot")


def request(code: str, job_id: int) -> RunRequest:
    """One job of the bench user (one tenant: its warm environment)."""
    owner = Identity("local", "bench", "bench-user")
    return RunRequest(job_id, "job.py", code, "{}", TIMEOUT_S, 256, 1 << 20, owner=owner)


def main() -> None:
    python = require_lambda_python()
    opt = layer_dir()
    with tempfile.TemporaryDirectory() as empty:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            del os.environ[name]
        os.environ.update(
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - a dummy for the stand-in
            AWS_REGION="us-east-1",
            AWS_CONFIG_FILE=os.path.join(empty, "config"),
            AWS_SHARED_CREDENTIALS_FILE=os.path.join(empty, "credentials"),
        )
        with LambdaStandIn(
            timeout_s=function_timeout_s(TIMEOUT_S), max_concurrency=1, python=python, opt=opt
        ) as standin:
            os.environ["AWS_ENDPOINT_URL_LAMBDA"] = standin.endpoint_url
            settings = load_settings(
                {
                    "JOBBOT_EXECUTOR": "lambda",
                    "JOBBOT_JOB_TIMEOUT": f"{TIMEOUT_S:g}",
                    "AWS_REGION": "us-east-1",
                },
                env_file=None,
            )
            executor = build_lambda_executor(settings)
            try:
                report(executor)
            finally:
                executor.close()


def timed(executor: LambdaExecutor, code: str, job_id: int) -> tuple[float, str]:
    """(seconds from run() to result, stdout) of one job."""
    start = time.perf_counter()
    result = executor.run(request(code, job_id))
    took = time.perf_counter() - start
    if result.outcome is not Outcome.OK:
        raise SystemExit(f"job {job_id} failed: {result}")
    return took, result.stdout


def report(executor: LambdaExecutor) -> None:
    job_id = 0
    for code in (TRIVIAL, P1):  # warm-up: the environment's cold start, page cache
        job_id += 1
        timed(executor, code, job_id)
    rows = [["run", "trivial p50", "P1 p50", "P1 - trivial", "ratio"]]
    costs, ratios = [], []
    imports: list[list[float]] = []
    for run in range(1, RUNS + 1):
        samples: dict[str, list[float]] = {"trivial": [], "p1": []}
        for _ in range(SAMPLES):
            for name, code in (("trivial", TRIVIAL), ("p1", P1)):
                job_id += 1
                samples[name].append(timed(executor, code, job_id)[0])
        job_id += 1
        imports.append(json.loads(timed(executor, TIMED, job_id)[1]))
        trivial, p1 = summary(samples["trivial"])["p50"], summary(samples["p1"])["p50"]
        costs.append(p1 - trivial)
        ratios.append(p1 / trivial)
        rows.append([str(run), ms(trivial), ms(p1), ms(p1 - trivial), f"{p1 / trivial:.1f}"])
    print(
        f"L3 packages on Lambda: {RUNS} runs of {SAMPLES} trivial and {SAMPLES} P1 jobs through "
        "LambdaExecutor to the loopback Lambda (python3.13, the real layer at /opt, warm)"
    )
    print(table(rows))
    print(f"P1 - trivial: {median_range([c * 1000 for c in costs], '{:.0f} ms')}")
    print(f"P1 / trivial: {median_range(ratios, '{:.1f}')}")
    parts = [statistics.median(run[i] for run in imports) for i in range(len(IMPORTS))]
    print("imports inside the job (median of runs): " + ", ".join(
        f"{name} {seconds * 1000:.0f} ms" for name, seconds in zip(IMPORTS, parts, strict=True)
    ))  # fmt: skip


if __name__ == "__main__":
    main()
