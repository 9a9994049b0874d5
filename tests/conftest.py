"""Shared fixtures: a fresh MariaDB database per test session (never skipped: a missing server
fails loudly), SQLite stores, and the in-memory fakes."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.store import SqlStore, make_engine
from bot.store.tables import metadata, schema_info
from testbed.jobenv import job_python
from testbed.processes import kill_leftovers, mark
from tests.support.fakes import FakeClock, InMemoryStore

MYSQL_BASE = os.environ.get("JOBBOT_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/")
# Every table but the schema version, children before the tables they reference: a table
# left out kept rows of an earlier test in the same session (a held Slack request whose
# stand-in was gone, taken up by the next test's sweeper instead of its own).
TABLES_CHILD_FIRST = tuple(
    table.name for table in reversed(metadata.sorted_tables) if table is not schema_info
)


def _worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return workerinput["workerid"] if workerinput else "main"


@pytest.fixture(autouse=True)
def _no_leftover_processes() -> Iterator[None]:
    """Kill any serve/worker a test started and left running (say, because it failed).

    Autouse function fixtures are set up after every wider-scoped fixture of the test, so the
    mark lies after the processes those started: they are spared until the session ends."""
    since = mark()
    yield
    kill_leftovers(since)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build the job environment first if it is missing or out of date (scripts/test does
    it too): the local sandbox runs every job with it. A user who may not write the checkout
    (scripts/test-unprivileged's) leaves that to the tests that need it, which then fail."""
    if os.access(Path(__file__).resolve().parents[1], os.W_OK):
        job_python()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files with the most tests marked slow first, the others in their usual order: the
    whole suite hands out files to its processes in this order (scripts/test: `--dist loadfile
    --no-loadscope-reorder`), so the long files start at once and the short ones fill in
    around them, instead of one long file running alone at the end."""
    slow: dict[str, int] = {}
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        slow[path] = slow.get(path, 0) + (item.get_closest_marker("slow") is not None)
    first = {path: n for n, path in enumerate(slow)}
    items.sort(key=lambda item: (-slow[p := item.nodeid.split("::", 1)[0]], first[p]))


@pytest.fixture(autouse=True, scope="session")
def _no_leftover_processes_at_exit() -> Iterator[None]:
    """Kill whatever a module- or session-scoped fixture left running."""
    yield
    kill_leftovers()


@pytest.fixture(scope="session")
def mariadb_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a database created for this session (and dropped after it)."""
    name = f"jobbot_test_{_worker_id(request.config)}_{uuid.uuid4().hex[:8]}"
    server = create_engine(MYSQL_BASE)
    try:
        with server.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    except Exception as exc:
        pytest.fail(
            f"MariaDB is required at {make_url(MYSQL_BASE).render_as_string(hide_password=True)} "
            f"(set JOBBOT_TEST_MYSQL_URL, or run ./scripts/test which starts it): {exc}",
            pytrace=False,
        )
    url = make_url(MYSQL_BASE).set(database=name).render_as_string(hide_password=False)
    yield url
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    server.dispose()


@pytest.fixture(scope="session")
def _mariadb_schema(mariadb_url: str) -> str:
    store = SqlStore(make_engine(mariadb_url))
    store.migrate()
    store.close()
    return mariadb_url


def clean_mariadb(url: str) -> None:
    """Delete every row (child tables first); multi-connection tests need real commits."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for table in TABLES_CHILD_FIRST:
            conn.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture
def mariadb_store(_mariadb_schema: str) -> Iterator[SqlStore]:
    """A migrated, empty SqlStore on MariaDB."""
    clean_mariadb(_mariadb_schema)
    store = SqlStore(make_engine(_mariadb_schema))
    yield store
    store.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'jobbot.db'}"


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Iterator[SqlStore]:
    """A migrated, empty SqlStore on SQLite."""
    store = SqlStore(make_engine(sqlite_url))
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that only moves when told."""
    return FakeClock()


@pytest.fixture
def memory_store(fake_clock: FakeClock) -> InMemoryStore:
    """The in-memory fake store."""
    store = InMemoryStore(fake_clock)
    store.migrate()
    return store
