"""Engines for MySQL/MariaDB and SQLite, and short transactions retried on transient errors."""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.pool import ConnectionPoolEntry

from bot.core.backoff import FULL_JITTER, backoff
from bot.errors import StoreError, StoreOutcomeUnknown, StoreUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# MySQL/MariaDB errors after which the whole transaction may simply be run again:
# deadlock, lock wait timeout, MariaDB's ER_CHECKREAD, and lost or refused connections.
RETRYABLE_MYSQL = {1213, 1205, 1020, 2002, 2003, 2006, 2013, 2014, 2055, 1927, 4031}
DISCONNECT_MYSQL = {2002, 2003, 2006, 2013, 2014, 2055, 1927, 4031}
# The connection died while a statement or COMMIT was under way (not before it was sent, and
# not a refusal to connect): the server may have done it, and the answer is what was lost.
LOST_MID_STATEMENT_MYSQL = {2013, 2055, 4031}


def make_engine(url: str, pool_size: int = 10, autocommit: bool = False) -> Engine:
    """An engine tuned for the queue: READ COMMITTED, UTC, short lock waits on MySQL;
    WAL, a busy timeout and IMMEDIATE write transactions on SQLite. `autocommit` gives a
    MySQL engine for single-statement reads (one round trip, no COMMIT)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    connect_args: dict[str, Any] = {
        "charset": "utf8mb4",
        "connect_timeout": 3,
        "read_timeout": 15,
        "write_timeout": 15,
        "init_command": "SET time_zone='+00:00', innodb_lock_wait_timeout=5",
    }
    # No pre-ping: a dropped connection fails its first statement with 2006/2013, the pool is
    # invalidated and Database retries the whole transaction. That saves a round trip per call.
    # No reset-on-return: every transaction already ends in COMMIT or ROLLBACK. In autocommit
    # there is no transaction to end: the ROLLBACK SQLAlchemy sends when a connection closes
    # would be a round trip for nothing after every statement, so it is skipped.
    engine = create_engine(
        url,
        isolation_level="AUTOCOMMIT" if autocommit else "READ COMMITTED",
        skip_autocommit_rollback=autocommit,
        pool_reset_on_return=None,
        pool_recycle=3600,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_timeout=5,
        connect_args=connect_args,
    )
    event.listen(engine, "checkout", _refuse_closed)
    return engine


def _refuse_closed(dbapi_conn: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
    """A pooled connection the server has closed (say it stopped or restarted) is replaced
    before a statement is sent on it, at the cost of one poll, not a round trip: an idle MySQL
    connection has nothing to read unless its server closed it (or sent why it did). So a
    connection lost under a statement means the server may have run it (LOST_MID_STATEMENT)."""
    sock = getattr(dbapi_conn, "_sock", None)
    if sock is None:
        raise DisconnectionError("the connection is closed")
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    if poller.poll(0):
        raise DisconnectionError("the server closed the connection")


def _sqlite_engine(url: str) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        path = Path(database)
        # No folder is made: a mistyped path would otherwise become an empty database that
        # answers "No jobs." (the default, jobbot.db, lives in the working directory).
        if not path.parent.is_dir():
            raise StoreError(
                f"the folder {path.parent} does not exist; create it or correct DATABASE_URL"
            )
        # Owner-only: the database holds everyone's code and output. SQLite gives its
        # -wal and -shm files the same permissions.
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        path.chmod(0o600)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=15000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front, so two writers never deadlock upgrading.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def mysql_error_code(exc: DBAPIError) -> int | None:
    """The MySQL error number behind a DBAPIError, if any."""
    orig = exc.orig
    if orig is not None and orig.args and isinstance(orig.args[0], int):
        return orig.args[0]
    return None


def is_transient(exc: DBAPIError) -> bool:
    """Whether running the whole transaction again may succeed."""
    if exc.connection_invalidated:
        return True
    code = mysql_error_code(exc)
    if code is not None:
        return code in RETRYABLE_MYSQL
    text = str(exc.orig).lower()
    return "database is locked" in text or "database is busy" in text


def _lost_mid_statement(exc: DBAPIError) -> bool:
    """Whether the connection died with a statement (or COMMIT) sent and its answer not
    read: the server may have done it. A connection found closed before anything was sent
    fails at checkout instead (_refuse_closed), and a write PyMySQL could not send is 2006."""
    return mysql_error_code(exc) in LOST_MID_STATEMENT_MYSQL


class Database:
    """Runs functions inside short transactions, retrying transient failures with back-off
    and translating driver errors into StoreError / StoreUnavailable."""

    def __init__(self, engine: Engine, attempts: int = 5) -> None:
        self.engine = engine
        self.attempts = attempts
        self.dialect = engine.dialect.name
        self.is_sqlite = self.dialect == "sqlite"
        # Reads of one statement need no transaction, nor writes of one statement: on MySQL
        # they go through a second pool whose connections stay in autocommit, saving the
        # COMMIT round trip (a write is as durable: InnoDB commits the statement itself).
        self.reader: Engine | None = None
        if not self.is_sqlite:
            self.reader = make_engine(
                engine.url.render_as_string(hide_password=False),
                pool_size=engine.pool.size(),  # type: ignore[attr-defined]
                autocommit=True,
            )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.reader is not None:
            self.reader.dispose()

    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in a write transaction (IMMEDIATE on SQLite)."""
        return self._run(fn, immediate=True)

    def write_one(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn`, a write of a single statement (which may read back after it), committed
        by itself: autocommit on MySQL, one round trip less than a transaction; a write
        transaction on SQLite. Run again after a lost answer, as `write` is, so the
        statement must be fenced to be harmless a second time."""
        if self.reader is None:
            return self.write(fn)
        return self._run(fn, immediate=True, engine=self.reader)

    def read(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn`, a single-statement read (autocommit on MySQL, a transaction on SQLite)."""
        return self._run(fn, immediate=False, engine=self.reader)

    def _run(
        self, fn: Callable[[Connection], T], immediate: bool, engine: Engine | None = None
    ) -> T:
        # Whether an attempt of this write lost its connection once its changes may have been
        # committed (a statement in autocommit, or the COMMIT): if every attempt fails, the
        # caller must not be told that nothing was saved (StoreOutcomeUnknown).
        maybe_written = False
        for attempt in range(1, self.attempts + 1):
            committing = False
            try:
                if engine is not None:
                    with engine.connect() as conn:
                        committing = immediate  # each statement commits itself
                        return fn(conn)
                with self.engine.connect() as raw:
                    conn = raw
                    if self.is_sqlite and immediate:
                        conn = raw.execution_options(sqlite_immediate=True)
                    with conn.begin():
                        result = fn(conn)
                        committing = immediate  # the COMMIT, as the block ends
                    return result
            except DBAPIError as exc:
                if not is_transient(exc):
                    what = type(exc.orig).__name__
                    if maybe_written:  # say, a duplicate key: the first attempt's own row
                        raise StoreOutcomeUnknown(
                            f"database error after a write was sent: {what}"
                        ) from exc
                    raise StoreError(f"database error: {what}") from exc
                maybe_written = maybe_written or (committing and _lost_mid_statement(exc))
                if attempt == self.attempts:
                    what = f"{type(exc.orig).__name__} ({mysql_error_code(exc) or 'n/a'})"
                    if maybe_written:
                        raise StoreOutcomeUnknown(
                            f"database unavailable after a write was sent: {what}"
                        ) from exc
                    raise StoreUnavailable(f"database unavailable: {what}") from exc
                log.debug("transient database error, retrying", extra={"attempt": attempt})
                # about 0.8 s in all over five attempts
                time.sleep(backoff(attempt, first=0.1, cap=0.5, jitter=FULL_JITTER))
            except SQLAlchemyError as exc:
                raise StoreError(f"database error: {type(exc).__name__}") from exc
        raise StoreUnavailable()  # pragma: no cover - the loop always returns or raises
