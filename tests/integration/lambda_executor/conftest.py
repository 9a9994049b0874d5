"""Fixtures: AWS settings pointing at the loopback Lambda stand-in, and executors using it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app.config import Settings
from bot.app.environment import load_settings
from bot.core.models import Identity, RunRequest
from bot.executors.aws_lambda.client import function_timeout_s
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from testbed.lambda_standin import LambdaStandIn
from tests.support.moto_lambda import moto_server, teach_moto

REGION = "us-east-1"
JOB_TIMEOUT = 2.0
MAX_OUTPUT = 64 * 1024


def lambda_settings(**values: str) -> Settings:
    """Settings for JOBBOT_EXECUTOR=lambda; AWS itself comes from the environment."""
    environ = {
        "JOBBOT_EXECUTOR": "lambda",
        "JOBBOT_JOB_TIMEOUT": f"{JOB_TIMEOUT:g}",
        "AWS_REGION": os.environ.get("AWS_REGION", ""),
        **values,
    }
    return load_settings(environ, env_file=None)


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


def fake_aws(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    """Dummy credentials and a region; nothing of a real AWS configuration can leak in
    (`directory` holds the config files that are not there)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(directory / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(directory / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


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
