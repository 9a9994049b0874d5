"""What an invoke's answer or failure means: a RunResult, or the ExecutorError to raise.

A failure becomes either a RunResult (the job may have run, or can never run: it gets a final
status) or one of ExecutorUnavailable / Throttled (nothing ran: the worker puts the job back
in the queue). Every failure is counted under a kind, as jobbot_lambda_errors_total{kind}.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import botocore.exceptions

from bot.core.models import Outcome, RunResult
from bot.errors import ExecutorError, ExecutorUnavailable
from bot.executors.aws_lambda.client import CREDENTIAL_ERRORS, MESSAGE_CAP, cap, error_code, hint
from bot.executors.results import result_from_response
from bot.sandbox import protocol

Count = Callable[[str], None]  # counts one failure of the given kind

# Invoke errors that mean the function was not started (so the job did not run): the
# job goes back to the queue. 429 has its own path (Throttled).
_NOT_STARTED = frozenset(
    {
        "ResourceNotFoundException",  # 404: no such function (not deployed yet?)
        "ResourceConflictException",  # 409: the function is being created or updated
        "ResourceNotReadyException",  # 502: the function is not ready yet
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "EC2ThrottledException",
        "EC2UnexpectedException",
        "EC2AccessDeniedException",
        "ENILimitReachedException",
        "SubnetIPAddressLimitReachedException",
        "InvalidSubnetIDException",
        "InvalidSecurityGroupIDException",
        "EFSMountConnectivityException",
        "EFSMountFailureException",
        "EFSMountTimeoutException",
        "EFSIOException",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "InvalidRuntimeException",
        "InvalidZipFileException",
        "SnapStartNotReadyException",
        "SnapStartTimeoutException",
        "SnapStartException",
        "RecursiveInvocationException",
    }
)
# Requests Lambda will refuse however often they are sent: the job ends as an error.
_REFUSED = frozenset(
    {
        "RequestTooLargeException",  # 413: the request is over 6 MB
        "SerializedRequestEntityTooLargeException",  # 413: so is its serialised form
        "InvalidRequestContentException",
        "UnsupportedMediaTypeException",
        "InvalidParameterValueException",
    }
)

# function errors by errorType, as counted in jobbot_lambda_errors_total{kind}
_FUNCTION_ERROR_KINDS = {
    "SandboxUnavailable": "sandbox_unavailable",
    "Sandbox.Timedout": "function_timeout",
    "Runtime.OutOfMemory": "out_of_memory",
    "Function.ResponseSizeTooLarge": "response_too_large",
    "Runtime.ExitError": "runtime_exited",
}
# jobbot_lambda_errors_total{kind}: every kind an invoke can fail with
ERROR_KINDS = (
    "throttled", "payload_too_large", "refused", "not_started", "service_error",
    "no_credentials", "unreachable", "read_timeout", "connection_lost", "client_error",
    "invalid_response", "function_error", *sorted(set(_FUNCTION_ERROR_KINDS.values())),
)  # fmt: skip

# RunResult error types that are Lambda's or the runner's failure, never the user's
OUR_FAILURES = frozenset({"LambdaFunctionError", "InvalidResponse"})


class ThrottledOnce(Exception):
    """One 429 from Lambda (internal: retried, then raised as Throttled)."""

    def __init__(self, retry_after: float | None, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


class Refused(ExecutorError):
    """Lambda refused the request itself; nothing ran and nothing would on a retry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _retry_after(response: dict[str, Any]) -> float | None:
    raw = response.get("retryAfterSeconds")
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def invoke_failure(
    exc: botocore.exceptions.ClientError | botocore.exceptions.BotoCoreError,
    function_name: str,
    read_timeout_s: float,
    count: Count,
) -> Exception:
    """The exception to raise for an invoke that failed with `exc` (its kind counted)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        return _api_error(exc, function_name, count)
    if isinstance(exc, CREDENTIAL_ERRORS):
        count("no_credentials")
        return ExecutorUnavailable(f"no usable AWS credentials: {exc}")
    if isinstance(exc, botocore.exceptions.ConnectionError):
        # raised before the request was sent (DNS, refused, connect timeout, proxy)
        count("unreachable")
        return ExecutorUnavailable(f"cannot reach AWS Lambda: {exc}")
    if isinstance(exc, botocore.exceptions.ReadTimeoutError):
        count("read_timeout")
        return ExecutorError(
            f"no answer from Lambda within {read_timeout_s:g} s; the "
            "outcome is unknown, so the job is not run again"
        )
    if isinstance(exc, botocore.exceptions.HTTPClientError):
        count("connection_lost")
        return ExecutorError(
            f"the connection to Lambda failed during the invoke ({exc}); the outcome is "
            "unknown, so the job is not run again"
        )
    count("client_error")
    return ExecutorError(f"the Lambda invoke failed: {exc}")


def _api_error(exc: botocore.exceptions.ClientError, function_name: str, count: Count) -> Exception:
    code, message, status = error_code(exc)
    if code == "TooManyRequestsException" or status == 429:
        count("throttled")
        reason = str(exc.response.get("Reason") or message or "Rate Exceeded")
        return ThrottledOnce(_retry_after(dict(exc.response)), reason)
    if code in _REFUSED:
        count("refused")
        return Refused(code, message)
    if code in _NOT_STARTED or (400 <= status < 500 and code not in _REFUSED):
        count("not_started")
        return ExecutorUnavailable(
            f"Lambda did not start the runner {function_name} ({code}: {message})" + hint(code)
        )
    count("service_error")
    return ExecutorError(
        f"Lambda failed while invoking the runner ({status} {code}: {message}); "
        "the outcome is unknown, so the job is not run again"
    )


def refused(error_type: str, message: str, executor: str) -> RunResult:
    """The final result of a request Lambda would never run."""
    return RunResult(
        outcome=Outcome.ERROR,
        duration_ms=0,
        error_type=error_type,
        error_message=message,
        executor=executor,
    )


def answer(
    function_error: str | None, body: bytes, elapsed_ms: int, executor: str, count: Count
) -> RunResult:
    """The result of an invoke that got through: the runner's response, or its failure."""
    if function_error:
        return _function_error(function_error, body, elapsed_ms, executor, count)
    try:
        response = protocol.check_response(json.loads(body))
    except (ValueError, protocol.ProtocolError) as exc:
        reason = str(exc) if isinstance(exc, protocol.ProtocolError) else "not JSON"
        count("invalid_response")
        return RunResult(
            outcome=Outcome.CRASHED,
            duration_ms=elapsed_ms,
            error_type="InvalidResponse",
            error_message=f"the Lambda runner returned an answer jobbot cannot read "
            f"({cap(reason)}); the job may have run. Redeploy with "
            "`python -m bot lambda deploy` if this persists.",
            executor=executor,
        )
    return result_from_response(response, executor)


def _function_error(
    kind: str, body: bytes, elapsed_ms: int, executor: str, count: Count
) -> RunResult:
    """A function error (Lambda's own failure around the handler): a final result."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {}
    error_type = str(error.get("errorType") or "")
    message = cap(str(error.get("errorMessage") or body[:MESSAGE_CAP].decode(errors="replace")))
    if "Task timed out after" in message:  # older runtimes name no errorType
        error_type = error_type or "Sandbox.Timedout"
    count(_FUNCTION_ERROR_KINDS.get(error_type, "function_error"))
    if error_type == "SandboxUnavailable":
        raise ExecutorUnavailable(f"the runner could not start the job: {message}")
    if error_type == "Sandbox.Timedout" or "Task timed out after" in message:
        return RunResult(
            outcome=Outcome.TIMEOUT,
            duration_ms=elapsed_ms,
            error_type="Timeout",
            error_message="Lambda stopped the runner at its function timeout, before the "
            "job's own limit could; the job's output is lost. Redeploy with "
            "`python -m bot lambda deploy` so the function timeout fits JOBBOT_JOB_TIMEOUT.",
            executor=executor,
        )
    # Only Lambda's memory accounting says out of memory. "signal: killed" alone is any
    # SIGKILL of the runtime (Runtime.ExitError), a job killing its parent included.
    if error_type == "Runtime.OutOfMemory":
        return RunResult(
            outcome=Outcome.MEMORY,
            duration_ms=elapsed_ms,
            error_type="MemoryError",
            error_message="the Lambda runner ran out of memory; the job's output is lost "
            "(raise JOBBOT_LAMBDA_MEMORY_MB and redeploy)",
            executor=executor,
        )
    if error_type == "Function.ResponseSizeTooLarge":
        return RunResult(
            outcome=Outcome.ERROR,
            duration_ms=elapsed_ms,
            error_type="ResultTooLarge",
            error_message="the job's output was too large for Lambda to return (6 MB); "
            "lower JOBBOT_MAX_OUTPUT_BYTES",
            executor=executor,
        )
    detail = f"{error_type}: {message}" if error_type else message
    if error_type == "Runtime.ExitError":
        return RunResult(
            outcome=Outcome.CRASHED,
            duration_ms=elapsed_ms,
            error_type="LambdaFunctionError",
            error_message=f"the Lambda runtime exited during the job ({detail}); Lambda "
            "did not report it out of memory, so something else ended it (the job itself, "
            "perhaps). The job may have run, so it is not run again",
            executor=executor,
        )
    return RunResult(
        outcome=Outcome.CRASHED,
        duration_ms=elapsed_ms,
        error_type="LambdaFunctionError",
        error_message=f"the Lambda runner failed ({kind} function error: {detail}); "
        "the job may have run, so it is not run again",
        executor=executor,
    )
