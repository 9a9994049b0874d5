"""The per-test clean of the session's MariaDB database leaves no row of an earlier test in any
table: a held Slack request that survived once was taken up by the next test's sweeper."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.core.models import Identity, NewJob
from bot.store import SqlStore
from bot.store.tables import metadata, schema_info
from tests.conftest import clean_mariadb


def test_the_clean_between_tests_empties_every_table_but_the_schema_version(
    mariadb_store: SqlStore, mariadb_url: str
) -> None:
    owner = mariadb_store.ensure_user(Identity("local", "h", "someone"))
    mariadb_store.submit(NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}"))
    mariadb_store.hold_request("cmd:T:trig", "command", {"asker": {}}, 60)
    mariadb_store.worker_seen("worker-1")

    clean_mariadb(mariadb_url)

    with mariadb_store.engine.connect() as conn:
        left = {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }
    assert left.pop(schema_info.name) >= 1, "the schema version stays"
    assert left == dict.fromkeys(left, 0)
