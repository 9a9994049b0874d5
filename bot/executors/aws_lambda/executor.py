"""LambdaExecutor: each job is one synchronous invoke of the runner function, never re-sent.

The function (deployed by `python -m bot lambda deploy`) runs the sandbox's Lambda handler,
which runs the job in a fresh child process and answers with a protocol-v1 response;
outcomes.py says what that answer, or the invoke's failure, means. botocore exceptions are
translated in this package and never leave it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

import botocore.exceptions

from bot.core.backoff import backoff
from bot.core.metrics import Metrics
from bot.core.models import RunRequest, RunResult
from bot.core.ports import StartGate
from bot.errors import CalledOff, ExecutorUnavailable, Throttled
from bot.executors.aws_lambda.client import build_lambda_client, read_timeout
from bot.executors.aws_lambda.doctor import network_row, tenancy_row
from bot.executors.aws_lambda.outcomes import (
    OUR_FAILURES,
    Refused,
    ThrottledOnce,
    answer,
    invoke_failure,
    refused,
)
from bot.executors.aws_lambda.tenancy import (
    PER_USER,
    SHARED,
    tenant_id,
    tenant_key,
)
from bot.sandbox import protocol

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import InvocationRequestTypeDef

    from bot.app.config import Settings

log = logging.getLogger(__name__)

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes Lambda accepts in a synchronous invoke request


def build_lambda_executor(settings: Settings, metrics: Metrics | None = None) -> LambdaExecutor:
    """The executor for JOBBOT_EXECUTOR=lambda (its errors counted in `metrics`)."""
    return LambdaExecutor(
        build_lambda_client(settings),
        settings.lambda_function,
        concurrency=settings.lambda_concurrency,
        network=settings.lambda_network == "on",
        tenancy=settings.lambda_tenancy,
        tenant_key=tenant_key(settings),
        metrics=metrics,
    )


def encode_request(request: RunRequest, *, network: bool = False) -> bytes:
    """The protocol-v1 request as the invoke payload (compact UTF-8 JSON); `"network": true`
    lets the job open Internet sockets (the handler's filter refuses them otherwise)."""
    body: dict[str, object] = protocol.request_body(request)
    if network:
        body["network"] = True
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
        network: let jobs open Internet sockets (JOBBOT_LAMBDA_NETWORK=on).
        tenancy: "per-user" sends each job's owner's tenant id (tenancy.py) with the
            invoke, so Lambda never gives two owners one environment; "shared" sends none.
        tenant_key: the key of those tenant ids.
        metrics: where every failed or throttled invoke is counted, as
            jobbot_lambda_errors_total{kind} (kinds: outcomes.ERROR_KINDS).
    """

    name = "lambda"

    def __init__(
        self,
        client: LambdaClient,
        function_name: str,
        *,
        concurrency: int,
        throttle_retries: int = 3,
        throttle_backoff_s: float = 0.1,
        requeue_backoff_s: float = 1.0,
        requeue_cap_s: float = 15.0,
        max_payload_bytes: int = SYNC_PAYLOAD_LIMIT,
        network: bool = False,
        tenancy: str = PER_USER,
        tenant_key: bytes = b"",
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
        self.network = network
        if tenancy not in (PER_USER, SHARED):
            raise ValueError(f"unknown tenancy {tenancy!r}")
        self.tenancy = tenancy
        self._tenant_key = tenant_key
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
        payload = encode_request(request, network=self.network)
        if len(payload) > self._max_payload_bytes:
            self._count("payload_too_large")
            return refused(
                "PayloadTooLarge",
                f"the job's code and input make a {len(payload)}-byte Lambda request, more "
                f"than the {self._max_payload_bytes} bytes Lambda accepts for a synchronous "
                "invoke; nothing ran. Send a smaller file or input.",
                self.name,
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
                    function_error, body = self._invoke(payload, request)
                break
            except Refused as refusal:
                hint = ""
                if "tenant" in refusal.message.lower():
                    hint = (
                        f" (JOBBOT_LAMBDA_TENANCY={self.tenancy} does not match the "
                        "function's tenancy: see `python -m bot doctor`)"
                    )
                return refused(
                    refusal.code,
                    f"Lambda refused the invoke ({refusal.message}){hint}; nothing ran, and "
                    "it would be refused again",
                    self.name,
                )
            except ThrottledOnce as throttle:
                if attempt > self._throttle_retries:
                    delay = self._requeue_delay(throttle.retry_after)
                    raise Throttled(
                        f"Lambda is throttling the runner function ({throttle.reason}); "
                        f"nothing ran, trying again in {delay:.1f} s",
                        retry_after=delay,
                    ) from None
                time.sleep(backoff(attempt, self._throttle_backoff_s, jitter=(0.5, 1.5)))
        with self._lock:
            self._throttle_streak = 0
        elapsed_ms = round((time.monotonic() - started) * 1000)
        result = answer(function_error, body, elapsed_ms, self.name, self._count)
        if result.error_type in OUR_FAILURES:
            log.warning(
                "the Lambda runner failed: %s",
                result.error_message,
                extra={"job_id": request.job_id, "error_type": result.error_type},
            )
        return result

    def stop(self, job_id: int) -> bool:
        """Always False: a synchronous invoke cannot be stopped. It runs to its end (at most
        the function timeout) and `run` returns its result; whoever asked for the stop
        discards that late result (docs/operations.md)."""
        return False

    def describe(self) -> list[tuple[str, str, bool]]:
        """Facts for `doctor`: (check, detail, ok)."""
        meta = self._client.meta
        return [
            (
                "lambda invoke",
                f"{self.function_name} in {meta.region_name} via {meta.endpoint_url}: "
                f"RequestResponse, at most {self.concurrency} in flight, no SDK retries, "
                f"read timeout {read_timeout(self._client):g} s",
                True,
            ),
            (
                "isolation",
                "Lambda (Firecracker microVM per execution environment); each job in a fresh "
                "child: allow-list environment, non-dumpable handler, subreaper, /tmp emptied, "
                "seccomp filter (no signals to the runtime, no ptrace, no io_uring)",
                True,
            ),
            network_row(self.network),
            tenancy_row(self.tenancy, self._tenant_key),
        ]

    def close(self) -> None:
        """Refuse new runs and close the client's connections."""
        self._closed = True
        self._client.close()

    # --- one invoke ----------------------------------------------------------------------

    def tenant(self, request: RunRequest) -> str | None:
        """The tenant id the request is invoked with (None when tenancy is shared)."""
        if self.tenancy == SHARED:
            return None
        return tenant_id(request.owner, self._tenant_key)

    def _invoke(self, payload: bytes, request: RunRequest) -> tuple[str | None, bytes]:
        """(X-Amz-Function-Error or None, body) of one invoke; raises what outcomes maps."""
        client = self._client
        tenant = self.tenant(request)
        try:
            call: InvocationRequestTypeDef = {
                "FunctionName": self.function_name,
                "InvocationType": "RequestResponse",
                "Payload": payload,
            }
            if tenant is not None:
                call["TenantId"] = tenant
            response = client.invoke(**call)
            body = response["Payload"].read()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
            raise invoke_failure(
                exc, self.function_name, read_timeout(client), self._count
            ) from exc
        meta = response.get("ResponseMetadata", {})
        log.debug(
            "lambda invoked",
            extra={"job_id": request.job_id, "request_id": meta.get("RequestId")},
        )
        return response.get("FunctionError"), body

    def _requeue_delay(self, hint: float | None) -> float:
        with self._lock:
            self._throttle_streak += 1
            streak = self._throttle_streak
        delay = backoff(streak, self._requeue_backoff_s, self._requeue_cap_s, jitter=(0.8, 1.2))
        return round(max(hint or 0.0, delay), 3)
