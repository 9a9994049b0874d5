"""schema.sql and the code's table definitions agree on MariaDB; the claim uses its index;
migrations are idempotent, also when processes race."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bot.core.models import Identity, NewJob
from bot.core.pacing import Rate
from bot.store import SqlStore, make_engine
from bot.store.tables import SCHEMA_VERSION, metadata
from tests.conftest import MYSQL_BASE

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def scratch_db() -> Iterator[str]:
    """A second, empty MariaDB database."""
    name = f"jobbot_scratch_{uuid.uuid4().hex[:8]}"
    server = create_engine(MYSQL_BASE)
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
    yield name
    with server.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    server.dispose()


def url_for(database: str) -> str:
    return make_url(MYSQL_BASE).set(database=database).render_as_string(hide_password=False)


def describe(database: str) -> dict[str, object]:
    """Columns, indexes and foreign keys of a database, from information_schema."""
    engine = create_engine(MYSQL_BASE)
    with engine.connect() as conn:
        columns = conn.execute(
            text(
                "SELECT TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE, "
                "COLUMN_DEFAULT, CHARACTER_SET_NAME, COLLATION_NAME, EXTRA "
                "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = :db ORDER BY 1, 3"
            ),
            {"db": database},
        ).all()
        indexes = conn.execute(
            text(
                "SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME "
                "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = :db ORDER BY 1, 2, 4"
            ),
            {"db": database},
        ).all()
        fks = conn.execute(
            text(
                "SELECT k.TABLE_NAME, k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME, "
                "k.REFERENCED_COLUMN_NAME, r.DELETE_RULE "
                "FROM information_schema.KEY_COLUMN_USAGE k "
                "JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = "
                "k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
                "WHERE k.TABLE_SCHEMA = :db ORDER BY 1, 2"
            ),
            {"db": database},
        ).all()
        tables = conn.execute(
            text(
                "SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = :db ORDER BY 1"
            ),
            {"db": database},
        ).all()
    engine.dispose()
    return {"columns": columns, "indexes": indexes, "fks": fks, "tables": tables}


def run_schema_sql(database: str) -> None:
    """Apply schema.sql the way an operator does: the mariadb client reading the file."""
    url = make_url(MYSQL_BASE)
    command = [
        "mariadb",
        f"--host={url.host or '127.0.0.1'}",
        f"--port={url.port or 3306}",
        f"--user={url.username or 'root'}",
        database,
    ]
    if url.password:
        command.insert(1, f"--password={url.password}")
    with (ROOT / "schema.sql").open("rb") as sql:
        done = subprocess.run(command, stdin=sql, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()


@pytest.mark.mariadb
def test_schema_sql_matches_the_table_definitions(mariadb_url: str, scratch_db: str) -> None:
    run_schema_sql(scratch_db)
    from_code = make_url(mariadb_url).database
    assert from_code is not None
    SqlStore(make_engine(mariadb_url)).migrate()
    expected, actual = describe(from_code), describe(scratch_db)
    for part in ("tables", "columns", "indexes", "fks"):
        assert actual[part] == expected[part], f"schema.sql and tables.py differ in {part}"
    assert {t.name for t in metadata.sorted_tables} == {row[0] for row in actual["tables"]}  # type: ignore[attr-defined]


@pytest.mark.mariadb
def test_schema_sql_is_idempotent_and_records_the_version(scratch_db: str) -> None:
    run_schema_sql(scratch_db)
    run_schema_sql(scratch_db)
    store = SqlStore(make_engine(url_for(scratch_db)))
    assert store.schema_version() == SCHEMA_VERSION
    store.migrate()  # the code's migration accepts a database made from schema.sql
    assert store.schema_version() == SCHEMA_VERSION
    store.close()


@pytest.mark.mariadb
def test_concurrent_migrations_from_several_processes_all_succeed(scratch_db: str) -> None:
    script = (
        "import sys; from bot.store import SqlStore, make_engine;"
        "SqlStore(make_engine(sys.argv[1])).migrate()"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, url_for(scratch_db)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], errors
    assert SqlStore(make_engine(url_for(scratch_db))).schema_version() == SCHEMA_VERSION


@pytest.mark.mariadb
def test_claim_and_listing_queries_use_their_indexes(mariadb_store: SqlStore) -> None:
    owner = mariadb_store.ensure_user(Identity("local", "h", "x"))
    for _ in range(50):
        mariadb_store.submit(NewJob(owner.id, "a.py", "x", "0" * 64, "{}"))
    with mariadb_store.engine.connect() as conn:
        claim_plan = (
            conn.execute(
                text(
                    "EXPLAIN SELECT id, owner_id FROM jobs WHERE status = 'waiting' "
                    "AND not_before <= UTC_TIMESTAMP(6) ORDER BY not_before, id LIMIT 16 "
                    "FOR UPDATE SKIP LOCKED"
                )
            )
            .mappings()
            .all()
        )
        mine_plan = (
            conn.execute(
                text(
                    f"EXPLAIN SELECT id FROM jobs WHERE owner_id = {owner.id} "
                    "ORDER BY id DESC LIMIT 10"
                )
            )
            .mappings()
            .all()
        )
    assert claim_plan[0]["key"] == "ix_jobs_claim"
    assert "filesort" not in (claim_plan[0]["Extra"] or "")
    assert mine_plan[0]["key"] == "ix_jobs_owner"
    assert "filesort" not in (mine_plan[0]["Extra"] or "")


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_migrate_brings_a_version_2_database_up_to_date(
    backend: str, scratch_db: str, tmp_path: Path
) -> None:
    url = url_for(scratch_db) if backend == "mariadb" else f"sqlite:///{tmp_path / 'v2.db'}"
    store = SqlStore(make_engine(url))
    store.migrate()
    # back to version 2: no workers, no dedupe claim, no stop requests, no job files
    with store.engine.begin() as conn:
        conn.execute(text("DROP TABLE workers"))
        conn.execute(text("DROP TABLE api_tokens"))
        conn.execute(text("DROP TABLE pace"))
        conn.execute(text("DROP TABLE job_files"))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN files_note"))
        conn.execute(text("ALTER TABLE dedupe_keys DROP COLUMN claim"))
        conn.execute(text("ALTER TABLE jobs DROP COLUMN stop_requested_at"))
        conn.execute(text("UPDATE jobbot_schema SET version = 2"))
        conn.execute(
            text("INSERT INTO dedupe_keys (dedupe_key, created_at) VALUES ('old', '2026-01-01')")
        )
    store.migrate()
    assert store.schema_version() == SCHEMA_VERSION == 7
    assert not store.first_time("old") and store.first_time("new")
    assert store.take_turn([("b", Rate(1.0, 1))], 100.0, wait=True) == 100.0
    assert store.list_files(1) == []
    store.worker_seen("w")
    assert store.workers_alive(60) == 1
    user = store.ensure_user(Identity("local", "h", "ann"))
    store.set_token(user.id, "a" * 64)
    found = store.token("a" * 64)
    assert found is not None and found.user == user
    owner = store.ensure_user(Identity("local", "h", "u"))
    job, _ = store.submit(NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}"))
    store.claim("w", 1, 30, 3)
    asked = store.cancel(job.id)
    assert asked is not None and asked.stop_requested_at is not None
    store.close()


@pytest.mark.parametrize("backend", ["mariadb", "sqlite"])
def test_migrate_gives_a_version_6_database_token_expiry_and_last_use(
    backend: str, scratch_db: str, tmp_path: Path
) -> None:
    url = url_for(scratch_db) if backend == "mariadb" else f"sqlite:///{tmp_path / 'v6.db'}"
    store = SqlStore(make_engine(url))
    store.migrate()
    alice = store.ensure_user(Identity("local", "h", "alice"))
    store.set_token(alice.id, "a" * 64)
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN expires_at"))
        conn.execute(text("ALTER TABLE api_tokens DROP COLUMN last_used_at"))
        conn.execute(text("UPDATE jobbot_schema SET version = 6"))
    store.migrate()
    assert store.schema_version() == 7
    kept = store.token("a" * 64)
    assert kept is not None and kept.user == alice and kept.expires_at is None
    ends = datetime(2030, 1, 1, tzinfo=UTC)
    store.set_token(alice.id, "b" * 64, ends)
    renewed = store.token("b" * 64)
    assert renewed is not None and renewed.expires_at == ends
