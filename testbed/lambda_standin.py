"""A loopback stand-in for AWS Lambda: the Invoke API boto3 calls, in front of emulated
execution environments that run the real handler through the real Runtime API.

- **Invoke API** (`POST /2015-03-31/functions/{name}/invocations`) with the wire format of
  execution.md §4: 200 with `X-Amz-Executed-Version`, `X-Amz-Function-Error` on function
  errors (`Sandbox.Timedout` when the function timeout strikes), 429
  `TooManyRequestsException` with `Retry-After` and `Reason` (injected, or when every
  allowed environment is busy), 413 `RequestTooLargeException`, 404
  `ResourceNotFoundException`. The real boto3 client reaches it through `endpoint_url` /
  `AWS_ENDPOINT_URL_LAMBDA` with dummy credentials.
- **Execution environments** (testbed/lambda_environment.py): each is a namespace
  "microVM" with a private `/tmp`, its own PID space, an unprivileged uid and fake AWS
  credentials in the runtime's environment. They run the deployment zip built by
  `bot.executors.aws_lambda.package` under a runtime that speaks the Runtime API
  (`/2018-06-01/runtime/invocation/next`, `.../response`, `.../error`): by default the small
  stdlib loop of lambda_bootstrap.py, or AWS's own `awslambdaric`. Warm environments are
  reused for later invocations, as Lambda does, and one is killed when its invocation
  overruns the function timeout.
- **Simulated function** (`runtime="simulated"`): no environment at all; every invocation
  "runs" for a fixed time and returns a canned response (for the throughput benchmark).
- **Faults**, applied to the next invocations in order: throttles, injected latency,
  malformed responses, function errors, slow responses (client read timeouts) and early
  kills (`Sandbox.Timedout` while the handler thinks it has time left).
- **Counting**: invoke requests received, events handed to a handler, and beacon hits that
  user code sends to `GET /beacon/{key}` (proof of how often user code really ran).

As root, environments get mount and PID namespaces and run as uid 993; otherwise (or with
JOBBOT_STANDIN_USERNS=1) a user namespace maps uid 993 to the caller's uid, which needs
unprivileged user namespaces.
"""

from __future__ import annotations

import base64
import collections
import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bot.executors.aws_lambda import package as lambda_package
from testbed.processes import descendants, uid_of

SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes, request and response of a synchronous invoke
RUNTIME_UID = 993  # Lambda's sandbox user (sbx_user1051)
ACCOUNT = "123456789012"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIASTANDINFAKEKEY01",
    "AWS_SECRET_ACCESS_KEY": "standin-secret-" + "S" * 25,
    "AWS_SESSION_TOKEN": "standin-session-token-" + "T" * 40,
}
SUPPORT = Path(__file__).resolve().parent
PROJECT = SUPPORT.parent
_INVOKE = re.compile(r"^/2015-03-31/functions/([^/?]+)/invocations(?:\?.*)?$")
_FUNCTION = re.compile(r"^/2015-03-31/functions/([^/?]+)(?:\?.*)?$")
_RUNTIME = re.compile(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$")
_ENV_ROOT = "/srv"  # where lambda_environment.py stages the task root and the runtime


@dataclass
class Fault:
    """Something to do to one invocation instead of (or besides) the normal path."""

    kind: str  # throttle | service_error | malformed | function_error | delay | cutoff
    params: dict[str, Any]


@dataclass
class Invocation:
    """One event on its way through an environment."""

    request_id: str
    payload: bytes
    deadline_ms: int
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = ""  # response | error | exit
    body: bytes = b""
    delivered_at: float | None = None
    finished_at: float | None = None


@dataclass
class Record:
    """What the stand-in did with one invoke request (for assertions and benchmarks)."""

    request_id: str
    status: int
    function_error: str | None = None
    error_type: str | None = None
    executed: bool = False
    function_ms: float | None = None
    environment: int | None = None


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # headers and body go out in two writes: without this, Nagle's algorithm meets the
        # peer's delayed ACK and every answer waits ~40 ms
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (read timeout): nothing to do


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # 64 clients connecting at once must not wait for SYN retries

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a peer that went away
            super().handle_error(request, client_address)


class Environment:
    """One execution environment: a namespaced process tree and its Runtime API endpoint."""

    def __init__(self, standin: LambdaStandIn, index: int) -> None:
        self.standin = standin
        self.index = index
        self.inbox: queue.Queue[Invocation | None] = queue.Queue()
        self.current: Invocation | None = None
        self.dead = threading.Event()
        self.exit_code: int | None = None
        self.init_error: bytes | None = None
        self.log_path = standin.workdir / f"environment-{index}.log"
        env = self

        class RuntimeApi(_Quiet):
            def do_GET(self) -> None:
                if self.path != "/2018-06-01/runtime/invocation/next":
                    self.reply(404, b'{"errorType":"NotFound"}')
                    return
                invocation = env.inbox.get()
                if invocation is None:
                    self.reply(500, b'{"errorType":"EnvironmentShutDown"}')
                    return
                env.current = invocation
                invocation.delivered_at = time.monotonic()
                env.standin.count("executions")
                self.reply(
                    200,
                    invocation.payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn": env.standin.function_arn,
                        "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-0;Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                data = self.body()
                if self.path == "/2018-06-01/runtime/init/error":
                    env.init_error = data
                    self.reply(202, b'{"status":"OK"}')
                    return
                match = _RUNTIME.match(self.path)
                invocation = env.current
                if not match or invocation is None or match.group(1) != invocation.request_id:
                    self.reply(
                        400, b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}'
                    )
                    return
                env.current = None
                invocation.outcome = match.group(2)
                invocation.body = data
                invocation.finished_at = time.monotonic()
                invocation.done.set()
                self.reply(202, b'{"status":"OK"}')

        self.server = _Server(("127.0.0.1", 0), RuntimeApi)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        port = self.server.server_address[1]
        config = standin.environment_config(f"127.0.0.1:{port}")
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SUPPORT / "lambda_environment.py")],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={"PATH": os.defpath},
            )
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(config).encode())
        self.process.stdin.close()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        self.exit_code = self.process.wait()
        self.dead.set()
        invocation = self.current
        if invocation is not None and not invocation.done.is_set():
            invocation.outcome = "exit"
            invocation.finished_at = time.monotonic()
            invocation.done.set()
        self.inbox.put(None)

    def invoke(self, invocation: Invocation, timeout_s: float) -> bool:
        """Hand the event to the runtime; False if it did not finish within `timeout_s`."""
        if self.dead.is_set():
            invocation.outcome = "exit"
            return True
        self.inbox.put(invocation)
        return invocation.done.wait(timeout_s)

    def kill(self) -> None:
        """Reset the environment: everything in its PID namespace dies with the launcher."""
        try:
            self.process.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.dead.wait(5)
        self.inbox.put(None)

        def stop_server() -> None:
            self.server.shutdown()  # waits for the serve loop's next poll
            self.server.server_close()

        threading.Thread(target=stop_server, daemon=True).start()


class LambdaStandIn:
    """The stand-in; use as a context manager. Thread-safe.

    Args:
        function_name: the one function it serves (anything else is a 404).
        timeout_s: the function timeout; an invocation still running then is killed
            (its environment reset) and answered with `Sandbox.Timedout`.
        memory_mb: reported to the runtime as AWS_LAMBDA_FUNCTION_MEMORY_SIZE.
        max_concurrency: environments (or simulated runs) at once; beyond: 429.
        runtime: "bootstrap" (stdlib Runtime API loop), "awslambdaric" or "simulated".
        simulated_s, simulated_response: what a simulated invocation takes and returns.
        latency_s: added before each invocation reaches its environment.
        max_request_bytes: larger invoke requests get 413.
        credentials: the AWS credentials put in the runtime's environment.
        python: the runtime's interpreter (default: this one); Lambda's is python3.13.
        network: "host" shares this machine's network; "private" gives each environment a
            network namespace whose loopback holds only the Runtime API and the beacons (as
            in a microVM, where 127.0.0.1 is the VM's own): the test host's local services
            (its database, say) are then out of reach, as they are from Lambda.
    """

    def __init__(
        self,
        *,
        function_name: str = "jobbot-runner",
        timeout_s: float = 15.0,
        memory_mb: int = 512,
        max_concurrency: int = 4,
        runtime: str = "bootstrap",
        simulated_s: float = 1.0,
        simulated_response: dict[str, Any] | None = None,
        latency_s: float = 0.0,
        max_request_bytes: int = SYNC_PAYLOAD_LIMIT,
        region: str = "us-east-1",
        credentials: dict[str, str] | None = None,
        tmp_mb: int = 64,
        python: str | None = None,
        network: str = "host",
    ) -> None:
        if runtime not in {"bootstrap", "awslambdaric", "simulated"}:
            raise ValueError(f"unknown runtime {runtime!r}")
        if network not in {"host", "private"}:
            raise ValueError(f"unknown network {network!r}")
        self.network = network
        self.function_name = function_name
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.max_concurrency = max_concurrency
        self.runtime = runtime
        self.simulated_s = simulated_s
        self.simulated_response = simulated_response or _canned_response()
        self.latency_s = latency_s
        self.max_request_bytes = max_request_bytes
        self.region = region
        self.credentials = dict(FAKE_CREDENTIALS if credentials is None else credentials)
        self.tmp_mb = tmp_mb
        self.python, self.python_prefix = _interpreter(python)
        self.function_arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function_name}"
        self.workdir = Path(tempfile.mkdtemp(prefix="lambda-standin-"))
        self.records: list[Record] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.beacons: collections.Counter[str] = collections.Counter()
        self._faults: collections.deque[Fault] = collections.deque()
        self._lock = threading.Lock()
        self._idle: list[Environment] = []
        self._environments: list[Environment] = []
        self._busy = 0
        self.peak_busy = 0  # most invocations running at once
        self._throttle_until = 0.0
        self._in_flight = 0
        if runtime != "simulated":
            self._prepare_code()
        self._server = _Server(("127.0.0.1", 0), self._invoke_handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    # --- set-up ------------------------------------------------------------------------

    def _prepare_code(self) -> None:
        os.chmod(self.workdir, 0o755)  # noqa: S103 - the runtime's uid reads the code
        task = self.workdir / "task"
        (self.workdir / "function.zip").write_bytes(lambda_package.build_zip())
        with zipfile.ZipFile(self.workdir / "function.zip") as archive:
            archive.extractall(task)
        runtime = self.workdir / "runtime"
        runtime.mkdir()
        shutil.copy(SUPPORT / "lambda_bootstrap.py", runtime / "bootstrap.py")
        for path in (task, runtime, *task.rglob("*"), *runtime.rglob("*")):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)

    @property
    def userns(self) -> bool:
        """True when environments live in a user namespace (the non-root path)."""
        return os.geteuid() != 0 or os.environ.get("JOBBOT_STANDIN_USERNS") == "1"

    @property
    def runtime_is_host_root(self) -> bool:
        """The forced user-namespace path as root: uid 993 inside is root outside, which the
        kernel exempts from RLIMIT_NPROC (it is never so inside Lambda)."""
        return self.userns and os.geteuid() == 0

    def environment_config(self, runtime_api: str) -> dict[str, Any]:
        """The launcher's configuration for one environment."""
        python, prefix = self.python, self.python_prefix
        binds = [
            [str(self.workdir / "task"), f"{_ENV_ROOT}/task"],
            [str(self.workdir / "runtime"), f"{_ENV_ROOT}/runtime"],
            [prefix, prefix],
        ]
        env = {
            "PATH": f"{prefix}/bin:/usr/local/bin:/usr/bin:/bin",
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": f"{_ENV_ROOT}/task",
            "LAMBDA_RUNTIME_DIR": f"{_ENV_ROOT}/runtime",
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": self.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"2026/01/01/[$LATEST]{uuid.uuid4().hex}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "_HANDLER": lambda_package.HANDLER,
            **self.credentials,
        }
        if self.runtime == "awslambdaric":
            binds.append([sysconfig.get_paths()["purelib"], f"{_ENV_ROOT}/packages"])
            env["PYTHONPATH"] = f"{_ENV_ROOT}/packages"
            argv = [python, "-m", "awslambdaric", lambda_package.HANDLER]
        else:
            argv = [python, f"{_ENV_ROOT}/runtime/bootstrap.py", lambda_package.HANDLER]
        return {
            "userns": self.userns,
            "uid": RUNTIME_UID,
            "gid": RUNTIME_UID,
            "tmp_mb": self.tmp_mb,
            "binds": binds,
            # Lambda has neither the host's /run (its database socket) nor a writable /var/tmp
            "hide": sorted({str(PROJECT), str(Path.home()), "/run", "/var/tmp"}),
            "env": env,
            "argv": argv,
            "cwd": f"{_ENV_ROOT}/task",
            "forward": self._forwarded(runtime_api) if self.network == "private" else [],
        }

    def _forwarded(self, runtime_api: str) -> list[int]:
        """Ports a private network relays to the host: the Runtime API and the beacons."""
        return [int(runtime_api.rsplit(":", 1)[1]), int(self._server.server_address[1])]

    def function_description(self) -> dict[str, Any]:
        """What GetFunction answers (the fields doctor reads)."""
        package = self.workdir / "function.zip"
        sha = lambda_package.code_sha256(package.read_bytes()) if package.exists() else ""
        return {
            "Configuration": {
                "FunctionName": self.function_name,
                "FunctionArn": self.function_arn,
                "Runtime": "python3.13",
                "Role": f"arn:aws:iam::{ACCOUNT}:role/{self.function_name}-execution",
                "Handler": lambda_package.HANDLER,
                "CodeSha256": sha,
                "Timeout": math.ceil(self.timeout_s),
                "MemorySize": self.memory_mb,
                "State": "Active",
                "LastUpdateStatus": "Successful",
                "PackageType": "Zip",
                "Architectures": ["arm64"],
            },
            "Code": {"RepositoryType": "S3", "Location": "http://example.invalid/code.zip"},
        }

    # --- what tests use ----------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        """The URL to give boto3 (`endpoint_url` or AWS_ENDPOINT_URL_LAMBDA)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def beacon_url(self, key: str) -> tuple[str, int, str]:
        """(host, port, path) user code can hit to prove it ran."""
        host, port = self._server.server_address[:2]
        return str(host), int(port), f"/beacon/{key}"

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
        """Events handed to a handler (or simulated runs)."""
        return self.counters["executions"]

    @property
    def in_flight(self) -> int:
        """Invoke requests still being handled."""
        with self._lock:
            return self._in_flight

    def throttle(
        self,
        times: int = 1,
        retry_after: str = "1",
        reason: str = "ReservedFunctionConcurrentInvocationLimitExceeded",
    ) -> None:
        """Answer the next `times` invocations with 429 TooManyRequestsException."""
        self._add("throttle", times, retry_after=retry_after, reason=reason)

    def throttle_for(self, seconds: float) -> None:
        """Answer every invocation with 429 for the next `seconds` (an account-level squeeze)."""
        with self._lock:
            self._throttle_until = time.monotonic() + seconds

    def malformed_response(self, body: bytes, times: int = 1) -> None:
        """Run the next invocations normally, then answer 200 with `body` instead."""
        self._add("malformed", times, body=body)

    def function_error(
        self, error_type: str, message: str, kind: str = "Unhandled", times: int = 1
    ) -> None:
        """Run the next invocations, then answer with this function error instead."""
        self._add("function_error", times, error_type=error_type, message=message, kind=kind)

    def service_error(self, status: int, code: str, message: str, times: int = 1) -> None:
        """Answer the next invocations with a Lambda service error, without running them."""
        self._add("service_error", times, status=status, code=code, message=message)

    def delay_response(self, seconds: float, times: int = 1) -> None:
        """Run the next invocations, then hold the answer back for `seconds`."""
        self._add("delay", times, seconds=seconds)

    def cut_off(self, seconds: float, times: int = 1) -> None:
        """Kill the next invocations after `seconds`, though their context says more is left."""
        self._add("cutoff", times, seconds=seconds)

    def environments(self) -> int:
        """Environments started so far."""
        with self._lock:
            return len(self._environments)

    def live_environments(self) -> int:
        """Environments whose runtime is still alive."""
        with self._lock:
            return sum(not e.dead.is_set() for e in self._environments)

    def processes(self, uid: int = RUNTIME_UID) -> list[int]:
        """Pids of the processes running as `uid` inside this stand-in's environments (other
        stand-ins on the machine, of other tests or sessions, have their own)."""
        with self._lock:
            launchers = [e.process.pid for e in self._environments if not e.dead.is_set()]
        return sorted(pid for root in launchers for pid in descendants(root) if uid_of(pid) == uid)

    def logs(self) -> str:
        """Everything the environments wrote to stdout/stderr (for failure messages)."""
        parts = []
        for path in sorted(self.workdir.glob("environment-*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def warm_up(self, count: int = 1) -> None:
        """Start `count` environments now, so the first invocations are warm."""
        with self._lock:
            for _ in range(count - len(self._environments)):
                environment = Environment(self, len(self._environments))
                self._environments.append(environment)
                self._idle.append(environment)

    def close(self) -> None:
        """Stop everything and remove the working directory."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            environments = list(self._environments)
        for environment in environments:
            environment.kill()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LambdaStandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the Invoke API ----------------------------------------------------------------

    def _add(self, fault: str, times: int, **params: Any) -> None:
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(fault, params))

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _acquire(self) -> tuple[bool, Environment | None]:
        """(admitted, environment): an idle or new environment (None when simulated), or
        (False, None) when the concurrency limit is reached."""
        with self._lock:
            if self._busy >= self.max_concurrency:
                return False, None
            self._busy += 1
            self.peak_busy = max(self.peak_busy, self._busy)
            if self.runtime == "simulated":
                return True, None
            while self._idle:
                environment = self._idle.pop()
                if not environment.dead.is_set():
                    return True, environment
            environment = Environment(self, len(self._environments))
            self._environments.append(environment)
            return True, environment

    def _release(self, environment: Environment | None) -> None:
        with self._lock:
            self._busy -= 1
            if environment is not None and not environment.dead.is_set():
                self._idle.append(environment)

    def _invoke_handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class InvokeApi(_Quiet):
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
                    self,
                    404,
                    "ResourceNotFoundException",
                    {"Type": "User", "Message": f"Function not found: {self.path}"},
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
        self, request: _Quiet, status: int, error_type: str, body: dict[str, Any], **headers: str
    ) -> None:
        request_id = str(uuid.uuid4())
        request.reply(
            status,
            json.dumps(body).encode(),
            {
                "Content-Type": "application/json",
                "x-amzn-ErrorType": error_type,
                "x-amzn-RequestId": request_id,
                **headers,
            },
        )
        with self._lock:
            self.records.append(Record(request_id, status, error_type=error_type))

    def _serve_invoke(self, request: _Quiet) -> None:
        match = _INVOKE.match(request.path)
        if not match:
            request.reply(404, b'{"message":"Unknown operation"}')
            return
        payload = request.body()
        self.count("invocations")
        name = match.group(1).rsplit(":function:", 1)[-1].split(":", 1)[0]
        if name != self.function_name:
            self._error(
                request,
                404,
                "ResourceNotFoundException",
                {
                    "Type": "User",
                    "Message": f"Function not found: arn:aws:lambda:{self.region}:{ACCOUNT}"
                    f":function:{name}",
                },
            )
            return
        if len(payload) > self.max_request_bytes:
            self._error(
                request,
                413,
                "RequestTooLargeException",
                {
                    "Type": "User",
                    "message": f"Request must be smaller than {self.max_request_bytes} bytes "
                    "for the InvokeFunction operation",
                },
            )
            return
        invocation_type = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if invocation_type != "RequestResponse":
            self._error(
                request,
                400,
                "InvalidParameterValueException",
                {"Type": "User", "message": "the stand-in only does RequestResponse"},
            )
            return
        if time.monotonic() < self._throttle_until:
            self.count("throttled")
            self._throttle(request, "1", "ConcurrentInvocationLimitExceeded")
            return
        fault = self._next_fault()
        if fault is not None and fault.kind == "throttle":
            self.count("throttled")
            self._throttle(request, **fault.params)
            return
        if fault is not None and fault.kind == "service_error":
            params = fault.params
            self._error(request, params["status"], params["code"], {"message": params["message"]})
            return
        admitted, environment = self._acquire()
        if not admitted:
            if fault is not None:
                with self._lock:
                    self._faults.appendleft(fault)  # meant for an invocation that runs
            self.count("throttled")
            self._throttle(request, "1", "ReservedFunctionConcurrentInvocationLimitExceeded")
            return
        try:
            record, body, headers = self._run(request, environment, payload, fault)
        finally:
            self._release(environment)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.params["seconds"])  # the function is done; its answer is late
        with self._lock:
            self.records.append(record)
        request.reply(200, body, headers)

    def _throttle(self, request: _Quiet, retry_after: str, reason: str) -> None:
        self._error(
            request,
            429,
            "TooManyRequestsException",
            {"Type": "User", "message": "Rate Exceeded.", "Reason": reason},
            **{"Retry-After": retry_after},
        )

    def _run(
        self,
        request: _Quiet,
        environment: Environment | None,
        payload: bytes,
        fault: Fault | None,
    ) -> tuple[Record, bytes, dict[str, str]]:
        """Run one invocation; (record, body, headers) of the answer to send."""
        request_id = str(uuid.uuid4())
        record = Record(request_id, 200, environment=environment and environment.index)
        if self.latency_s:
            time.sleep(self.latency_s)
        enforced = self.timeout_s
        if fault is not None and fault.kind == "cutoff":
            enforced = fault.params["seconds"]
        function_error: str | None = None
        if environment is None:  # simulated
            self.count("executions")
            started = time.monotonic()
            time.sleep(self.simulated_s)
            body = json.dumps(self.simulated_response).encode()
            record.executed, record.function_ms = True, (time.monotonic() - started) * 1000
        else:
            deadline_ms = int((time.time() + self.timeout_s) * 1000)
            invocation = Invocation(request_id, payload, deadline_ms)
            finished = environment.invoke(invocation, enforced)
            record.executed = invocation.delivered_at is not None
            if invocation.delivered_at is not None and invocation.finished_at is not None:
                record.function_ms = (invocation.finished_at - invocation.delivered_at) * 1000
            if not finished:
                environment.kill()
                function_error = "Unhandled"
                body = json.dumps(
                    {
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": f"RequestId: {request_id} Error: Task timed out "
                        f"after {enforced:.2f} seconds",
                    }
                ).encode()
            elif invocation.outcome == "exit":
                function_error = "Unhandled"
                code = environment.exit_code
                body = json.dumps(
                    {
                        "errorType": "Runtime.ExitError",
                        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with "
                        f"error: exit status {code}",
                    }
                ).encode()
            elif invocation.outcome == "error":
                function_error = "Unhandled"
                body = invocation.body
            elif len(invocation.body) > SYNC_PAYLOAD_LIMIT:
                function_error = "Unhandled"
                body = json.dumps(
                    {
                        "errorType": "Function.ResponseSizeTooLarge",
                        "errorMessage": "Response payload size exceeded maximum allowed "
                        f"payload size ({SYNC_PAYLOAD_LIMIT} bytes).",
                    }
                ).encode()
            else:
                body = invocation.body
        if fault is not None and fault.kind == "malformed":
            function_error, body = None, fault.params["body"]
        elif fault is not None and fault.kind == "function_error":
            function_error = fault.params["kind"]
            body = json.dumps(
                {
                    "errorMessage": fault.params["message"],
                    "errorType": fault.params["error_type"],
                    "requestId": request_id,
                    "stackTrace": [],
                }
            ).encode()
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


def _interpreter(python: str | None) -> tuple[str, str]:
    """(the real binary, its installation prefix) of `python` (a shim or venv is resolved)."""
    if python is None:
        return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)
    found = subprocess.run(
        [python, "-c", "import sys; print(sys.executable); print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    return os.path.realpath(found[0]), os.path.realpath(found[1])


def _canned_response() -> dict[str, Any]:
    return {
        "v": 1,
        "outcome": "ok",
        "result_json": '"simulated"',
        "result_kind": "return",
        "stdout": "",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
        "error_type": None,
        "error_message": None,
        "traceback": None,
        "duration_ms": 1000,
        "exit_code": 0,
        "signal": None,
    }
