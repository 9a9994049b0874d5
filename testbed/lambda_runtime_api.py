"""One execution environment's Runtime API, following the states of AWS's emulator core (rapid).

The Lambda Runtime API (`/2018-06-01/runtime/...`) as aws-lambda-runtime-interface-emulator's
rapid core serves it, because the defects it lets through are real ones:

- `GET /invocation/next` moves the runtime to *ready* and waits for the next invocation
  assigned to this environment. Sent while an invocation is running, it answers at once
  with that invocation's event and request id again (rapid's Running state accepts Ready
  and re-renders the current event). Sent after a response, it hands out the next one.
- `POST /invocation/{id}/response` and `.../error` are accepted only while an invocation
  runs (else 403 `InvalidStateTransition`) and only for its request id (else 400
  `InvalidRequestID`); they are matched by request id alone, whoever sends them. A response
  above 6 MB is refused with 413 and the invocation fails with
  `Function.ResponseSizeTooLarge`.
- `POST /init/error` is recorded.

Anything that can reach the listener can therefore take part in the protocol: that is the
point of the stand-in, not a flaw of it.
"""

from __future__ import annotations

import collections
import enum
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from testbed.loopback_http import LoopbackServer, QuietHandler

API = "/2018-06-01/runtime"
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024  # bytes of a synchronous invoke's request or response
_RESULT = re.compile(rf"^{API}/invocation/([^/]+)/(response|error)$")
_ACCEPTED = b'{"status":"OK"}'


class RuntimeState(enum.Enum):
    """rapid's runtime states, as far as the Runtime API shows them."""

    STARTED = "Started"  # launched, has not asked for an event yet
    READY = "Ready"  # waiting in /next for the next invocation
    RUNNING = "Running"  # an invocation has been handed out and is not answered yet
    RESPONDED = "ResponseSent"  # the invocation was answered; /next makes it ready again


@dataclass
class Invocation:
    """One event on its way through an environment."""

    request_id: str
    payload: bytes
    timeout_s: float
    tenant_id: str | None = None
    counts_init: bool = False  # after a reset, Lambda counts the re-init into the timeout
    arrived: float = field(default_factory=time.monotonic)
    delivered: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    deadline_ms: int = 0  # Lambda-Runtime-Deadline-Ms, set when the invoke phase starts
    outcome: str = ""  # response | error | exit | oversized
    body: bytes = b""
    delivered_at: float | None = None
    finished_at: float | None = None

    def finish(self, outcome: str, body: bytes = b"") -> None:
        """Record how the invocation ended (only the first end counts)."""
        if self.done.is_set():
            return
        self.outcome, self.body = outcome, body
        self.finished_at = time.monotonic()
        self.done.set()

    def clock_start(self) -> float | None:
        """When the function timeout started running (None: not yet)."""
        return self.arrived if self.counts_init else self.delivered_at

    def wait_end(self, timeout_s: float, init_limit_s: float) -> bool:
        """Wait for the end within the function timeout; False if it overran. A cold start's
        init is not counted (up to `init_limit_s`), a re-init after a reset is."""
        if self.clock_start() is None:
            self.delivered.wait(init_limit_s + timeout_s)
        start = self.clock_start()
        if start is None:
            return self.done.is_set()
        return self.done.wait(max(0.0, start + timeout_s - time.monotonic()))


def new_request_id() -> str:
    """A request id in Lambda's format (a UUID)."""
    return str(uuid.uuid4())


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class RuntimeApi:
    """The Runtime API of one environment, on its own loopback port.

    Args:
        function_arn: sent as Lambda-Runtime-Invoked-Function-Arn.
        on_ready: called (without locks held) whenever the runtime becomes ready.
        on_delivered: called with each invocation handed out the first time.
    """

    def __init__(
        self,
        function_arn: str,
        on_ready: Callable[[], None] = lambda: None,
        on_delivered: Callable[[Invocation], None] = lambda _: None,
    ) -> None:
        self.function_arn = function_arn
        self._on_ready = on_ready
        self._on_delivered = on_delivered
        self._cond = threading.Condition()
        self._queue: collections.deque[Invocation] = collections.deque()
        self._closed = False
        self.state = RuntimeState.STARTED
        self.current: Invocation | None = None
        self.init_error: bytes | None = None
        self.waiting = 0  # /next requests waiting right now
        self.server = LoopbackServer(self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        """host:port of the listener."""
        return f"127.0.0.1:{self.server.port}"

    # --- what the environment and the Invoke API do ---------------------------------------

    def assign(self, invocation: Invocation) -> None:
        """Queue an invocation for this environment (the next /next takes it)."""
        with self._cond:
            self._queue.append(invocation)
            self._cond.notify_all()

    def end_current(self, outcome: str, body: bytes = b"") -> None:
        """The environment ended (runtime exit, reset): fail what runs and what waits."""
        with self._cond:
            pending = [self.current, *self._queue] if self.current else list(self._queue)
            self._queue.clear()
            self._closed = True
            self._cond.notify_all()
        for invocation in pending:
            if invocation is not None:
                invocation.finish(outcome, body)

    def idle(self) -> bool:
        """True when the runtime waits for an event and none is queued."""
        with self._cond:
            return self.state is RuntimeState.READY and not self._queue and not self._closed

    def close(self) -> None:
        """Stop serving (in the background: shutdown waits for the serve loop's next poll)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

        def stop() -> None:
            self.server.shutdown()
            self.server.server_close()

        threading.Thread(target=stop, daemon=True).start()

    # --- the protocol --------------------------------------------------------------------

    def next_event(self) -> Invocation | None:
        """GET /next: the running invocation again, or the next one (None: shut down)."""
        became_ready = False
        with self._cond:
            if self.state is RuntimeState.RUNNING and self.current is not None:
                return self.current  # rapid: Ready() in Running is a no-op; the event again
            if self.state is not RuntimeState.READY:
                self.state = RuntimeState.READY
                became_ready = True
        if became_ready:
            self._on_ready()
        with self._cond:
            self.waiting += 1
            try:
                while not self._closed and self.state is RuntimeState.READY and not self._queue:
                    self._cond.wait()
                if self.state is RuntimeState.READY and self._queue and not self._closed:
                    invocation = self._queue.popleft()
                    self.current = invocation
                    self.state = RuntimeState.RUNNING
                    self._deliver(invocation)
                    self._cond.notify_all()
                elif self._closed:
                    return None
                return self.current  # a concurrent /next took it: both get the same event
            finally:
                self.waiting -= 1

    def _deliver(self, invocation: Invocation) -> None:
        now = time.monotonic()
        invocation.delivered_at = now
        start = invocation.clock_start() or now
        invocation.deadline_ms = int((time.time() - (now - start) + invocation.timeout_s) * 1000)
        invocation.delivered.set()
        self._on_delivered(invocation)

    def post_result(self, request_id: str, kind: str, body: bytes) -> tuple[int, bytes]:
        """POST /invocation/{id}/response|error: (status, body) for the caller."""
        with self._cond:
            invocation = self.current
            if self.state is not RuntimeState.RUNNING or invocation is None:
                target = "InvocationResponse" if kind == "response" else "InvocationErrorResponse"
                message = (
                    f"State transition from {self.state.value} to {target} failed for "
                    "runtime. Error: State transition is not allowed"
                )
                return 403, _error("InvalidStateTransition", message)
            if request_id != invocation.request_id:
                return 400, _error("InvalidRequestID", "Invalid request ID")
            self.state = RuntimeState.RESPONDED
        if kind == "response" and len(body) > SYNC_PAYLOAD_LIMIT:
            invocation.finish("oversized")
            message = f"Exceeded maximum allowed payload size ({SYNC_PAYLOAD_LIMIT} bytes)."
            return 413, _error("RequestEntityTooLarge", message)
        invocation.finish(kind, body)
        return 202, _ACCEPTED

    def _handler(self) -> type[QuietHandler]:
        api = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                if self.path != f"{API}/invocation/next":
                    self.reply(404, _error("NotFound", "not a Runtime API path"))
                    return
                invocation = api.next_event()
                if invocation is None:
                    self.reply(500, _error("EnvironmentShutDown", "the environment is gone"))
                    return
                headers = {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                    "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                    "Lambda-Runtime-Invoked-Function-Arn": api.function_arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{uuid.uuid4().hex[:8]}-0;Sampled=0",
                }
                if invocation.tenant_id:
                    headers["Lambda-Runtime-Aws-Tenant-Id"] = invocation.tenant_id
                self.reply(200, invocation.payload, headers)

            def do_POST(self) -> None:
                data = self.body()
                if self.path == f"{API}/init/error":
                    api.init_error = data
                    self.reply(202, _ACCEPTED)
                    return
                match = _RESULT.match(self.path)
                if not match:
                    self.reply(404, _error("NotFound", "not a Runtime API path"))
                    return
                status, body = api.post_result(match.group(1), match.group(2), data)
                self.reply(status, body, {"Content-Type": "application/json"})

        return Handler
