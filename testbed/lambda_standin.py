"""A loopback stand-in for AWS Lambda: the Invoke API boto3 calls, in front of emulated
execution environments that run the real handler through a Runtime API that behaves as
AWS's emulator core (rapid) does.

- **Invoke API** (`POST /2015-03-31/functions/{name}/invocations`) with the wire format of
  execution.md §4: 200 with `X-Amz-Executed-Version`, `X-Amz-Function-Error` on function
  errors, 429 `TooManyRequestsException` with `Retry-After` and `Reason` (injected, or when
  every allowed invocation slot is busy), 413 `RequestTooLargeException`, 404
  `ResourceNotFoundException`, and `X-Amz-Tenant-Id` (required by a per-tenant function,
  refused by any other). The real boto3 client reaches it through `endpoint_url` /
  `AWS_ENDPOINT_URL_LAMBDA` with dummy credentials.
- **Execution environments** (testbed/lambda_pool.py, lambda_environment.py): each a
  namespace "microVM" with a private `/tmp`, its own PID space, an unprivileged uid, fake
  AWS credentials in the runtime's environment and its own Runtime API
  (testbed/lambda_runtime_api.py: `/next` during an invocation re-sends its event, a result
  is matched by request id alone, `/next` after a result hands out the next invocation).
  The runtime is the stdlib loop of lambda_bootstrap.py, AWS's own `awslambdaric`, or
  ("external") the test itself. Warm environments serve later invocations one at a time;
  a per-tenant function never routes two tenants to one environment.
- **Timeouts** as AWS documents them: the function timeout bounds the invoke phase (a
  cold start's init is not counted); when it strikes, the invocation fails with
  `Sandbox.Timedout` and the environment is reset. A crashed runtime fails it with
  `Runtime.ExitError` ("Runtime exited with error: signal: killed") and resets it too; the
  re-init after a reset counts into the next invocation's timeout (suppressed init).
- **Simulated function** (`runtime="simulated"`): no environment at all; every invocation
  "runs" for a fixed time and returns a canned response (for the throughput benchmark).
- **Faults** (testbed/lambda_faults.py), applied to the next invocations in order.
- **Counting**: invoke requests received, events handed to a runtime, and beacon hits that
  user code sends to `GET /beacon/{key}` (proof of how often user code really ran).

As root, environments get mount and PID namespaces and run as uid 993; otherwise (or with
JOBBOT_STANDIN_USERNS=1) a user namespace maps uid 993 to the caller's uid; a machine that
allows neither makes the constructor raise, saying so.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bot.executors.aws_lambda import package as lambda_package
from testbed.lambda_faults import Fault, Faults, Record, canned_response, function_error_body
from testbed.lambda_function import (
    ACCOUNT,
    FAKE_CREDENTIALS,
    RUNTIME_API_PORT,
    RUNTIME_UID,
    FunctionCode,
    check_user_namespaces,
    needs_user_namespace,
)
from testbed.lambda_pool import Environment, Pool
from testbed.lambda_runtime_api import (
    SYNC_PAYLOAD_LIMIT,
    Invocation,
    RuntimeApi,
    new_request_id,
)
from testbed.loopback_http import LoopbackServer, QuietHandler
from testbed.processes import descendants, uid_of

__all__ = ["FAKE_CREDENTIALS", "RUNTIME_UID", "LambdaStandIn", "Record"]

_INVOKE = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations(?:\?.*)?$")
_FUNCTION = re.compile(r"^/2015-03-31/functions/([^/?]+)(?:\?.*)?$")


class LambdaStandIn(Faults):
    """The stand-in; use as a context manager. Thread-safe.

    Args:
        function_name: the one function it serves (anything else is a 404).
        timeout_s: the function timeout (see the module docstring).
        memory_mb: reported to the runtime as AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
        max_concurrency: invocations (or simulated runs) at once; beyond: 429.
        runtime: "bootstrap", "awslambdaric", "external" or "simulated".
        tenancy: "per-tenant" (TenantIsolationMode PER_TENANT, as `lambda deploy` creates
            it by default) or "shared".
        handler: the MODULE.FUNCTION the runtime calls (default: the deployed one).
        extra_files: more files for the task root (a test's own handler module).
        simulated_s, simulated_response: what a simulated invocation takes and returns.
        latency_s: added before each invocation reaches its environment.
        max_request_bytes: larger invoke requests get 413.
        credentials: the AWS credentials put in the runtime's environment.
        python: the runtime's interpreter (default: this one); Lambda's is python3.13.
        opt: an unpacked layer the environments see at /opt (testbed/lambda_layer.py builds
            the job packages' one, as `lambda deploy` does); None: an empty /opt.
        network: "host" shares this machine's network (the Runtime API on a port of its
            own); "private" gives each environment a network namespace whose loopback holds
            only the Runtime API (at 127.0.0.1:9001, as on Lambda) and the beacons: the test
            host's local services are then out of reach, as they are from Lambda.
        layer: instead of `opt`, packages for this interpreter at /opt/python.
    """

    def __init__(
        self,
        *,
        function_name: str = "jobbot-runner",
        timeout_s: float = 15.0,
        memory_mb: int = 512,
        max_concurrency: int = 4,
        runtime: str = "bootstrap",
        tenancy: str = "per-tenant",
        handler: str = lambda_package.HANDLER,
        extra_files: dict[str, bytes] | None = None,
        simulated_s: float = 1.0,
        simulated_response: dict[str, Any] | None = None,
        latency_s: float = 0.0,
        max_request_bytes: int = SYNC_PAYLOAD_LIMIT,
        region: str = "us-east-1",
        credentials: dict[str, str] | None = None,
        tmp_mb: int = 64,
        python: str | None = None,
        network: str = "host",
        opt: Path | None = None,
        layer: str | None = None,
    ) -> None:
        if runtime not in {"bootstrap", "awslambdaric", "external", "simulated"}:
            raise ValueError(f"unknown runtime {runtime!r}")
        if network not in {"host", "private"}:
            raise ValueError(f"unknown network {network!r}")
        if tenancy not in {"shared", "per-tenant"}:
            raise ValueError(f"unknown tenancy {tenancy!r}")
        if runtime in {"bootstrap", "awslambdaric"} and needs_user_namespace():
            check_user_namespaces()
        super().__init__()
        self.network = network
        self.function_name = function_name
        self.timeout_s = timeout_s
        self.max_concurrency = max_concurrency
        self.runtime = runtime
        self.tenancy = tenancy
        self.simulated_s = simulated_s
        self.simulated_response = simulated_response or canned_response()
        self.latency_s = latency_s
        self.max_request_bytes = max_request_bytes
        self.region = region
        self.workdir = Path(tempfile.mkdtemp(prefix="lambda-standin-"))
        self.function = FunctionCode(
            workdir=self.workdir,
            name=function_name,
            region=region,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            tmp_mb=tmp_mb,
            runtime=runtime,
            handler=handler,
            python=python,
            credentials=dict(FAKE_CREDENTIALS if credentials is None else credentials),
            tenancy=tenancy,
            extra_files=dict(extra_files or {}),
            opt=opt,
            layer=layer,
        )
        self.function_arn = self.function.arn
        self.records: list[Record] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.beacons: collections.Counter[str] = collections.Counter()
        self._busy = 0
        self.peak_busy = 0  # most invocations running at once
        self._in_flight = 0
        self.pool = Pool(self._start_environment, per_tenant=tenancy == "per-tenant")
        if runtime in {"bootstrap", "awslambdaric"}:
            self.function.stage()
        self._server = LoopbackServer(self._invoke_handler())
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    # --- environments --------------------------------------------------------------------

    def _start_environment(self, index: int, tenant_id: str | None) -> Environment:
        api = RuntimeApi(
            self.function_arn,
            on_ready=self.pool.notify,
            on_delivered=lambda _: self.count("executions"),
        )
        log_path = self.workdir / f"environment-{index}.log"
        if self.runtime == "external":
            return Environment(index, tenant_id, api, None, log_path)

        def config(address: str) -> dict[str, Any]:
            if self.network == "host":
                return self.function.launch_config(address)
            forward = [[RUNTIME_API_PORT, api.server.port], [self._server.port] * 2]
            return self.function.launch_config(f"127.0.0.1:{RUNTIME_API_PORT}", forward=forward)

        return Environment(index, tenant_id, api, config, log_path)

    @property
    def runtime_is_host_root(self) -> bool:
        """The forced user-namespace path as root: uid 993 inside is root outside, which the
        kernel exempts from RLIMIT_NPROC (it is never so inside Lambda)."""
        return needs_user_namespace() and os.geteuid() == 0

    def environments(self) -> int:
        """Environments started so far."""
        return len(self.pool.all())

    def live_environments(self) -> int:
        """Environments whose runtime is still alive."""
        return sum(not e.dead.is_set() for e in self.pool.all())

    def processes(self, uid: int = RUNTIME_UID) -> list[int]:
        """Pids of the processes running as `uid` inside this stand-in's environments (other
        stand-ins on the machine, of other tests or sessions, have their own)."""
        launchers = [
            e.process.pid for e in self.pool.all() if e.process is not None and not e.dead.is_set()
        ]
        return sorted(pid for root in launchers for pid in descendants(root) if uid_of(pid) == uid)

    def ready_environments(self) -> int:
        """Environments whose runtime waits in /next with nothing assigned."""
        return sum(e.api.idle() for e in self.pool.all() if not e.dead.is_set())

    def environment(self, index: int) -> Environment:
        """The environment with this index (it must have been started)."""
        return self.pool.all()[index]

    def warm_up(self, count: int = 1, tenant_id: str | None = None) -> None:
        """Start environments (of `tenant_id`) now, so the first invocations are warm."""
        self.pool.warm_up(count, tenant_id)

    def logs(self) -> str:
        """Everything the environments wrote to stdout/stderr (for failure messages)."""
        parts = []
        for path in sorted(self.workdir.glob("environment-*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stop everything and remove the working directory."""
        self._server.shutdown()
        self._server.server_close()
        for environment in self.pool.all():
            environment.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LambdaStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- what tests use ----------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 (`endpoint_url` or AWS_ENDPOINT_URL_LAMBDA)."""
        return f"http://127.0.0.1:{self._server.port}"

    def beacon_url(self, key: str) -> tuple[str, int, str]:
        """(host, port, path) user code can hit to prove it ran."""
        return "127.0.0.1", self._server.port, f"/beacon/{key}"

    def count(self, name: str, n: int = 1) -> None:
        """Add to a named counter."""
        with self._lock:
            self.counters[name] += n

    @property
    def invocations(self) -> int:
        """Invoke requests received (whatever became of them)."""
        return self.counters["invocations"]

    @property
    def executions(self) -> int:
        """Events handed to a runtime (or simulated runs)."""
        return self.counters["executions"]

    @property
    def in_flight(self) -> int:
        """Invoke requests still being handled."""
        with self._lock:
            return self._in_flight

    def function_description(self) -> dict[str, Any]:
        """What GetFunction answers."""
        return self.function.description()

    # --- the Invoke API ----------------------------------------------------------------

    def _invoke_handler(self) -> type[QuietHandler]:
        standin = self

        class InvokeApi(QuietHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/beacon/"):
                    with standin._lock:
                        standin.beacons[self.path[len("/beacon/") :]] += 1
                    self.reply(200, b"ok", {"Content-Type": "text/plain"})
                    return
                match = _FUNCTION.match(self.path)
                if match and match.group(1) == standin.function_name:
                    body = json.dumps(standin.function_description()).encode()
                    self.reply(200, body, {"Content-Type": "application/json"})
                    return
                standin._error(
                    self, 404, "ResourceNotFoundException", f"Function not found: {self.path}"
                )

            def do_POST(self) -> None:
                with standin._lock:
                    standin._in_flight += 1
                try:
                    standin._serve_invoke(self)
                finally:
                    with standin._lock:
                        standin._in_flight -= 1

        return InvokeApi

    def _error(
        self, request: QuietHandler, status: int, error_type: str, message: str, **extra: str
    ) -> None:
        request_id = str(uuid.uuid4())
        body = {"Type": "User", "message": message, **extra}
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error_type}
        if "Retry-After" in extra:
            headers["Retry-After"] = body.pop("Retry-After")
        request.reply(
            status, json.dumps(body).encode(), {**headers, "x-amzn-RequestId": request_id}
        )
        with self._lock:
            self.records.append(Record(request_id, status, error_type=error_type))

    def _throttle(self, request: QuietHandler, retry_after: str, reason: str) -> None:
        self.count("throttled")
        self._error(
            request, 429, "TooManyRequestsException", "Rate Exceeded.", Reason=reason,
            **{"Retry-After": retry_after},
        )  # fmt: skip

    def _refusal(self, request: QuietHandler, payload: bytes) -> bool:
        """Answer an invoke Lambda refuses before running anything; True if it was one."""
        match = _INVOKE.match(request.path)
        assert match is not None
        name = match.group(1).rsplit(":function:", 1)[-1].split(":", 1)[0]
        tenant_id = request.headers.get("X-Amz-Tenant-Id")
        if name != self.function_name:
            arn = f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{name}"
            self._error(request, 404, "ResourceNotFoundException", f"Function not found: {arn}")
        elif len(payload) > self.max_request_bytes:
            message = (
                f"Request must be smaller than {self.max_request_bytes} bytes for the "
                "InvokeFunction operation"
            )
            self._error(request, 413, "RequestTooLargeException", message)
        elif request.headers.get("X-Amz-Invocation-Type", "RequestResponse") != "RequestResponse":
            self._error(
                request,
                400,
                "InvalidParameterValueException",
                "the stand-in only does RequestResponse",
            )
        elif self.tenancy == "per-tenant" and not tenant_id:
            # Lambda: "Omitting this parameter will cause function invocations to fail"
            message = "A tenant ID is required to invoke a function with tenant isolation mode"
            self._error(request, 400, "InvalidParameterValueException", message)
        elif self.tenancy == "shared" and tenant_id:
            message = "A tenant ID was given for a function without tenant isolation mode"
            self._error(request, 400, "InvalidParameterValueException", message)
        else:
            return False
        return True

    def _serve_invoke(self, request: QuietHandler) -> None:
        if not _INVOKE.match(request.path):
            request.reply(404, b'{"message":"Unknown operation"}')
            return
        payload = request.body()
        self.count("invocations")
        if self._refusal(request, payload):
            return
        if self.throttled_now():
            self._throttle(request, "1", "ConcurrentInvocationLimitExceeded")
            return
        fault = self.next_fault()
        if fault is not None and fault.kind == "throttle":
            self._throttle(request, **fault.params)
            return
        if fault is not None and fault.kind == "service_error":
            params = fault.params
            self._error(request, params["status"], params["code"], params["message"])
            return
        with self._lock:
            admitted = self._busy < self.max_concurrency
            if admitted:
                self._busy += 1
                self.peak_busy = max(self.peak_busy, self._busy)
        if not admitted:
            self.put_back(fault)  # meant for an invocation that runs
            self._throttle(request, "1", "ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        try:
            record, body, headers = self._run(request, payload, fault)
        finally:
            with self._lock:
                self._busy -= 1
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.params["seconds"])  # the function is done; its answer is late
        with self._lock:
            self.records.append(record)
        request.reply(200, body, headers)

    def _run(
        self, request: QuietHandler, payload: bytes, fault: Fault | None
    ) -> tuple[Record, bytes, dict[str, str]]:
        """Run one invocation; (record, body, headers) of the answer to send."""
        request_id = new_request_id()
        if self.latency_s:
            time.sleep(self.latency_s)
        if self.runtime == "simulated":
            record, body, function_error = self._simulate(request_id)
        else:
            tenant_id = request.headers.get("X-Amz-Tenant-Id")
            record, body, function_error = self._execute(request_id, payload, tenant_id, fault)
        if fault is not None and fault.kind == "malformed":
            function_error, body = None, fault.params["body"]
        elif fault is not None and fault.kind == "function_error":
            function_error = fault.params["kind"]
            body = function_error_body(
                fault.params["error_type"], fault.params["message"], request_id
            )
        headers = {
            "Content-Type": "application/json",
            "X-Amz-Executed-Version": "$LATEST",
            "x-amzn-RequestId": request_id,
        }
        if function_error:
            headers["X-Amz-Function-Error"] = function_error
            try:
                record.error_type = json.loads(body).get("errorType")
            except (ValueError, AttributeError):
                pass
        record.function_error = function_error
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            duration = record.function_ms or 0.0
            log = (
                f"START RequestId: {request_id} Version: $LATEST\n"
                f"END RequestId: {request_id}\n"
                f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\n"
            )
            headers["X-Amz-Log-Result"] = base64.b64encode(log.encode()[-4096:]).decode()
        return record, body, headers

    def _simulate(self, request_id: str) -> tuple[Record, bytes, str | None]:
        self.count("executions")
        started = time.monotonic()
        time.sleep(self.simulated_s)
        record = Record(request_id, 200, executed=True)
        record.function_ms = (time.monotonic() - started) * 1000
        return record, json.dumps(self.simulated_response).encode(), None

    def _execute(
        self, request_id: str, payload: bytes, tenant_id: str | None, fault: Fault | None
    ) -> tuple[Record, bytes, str | None]:
        """Run the invocation in an environment (see Pool.run)."""
        invocation = Invocation(request_id, payload, self.timeout_s, tenant_id=tenant_id)
        cutoff = fault is not None and fault.kind == "cutoff"
        index, body, function_error = self.pool.run(
            invocation,
            fault.params["seconds"] if fault is not None and cutoff else self.timeout_s,
            oom=fault is not None and fault.kind == "kill_runtime" and fault.params["oom"],
            started=lambda environment, _: self.apply_runtime_fault(fault, environment, invocation),
        )
        record = Record(request_id, 200, environment=index)
        record.executed = invocation.delivered_at is not None
        if invocation.delivered_at is not None and invocation.finished_at is not None:
            record.function_ms = (invocation.finished_at - invocation.delivered_at) * 1000
        return record, body, function_error
