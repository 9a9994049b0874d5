"""The adapters' own commands and checks, for the CLI and doctor: `lambda deploy | policy`,
the doctor rows of the adapters in use, and the schema version the store should have."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

from bot.app.config import Settings
from bot.app.wiring.parts import JOB_REQUIREMENTS, job_python

if TYPE_CHECKING:
    pass


def expected_schema_version() -> int:
    """The schema version this code expects of the store."""
    from bot.store.tables import SCHEMA_VERSION

    return SCHEMA_VERSION


def lambda_command(settings: Settings, action: str, out: TextIO, *, replace: bool = False) -> int:
    """`python -m bot lambda deploy [--replace] | policy`."""
    from bot.executors.aws_lambda.deploy import run_lambda_command

    return run_lambda_command(
        settings,
        action,
        out,
        replace=replace,
        requirements=JOB_REQUIREMENTS,
        job_python=job_python(settings),
    )


def extra_checks(settings: Settings) -> list[tuple[str, str, bool]]:
    """Doctor rows of the adapters in use (Slack auth, the Lambda function)."""
    rows: list[tuple[str, str, bool]] = []
    if settings.slack_enabled:
        from bot.slack.health import slack_checks

        rows += slack_checks(settings)
    else:
        rows.append(("slack", "not configured (console mode)", True))
    if settings.executor == "lambda":
        from bot.executors.aws_lambda import lambda_checks

        rows += lambda_checks(settings, JOB_REQUIREMENTS)
    return rows
