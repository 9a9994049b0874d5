"""The Lambda executor as the bot builds it (JOBBOT_EXECUTOR=lambda), pointed at the loopback
stand-in with dummy AWS credentials: nothing of a real AWS configuration can leak in."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest

from bot.app.config import Settings
from bot.app.environment import load_settings
from bot.executors.aws_lambda.executor import LambdaExecutor, build_lambda_executor
from testbed.lambda_standin import LambdaStandIn

JOB_TIMEOUT = 2.0  # the settings' job timeout unless a caller gives one


class EnvPatch(Protocol):
    """What of pytest's MonkeyPatch fake_aws uses."""

    def setenv(self, name: str, value: str, prepend: str | None = None) -> None: ...

    def delenv(self, name: str, raising: bool = True) -> None: ...


def lambda_settings(**values: str) -> Settings:
    """Settings for JOBBOT_EXECUTOR=lambda; AWS itself comes from the environment."""
    environ = {
        "JOBBOT_EXECUTOR": "lambda",
        "JOBBOT_JOB_TIMEOUT": f"{JOB_TIMEOUT:g}",
        "AWS_REGION": os.environ.get("AWS_REGION", ""),
        **values,
    }
    return load_settings(environ, env_file=None)


def fake_aws(patch: EnvPatch, directory: Path) -> None:
    """Dummy credentials and a region, every other AWS_ variable gone (`directory` holds the
    config files that are not there)."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            patch.delenv(name)
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_REGION", "us-east-1")
    patch.setenv("AWS_CONFIG_FILE", str(directory / "no-aws-config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(directory / "no-aws-credentials"))
    patch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@contextmanager
def lambda_on_standin(
    directory: Path, job_timeout_s: float, **standin: Any
) -> Iterator[tuple[LambdaExecutor, LambdaStandIn]]:
    """(the executor as the bot builds it, the stand-in started with `standin`'s arguments),
    with dummy AWS credentials in the environment until the block ends."""
    with pytest.MonkeyPatch.context() as patch:
        fake_aws(patch, directory)
        with LambdaStandIn(**standin) as server:
            patch.setenv("AWS_ENDPOINT_URL_LAMBDA", server.endpoint_url)
            executor = build_lambda_executor(
                lambda_settings(JOBBOT_JOB_TIMEOUT=f"{job_timeout_s:g}")
            )
            try:
                yield executor, server
            finally:
                executor.close()
