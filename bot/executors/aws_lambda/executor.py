"""LambdaExecutor: each job is one synchronous invoke of the runner function, never re-sent.

The function (deployed by `python -m bot lambda deploy`) runs the sandbox's Lambda handler,
which runs the job in a fresh child process and answers with a protocol-v1 response. Here
that answer becomes a RunResult, and every way the invoke can fail becomes either a
RunResult (the job may have run, or can never run: it gets a final status) or one of
ExecutorUnavailable / Throttled (nothing ran: the worker puts the job back in the queue).

botocore exceptions are translated here and never leave this module.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from typing import TYPE_CHECKING, Any

import botocore.exceptions
from botocore.config import Config

from bot.core.metrics import Metrics
from bot.core.models import Outcome, RunRequest, RunResult
from bot.core.ports import StartGate
from bot.errors import CalledOff, ExecutorError, ExecutorUnavailable, Throttled
from bot.executors.aws_lambda import package as lambda_package
from bot.executors.results import result_from_response
from bot.sandbox import protocol

if TYPE_CHECKING:
    import boto3.session
    from mypy_boto3_lambda import LambdaClient

    from bot.app.config import Settings

log = logging.getLogger(__name__)

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes Lambda accepts in a synchronous invoke request
FUNCTION_HEADROOM_S = 5  # function timeout beyond the job's, for start-up and clean-up
MAX_FUNCTION_TIMEOUT_S = 900  # Lambda's ceiling
READ_TIMEOUT_HEADROOM_S = 5  # the client waits this much longer than the function may run
CONNECT_TIMEOUT_S = 3
_MESSAGE_CAP = 1000  # characters of a Lambda error message quoted to the user

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
        "RequestTooLargeException",
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
_OUR_FAILURES = frozenset({"LambdaFunctionError", "InvalidResponse"})


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
        read_timeout=read_timeout if read_timeout is not None else function_timeout + 5,
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


def build_lambda_executor(settings: Settings, metrics: Metrics | None = None) -> LambdaExecutor:
    """The executor for JOBBOT_EXECUTOR=lambda (its errors counted in `metrics`)."""
    return LambdaExecutor(
        build_lambda_client(settings),
        settings.lambda_function,
        concurrency=settings.lambda_concurrency,
        metrics=metrics,
    )


def _cap(text: str) -> str:
    return text if len(text) <= _MESSAGE_CAP else text[:_MESSAGE_CAP] + "…"


def _error_code(exc: botocore.exceptions.ClientError) -> tuple[str, str, int]:
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return str(error.get("Code", "")), _cap(str(error.get("Message", ""))), int(status)


class _ThrottledOnce(Exception):
    """One 429 from Lambda (internal: retried, then raised as Throttled)."""

    def __init__(self, retry_after: float | None, reason: str) -> None:
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


def _retry_after(response: dict[str, Any]) -> float | None:
    raw = response.get("retryAfterSeconds")
    try:
        value = float(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) and value >= 0 else None


def encode_request(request: RunRequest) -> bytes:
    """The protocol-v1 request as the invoke payload (compact UTF-8 JSON)."""
    body = {
        "v": protocol.VERSION,
        "job_id": request.job_id,
        "file_name": request.file_name,
        "code": request.code,
        "input_json": request.input_json,
        "timeout_s": request.timeout_s,
        "memory_mb": request.memory_mb,
        "max_output_bytes": request.max_output_bytes,
    }
    try:
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: ASCII escapes carry it losslessly
        return json.dumps(body, separators=(",", ":")).encode("ascii")


class LambdaExecutor:
    """Runs jobs as synchronous (RequestResponse) invokes of the runner function.

    Args:
        client: a boto3 Lambda client built with `client_config` (no SDK retries, a read
            timeout beyond the function timeout); only wiring builds it.
        function_name: the runner function's name or ARN.
        concurrency: invokes in flight at once from this executor; further `run()` calls
            wait for a free slot.
        throttle_retries: quick in-process retries of a 429 before the job is handed
            back to the queue as Throttled.
        throttle_backoff_s: the first of those retries' jittered, doubling delays.
        requeue_backoff_s, requeue_cap_s: how long a throttled job waits in the queue;
            grows while Lambda keeps throttling, and resets after any invoke gets through.
        max_payload_bytes: larger requests are refused before invoking.
        metrics: where every failed or throttled invoke is counted, as
            jobbot_lambda_errors_total{kind} (kinds: ERROR_KINDS).
    """

    name = "lambda"

    def __init__(
        self,
        client: LambdaClient,
        function_name: str,
        *,
        concurrency: int = 16,
        throttle_retries: int = 3,
        throttle_backoff_s: float = 0.1,
        requeue_backoff_s: float = 1.0,
        requeue_cap_s: float = 15.0,
        max_payload_bytes: int = SYNC_PAYLOAD_LIMIT,
        metrics: Metrics | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._client = client
        self.function_name = function_name
        self.concurrency = concurrency
        self._slots = threading.BoundedSemaphore(concurrency)
        self._throttle_retries = throttle_retries
        self._throttle_backoff_s = throttle_backoff_s
        self._requeue_backoff_s = requeue_backoff_s
        self._requeue_cap_s = requeue_cap_s
        self._max_payload_bytes = max_payload_bytes
        self._lock = threading.Lock()
        self._throttle_streak = 0
        self._closed = False
        self._metrics = metrics

    def _count(self, kind: str) -> None:
        if self._metrics is not None:
            self._metrics.inc(
                "jobbot_lambda_errors_total", "Lambda invoke failures by kind.", kind=kind
            )

    # --- Executor ----------------------------------------------------------------------

    def run(self, request: RunRequest, start: StartGate | None = None) -> RunResult:
        """Run the request to completion within its time limit (one invoke, never re-sent).

        The start gate is passed once a concurrency slot is free, just before the first
        Invoke."""
        if self._closed:
            raise ExecutorUnavailable("the Lambda executor is closed")
        payload = encode_request(request)
        if len(payload) > self._max_payload_bytes:
            self._count("payload_too_large")
            return self._refused(
                "PayloadTooLarge",
                f"the job's code and input make a {len(payload)}-byte Lambda request, more "
                f"than the {self._max_payload_bytes} bytes Lambda accepts for a synchronous "
                "invoke; nothing ran. Send a smaller file or input.",
            )
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                with self._slots:
                    if start is not None:
                        gate, start = start, None
                        if not gate():
                            raise CalledOff()
                    function_error, body = self._invoke(payload, request.job_id)
                break
            except _Refused as refused:
                return self._refused(
                    refused.code,
                    f"Lambda refused the invoke ({refused.message}); nothing ran, and it would "
                    "be refused again",
                )
            except _ThrottledOnce as throttle:
                if attempt > self._throttle_retries:
                    delay = self._requeue_delay(throttle.retry_after)
                    raise Throttled(
                        f"Lambda is throttling the runner function ({throttle.reason}); "
                        f"nothing ran, trying again in {delay:.1f} s",
                        retry_after=delay,
                    ) from None
                base = self._throttle_backoff_s * 2 ** (attempt - 1)
                time.sleep(base * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
        with self._lock:
            self._throttle_streak = 0
        elapsed_ms = round((time.monotonic() - started) * 1000)
        result = self._result(function_error, body, elapsed_ms)
        if result.error_type in _OUR_FAILURES:
            log.warning(
                "the Lambda runner failed: %s",
                result.error_message,
                extra={"job_id": request.job_id, "error_type": result.error_type},
            )
        return result

    def describe(self) -> list[tuple[str, str, bool]]:
        """Facts for `doctor`: (check, detail, ok)."""
        meta = self._client.meta
        read_timeout = _read_timeout(self._client)
        return [
            (
                "lambda invoke",
                f"{self.function_name} in {meta.region_name} via {meta.endpoint_url}: "
                f"RequestResponse, at most {self.concurrency} in flight, no SDK retries, "
                f"read timeout {read_timeout:g} s",
                True,
            ),
            (
                "isolation",
                "Lambda (Firecracker microVM per execution environment); each job in a fresh "
                "child: allow-list environment, non-dumpable handler, subreaper, /tmp emptied",
                True,
            ),
        ]

    def close(self) -> None:
        """Refuse new runs and close the client's connections."""
        self._closed = True
        self._client.close()

    # --- one invoke ----------------------------------------------------------------------

    def _invoke(self, payload: bytes, job_id: int) -> tuple[str | None, bytes]:
        """(X-Amz-Function-Error or None, body) of one invoke; raises as documented above."""
        client = self._client
        try:
            response = client.invoke(
                FunctionName=self.function_name,
                InvocationType="RequestResponse",
                Payload=payload,
            )
            body = response["Payload"].read()
        except botocore.exceptions.ClientError as exc:
            code, message, status = _error_code(exc)
            if code == "TooManyRequestsException" or status == 429:
                self._count("throttled")
                reason = str(exc.response.get("Reason") or message or "Rate Exceeded")
                raise _ThrottledOnce(_retry_after(dict(exc.response)), reason) from exc
            if code in _REFUSED:
                self._count("refused")
                raise _Refused(code, message) from exc
            if code in _NOT_STARTED or (400 <= status < 500 and code not in _REFUSED):
                self._count("not_started")
                raise ExecutorUnavailable(
                    f"Lambda did not start the runner {self.function_name} ({code}: {message})"
                    + _hint(code)
                ) from exc
            self._count("service_error")
            raise ExecutorError(
                f"Lambda failed while invoking the runner ({status} {code}: {message}); "
                "the outcome is unknown, so the job is not run again"
            ) from exc
        except (
            botocore.exceptions.NoCredentialsError,
            botocore.exceptions.PartialCredentialsError,
            botocore.exceptions.CredentialRetrievalError,
        ) as exc:
            self._count("no_credentials")
            raise ExecutorUnavailable(f"no usable AWS credentials: {exc}") from exc
        except botocore.exceptions.ConnectionError as exc:
            # raised before the request was sent (DNS, refused, connect timeout, proxy)
            self._count("unreachable")
            raise ExecutorUnavailable(f"cannot reach AWS Lambda: {exc}") from exc
        except botocore.exceptions.ReadTimeoutError as exc:
            self._count("read_timeout")
            raise ExecutorError(
                f"no answer from Lambda within {_read_timeout(client):g} s; the "
                "outcome is unknown, so the job is not run again"
            ) from exc
        except botocore.exceptions.HTTPClientError as exc:
            self._count("connection_lost")
            raise ExecutorError(
                f"the connection to Lambda failed during the invoke ({exc}); the outcome is "
                "unknown, so the job is not run again"
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            self._count("client_error")
            raise ExecutorError(f"the Lambda invoke failed: {exc}") from exc
        meta = response.get("ResponseMetadata", {})
        log.debug(
            "lambda invoked",
            extra={"job_id": job_id, "request_id": meta.get("RequestId")},
        )
        return response.get("FunctionError"), body

    def _requeue_delay(self, hint: float | None) -> float:
        with self._lock:
            self._throttle_streak += 1
            streak = self._throttle_streak
        growth = float(2 ** min(streak - 1, 16))
        delay = min(self._requeue_cap_s, self._requeue_backoff_s * growth)
        delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter
        return round(max(hint or 0.0, delay), 3)

    # --- answers ---------------------------------------------------------------------

    def _refused(self, error_type: str, message: str) -> RunResult:
        return RunResult(
            outcome=Outcome.ERROR,
            duration_ms=0,
            error_type=error_type,
            error_message=message,
            executor=self.name,
        )

    def _result(self, function_error: str | None, body: bytes, elapsed_ms: int) -> RunResult:
        if function_error:
            return self._function_error(function_error, body, elapsed_ms)
        try:
            response = protocol.check_response(json.loads(body))
        except (ValueError, protocol.ProtocolError) as exc:
            reason = str(exc) if isinstance(exc, protocol.ProtocolError) else "not JSON"
            self._count("invalid_response")
            return RunResult(
                outcome=Outcome.CRASHED,
                duration_ms=elapsed_ms,
                error_type="InvalidResponse",
                error_message=f"the Lambda runner returned an answer jobbot cannot read "
                f"({_cap(reason)}); the job may have run. Redeploy with "
                "`python -m bot lambda deploy` if this persists.",
                executor=self.name,
            )
        return result_from_response(response, self.name)

    def _function_error(self, kind: str, body: bytes, elapsed_ms: int) -> RunResult:
        """A function error (Lambda's own failure around the handler): a final result."""
        try:
            error = json.loads(body)
        except ValueError:
            error = None
        if not isinstance(error, dict):
            error = {}
        error_type = str(error.get("errorType") or "")
        message = _cap(
            str(error.get("errorMessage") or body[:_MESSAGE_CAP].decode(errors="replace"))
        )
        if "Task timed out after" in message:  # older runtimes name no errorType
            error_type = error_type or "Sandbox.Timedout"
        if "signal: killed" in message:
            error_type = error_type or "Runtime.OutOfMemory"
        self._count(_FUNCTION_ERROR_KINDS.get(error_type, "function_error"))
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
                executor=self.name,
            )
        if error_type == "Runtime.OutOfMemory" or "signal: killed" in message:
            return RunResult(
                outcome=Outcome.MEMORY,
                duration_ms=elapsed_ms,
                error_type="MemoryError",
                error_message="the Lambda runner ran out of memory; the job's output is lost "
                "(raise JOBBOT_LAMBDA_MEMORY_MB and redeploy)",
                executor=self.name,
            )
        if error_type == "Function.ResponseSizeTooLarge":
            return RunResult(
                outcome=Outcome.ERROR,
                duration_ms=elapsed_ms,
                error_type="ResultTooLarge",
                error_message="the job's output was too large for Lambda to return (6 MB); "
                "lower JOBBOT_MAX_OUTPUT_BYTES",
                executor=self.name,
            )
        detail = f"{error_type}: {message}" if error_type else message
        return RunResult(
            outcome=Outcome.CRASHED,
            duration_ms=elapsed_ms,
            error_type="LambdaFunctionError",
            error_message=f"the Lambda runner failed ({kind} function error: {detail}); "
            "the job may have run, so it is not run again",
            executor=self.name,
        )


class _Refused(ExecutorError):
    """Lambda refused the request itself; nothing ran and nothing would on a retry."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def _read_timeout(client: LambdaClient) -> float:
    value = getattr(client.meta.config, "read_timeout", None)
    return float(value) if isinstance(value, int | float) else float("nan")


def _hint(code: str) -> str:
    if code == "ResourceNotFoundException":
        return "; deploy it with `python -m bot lambda deploy`"
    if code in {"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException"}:
        return "; check the credentials and `python -m bot lambda policy`"
    return ""


# --- doctor ----------------------------------------------------------------------------

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
        code, message, _ = _error_code(exc)
        if code == "ResourceNotFoundException":
            detail = f"{where} does not exist: run `python -m bot lambda deploy`"
        else:
            detail = f"{where}: {code}: {message}{_hint(code)}"
        return [("lambda function", detail, False)]
    except (
        botocore.exceptions.NoCredentialsError,
        botocore.exceptions.PartialCredentialsError,
        botocore.exceptions.CredentialRetrievalError,
    ) as exc:
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
        return ("lambda runner", f"the probe invoke failed: {_cap(str(exc))}", False)
    except ValueError:
        return ("lambda runner", "the probe got an answer that is not JSON", False)
    elapsed = (time.monotonic() - started) * 1000
    facts = body.get("probe") if isinstance(body, dict) else None
    if response.get("FunctionError") or not isinstance(facts, dict):
        return ("lambda runner", f"the probe failed: {_cap(str(body))}", False)
    uid = facts.get("uid")
    detail = (
        f"answered in {elapsed:.0f} ms: python {facts.get('python')}, uid {uid}"
        + (" (root: the handler must not run as root)" if uid == 0 else "")
        + f", leftover files in {facts.get('scratch')}: {facts.get('scratch_left')}"
    )
    return ("lambda runner", detail, uid != 0)
