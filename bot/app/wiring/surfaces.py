"""The surfaces built on a Runtime's service: the Slack app and its notifier routes, and the
HTTP API for programs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.app.config import Settings
from bot.app.wiring.parts import packages_note
from bot.app.wiring.runtime import Runtime
from bot.core.ports import Notifier

if TYPE_CHECKING:
    from bot.api.routes import JobsApi
    from bot.slack.app import SlackApp


def notifiers_for(settings: Settings, runtime: Runtime) -> dict[str, Notifier]:
    """The notification routes of Slack (none when Slack is not configured)."""
    if not settings.slack_enabled:
        return {}
    from bot.slack.notifier import build_slack_notifier

    notifier = build_slack_notifier(settings, runtime.service, runtime.store, runtime.metrics)
    return {"slack": notifier}


def slack_app_for(settings: Settings, runtime: Runtime) -> SlackApp | None:
    """The Slack app on `runtime`'s service when Slack is configured (its intake-journal
    sweeper not started yet: SlackApp.start does that)."""
    if not settings.slack_enabled:
        return None
    from bot.slack.app import build_app
    from bot.slack.clients import web_client

    client = web_client(settings)
    slack = build_app(
        runtime.service,
        runtime.store,
        settings,
        client,
        metrics=runtime.metrics,
        about=packages_note(settings),
    )
    slack.identity.resolve()
    return slack


def build_api(settings: Settings, runtime: Runtime) -> JobsApi:
    """The HTTP API for programs on `runtime`'s service."""
    from bot.api.limits import ApiLimits
    from bot.api.routes import JobsApi

    limits = ApiLimits(
        max_code_bytes=settings.max_code_bytes,
        max_input_bytes=settings.max_input_bytes,
        max_files_in_bytes=settings.max_files_in_bytes,
        job_timeout_s=settings.job_timeout,
        poll_s=settings.poll_interval,
        rate_per_minute=settings.api_rate,
        burst=settings.api_burst,
        unauthorized_per_minute=settings.api_unauthorized_rate,
        unauthorized_burst=settings.api_unauthorized_burst,
        # Waiting requests hold a server thread each: half of them stay free for the rest.
        wait_slots=max(1, settings.http_threads // 2),
    )
    return JobsApi(runtime.service, limits, runtime.metrics, runtime.store)
