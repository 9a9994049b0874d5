"""`python -m bot lambda deploy | policy`: create or update the runner function, idempotently,
or print the least-privilege IAM policies it and the bot need."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import botocore.exceptions
from botocore.config import Config

from bot.executors.aws_lambda import layer_build
from bot.executors.aws_lambda import package as lambda_package
from bot.executors.aws_lambda.client import error_code, session_region
from bot.executors.aws_lambda.deployer import Deployer, DeployError, FunctionSpec
from bot.executors.aws_lambda.layers import LayerStep
from bot.executors.aws_lambda.policy import policies, resolve_target

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from bot.app.config import Settings

EXIT_OK, EXIT_FAILED, EXIT_MISCONFIGURED = 0, 1, 2


def deploy_client(session: Any, settings: Settings) -> LambdaClient:
    """A Lambda client for deployment: every call here is safe to retry."""
    config = Config(
        connect_timeout=5, read_timeout=60, retries={"mode": "standard", "max_attempts": 5}
    )
    client: LambdaClient = session.client(
        "lambda", region_name=session_region(session, settings), config=config
    )
    return client


def artifact_client(session: Any, settings: Settings) -> Any:
    """An S3 client for the layer upload, in the function's region."""
    config = Config(connect_timeout=5, read_timeout=120, retries={"mode": "standard"})
    return session.client("s3", region_name=session_region(session, settings), config=config)


def layer_builder(
    fonts_with: str | None,
) -> Callable[[Path, str, Path, int], layer_build.BuiltLayer]:
    """The real layer build, with python3.13's bytecode when one is found here, and
    matplotlib's font list made with `fonts_with` (the local job environment's Python)."""

    def build(
        requirements: Path, architecture: str, workdir: Path, max_unzipped: int
    ) -> layer_build.BuiltLayer:
        python = layer_build.lambda_python()
        return layer_build.build(
            requirements,
            architecture,
            workdir,
            python=python,
            max_unzipped=max_unzipped,
            fonts_with=fonts_with,
        )

    return build


def run_lambda_command(
    settings: Settings,
    action: str,
    out: TextIO,
    *,
    replace: bool = False,
    requirements: Path | None = None,
    job_python: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """`deploy` (with `replace`: re-create a function of the wrong tenancy) or `policy`;
    returns the exit code (messages on `out`, notes on stderr). `requirements`: the job
    packages' pinned list, built into the function's layer (None: no layer); `job_python`: the
    local job environment's interpreter, which makes matplotlib's font list for it."""
    import boto3

    session = boto3.session.Session()
    if action == "policy":
        target = resolve_target(settings, session, sys.stderr)
        print(json.dumps(policies(target), indent=2), file=out)
        return EXIT_OK
    if action != "deploy":
        print(f"unknown lambda action {action!r}: deploy or policy", file=sys.stderr)
        return EXIT_MISCONFIGURED
    try:
        client = deploy_client(session, settings)
    except botocore.exceptions.NoRegionError:
        print("deploy failed: no AWS region configured (set AWS_REGION)", file=out)
        return EXIT_MISCONFIGURED
    spec = FunctionSpec.from_settings(settings)
    deployer = Deployer(client, spec, out, replace=replace, sleep=sleep)
    layer = LayerStep(
        client=client,
        s3=lambda: artifact_client(session, settings),
        function=spec.name,
        requirements=requirements or Path("/nonexistent"),
        architecture=spec.architecture,
        runtime=spec.runtime,
        bucket=settings.lambda_artifact_bucket,
        say=deployer.say,
        build=layer_builder(job_python),
    )
    if layer.wanted():
        deployer.layer = layer
    try:
        deployer.deploy(lambda_package.build_zip())
    except DeployError as exc:
        print(f"deploy failed: {exc}", file=out)
        _report_partial(deployer, out)
        return EXIT_MISCONFIGURED if exc.misconfigured else EXIT_FAILED
    except botocore.exceptions.ClientError as exc:
        code, message, _ = error_code(exc)
        print(f"deploy failed: {code}: {message}", file=out)
        _report_partial(deployer, out)
        return EXIT_FAILED
    except botocore.exceptions.BotoCoreError as exc:
        print(f"deploy failed: {exc}", file=out)
        _report_partial(deployer, out)
        return EXIT_FAILED
    finally:
        client.close()
    return EXIT_OK


def _report_partial(deployer: Deployer, out: TextIO) -> None:
    if deployer.changes:
        print(f"changed before the failure: {'; '.join(deployer.changes)}", file=out)
