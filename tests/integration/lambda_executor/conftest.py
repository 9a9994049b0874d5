"""Fixtures: AWS settings pointing at the loopback Lambda stand-in, and executors using it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core.models import Identity, RunRequest
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from testbed.lambda_setup import JOB_TIMEOUT, fake_aws, lambda_settings
from testbed.lambda_standin import LambdaStandIn
from tests.support.moto_lambda import moto_server, teach_moto

REGION = "us-east-1"
MAX_OUTPUT = 64 * 1024


def weakened_handler() -> dict[str, Any]:
    """LambdaStandIn arguments for a handler with the job's seccomp filter off (the real one
    called by weakened_handler.py, which the stand-in puts in the task root)."""
    source = (Path(__file__).parent / "weakened_handler.py").read_bytes()
    return {"handler": "weakened_handler.handler", "extra_files": {"weakened_handler.py": source}}


def job(
    code: str,
    input_json: str = "{}",
    *,
    timeout_s: float = JOB_TIMEOUT,
    max_output_bytes: int = MAX_OUTPUT,
    job_id: int = 1,
    owner: str = "alice",
) -> RunRequest:
    """A run request for `code`, of the local user `owner`."""
    return RunRequest(
        job_id,
        "job.py",
        code,
        input_json,
        timeout_s,
        256,
        max_output_bytes,
        owner=Identity("local", "test", owner),
    )


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials and a region; nothing of a real AWS configuration can leak in."""
    fake_aws(monkeypatch, tmp_path)


@pytest.fixture
def standin(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[LambdaStandIn]:
    """The stand-in, with AWS_ENDPOINT_URL_LAMBDA pointing boto3 at it."""
    with LambdaStandIn(timeout_s=function_timeout_s(JOB_TIMEOUT), max_concurrency=2) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.endpoint_url)
        yield server


@pytest.fixture
def executor(standin: LambdaStandIn) -> Iterator[LambdaExecutor]:
    """The executor exactly as wiring builds it for JOBBOT_EXECUTOR=lambda."""
    built = build_lambda_executor(lambda_settings())
    yield built
    built.close()


@pytest.fixture
def aws(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """(lambda, iam) clients of a fresh moto account served on loopback HTTP, which keeps
    TenancyConfig, answers GetAccountSettings and enforces Lambda's size limits
    (tests/support/moto_lambda.py); AWS_ENDPOINT_URL sends every client there."""
    import boto3

    teach_moto(monkeypatch)
    with moto_server() as url:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield boto3.client("lambda", region_name=REGION), boto3.client("iam", region_name=REGION)
