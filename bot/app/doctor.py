"""`doctor`: what an operator must know, as (check, detail, ok) rows."""

from __future__ import annotations

from bot.app.config import Settings
from bot.app.wiring.parts import build_executor, build_store
from bot.app.wiring.tools import expected_schema_version, extra_checks
from bot.errors import BotError

Row = tuple[str, str, bool]


def run_checks(settings: Settings) -> list[Row]:
    """Check the database, the schema, the executor and its isolation, and the adapters."""
    rows: list[Row] = [("config", "settings valid", True)]
    try:
        store = build_store(settings)
        store.ping()
        rows.append(("database", f"{settings.redacted_database_url()} answers", True))
        version, expected = store.schema_version(), expected_schema_version()
        rows.append(
            (
                "schema",
                f"version {version} (code expects {expected})"
                if version is not None
                else "not created: run `python -m bot migrate`",
                version == expected,
            )
        )
    except BotError as exc:
        rows.append(("database", f"{settings.redacted_database_url()}: {exc.message}", False))
    try:
        executor = build_executor(settings)
    except BotError as exc:
        rows.append(("executor", f"{settings.executor}: {exc.message}", False))
    else:
        try:
            rows.append(("executor", settings.executor, True))
            rows += executor.describe()
        finally:
            executor.close()
    rows += extra_checks(settings)
    return rows
