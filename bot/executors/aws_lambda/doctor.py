"""Doctor checks of the runner function: its state, runtime, limits, code, and a probe invoke."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import botocore.exceptions

from bot.errors import ExecutorUnavailable
from bot.executors.aws_lambda import package as lambda_package
from bot.executors.aws_lambda.client import (
    CREDENTIAL_ERRORS,
    build_lambda_client,
    cap,
    error_code,
    function_timeout_s,
    hint,
)
from bot.sandbox import protocol

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

    from bot.app.config import Settings

Row = tuple[str, str, bool]


def lambda_checks(settings: Settings) -> list[Row]:
    """Doctor rows for the runner function: state, runtime, timeout, memory, code, a probe."""
    try:
        client = build_lambda_client(settings)
    except ExecutorUnavailable as exc:
        return [("lambda client", exc.message, False)]
    try:
        return _checks(client, settings)
    finally:
        client.close()


def _checks(client: LambdaClient, settings: Settings) -> list[Row]:
    name = settings.lambda_function
    where = f"{name} in {client.meta.region_name}"
    try:
        function = client.get_function(FunctionName=name)
    except botocore.exceptions.ClientError as exc:
        code, message, _ = error_code(exc)
        if code == "ResourceNotFoundException":
            detail = f"{where} does not exist: run `python -m bot lambda deploy`"
        else:
            detail = f"{where}: {code}: {message}{hint(code)}"
        return [("lambda function", detail, False)]
    except CREDENTIAL_ERRORS as exc:
        return [
            (
                "lambda credentials",
                f"no usable AWS credentials ({exc}): set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run with an instance or task role",
                False,
            )
        ]
    except botocore.exceptions.BotoCoreError as exc:
        return [("lambda function", f"{where}: cannot ask Lambda: {exc}", False)]
    config = function["Configuration"]
    state = config.get("State", "?")
    update = config.get("LastUpdateStatus", "Successful")
    rows: list[Row] = [
        (
            "lambda function",
            f"{where}: {state}, last update {update}",
            state == "Active" and update == "Successful",
        )
    ]
    runtime, handler = config.get("Runtime", "?"), config.get("Handler", "?")
    arch = ",".join(config.get("Architectures", []))
    rows.append(
        (
            "lambda runtime",
            f"{runtime} ({arch}), handler {handler}",
            runtime.startswith("python3.") and handler == lambda_package.HANDLER,
        )
    )
    timeout = config.get("Timeout", 0)
    wanted = function_timeout_s(settings.job_timeout)
    rows.append(
        (
            "lambda timeout",
            f"{timeout} s (job timeout {settings.job_timeout:g} s needs {wanted} s)"
            + ("" if timeout >= wanted else ": redeploy"),
            timeout >= wanted,
        )
    )
    memory = config.get("MemorySize", 0)
    rows.append(
        (
            "lambda memory",
            f"{memory} MB (JOBBOT_LAMBDA_MEMORY_MB={settings.lambda_memory_mb})"
            + ("" if memory == settings.lambda_memory_mb else ": redeploy"),
            memory == settings.lambda_memory_mb,
        )
    )
    current = lambda_package.code_sha256(lambda_package.build_zip())
    same = config.get("CodeSha256") == current
    rows.append(
        (
            "lambda code",
            "the deployed harness matches this jobbot"
            if same
            else "the deployed harness differs from this jobbot's: redeploy",
            same,
        )
    )
    reserved = function.get("Concurrency", {}).get("ReservedConcurrentExecutions")
    enough = reserved is None or reserved >= settings.lambda_concurrency
    rows.append(
        (
            "lambda concurrency",
            f"reserved {reserved if reserved is not None else 'none (account pool)'}; "
            f"{settings.lambda_concurrency} invokes in flight per jobbot process"
            + ("" if enough else ": more than reserved, expect throttling"),
            enough,
        )
    )
    rows.append(_probe(client, name))
    return rows


def _probe(client: LambdaClient, name: str) -> Row:
    """Invoke the runner with a probe event (no user code) to see it answer."""
    started = time.monotonic()
    try:
        response = client.invoke(
            FunctionName=name, Payload=json.dumps({"v": protocol.VERSION, "probe": True})
        )
        body = json.loads(response["Payload"].read())
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        return ("lambda runner", f"the probe invoke failed: {cap(str(exc))}", False)
    except ValueError:
        return ("lambda runner", "the probe got an answer that is not JSON", False)
    elapsed = (time.monotonic() - started) * 1000
    facts = body.get("probe") if isinstance(body, dict) else None
    if response.get("FunctionError") or not isinstance(facts, dict):
        return ("lambda runner", f"the probe failed: {cap(str(body))}", False)
    uid = facts.get("uid")
    detail = (
        f"answered in {elapsed:.0f} ms: python {facts.get('python')}, uid {uid}"
        + (" (root: the handler must not run as root)" if uid == 0 else "")
        + f", leftover files in {facts.get('scratch')}: {facts.get('scratch_left')}"
    )
    return ("lambda runner", detail, uid != 0)
