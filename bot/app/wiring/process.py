"""The Process: what one command runs, started and stopped in the one order every command
shares (the schema, Slack, the dispatcher, workers, the intake journal, the doors)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from bot.app.config import Settings
from bot.app.shutdown import StopRequest
from bot.app.wiring.runtime import Runtime
from bot.app.wiring.surfaces import build_api, notifiers_for, slack_app_for
from bot.core.ports import Notifier

if TYPE_CHECKING:
    from bot.app.server import HttpServer
    from bot.slack.app import SlackApp

log = logging.getLogger(__name__)


class Door(Protocol):
    """A way requests come in (the HTTP server, Socket Mode): opened last, closed first."""

    def close(self) -> None:
        """Take no more requests; those being handled finish."""


def settle_heap() -> None:
    """Move everything alive once the process is up (modules, the Slack app, the engine: about
    100,000 objects) out of the garbage collector's sight: they live as long as the process,
    and each full collection scanned them all again, holding every thread of the process for
    40-80 ms (measured in `serve` under S1's load) - about four times in 15 s of busy acks.
    What is created later is collected as before."""
    gc.collect()
    gc.freeze()


class Process:
    """What one command runs, started and stopped in the one order every command shares.

    start: the schema; the Slack app (when asked for and configured); the dispatcher of the
    notification routes; the workers; the Slack intake journal; the doors requests come in by.
    stop: no more claims; the doors closed; the Slack intake finished; running jobs finish (up
    to the job timeout); the notifications left delivered; the executor and store closed.
    """

    def __init__(
        self,
        settings: Settings,
        runtime: Runtime | None = None,
        *,
        slack: bool = False,
        http: bool = False,
        workers: bool = True,
        routes: Mapping[str, Notifier] | None = None,
    ) -> None:
        self.settings = settings
        self.runtime = runtime or Runtime(settings)
        self._with_slack = slack
        self._with_http = http
        self._with_workers = workers
        self._routes = dict(routes or {})
        self.slack: SlackApp | None = None
        self.http: HttpServer | None = None
        self._doors: list[Door] = []

    def start(self, stopping: Callable[[], bool] = lambda: False) -> None:
        """Start every part, in order; once `stopping()` says so, start nothing more (a stop
        asked for while starting: no job is claimed and no door opened)."""
        settings, runtime = self.settings, self.runtime
        runtime.migrate()
        if stopping():
            return
        routes = dict(self._routes)
        if self._with_slack:
            self.slack = slack_app_for(settings, runtime)
            if self.slack is None and self._with_http:
                log.warning("Slack is not configured: serving the API, /healthz and /metrics")
            routes.update(notifiers_for(settings, runtime))
        runtime.start_dispatcher(routes)
        if self._with_workers and not stopping():
            runtime.start_workers()
        if self.slack is not None and not stopping():
            self.slack.start()  # takes up requests a dead process acknowledged (the journal)
        if self._with_http and not stopping():
            self._open_doors()

    def _open_doors(self) -> None:
        from bot.api.spec import owns as owns_api_path
        from bot.app.server import HttpServer, Mount, build_web_app

        settings, runtime, slack = self.settings, self.runtime, self.slack
        api = build_api(settings, runtime)
        mounts = [Mount(api.blueprint, owns_api_path, api.error)]
        largest = api.limits.max_body
        if slack is not None and settings.slack_signing_secret:
            from bot.slack.http import MAX_BODY, SlackEvents

            events = SlackEvents(slack.app, runtime.metrics, slack.guard)
            mounts.append(Mount(events.blueprint))
            largest = max(largest, MAX_BODY)
        web = build_web_app(runtime.store.ping, runtime.metrics, mounts)
        # Bodies up to twice the largest any route takes reach the routes, which refuse those
        # over their own limit in their own words (and count them) before parsing anything;
        # waitress refuses anything bigger unread (a plain 413), so none is buffered whole.
        self.http = HttpServer(
            web,
            settings.port,
            settings.http_threads,
            max_body=2 * largest,
            trusted_proxies=settings.trusted_proxies,
        )
        self._doors.append(self.http)
        mode = "http"
        if slack is not None and settings.socket_mode:
            from bot.slack.socket import start_socket_mode

            self._doors.append(
                start_socket_mode(
                    slack.app,
                    settings.slack_app_token,
                    runtime.metrics,
                    settings.socket_ping_s,
                )
            )
            mode = "socket"
        log.info(
            "serving",
            extra={"port": self.http.port, "mode": mode, "executor": settings.executor},
        )

    def stop(self, grace_s: float | None = None) -> bool:
        """Stop every part, in order; True if the running jobs finished in time."""
        log.info("stopping: no new requests or claims; running jobs may finish")
        # First, because winding the doors and the intake down can take seconds, and a job
        # claimed meanwhile would push the exit past the job timeout + a few seconds.
        self.runtime.stop_claiming()
        for door in reversed(self._doors):
            door.close()
        if self.slack is not None:
            self.slack.close()
        drained = self.runtime.stop(grace_s)
        log.info("stopped", extra={"drained": drained})
        return drained

    def run_until_signal(self) -> bool:
        """start(), wait for SIGTERM or SIGINT, stop(); True if the running jobs finished.

        The signals are caught before anything starts: one that arrives while starting stops
        the process cleanly (exit 0, nothing half-claimed) once the step under way is done.
        """
        stop = StopRequest()
        self.start(lambda: stop.requested)
        settle_heap()
        stop.wait()
        return self.stop()
