"""The shared contract suite: every user-code contract case through LocalExecutor and through
LambdaExecutor (real boto3, the stand-in, the real handler in an emulated environment), with
identical results expected, durations aside.

The cases are the engine's own (tests/integration/executor/test_contract.py), so a case added
there is checked on Lambda too.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from bot.core.models import RunRequest, RunResult
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from bot.executors.local import LocalExecutor
from bot.sandbox.limits import MIB
from testbed import jobenv
from testbed.lambda_standin import LambdaStandIn
from testbed.pythons import require_lambda_python
from tests.integration.executor.test_contract import CASES, LIBRARY_ERROR, Case
from tests.integration.lambda_executor.conftest import lambda_settings

REPO = Path(__file__).resolve().parents[3]
UID_BASE = 62500  # outside the engine tests' ranges (61000-62099): both may run at once
TIMEOUT_S = 10.0
# the RunResult fields a case's expectations can name (exit_code and signal stay in the harness)
RESULT_FIELDS = {f.name for f in dataclasses.fields(RunResult)}


def protocol_request(case: Case) -> dict[str, Any]:
    """The case as a protocol-v1 request (the engine suite's defaults)."""
    request: dict[str, Any] = {
        "v": 1,
        "job_id": 7,
        "file_name": "job.py",
        "code": case.code,
        "input_json": json.dumps(case.input),
        "timeout_s": TIMEOUT_S,
        "memory_mb": 256,
        "max_output_bytes": MIB,
    }
    request.update(case.changes)
    return request


def run_request(case: Case) -> RunRequest | None:
    """The case as a RunRequest, or None if it is about malformed protocol requests."""
    request = protocol_request(case)
    if request.pop("v") != 1 or not isinstance(request["memory_mb"], int):
        return None
    return RunRequest(**request)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalExecutor]:
    """The local executor as the bot builds it (repository and HOME hidden)."""
    executor = LocalExecutor(
        python=jobenv.job_python(),
        packages=jobenv.packages(),
        slots=2,
        uid_base=UID_BASE,
        max_procs=64,
        tmp_bytes=128 << 20,
        hide_paths=[str(REPO), str(Path.home())],
    )
    yield executor
    executor.close()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LambdaExecutor, Any]]:
    """(LambdaExecutor, a raw boto3 client) on one stand-in with warm environments."""
    empty = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        with LambdaStandIn(timeout_s=function_timeout_s(TIMEOUT_S), max_concurrency=2) as standin:
            patch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
            executor = build_lambda_executor(lambda_settings(JOBBOT_JOB_TIMEOUT=f"{TIMEOUT_S:g}"))
            client = boto3.client("lambda", region_name="us-east-1")
            yield executor, client
            executor.close()
            client.close()


@pytest.fixture(scope="module")
def remote313(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LambdaExecutor]:
    """A LambdaExecutor whose function runs on python3.13, as deployed."""
    python = require_lambda_python()  # missing, it fails: never a silent skip
    empty = tmp_path_factory.mktemp("aws313")
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("AWS_")]:
            patch.delenv(name)
        patch.setenv("AWS_ACCESS_KEY_ID", "testing")
        patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        patch.setenv("AWS_REGION", "us-east-1")
        patch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
        with LambdaStandIn(
            timeout_s=function_timeout_s(TIMEOUT_S), max_concurrency=2, python=python
        ) as standin:
            patch.setenv("AWS_ENDPOINT_URL_LAMBDA", standin.endpoint_url)
            executor = build_lambda_executor(lambda_settings(JOBBOT_JOB_TIMEOUT=f"{TIMEOUT_S:g}"))
            yield executor
            executor.close()


def without_timing(result: RunResult) -> RunResult:
    """The result with what may differ between executors blanked: duration and name."""
    return dataclasses.replace(result, duration_ms=0, executor="")


@pytest.mark.parametrize("name", CASES)
def test_contract_case_gives_identical_results_on_local_and_lambda(
    local: LocalExecutor, remote: tuple[LambdaExecutor, Any], name: str
) -> None:
    case = CASES[name]
    executor, client = remote
    request = run_request(case)
    if request is None:  # a malformed request: compare the raw protocol answers
        raw = protocol_request(case)
        here = local.run_harness(raw)
        answer = client.invoke(
            FunctionName="jobbot-runner", Payload=json.dumps(raw), TenantId="parity"
        )
        there = json.loads(answer["Payload"].read())
        assert "FunctionError" not in answer
        for response in (here, there):
            assert {key: response[key] for key in case.expect} == case.expect
        del here["duration_ms"], there["duration_ms"]
        assert here == there
        return

    on_local, on_lambda = local.run(request), executor.run(request)

    expected = {k: v for k, v in case.expect.items() if k in RESULT_FIELDS}
    for result in (on_local, on_lambda):
        found = {k: getattr(result, k) for k in expected}
        assert {k: getattr(v, "value", v) for k, v in found.items()} == expected
    assert (on_local.executor, on_lambda.executor) == ("local", "lambda")
    assert without_timing(on_local) == without_timing(on_lambda)


# What the interpreter itself words differently from one version to the next (traceback
# carets, some exception messages): equal only when the bot runs Lambda's Python version.
VERSION_WORDING = {"traceback", "error_message"}


@pytest.mark.parametrize("name", [n for n in CASES if run_request(CASES[n]) is not None])
def test_contract_case_gives_the_same_outcome_on_lambdas_python_version(
    local: LocalExecutor, remote313: LambdaExecutor, name: str
) -> None:
    request = run_request(CASES[name])
    assert request is not None

    on_local, on_lambda = local.run(request), remote313.run(request)

    blank = dict.fromkeys(VERSION_WORDING)
    assert dataclasses.replace(without_timing(on_local), **blank) == dataclasses.replace(
        without_timing(on_lambda), **blank
    )


def test_a_library_error_names_no_host_path_locally_or_on_lambdas_python_version(
    local: LocalExecutor, remote313: LambdaExecutor
) -> None:
    request = run_request(LIBRARY_ERROR)
    assert request is not None
    for result in (local.run(request), remote313.run(request)):
        assert result.error_type == "json.decoder.JSONDecodeError"
        assert result.traceback is not None
        assert 'File "job.py", line 4, in parse' in result.traceback
        assert 'File "json/decoder.py", line ' in result.traceback
        assert 'File "/' not in result.traceback, result.traceback
