"""The WSGI app of `serve`: /healthz follows the database both ways, /metrics, and Slack
requests that are too big, not UTF-8 or not POST are refused before Bolt sees them."""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from bot.app.server import WebApp, request_kind
from bot.core.metrics import Metrics
from bot.errors import StoreUnavailable


def call(
    app: WebApp, method: str, path: str, body: bytes = b"", length: str | None = None
) -> tuple[str, bytes]:
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen.append(status)

    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "CONTENT_LENGTH": str(len(body)) if length is None else length,
        "CONTENT_TYPE": "application/json",
        "wsgi.input": io.BytesIO(body),
    }
    out: Iterable[bytes] = app(environ, start_response)
    return seen[0], b"".join(out)


class Database:
    def __init__(self) -> None:
        self.up = True

    def ping(self) -> None:
        if not self.up:
            raise StoreUnavailable("down")


def test_healthz_goes_503_while_the_database_is_down_and_recovers_by_itself() -> None:
    db = Database()
    app = WebApp(None, db.ping, Metrics())
    assert call(app, "GET", "/healthz") == ("200 OK", b"ok\n")
    db.up = False
    assert call(app, "GET", "/healthz")[0] == "503 Service Unavailable"
    db.up = True
    assert call(app, "GET", "/healthz")[0] == "200 OK"


def test_metrics_are_prometheus_text() -> None:
    metrics = Metrics()
    metrics.inc("jobbot_slack_errors_total", "Slack errors.", kind="rate_limited")
    status, body = call(WebApp(None, lambda: None, metrics), "GET", "/metrics")
    assert status == "200 OK" and b'jobbot_slack_errors_total{kind="rate_limited"} 1' in body


def test_slack_requests_that_cannot_be_slack_are_refused_early() -> None:
    class NeverBolt:
        def dispatch(self, request: object) -> object:
            raise AssertionError("Bolt must not see this request")

    app = WebApp(NeverBolt(), lambda: None, Metrics())  # type: ignore[arg-type]
    assert call(app, "GET", "/slack/events")[0].startswith("405")
    assert call(app, "POST", "/slack/events", b"x", length=str(5 << 20))[0].startswith("413")
    assert call(app, "POST", "/slack/events", b"\xff\xfe{}")[0].startswith("400")
    assert call(app, "POST", "/elsewhere")[0].startswith("404")


def test_requests_are_labelled_by_kind_for_the_ack_histogram() -> None:
    assert request_kind("application/json", "{}") == "event"
    assert request_kind("application/x-www-form-urlencoded", "payload=%7B%7D") == "interactive"
    assert request_kind("application/x-www-form-urlencoded", "token=x&command=%2Fjob") == "command"
