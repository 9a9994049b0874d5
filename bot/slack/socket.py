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


# The built-in client notices a connection that died without a close frame (a network drop)
# only when pongs stop coming: after 4 ping intervals. Bolt's default of 10 s left the app deaf
# for 40-60 s; JOBBOT_SOCKET_PING_S's default of 3 s makes it about 12 s. A ping is a few bytes.


def start_socket_mode(
    app: App, app_token: str, metrics: Metrics | None, ping_interval_s: float
) -> TimedSocketModeHandler:
    """Connect to Slack over Socket Mode (returns at once; the client runs in threads). A
    dropped connection or Slack's `disconnect` envelope is followed by a new one."""
    handler = TimedSocketModeHandler(app, app_token, ping_interval=ping_interval_s)
    handler.metrics = metrics
    handler.connect()  # type: ignore[no-untyped-call]
    return handler
