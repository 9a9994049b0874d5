"""The HTTP side of `serve`: one Flask app (GET /healthz, GET /metrics, and the routes mounted on
it: Slack's events, the API), served by waitress."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, Response, request
from werkzeug.exceptions import HTTPException

from bot.core.metrics import Metrics

log = logging.getLogger(__name__)
HEALTH_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Mount:
    """Routes mounted on the web app: a blueprint, and, for the paths it owns, how an error
    raised outside its views (no such route, wrong method, a crash) is answered."""

    blueprint: Blueprint
    owns: Callable[[str], bool] = lambda path: False
    error: Callable[[HTTPException], Response] | None = None


def text(body: str, status: int = 200, content_type: str = "text/plain") -> Response:
    """A plain-text answer."""
    return Response(body, status=status, content_type=content_type)


def healthy(ping: Callable[[], None]) -> bool:
    """Whether the database answers within the health timeout (a hung ping is a 503)."""
    done = threading.Event()
    result: list[bool] = []

    def check() -> None:
        try:
            ping()
            result.append(True)
        except Exception:
            result.append(False)
        done.set()

    threading.Thread(target=check, name="healthz", daemon=True).start()
    return done.wait(HEALTH_TIMEOUT_S) and bool(result and result[0])


def build_web_app(
    ping: Callable[[], None], metrics: Metrics, mounts: Sequence[Mount] = ()
) -> Flask:
    """The WSGI app of `serve`: /healthz, /metrics and every mount's routes."""
    app = Flask("jobbot")
    app.json.sort_keys = False  # type: ignore[attr-defined]

    @app.route("/healthz", methods=["GET", "HEAD"])
    def healthz() -> Response:
        if healthy(ping):
            return text("ok\n")
        return text("database unavailable\n", 503)

    @app.get("/metrics")
    def prometheus() -> Response:
        return text(metrics.render(), content_type="text/plain; version=0.0.4; charset=utf-8")

    for mount in mounts:
        app.register_blueprint(mount.blueprint)

    @app.errorhandler(HTTPException)
    def refused(exc: HTTPException) -> Response:
        # A crash arrives here as an InternalServerError, already logged by Flask.
        for mount in mounts:
            if mount.error is not None and mount.owns(request.path):
                return mount.error(exc)
        status = exc.code or 500
        words = "internal error" if status == 500 else (exc.name or "error").lower()
        answer = text(f"{words}\n", status)
        for name, value in exc.get_headers():
            if name.lower() == "allow":
                answer.headers["Allow"] = value
        return answer

    return app


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
    """waitress serving a WSGI app in a thread of its own, until close(). waitress reads a
    request's whole body before the app sees it, so `max_body` (the largest any route takes)
    is enforced by waitress itself: a bigger body is refused with 413 as it arrives."""

    def __init__(
        self,
        app: Callable[..., Any],
        port: int,
        threads: int,
        *,
        max_body: int = 1 << 30,
        host: str = "0.0.0.0",  # noqa: S104 - Slack and programs must reach it; put TLS in front
        trusted_proxies: int = 0,
    ) -> None:
        import waitress

        # Behind `trusted_proxies` proxies that append to X-Forwarded-For, the client address
        # (REMOTE_ADDR) is the one the outermost of them saw; entries a client sent are ignored.
        proxied: dict[str, Any] = (
            {
                "trusted_proxy": "*",
                "trusted_proxy_count": trusted_proxies,
                "trusted_proxy_headers": {"x-forwarded-for"},
            }
            if trusted_proxies
            else {}
        )
        self._server = waitress.create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="jobbot",
            max_request_body_size=max_body,
            **proxied,
        )
        self.port = int(self._server.effective_port)
        self._loop = threading.Thread(target=self._server.run, name="http", daemon=True)
        self._loop.start()

    def close(self) -> None:
        """Refuse new connections; let the requests being handled finish (see stop_http)."""
        stop_http(self._server, self._loop)
