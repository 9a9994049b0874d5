"""Socket Mode: Slack's WebSocket instead of a public URL, with ack latency recorded."""

from __future__ import annotations

import time
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.core.metrics import Metrics


class TimedSocketModeHandler(SocketModeHandler):
    """The built-in handler, recording how long each envelope takes to acknowledge."""

    metrics: Metrics | None = None

    def handle(self, client: Any, req: Any) -> None:
        """Dispatch one envelope and time it."""
        started = time.perf_counter()
        super().handle(client, req)
        if self.metrics is not None:
            self.metrics.observe(
                "jobbot_ack_seconds",
                "Time from a Slack request's arrival to its acknowledgement.",
                time.perf_counter() - started,
                kind=str(getattr(req, "type", "socket")),
            )


def start_socket_mode(app: App, app_token: str, metrics: Metrics | None) -> TimedSocketModeHandler:
    """Connect to Slack over Socket Mode (returns at once; the client runs in threads)."""
    handler = TimedSocketModeHandler(app, app_token)
    handler.metrics = metrics
    handler.connect()  # type: ignore[no-untyped-call]
    return handler
