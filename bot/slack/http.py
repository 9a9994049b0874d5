"""POST /slack/events as a Flask blueprint: the 1 MB cap before the body is read, the
RequestGuard before Bolt parses anything, Bolt through slack_bolt.adapter.flask, and the
ack-latency histogram."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, request
from slack_bolt import App
from slack_bolt.adapter.flask.handler import to_bolt_request, to_flask_response

from bot.core.metrics import Metrics
from bot.slack.guard import RequestGuard

log = logging.getLogger(__name__)
MAX_BODY = 1 << 20  # Slack payloads are far smaller; anything bigger is refused unread
PATH = "/slack/events"


def request_kind(content_type: str, body: str) -> str:
    """command, interactive, event or other: the label of the ack-latency histogram."""
    if content_type.startswith("application/json"):
        return "event"
    if body.startswith("payload="):
        return "interactive"
    if "command=" in body:
        return "command"
    return "other"


def _text(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="text/plain")


class SlackEvents:
    """The blueprint of /slack/events for one Bolt app (and its guard)."""

    def __init__(self, bolt: App, metrics: Metrics, guard: RequestGuard | None = None) -> None:
        self.bolt = bolt
        self.metrics = metrics
        self.guard = guard  # signature, age and replay checks before anything is parsed
        self.blueprint = Blueprint("slack", __name__)
        self.blueprint.add_url_rule(
            PATH, "events", self.events, methods=["POST"], provide_automatic_options=False
        )

    def events(self) -> Response:
        """One Slack request, from its arrival to Bolt's acknowledgement."""
        started = time.perf_counter()
        if (request.content_length or 0) > MAX_BODY:
            return self._refuse(413, "too_large", "request body too large\n")
        raw = request.get_data(cache=True)
        if self.guard is not None:
            headers = {name.lower(): value for name, value in request.headers.items()}
            rejection = self.guard.check(headers, raw)
            if rejection is not None:
                return _text(rejection.text, rejection.status)
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._refuse(400, "not_utf8", "request body is not UTF-8\n")
        try:
            bolt_request = to_bolt_request(request)
        except Exception as exc:  # Bolt parses and reads it before any check of its shape
            log.warning("unreadable slack request refused", extra={"error": type(exc).__name__})
            return self._refuse(400, "unreadable", "not a Slack request\n")
        try:
            bolt_response = self.bolt.dispatch(bolt_request)
        except Exception:
            log.exception("slack request failed")
            return _text("internal error\n", 500)
        self.metrics.observe(
            "jobbot_ack_seconds",
            "Time from a Slack request's arrival to its acknowledgement.",
            time.perf_counter() - started,
            kind=request_kind(request.content_type or "", body),
        )
        response: Response = to_flask_response(bolt_response)
        return response

    def _refuse(self, status: int, reason: str, text: str) -> Response:
        self.metrics.inc(
            "jobbot_slack_requests_rejected_total",
            "Slack HTTP requests refused before processing, by reason.",
            reason=reason,
        )
        return _text(text, status)
