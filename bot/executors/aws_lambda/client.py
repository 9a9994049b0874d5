"""The Lambda client: how it is built, the timeouts it is built with, and how its errors read."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import botocore.exceptions
from botocore.config import Config

from bot.errors import ExecutorUnavailable

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_lambda import LambdaClient

    from bot.app.config import Settings

FUNCTION_HEADROOM_S = 5  # function timeout beyond the job's, for start-up and clean-up
MAX_FUNCTION_TIMEOUT_S = 900  # Lambda's ceiling
READ_TIMEOUT_HEADROOM_S = 5  # the client waits this much longer than the function may run
CONNECT_TIMEOUT_S = 3
MESSAGE_CAP = 1000  # characters of a Lambda error message quoted to the user

# botocore's ways of saying "no usable credentials"
CREDENTIAL_ERRORS = (
    botocore.exceptions.NoCredentialsError,
    botocore.exceptions.PartialCredentialsError,
    botocore.exceptions.CredentialRetrievalError,
)


def function_timeout_s(job_timeout: float) -> int:
    """The runner function's timeout: the job timeout plus headroom, whole seconds, ≤ 900."""
    return min(MAX_FUNCTION_TIMEOUT_S, math.ceil(job_timeout) + FUNCTION_HEADROOM_S)


def client_config(function_timeout: float, pool: int, read_timeout: float | None = None) -> Config:
    """botocore settings for Invoke: a read timeout beyond the function's, and no SDK retries.

    A retried Invoke after a read timeout runs the user's code again, and standard mode
    retries exactly that; `total_max_attempts=1` turns every SDK retry off (throttles are
    retried by LambdaExecutor itself, where it is known to be safe).
    """
    return Config(
        read_timeout=(
            read_timeout if read_timeout is not None else function_timeout + READ_TIMEOUT_HEADROOM_S
        ),
        connect_timeout=CONNECT_TIMEOUT_S,
        retries={"mode": "standard", "total_max_attempts": 1},
        max_pool_connections=max(1, pool),
    )


def build_lambda_client(settings: Settings, read_timeout: float | None = None) -> LambdaClient:
    """A Lambda client from the standard AWS chain (region, credentials, endpoint)."""
    import boto3

    config = client_config(
        function_timeout_s(settings.job_timeout),
        max(settings.lambda_concurrency, settings.workers),
        read_timeout,
    )
    try:
        session = boto3.session.Session()
        return session.client(
            "lambda", region_name=session_region(session, settings), config=config
        )
    except botocore.exceptions.NoRegionError as exc:
        raise ExecutorUnavailable(
            "no AWS region configured: set AWS_REGION (or a profile's region)"
        ) from exc
    except botocore.exceptions.BotoCoreError as exc:
        raise ExecutorUnavailable(f"cannot create the AWS Lambda client: {exc}") from exc


def session_region(session: boto3.session.Session, settings: Settings) -> str | None:
    """AWS_REGION (read by config, as the other SDKs and Lambda itself use it; botocore reads
    only AWS_DEFAULT_REGION and profiles), else the session's region."""
    return settings.aws_region or session.region_name or None


def read_timeout(client: LambdaClient) -> float:
    """The client's read timeout in seconds (NaN if it has none)."""
    value = getattr(client.meta.config, "read_timeout", None)
    return float(value) if isinstance(value, int | float) else float("nan")


def cap(text: str) -> str:
    """`text`, cut to the length quoted to a user."""
    return text if len(text) <= MESSAGE_CAP else text[:MESSAGE_CAP] + "…"


def error_code(exc: botocore.exceptions.ClientError) -> tuple[str, str, int]:
    """(error code, capped message, HTTP status) of a Lambda API error."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), cap(str(error.get("Message", ""))), int(status)


def hint(code: str) -> str:
    """What to do about an error code, as a '; ...' suffix ('' when there is nothing to say)."""
    if code == "ResourceNotFoundException":
        return "; deploy it with `python -m bot lambda deploy`"
    if code in {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"}:
        return "; check the credentials and `python -m bot lambda policy`"
    return ""
