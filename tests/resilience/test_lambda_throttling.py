"""Lambda throttling for 10 s: with the executor exactly as wiring builds it (production
back-off, metrics), on MariaDB, jobs wait through the storm (waiting or running, never an
error), then complete, and none runs twice (beacons and the stand-in's execution counter).

The storm itself is the one of tests/integration/lambda_executor/test_flows.py, there with a
count of throttles and a scaled-down back-off; here with a 10-second window."""

from __future__ import annotations

import time

import pytest

from bot.app.wiring.runtime import Runtime
from bot.core.models import JobStatus
from bot.executors.aws_lambda.client import function_timeout_s
from bot.store import SqlStore
from testbed.lambda_standin import LambdaStandIn
from tests.integration.lambda_executor.conftest import aws_env
from tests.integration.lambda_executor.test_flows import (
    assert_each_ran_once,
    run_storm,
    storm_settings,
)

__all__ = ["aws_env"]  # the fixture, shared with the Lambda integration suite
WINDOW_S = 10.0


@pytest.mark.slow
def test_ten_seconds_of_throttling_delay_jobs_without_error_or_second_run(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, mariadb_store: SqlStore
) -> None:
    settings = storm_settings()
    window_ends: list[float] = []

    def throttle(standin: LambdaStandIn) -> None:
        standin.throttle_for(WINDOW_S)  # every invoke: 429 TooManyRequestsException
        window_ends.append(time.monotonic() + WINDOW_S)

    with LambdaStandIn(
        timeout_s=function_timeout_s(settings.job_timeout), max_concurrency=2
    ) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        standin.warm_up(2)
        runtime = Runtime(settings, store=mariadb_store)  # the production executor

        storm = run_storm(standin, runtime, throttle, timeout=WINDOW_S + 60)

    assert_each_ran_once(storm, standin)
    window_end = window_ends[0]
    for job_id, history in storm.seen.items():
        during = {status for at, status in history if at < window_end}
        assert during <= {JobStatus.WAITING, JobStatus.RUNNING}, (job_id, history)
        assert history[-1][0] >= window_end, "no job can finish while every invoke is refused"
    throttled = standin.counters["throttled"]
    assert throttled >= 4 * 4  # each job tried at least once (with its in-process retries)
    metrics = runtime.metrics
    assert metrics.value("jobbot_lambda_errors_total", kind="throttled") == throttled
    handed_back = metrics.value("jobbot_executor_errors_total", kind="throttled")
    assert handed_back == sum(j.attempts - 1 for j in storm.final)  # each requeue, counted
    assert max(j.attempts for j in storm.final) < 12  # well within the give-up bound
