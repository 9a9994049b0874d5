"""Column types shared by MySQL/MariaDB and SQLite, and a database clock usable in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Float, Integer, String, Text, literal
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement
from sqlalchemy.types import TypeDecorator, TypeEngine

# Integer primary keys: BIGINT on MySQL, INTEGER (rowid alias, autoincrementing) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# Code, input and output can be megabytes; TEXT stops at 64 KiB on MySQL.
MediumText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def ascii_str(length: int) -> TypeEngine[str]:
    """A case-sensitive ASCII column (Slack ids, tokens, hashes)."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
    )


def binary_str(length: int) -> TypeEngine[str]:
    """A case-sensitive utf8mb4 column (host and OS user names)."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


class UTCDateTime(TypeDecorator[datetime]):
    """DATETIME(6) holding naive UTC in the database, timezone-aware UTC in Python."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in {"mysql", "mariadb"}:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not accepted; use UTC-aware values")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite values written by utcnow() below
            value = datetime.fromisoformat(value)
        result: datetime = value.replace(tzinfo=UTC)
        return result


class utcnow(FunctionElement[datetime]):
    """The database's current UTC time plus `seconds`, so every process shares one clock."""

    type = UTCDateTime()
    inherit_cache = True

    def __init__(self, seconds: float | ColumnElement[Any] = 0.0) -> None:
        # A bound parameter keeps prebuilt statements reusable for any number of seconds.
        if not isinstance(seconds, ColumnElement):
            seconds = literal(float(seconds), Float())
        super().__init__(seconds)


@compiles(utcnow, "mysql")
@compiles(utcnow, "mariadb")
def _utcnow_mysql(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    seconds = compiler.process(element.clauses, **kw)
    return f"TIMESTAMPADD(MICROSECOND, ROUND({seconds} * 1000000), UTC_TIMESTAMP(6))"


@compiles(utcnow, "sqlite")
def _utcnow_sqlite(element: utcnow, compiler: SQLCompiler, **kw: Any) -> str:
    # %f gives SS.SSS; three more zeros match SQLAlchemy's stored format (microseconds).
    seconds = compiler.process(element.clauses, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%f000', 'now', printf('%+.3f seconds', {seconds}))"
