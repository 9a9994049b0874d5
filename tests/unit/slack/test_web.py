"""The web app of `serve`: /healthz follows the database both ways, /metrics, and Slack
requests that are too big, not UTF-8 or not POST are refused before Bolt sees them."""

from __future__ import annotations

from flask import Flask

from bot.app.server import Mount, build_web_app
from bot.core.metrics import Metrics
from bot.errors import StoreUnavailable
from bot.slack.http import MAX_BODY, SlackEvents, request_kind


class Database:
    def __init__(self) -> None:
        self.up = True

    def ping(self) -> None:
        if not self.up:
            raise StoreUnavailable("down")


def slack_only(bolt: object, metrics: Metrics) -> Flask:
    events = SlackEvents(bolt, metrics)  # type: ignore[arg-type]
    return build_web_app(lambda: None, metrics, [Mount(events.blueprint)])


def test_healthz_goes_503_while_the_database_is_down_and_recovers_by_itself() -> None:
    db = Database()
    client = build_web_app(db.ping, Metrics()).test_client()
    answer = client.get("/healthz")
    assert (answer.status_code, answer.data) == (200, b"ok\n")
    db.up = False
    assert client.get("/healthz").status_code == 503
    db.up = True
    assert client.get("/healthz").status_code == 200


def test_metrics_are_prometheus_text() -> None:
    metrics = Metrics()
    metrics.inc("jobbot_slack_errors_total", "Slack errors.", kind="rate_limited")
    answer = build_web_app(lambda: None, metrics).test_client().get("/metrics")
    assert answer.status_code == 200
    assert b'jobbot_slack_errors_total{kind="rate_limited"} 1' in answer.data
    assert answer.content_type.startswith("text/plain; version=0.0.4")


def test_slack_requests_that_cannot_be_slack_are_refused_early() -> None:
    class NeverBolt:
        def dispatch(self, request: object) -> object:
            raise AssertionError("Bolt must not see this request")

    metrics = Metrics()
    client = slack_only(NeverBolt(), metrics).test_client()
    wrong_method = client.get("/slack/events")
    assert wrong_method.status_code == 405 and wrong_method.headers["Allow"] == "POST"
    too_big = client.post("/slack/events", data=b"x" * (MAX_BODY + 1))
    assert (too_big.status_code, too_big.data) == (413, b"request body too large\n")
    assert client.post("/slack/events", data=b"\xff\xfe{}").status_code == 400
    assert client.post("/elsewhere").status_code == 404
    rejected = "jobbot_slack_requests_rejected_total"
    assert metrics.value(rejected, reason="too_large") == 1
    assert metrics.value(rejected, reason="not_utf8") == 1


def test_a_crash_in_bolt_is_a_plain_500() -> None:
    class CrashingBolt:
        def dispatch(self, request: object) -> object:
            raise RuntimeError("boom")

    answer = slack_only(CrashingBolt(), Metrics()).test_client().post("/slack/events", data="a=1")
    assert (answer.status_code, answer.data) == (500, b"internal error\n")


def test_requests_are_labelled_by_kind_for_the_ack_histogram() -> None:
    assert request_kind("application/json", "{}") == "event"
    assert request_kind("application/x-www-form-urlencoded", "payload=%7B%7D") == "interactive"
    assert request_kind("application/x-www-form-urlencoded", "token=x&command=%2Fjob") == "command"
