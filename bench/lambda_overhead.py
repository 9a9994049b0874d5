"""L1: what the Lambda executor adds to a trivial job beyond the network, as p50 (target ≤ 10 ms).

    .venv/bin/python -m bench.lambda_overhead        # JOBBOT_BENCH_L1=<samples>, default 200

Trivial jobs (`def main(): return 1`) go one after another through LambdaExecutor, built as
wiring builds it (real boto3, SigV4, no SDK retries), to the loopback stand-in, which adds
50 ms of latency before each invocation and runs the real handler in a warm emulated
environment. Per job:

    overhead = executor.run() wall time - the 50 ms latency - the function's own time

where the function's own time is what the stand-in measured between handing the event to the
runtime and receiving its answer (the fresh child included: that is the job, not
orchestration). What remains is jobbot's side (payload, boto3, HTTP, parsing, the RunResult)
plus the stand-in's HTTP front end, which AWS would replace by its own.

Baseline, same run, same stand-in: the same request as a bare `http.client` POST on a kept-alive
connection (no SDK, no signing, no result mapping), measured the same way.
"""

from __future__ import annotations

import http.client
import json
import os
import tempfile
import time
from urllib.parse import urlsplit

from bench.stats import ms, summary, table
from bot.app.environment import load_settings
from bot.core.models import Outcome, RunRequest
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import build_lambda_executor, encode_request
from testbed.lambda_standin import LambdaStandIn

REGION = "us-east-1"  # any: the stand-in answers for every region
SAMPLES = int(os.environ.get("JOBBOT_BENCH_L1", "200"))
LATENCY_S = 0.050
WARMUP = 10
CODE = "def main():\n    return 1\n"


def aws_environment(endpoint: str) -> None:
    """Dummy credentials and the stand-in's endpoint, for boto3's standard chain."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    empty = tempfile.mkdtemp(prefix="bench-aws-")
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - the stand-in checks no signature
        AWS_REGION=REGION,
        AWS_CONFIG_FILE=f"{empty}/config",
        AWS_SHARED_CREDENTIALS_FILE=f"{empty}/credentials",
        AWS_ENDPOINT_URL_LAMBDA=endpoint,
    )


def main() -> None:
    """Measure and print L1."""
    settings = load_settings(
        {"JOBBOT_EXECUTOR": "lambda", "JOBBOT_JOB_TIMEOUT": "10", "AWS_REGION": REGION},
        env_file=None,
    )
    request = RunRequest(1, "trivial.py", CODE, "{}", settings.job_timeout, 256, 1 << 20)
    with LambdaStandIn(
        timeout_s=function_timeout_s(settings.job_timeout), max_concurrency=1, latency_s=LATENCY_S
    ) as standin:
        aws_environment(standin.endpoint_url)
        executor = build_lambda_executor(settings)
        url = urlsplit(standin.endpoint_url)
        bare = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port)
        payload = encode_request(request)
        path = "/2015-03-31/functions/jobbot-runner/invocations"

        def via_executor() -> float:
            started = time.perf_counter()
            result = executor.run(request)
            elapsed = time.perf_counter() - started
            assert result.outcome is Outcome.OK, result
            assert result.result_json == "1", result
            return elapsed

        def via_bare_http() -> float:
            started = time.perf_counter()
            # as the executor sends it: one tenant (the function is per-tenant, as deployed)
            headers = {"Content-Type": "application/json", "X-Amz-Tenant-Id": "bench"}
            bare.request("POST", path, body=payload, headers=headers)
            response = bare.getresponse()
            body = json.loads(response.read())
            elapsed = time.perf_counter() - started
            assert response.status == 200, body
            assert body["result_json"] == "1", body
            return elapsed

        overheads: dict[str, list[float]] = {"executor": [], "bare": []}
        totals: dict[str, list[float]] = {"executor": [], "bare": []}
        functions: list[float] = []
        for sample in range(WARMUP + SAMPLES):
            for name, run in (("executor", via_executor), ("bare", via_bare_http)):
                elapsed = run()
                function_s = (standin.records[-1].function_ms or 0.0) / 1000
                if sample >= WARMUP:
                    totals[name].append(elapsed)
                    overheads[name].append(elapsed - LATENCY_S - function_s)
                    functions.append(function_s)
        executor.close()
        bare.close()

    mine, base = summary(overheads["executor"]), summary(overheads["bare"])
    rows = [
        ["", "p50", "p95", "mean"],
        *(
            [label, ms(s["p50"]), ms(s["p95"]), ms(s["mean"])]
            for label, s in (
                ("overhead, LambdaExecutor (boto3)", mine),
                ("overhead, bare http.client (baseline)", base),
                ("total, LambdaExecutor", summary(totals["executor"])),
                ("total, bare http.client", summary(totals["bare"])),
                ("function time (handler + fresh child)", summary(functions)),
            )
        ),
    ]
    print(f"L1: {SAMPLES} trivial jobs, {LATENCY_S * 1000:.0f} ms added latency, warm environment")
    print(table(rows))
    print(
        f"L1 overhead p50 {ms(mine['p50'])} (target <= 10 ms: "
        f"{'met' if mine['p50'] <= 0.010 else 'NOT met'}); "
        f"{mine['p50'] / base['p50']:.2f}x the bare-HTTP baseline "
        f"(+{ms(mine['p50'] - base['p50'])} for boto3 and the executor)"
    )


if __name__ == "__main__":
    main()
