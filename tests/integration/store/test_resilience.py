"""The store rides over dropped connections and reports a real outage as StoreUnavailable."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from bot.core.models import Identity, JobStatus, NewJob, Outcome, RunResult
from bot.errors import StoreUnavailable
from bot.store import SqlStore, make_engine
from tests.support.lossy_mysql import LossyMySQLProxy


@pytest.mark.mariadb
def test_killed_pooled_connections_are_replaced_transparently(
    mariadb_store: SqlStore, mariadb_url: str
) -> None:
    user = mariadb_store.ensure_user(Identity("local", "h", "alice"))
    with mariadb_store.engine.connect() as conn:
        own_ids = {conn.execute(text("SELECT CONNECTION_ID()")).scalar()}
    admin = create_engine(mariadb_url)
    with admin.connect() as conn:
        database = mariadb_url.rsplit("/", 1)[-1]
        rows = (
            conn.execute(
                text(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = :db AND ID <> "
                    "CONNECTION_ID()"
                ),
                {"db": database},
            )
            .scalars()
            .all()
        )
        for connection_id in set(rows) | own_ids:
            conn.execute(text(f"KILL {int(connection_id)}"))
    admin.dispose()
    assert mariadb_store.ensure_user(Identity("local", "h", "alice")) == user


def test_an_unreachable_database_is_store_unavailable() -> None:
    store = SqlStore(make_engine("mysql+pymysql://root@127.0.0.1:1/nowhere"))
    with pytest.raises(StoreUnavailable):
        store.ping()


@pytest.fixture
def proxy(_mariadb_schema: str) -> Iterator[LossyMySQLProxy]:
    with LossyMySQLProxy(_mariadb_schema) as lossy:
        yield lossy


@pytest.mark.mariadb
def test_a_job_without_a_route_whose_start_and_result_answers_were_lost_is_recorded_once(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    """Without a route the start and the result are single statements in autocommit: a lost
    answer means the statement committed; run again, the fence makes it harmless."""
    owner = mariadb_store.ensure_user(Identity("local", "h", "alice"))
    new = NewJob(owner.id, "a.py", "print(1)", "0" * 64, "{}", owner=owner.identity)
    store = SqlStore(make_engine(proxy.url))
    try:
        job, _, claim = store.submit_claimed(new, "w1", 30, 4)
        assert claim is not None
        proxy.lose_next_write_answer()
        assert store.mark_invoked(job.id, claim.token, 30, routed=False)
        proxy.lose_next_write_answer()
        result = RunResult(outcome=Outcome.OK, duration_ms=3, result_json="8")
        assert store.finish(job.id, claim.token, result, routed=False)
        assert proxy.lost == 2
    finally:
        store.close()
    stored = mariadb_store.get(job.id)
    assert stored is not None and stored.status is JobStatus.DONE and stored.result == 8
    assert stored.attempts == 1 and stored.invoked_at is not None
    assert mariadb_store.notification_events(job.id) == []
