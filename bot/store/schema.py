"""The schema in SQL: create the tables, add the columns a newer version declared, and record
and read the applied version."""

from __future__ import annotations

from sqlalchemy import Connection, inspect, select, text, update

from bot.store.queue import insert_ignore
from bot.store.tables import SCHEMA_VERSION, metadata, schema_info
from bot.store.types import utcnow


def migrate(conn: Connection) -> None:
    """Create missing tables and record the schema version; safe to run repeatedly."""
    if conn.dialect.name != "sqlite":
        # Several processes may start at once; DDL is not transactional in MySQL.
        conn.execute(text("SELECT GET_LOCK('jobbot.migrate', 60)"))
    metadata.create_all(conn, checkfirst=True)
    _add_missing_columns(conn)
    insert_ignore(conn, schema_info, {"id": 1, "version": SCHEMA_VERSION, "applied_at": utcnow()})
    conn.execute(
        update(schema_info)
        .where(schema_info.c.id == 1, schema_info.c.version < SCHEMA_VERSION)
        .values(version=SCHEMA_VERSION, applied_at=utcnow())
    )
    if conn.dialect.name != "sqlite":
        conn.execute(text("SELECT RELEASE_LOCK('jobbot.migrate')"))


def version(conn: Connection) -> int | None:
    """The applied schema version, or None before the first migration."""
    if not conn.dialect.has_table(conn, "jobbot_schema"):
        return None
    value = conn.execute(select(schema_info.c.version)).scalar()
    return None if value is None else int(value)


def _add_missing_columns(conn: Connection) -> None:
    """Add the columns a newer schema version declared on an existing table (nullable ones
    only: rows already there have no value for them)."""
    inspector = inspect(conn)
    for table in metadata.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            if not column.nullable:  # pragma: no cover - a rule for whoever adds a column
                raise RuntimeError(f"{table.name}.{column.name} must be nullable to be added")
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} NULL"))
