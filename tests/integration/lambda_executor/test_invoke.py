"""LambdaExecutor through real boto3 and real HTTP against the stand-in running the real handler:
every way an invoke can end, and how often the user's code ran in each."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.config import Config

from bot.core.metrics import Metrics
from bot.core.models import JobStatus, Outcome, ResultKind
from bot.errors import CalledOff, ExecutorError, ExecutorUnavailable, Throttled
from bot.executors.aws_lambda.client import build_lambda_client
from bot.executors.aws_lambda.executor import (
    SYNC_PAYLOAD_LIMIT,
    LambdaExecutor,
    build_lambda_executor,
)
from bot.executors.aws_lambda.outcomes import ERROR_KINDS
from bot.sandbox.fresh.lambda_handler import MARGIN_S
from bot.sandbox.fresh.spawn import MIN_TIMEOUT_S
from testbed.lambda_setup import lambda_settings
from testbed.lambda_standin import LambdaStandIn
from testbed.waiting import wait_until
from tests.integration.lambda_executor.conftest import job


def beacon_code(standin: LambdaStandIn, key: str, then: str = "") -> str:
    """User code that reports to the stand-in each time it really runs (it needs the
    network: an executor with network=True, JOBBOT_LAMBDA_NETWORK=on)."""
    host, port, path = standin.beacon_url(key)
    return (
        "import socket\n"
        f"s = socket.create_connection(({host!r}, {port}))\n"
        f"s.sendall(b'GET {path} HTTP/1.0\\r\\n\\r\\n')\n"
        "s.recv(100)\n"
        "s.close()\n" + then
    )


@pytest.fixture
def networked(standin: LambdaStandIn) -> Iterator[LambdaExecutor]:
    """The executor with JOBBOT_LAMBDA_NETWORK=on, so that jobs can reach the beacons."""
    built = build_lambda_executor(lambda_settings(JOBBOT_LAMBDA_NETWORK="on"))
    yield built
    built.close()


def test_a_job_that_returns_gives_its_result(executor: LambdaExecutor) -> None:
    result = executor.run(job("def main(a, b):\n    return a + b\n", '{"a": 5, "b": 3}'))

    assert result.outcome is Outcome.OK
    assert result.result_json == "8"
    assert result.result_kind is ResultKind.RETURN
    assert result.executor == "lambda"


def test_a_user_exception_is_an_error_result_with_its_traceback(executor: LambdaExecutor) -> None:
    result = executor.run(job("def main():\n    raise ValueError('boom')\n"))

    assert result.status is JobStatus.ERROR
    assert (result.error_type, result.error_message) == ("ValueError", "boom")
    assert result.traceback is not None and 'File "job.py", line 2, in main' in result.traceback


def test_a_syntax_error_names_its_line(executor: LambdaExecutor) -> None:
    result = executor.run(job("x = 1\ndef main(:\n"))

    assert result.error_type == "SyntaxError"
    assert result.error_message is not None and "(line 2)" in result.error_message


def test_a_job_past_its_time_limit_times_out_keeping_earlier_output(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    result = executor.run(job("print('started', flush=True)\nwhile True:\n    pass\n", timeout_s=1))

    assert result.status is JobStatus.TIMEOUT
    assert result.stdout == "started\n"
    assert result.error_message == "the job ran longer than 1 s and was stopped"
    assert standin.records[-1].function_error is None  # the handler answered, not Lambda


def test_a_function_error_is_a_final_error_saying_so(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    standin.function_error("Runtime.ExitError", "RequestId: x Error: Runtime exited: status 2")

    result = executor.run(job("print(1)"))

    assert result.outcome is Outcome.CRASHED and result.status is JobStatus.ERROR
    assert result.error_type == "LambdaFunctionError"
    assert result.error_message is not None
    assert "Runtime.ExitError" in result.error_message and "not run again" in result.error_message
    assert standin.executions == 1


@pytest.mark.parametrize("oom", [False, True])
def test_a_killed_runtime_is_told_apart_from_running_out_of_memory(
    executor: LambdaExecutor, standin: LambdaStandIn, oom: bool
) -> None:
    standin.kill_runtime(after_s=0.3, oom=oom)

    result = executor.run(job("import time\ntime.sleep(5)\n"))

    message = result.error_message or ""
    if oom:  # Lambda's own verdict (its memory accounting): the job's memory
        assert (result.outcome, result.error_type) == (Outcome.MEMORY, "MemoryError")
    else:  # any other SIGKILL of the runtime: a crash that may have run the job
        assert (result.outcome, result.error_type) == (Outcome.CRASHED, "LambdaFunctionError")
        assert "signal: killed" in message and "not report it out of memory" in message
        assert "out of memory;" not in message


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"v": 2, "outcome": "ok"}', b'{"v": 1, "outcome": "exploded"}', b"[]"],
)
def test_a_malformed_response_is_a_final_error(
    executor: LambdaExecutor, standin: LambdaStandIn, body: bytes
) -> None:
    standin.malformed_response(body)

    result = executor.run(job("print(1)"))

    assert result.status is JobStatus.ERROR
    assert result.error_type == "InvalidResponse"
    assert result.error_message is not None and "may have run" in result.error_message


def test_lambda_cutting_the_function_off_is_a_timeout_and_resets_the_environment(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    standin.cut_off(0.5)  # Lambda kills it though the handler believes it has 7 s

    result = executor.run(job("import time\nprint('x')\ntime.sleep(30)\n"))
    after = executor.run(job("print('fresh')"))

    assert result.status is JobStatus.TIMEOUT
    assert result.error_message is not None and "function timeout" in result.error_message
    assert standin.records[-2].error_type == "Sandbox.Timedout"
    assert after.result_json == '"fresh"'
    assert standin.environments() == 2  # the cut-off environment was replaced


def test_a_throttle_is_retried_and_the_job_runs_once(
    networked: LambdaExecutor, standin: LambdaStandIn
) -> None:
    standin.throttle(times=2)

    result = networked.run(job(beacon_code(standin, "throttled", "print('ran')")))

    assert result.result_json == '"ran"'
    assert standin.invocations == 3
    assert standin.executions == 1
    assert standin.beacons["throttled"] == 1


def test_lasting_throttling_hands_the_job_back_without_running_it(
    standin: LambdaStandIn,
) -> None:
    executor = LambdaExecutor(
        build_lambda_client(lambda_settings()), "jobbot-runner", concurrency=4, throttle_retries=2
    )
    standin.throttle(times=3, retry_after="2")

    with pytest.raises(Throttled) as caught:
        executor.run(job("print(1)"))

    assert caught.value.retry_after is not None and caught.value.retry_after >= 2
    assert "ReservedFunctionConcurrentInvocationLimitExceeded" in caught.value.message
    assert (standin.invocations, standin.executions) == (3, 0)
    executor.close()


def test_a_read_timeout_is_an_unknown_outcome_and_the_code_ran_exactly_once(
    standin: LambdaStandIn,
) -> None:
    client = build_lambda_client(lambda_settings(), read_timeout=0.5)
    executor = LambdaExecutor(client, "jobbot-runner", concurrency=4, network=True)
    standin.delay_response(1.5)

    with pytest.raises(ExecutorError) as caught:
        executor.run(job(beacon_code(standin, "slow")))

    assert not isinstance(caught.value, ExecutorUnavailable)  # never handed back for a re-run
    assert "outcome is unknown" in caught.value.message
    wait_until(lambda: standin.in_flight == 0, message="the stand-in to finish the invoke")
    assert (standin.invocations, standin.executions, standin.beacons["slow"]) == (1, 1, 1)
    executor.close()


def test_the_sdk_default_retry_would_have_run_the_code_again(standin: LambdaStandIn) -> None:
    """The control for the test above: without total_max_attempts=1 the same read timeout
    makes botocore re-send the invoke, and the user's code runs once per attempt."""
    client = boto3.client(
        "lambda",
        region_name="us-east-1",
        endpoint_url=standin.endpoint_url,
        config=Config(read_timeout=0.5, retries={"mode": "standard"}),
    )
    executor = LambdaExecutor(client, "jobbot-runner", concurrency=4, network=True)
    standin.delay_response(1.0, times=3)

    with pytest.raises(ExecutorError):
        executor.run(job(beacon_code(standin, "retried")))

    wait_until(lambda: standin.in_flight == 0, message="the stand-in to finish the invokes")
    assert standin.beacons["retried"] == 3
    executor.close()


def test_an_oversized_payload_is_refused_before_invoking(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    code = "x = '" + "a" * SYNC_PAYLOAD_LIMIT + "'\n"

    result = executor.run(job(code))

    assert result.status is JobStatus.ERROR
    assert result.error_type == "PayloadTooLarge"
    assert result.error_message is not None and "nothing ran" in result.error_message
    assert standin.invocations == 0


def test_a_request_lambda_finds_too_large_is_a_final_error(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    standin.max_request_bytes = 10_000

    result = executor.run(job("x = '" + "a" * 20_000 + "'\n"))

    assert result.error_type == "RequestTooLargeException"
    assert result.error_message is not None and "nothing ran" in result.error_message
    assert (standin.invocations, standin.executions) == (1, 0)


def test_output_that_would_overflow_lambdas_response_limit_is_cut_not_lost(
    standin: LambdaStandIn,
) -> None:
    executor = build_lambda_executor(lambda_settings())
    # NUL bytes are escaped as \u0000: 2 MiB of them is 12 MiB of JSON
    code = "import sys\nsys.stdout.write('\\0' * (2 * 1024 * 1024))\nprint('end')\n"

    result = executor.run(job(code, max_output_bytes=4 * 1024 * 1024))

    assert result.outcome is Outcome.OK
    assert result.stdout_truncated
    assert 0 < len(result.stdout) < 1024 * 1024
    assert standin.records[-1].function_error is None
    executor.close()


def test_a_request_too_large_once_serialised_is_a_final_error(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    standin.service_error(
        413,
        "SerializedRequestEntityTooLargeException",
        "Request must be smaller than 6291456 bytes for the InvokeFunction operation",
    )

    result = executor.run(job("print(1)"))  # not handed back: it would be refused again

    assert result.status is JobStatus.ERROR
    assert result.error_type == "SerializedRequestEntityTooLargeException"
    assert "nothing ran" in (result.error_message or "")
    assert (standin.invocations, standin.executions) == (1, 0)


def test_a_missing_function_hands_the_job_back_with_a_deploy_hint(standin: LambdaStandIn) -> None:
    executor = LambdaExecutor(build_lambda_client(lambda_settings()), "not-deployed", concurrency=4)

    with pytest.raises(ExecutorUnavailable) as caught:
        executor.run(job("print(1)"))

    assert "ResourceNotFoundException" in caught.value.message
    assert "python -m bot lambda deploy" in caught.value.message
    assert standin.executions == 0
    executor.close()


@pytest.mark.parametrize(
    ("status", "code", "unavailable"),
    [
        (502, "ResourceNotReadyException", True),
        (409, "ResourceConflictException", True),
        (500, "ServiceException", False),
    ],
)
def test_service_errors_are_retried_only_when_nothing_can_have_run(
    executor: LambdaExecutor, standin: LambdaStandIn, status: int, code: str, unavailable: bool
) -> None:
    standin.service_error(status, code, "injected")

    with pytest.raises(ExecutorError) as caught:
        executor.run(job("print(1)"))

    assert isinstance(caught.value, ExecutorUnavailable) is unavailable
    assert code in caught.value.message
    if not unavailable:
        assert "outcome is unknown" in caught.value.message


def test_no_listener_means_unavailable_nothing_ran(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", f"http://127.0.0.1:{port}")
    executor = build_lambda_executor(lambda_settings())

    with pytest.raises(ExecutorUnavailable) as caught:
        executor.run(job("print(1)"))

    assert "cannot reach AWS Lambda" in caught.value.message
    executor.close()


def test_missing_credentials_mean_unavailable(
    standin: LambdaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    executor = build_lambda_executor(lambda_settings())

    with pytest.raises(ExecutorUnavailable) as caught:
        executor.run(job("print(1)"))

    assert "credentials" in caught.value.message
    assert standin.invocations == 0
    executor.close()


def test_invokes_in_flight_never_exceed_the_concurrency_setting(standin: LambdaStandIn) -> None:
    executor = build_lambda_executor(lambda_settings(JOBBOT_LAMBDA_CONCURRENCY="2"))
    standin.warm_up(2)
    results = []

    def run(n: int) -> None:
        results.append(executor.run(job(f"import time\ntime.sleep(0.3)\nprint({n})", job_id=n)))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(json.loads(r.result_json or "null") for r in results) == [
        str(n) for n in range(6)
    ]
    assert standin.peak_busy == 2
    assert standin.counters["throttled"] == 0
    executor.close()


def test_a_brief_squeeze_is_absorbed_by_the_in_process_retries(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    # one refused invoke (an account-level squeeze): a window in time would start before the
    # invoke on a loaded machine and end before it arrives
    standin.throttle(times=1, reason="ConcurrentInvocationLimitExceeded")

    result = executor.run(job("print('through')"))

    assert result.result_json == '"through"'
    assert standin.counters["throttled"] >= 1
    assert standin.executions == 1


def test_the_job_gets_the_invocations_remaining_time_minus_a_margin(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a function timeout of 3 s (say, deployed for an older, shorter job timeout) and a job
    # that asks for 30 s: the handler stops the job in time to answer normally
    with LambdaStandIn(timeout_s=3, max_concurrency=1) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
        standin.warm_up(1)
        executor = build_lambda_executor(lambda_settings())

        result = executor.run(job("import time\nprint('a')\ntime.sleep(60)\n", timeout_s=30))

        executor.close()
    assert result.status is JobStatus.TIMEOUT
    assert result.stdout == "a\n"
    # the limit is what was left of the 3 s when the handler started, minus the margin:
    # at most 1.5 s (less the more the invocation took to start), never the job's own 30 s
    limit = re.fullmatch(
        r"the job ran longer than ([0-9.]+) s and was stopped", result.error_message or ""
    )
    assert limit is not None, result.error_message
    assert MIN_TIMEOUT_S <= float(limit[1]) <= 3 - MARGIN_S
    assert standin.records[-1].function_error is None, "and answered before the function's end"


def test_every_failed_or_throttled_invoke_is_counted_by_kind(standin: LambdaStandIn) -> None:
    metrics = Metrics()
    executor = build_lambda_executor(lambda_settings(), metrics)
    try:
        standin.throttle(times=2)
        assert executor.run(job("print(1)")).outcome is Outcome.OK
        standin.function_error("Runtime.ExitError", "Runtime exited with error: exit status 1")
        executor.run(job("print(1)"))
        standin.function_error("Runtime.OutOfMemory", "Runtime exited with error: signal: killed")
        executor.run(job("print(1)"))
        standin.malformed_response(b"not json")
        executor.run(job("print(1)"))
        standin.cut_off(0.3)
        executor.run(job("import time\ntime.sleep(5)\n"))
        executor.run(job("x = 1\n" * (SYNC_PAYLOAD_LIMIT // 6 + 1)))
        standin.service_error(500, "ServiceException", "boom")
        with pytest.raises(ExecutorError):
            executor.run(job("print(1)"))
        standin.service_error(404, "ResourceNotFoundException", "Function not found")
        with pytest.raises(ExecutorUnavailable):
            executor.run(job("print(1)"))
    finally:
        executor.close()

    counted = {
        kind: metrics.value("jobbot_lambda_errors_total", kind=kind)
        for kind in ERROR_KINDS
        if metrics.value("jobbot_lambda_errors_total", kind=kind)
    }
    assert counted == {
        "throttled": 2,
        "runtime_exited": 1,
        "out_of_memory": 1,
        "invalid_response": 1,
        "function_timeout": 1,
        "payload_too_large": 1,
        "service_error": 1,
        "not_started": 1,
    }
    assert 'jobbot_lambda_errors_total{kind="throttled"} 2' in metrics.render()


def test_the_start_gate_is_passed_just_before_the_invoke(
    networked: LambdaExecutor, standin: LambdaStandIn
) -> None:
    seen: list[int] = []

    def gate() -> bool:
        seen.append(standin.invocations)
        return True

    result = networked.run(job(beacon_code(standin, "gated", "print('ok')\n")), gate)

    assert result.outcome is Outcome.OK, result
    assert seen == [0], "the gate ran once, before any invoke"
    assert (standin.invocations, standin.executions, standin.beacons["gated"]) == (1, 1, 1)


def test_a_no_at_the_start_gate_invokes_nothing(
    executor: LambdaExecutor, standin: LambdaStandIn
) -> None:
    with pytest.raises(CalledOff):
        executor.run(job(beacon_code(standin, "never")), lambda: False)

    assert (standin.invocations, standin.executions, standin.beacons["never"]) == (0, 0, 0)
