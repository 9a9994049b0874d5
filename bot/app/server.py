"""The HTTP side of `serve`: POST /slack/events to Bolt, GET /healthz and GET /metrics, on
waitress."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from bot.core.metrics import Metrics

if TYPE_CHECKING:
    from slack_bolt import App

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20  # Slack payloads are far smaller; anything bigger is refused unread
HEALTH_TIMEOUT_S = 2.0
StartResponse = Callable[[str, list[tuple[str, str]]], Any]
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Refusal(Protocol):
    """Why a request is refused before it is parsed."""

    @property
    def status(self) -> int:
        """The HTTP status sent back."""

    @property
    def text(self) -> str:
        """The plain-text body sent back."""


class Guard(Protocol):
    """Signature, age and replay checks of a Slack request, before anything is parsed."""

    def check(self, headers: Mapping[str, str], body: bytes) -> Refusal | None:
        """None when the request may go on; else why not."""


def request_kind(content_type: str, body: str) -> str:
    """command, interactive, event or other: the label of the ack-latency histogram."""
    if content_type.startswith("application/json"):
        return "event"
    if body.startswith("payload="):
        return "interactive"
    if "command=" in body:
        return "command"
    return "other"


class WebApp:
    """The WSGI application: POST /slack/events to Bolt, GET /healthz and GET /metrics."""

    def __init__(
        self,
        bolt: App | None,
        ping: Callable[[], None],
        metrics: Metrics,
        guard: Guard | None = None,
    ) -> None:
        self.bolt = bolt
        self.ping = ping
        self.metrics = metrics
        self.guard = guard  # signature, age and replay checks before anything is parsed

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/slack/events" and self.bolt is not None:
            if method != "POST":
                return _reply(start_response, 405, "use POST\n")
            return self._slack(environ, start_response)
        if path == "/healthz" and method in {"GET", "HEAD"}:
            ok = self._healthy()
            return _reply(
                start_response, 200 if ok else 503, "ok\n" if ok else "database unavailable\n"
            )
        if path == "/metrics" and method == "GET":
            return _reply(
                start_response,
                200,
                self.metrics.render(),
                "text/plain; version=0.0.4; charset=utf-8",
            )
        return _reply(start_response, 404, "not found\n")

    def _healthy(self) -> bool:
        """Whether the database answers within the health timeout (a hung ping is a 503)."""
        done = threading.Event()
        result: list[bool] = []

        def check() -> None:
            try:
                self.ping()
                result.append(True)
            except Exception:
                result.append(False)
            done.set()

        threading.Thread(target=check, name="healthz", daemon=True).start()
        return done.wait(HEALTH_TIMEOUT_S) and bool(result and result[0])

    def _slack(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        from slack_bolt.request import BoltRequest

        assert self.bolt is not None
        started = time.perf_counter()
        length_text = environ.get("CONTENT_LENGTH") or "0"
        length = int(length_text) if length_text.isdigit() else -1
        if length < 0 or length > MAX_BODY:
            return self._refuse(start_response, 413, "too_large", "request body too large\n")
        raw = environ["wsgi.input"].read(length) if length else b""
        headers: dict[str, str | Sequence[str]] = {}
        for key, value in environ.items():
            if key in {"CONTENT_TYPE", "CONTENT_LENGTH"}:
                headers[key.lower().replace("_", "-")] = str(value)
            elif key.startswith("HTTP_"):
                headers[key[5:].lower().replace("_", "-")] = str(value)
        if self.guard is not None:
            rejection = self.guard.check({k: str(v) for k, v in headers.items()}, raw)
            if rejection is not None:
                return _reply(start_response, rejection.status, rejection.text)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(start_response, 400, "not_utf8", "request body is not UTF-8\n")
        try:
            request = BoltRequest(body=body, query=environ.get("QUERY_STRING", ""), headers=headers)
        except Exception as exc:  # Bolt parses and reads it before any check of its shape
            log.warning("unreadable slack request refused", extra={"error": type(exc).__name__})
            return self._refuse(start_response, 400, "unreadable", "not a Slack request\n")
        try:
            response = self.bolt.dispatch(request)
        except Exception:
            log.exception("slack request failed")
            return _reply(start_response, 500, "internal error\n")
        self.metrics.observe(
            "jobbot_ack_seconds",
            "Time from a Slack request's arrival to its acknowledgement.",
            time.perf_counter() - started,
            kind=request_kind(str(headers.get("content-type", "")), body),
        )
        out_headers = [(k, v) for k, values in response.headers.items() for v in values]
        status = f"{response.status} {REASONS.get(response.status, 'Status')}"
        start_response(status, out_headers)
        return [response.body.encode("utf-8")]

    def _refuse(
        self, start_response: StartResponse, status: int, reason: str, text: str
    ) -> Iterable[bytes]:
        self.metrics.inc(
            "jobbot_slack_requests_rejected_total",
            "Slack HTTP requests refused before processing, by reason.",
            reason=reason,
        )
        return _reply(start_response, status, text)


def _reply(
    start_response: StartResponse, status: int, text: str, content_type: str = "text/plain"
) -> Iterable[bytes]:
    data = text.encode("utf-8")
    start_response(
        f"{status} {REASONS.get(status, 'Status')}",
        [("Content-Type", content_type), ("Content-Length", str(len(data)))],
    )
    return [data]


def stop_http(server: Any, loop: threading.Thread, grace_s: float = 5.0) -> None:
    """Stop waitress: refuse new connections at once, let the requests being handled finish
    (up to `grace_s`), then end its loop. The socket work runs in the loop's thread, handed
    over through waitress's trigger; should the trigger be gone, it is done from here."""
    from waitress import wasyncore  # type: ignore[import-untyped]

    def in_loop(thunk: Callable[[], object]) -> None:
        try:
            server.trigger.pull_trigger(thunk)
        except OSError as exc:  # seen twice under heavy load, not reproduced: do not crash
            log.warning("HTTP server trigger unusable (%s); stopping it from here", exc)
            thunk()

    # The listening socket alone (the server's own close() would take the trigger with it).
    in_loop(lambda: wasyncore.dispatcher.close(server))
    server.task_dispatcher.shutdown(cancel_pending=False, timeout=grace_s)
    in_loop(lambda: wasyncore.close_all(server._map))
    loop.join(timeout=2)
    if loop.is_alive():
        log.warning("the HTTP server did not stop in time")


class HttpServer:
    """waitress serving a WSGI app on every interface, in a thread of its own, until close()."""

    def __init__(self, app: WebApp, port: int, threads: int) -> None:
        import waitress

        self._server = waitress.create_server(
            app,
            host="0.0.0.0",  # noqa: S104 - Slack must reach it; put TLS in front
            port=port,
            threads=threads,
            ident="jobbot",
        )
        self.port = int(self._server.effective_port)
        self._loop = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._loop.start()

    def close(self) -> None:
        """Refuse new connections; let the requests being handled finish (see stop_http)."""
        stop_http(self._server, self._loop)
