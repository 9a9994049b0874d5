"""Doctor checks of the runner function: its state, runtime, limits, code, and a probe invoke."""

from __future__ import annotations

import json
import time
from pathlib import Path
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
from bot.executors.aws_lambda.layers import packages_row
from bot.executors.aws_lambda.tenancy import (
    DOCTOR_TENANT,
    PER_USER,
    SHARED,
    UNKEYED,
    function_tenancy,
)
from bot.sandbox import protocol

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import InvocationRequestTypeDef

    from bot.app.config import Settings

Row = tuple[str, str, bool]


def network_row(network: bool) -> tuple[str, str, bool]:
    """Doctor's row on the jobs' network, and what the filter cannot enforce with it on."""
    if not network:
        return (
            "lambda network",
            "off (JOBBOT_LAMBDA_NETWORK): jobs get Unix sockets only, so the Runtime API "
            "is out of their reach",
            True,
        )
    return (
        "lambda network",
        "WARNING on (JOBBOT_LAMBDA_NETWORK): jobs can open Internet sockets, and so reach "
        "the Runtime API on 127.0.0.1:9001, which no filter can tell apart: a job can answer "
        "its own invoke and take the next invocation of its environment. Only per-user "
        "tenancy keeps users apart then",
        True,
    )


def tenancy_row(tenancy: str, key: bytes) -> tuple[str, str, bool]:
    """Doctor's row on what the executor asks of Lambda's tenancy (the function's own is in
    doctor.py's rows)."""
    if tenancy == SHARED:
        return (
            "lambda tenancy",
            "WARNING shared (JOBBOT_LAMBDA_TENANCY): one user's job may run in an environment "
            "that served another user's, and with the network on may take the next user's "
            "event (docs/security.md); set per-user and redeploy with --replace",
            True,
        )
    keyed = key != UNKEYED
    return (
        "lambda tenancy",
        "per-user: every invoke carries its owner's tenant id, "
        + ("HMAC-keyed by JOBBOT_LAMBDA_TENANT_KEY" if keyed else "an unkeyed hash (set "
           "JOBBOT_LAMBDA_TENANT_KEY so AWS's logs cannot be matched to users)"),
        True,
    )  # fmt: skip


def function_tenancy_row(function: str, wanted: str) -> Row:
    """Doctor's row on the function's own tenancy, against JOBBOT_LAMBDA_TENANCY."""
    if function == wanted == PER_USER:
        return (
            "lambda function tenancy",
            "TenantIsolationMode PER_TENANT: Lambda never gives two users one environment",
            True,
        )
    if function == wanted == SHARED:
        return (
            "lambda function tenancy",
            "WARNING none: created without tenant isolation, so jobs of different users share "
            "environments (JOBBOT_LAMBDA_TENANCY=shared allows it)",
            True,
        )
    if function == SHARED:
        return (
            "lambda function tenancy",
            "none: created without tenant isolation, which Lambda sets only when it creates a "
            "function, so every per-user invoke will be refused: run `python -m bot lambda "
            "deploy --replace` (or set JOBBOT_LAMBDA_TENANCY=shared)",
            False,
        )
    return (
        "lambda function tenancy",
        "TenantIsolationMode PER_TENANT needs a tenant id, which JOBBOT_LAMBDA_TENANCY=shared "
        "does not send, so every invoke will be refused: set JOBBOT_LAMBDA_TENANCY=per-user",
        False,
    )


def lambda_checks(settings: Settings, requirements: Path | None = None) -> list[Row]:
    """Doctor rows for the runner function: state, runtime, timeout, memory, code, a probe
    (which also reports the packages layer against the pinned list `requirements`)."""
    try:
        client = build_lambda_client(settings)
    except ExecutorUnavailable as exc:
        return [("lambda client", exc.message, False)]
    try:
        return _checks(client, settings, requirements)
    finally:
        client.close()


def _checks(client: LambdaClient, settings: Settings, requirements: Path | None) -> list[Row]:
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
    tenancy = function_tenancy(config)
    rows.append(function_tenancy_row(tenancy, settings.lambda_tenancy))
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
    tenant = DOCTOR_TENANT if tenancy == PER_USER else None
    architecture = (config.get("Architectures") or ["x86_64"])[0]
    rows += _probe(
        client,
        name,
        tenant,
        settings.lambda_network == "on",
        requirements=requirements,
        architecture=architecture,
    )
    return rows


def _probe(
    client: LambdaClient,
    name: str,
    tenant: str | None,
    network: bool,
    *,
    requirements: Path | None = None,
    architecture: str = "arm64",
) -> list[Row]:
    """Invoke the runner with a probe event: it runs a fixed trivial job (no user code)
    through the real sandbox path, confined as the bot's jobs are."""
    started = time.monotonic()
    event: dict[str, object] = {"v": protocol.VERSION, "probe": True}
    if network:
        event["network"] = True
    call: InvocationRequestTypeDef = {"FunctionName": name, "Payload": json.dumps(event)}
    if tenant is not None:
        call["TenantId"] = tenant  # doctor's own tenant: no user's environment is touched
    try:
        response = client.invoke(**call)
        body = json.loads(response["Payload"].read())
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
        return [("lambda runner", f"the probe invoke failed: {cap(str(exc))}", False)]
    except ValueError:
        return [("lambda runner", "the probe got an answer that is not JSON", False)]
    elapsed = (time.monotonic() - started) * 1000
    facts = body.get("probe") if isinstance(body, dict) else None
    if response.get("FunctionError") or not isinstance(facts, dict):
        return [("lambda runner", f"the probe failed: {cap(str(body))}", False)]
    job = facts.get("job")
    uid = facts.get("uid")
    ran = isinstance(job, dict) and "error" not in job
    detail = (
        f"answered in {elapsed:.0f} ms: python {facts.get('python')} on {facts.get('machine')}, "
        f"uid {uid}" + (" (root: the handler must not run as root)" if uid == 0 else "")
        + f", leftover files in {facts.get('scratch')}: {facts.get('scratch_left')}; "
        + ("a trivial job ran through the sandbox" if ran else _no_job(job))
    )  # fmt: skip
    packages = packages_row(
        facts.get("packages"),
        job.get("layer_on_path") if isinstance(job, dict) else None,
        requirements,
        architecture,
    )
    return [("lambda runner", detail, uid != 0 and ran), _confinement_row(job, network), packages]


def _no_job(job: object) -> str:
    if not isinstance(job, dict):
        return "no probe job ran: the deployed runner is older than this jobbot, redeploy"
    return f"the probe job failed ({cap(str(job.get('error')))})"


def _confinement_row(job: object, network: bool) -> Row:
    """What the probe job could do to the runtime, against what the filter should allow."""
    if not isinstance(job, dict) or "error" in job:
        return ("lambda confinement", "unknown: no probe job ran", False)
    expected = {
        "seccomp": "2",
        "no_new_privs": "1",
        "signal_runtime": "PermissionError",
        "read_runtime_environ": "PermissionError",
        "internet_socket": "allowed" if network else "PermissionError",
    }
    wrong = {key: job.get(key) for key, value in expected.items() if job.get(key) != value}
    if wrong:
        return ("lambda confinement", f"NOT as it must be: {wrong} (expected {expected})", False)
    sockets = (
        "Internet sockets allowed (JOBBOT_LAMBDA_NETWORK=on): the Runtime API is in the job's "
        "reach, which no filter can tell apart"
        if network
        else "Internet sockets refused, so the Runtime API is out of the job's reach"
    )
    return (
        "lambda confinement",
        "seccomp filter on: the job cannot signal the runtime or read its environment; " + sockets,
        True,
    )
