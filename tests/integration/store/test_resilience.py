"""The store rides over dropped connections and reports a real outage as StoreUnavailable,
or as StoreOutcomeUnknown when a write reached the server before it went away."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from bot.core.models import Identity, JobStatus, NewJob, Outcome, RunResult
from bot.errors import StoreOutcomeUnknown, StoreUnavailable
from bot.store import SqlStore, make_engine
from bot.store.db import Database
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


def held_keys(store: SqlStore) -> list[str]:
    """The keys of every held request (all taken up: their leases were 0.01 s)."""
    return sorted(r.key for r in store.claim_held_requests(100, 60))


@pytest.mark.mariadb
def test_a_write_whose_answer_was_lost_as_the_database_went_away_may_have_been_saved(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    """The insert committed and its answer was lost, then every retry found the database
    gone: not "unavailable" (nothing saved) but "outcome unknown", and it was saved."""
    store = SqlStore(make_engine(proxy.url))
    try:
        store.ping()
        proxy.lose_next_write_answer(matching=b"held_requests", then_down=True)
        with pytest.raises(StoreOutcomeUnknown):
            store.hold_request("cmd:T:lost", "command", {}, 0.01)
        assert proxy.lost == 1 and proxy.down.is_set()
    finally:
        store.close()
    assert held_keys(mariadb_store) == ["cmd:T:lost"]


@pytest.mark.mariadb
def test_a_transaction_whose_commit_answer_was_lost_as_the_database_went_away_may_have_been_saved(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    database = Database(make_engine(proxy.url))
    insert = text(
        "INSERT INTO held_requests (request_key, kind, payload, attempts, lease_expires_at,"
        " created_at) VALUES ('cmd:T:tx', 'command', '{}', 0, UTC_TIMESTAMP(), UTC_TIMESTAMP())"
    )
    try:
        proxy.lose_next_commit_answer(then_down=True)
        with pytest.raises(StoreOutcomeUnknown):
            database.write(lambda conn: conn.execute(insert))
        assert proxy.lost == 1
    finally:
        database.dispose()
    assert held_keys(mariadb_store) == ["cmd:T:tx"]


@pytest.mark.mariadb
def test_a_database_gone_before_anything_was_sent_is_unavailable_and_nothing_is_saved(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    """Pooled connections the server closed are found closed before a statement goes out on
    them (not after it, which would make every write in an outage "may have been saved")."""
    store = SqlStore(make_engine(proxy.url))
    try:
        store.ping()
        store.hold_request("cmd:T:warm", "command", {}, 0.01)  # a pooled autocommit connection
        proxy.go_down()
        with pytest.raises(StoreUnavailable) as raised:
            store.hold_request("cmd:T:never", "command", {}, 0.01)
        assert not isinstance(raised.value, StoreOutcomeUnknown)
        with pytest.raises(StoreUnavailable) as raised:
            store.db.write(lambda conn: conn.execute(text("DELETE FROM held_requests")))
        assert not isinstance(raised.value, StoreOutcomeUnknown)
        proxy.come_back()
        assert store.hold_request("cmd:T:after", "command", {}, 0.01)  # the same store, back
    finally:
        store.close()
    assert held_keys(mariadb_store) == ["cmd:T:after", "cmd:T:warm"]


@pytest.mark.mariadb
def test_a_transaction_cut_before_its_commit_is_unavailable_and_nothing_is_saved(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    """A statement's answer lost inside a transaction: the server rolls it back with the
    connection, so nothing was saved and the person may be told so."""
    database = Database(make_engine(proxy.url))
    insert = text(
        "INSERT INTO held_requests (request_key, kind, payload, attempts, lease_expires_at,"
        " created_at) VALUES ('cmd:T:cut', 'command', '{}', 0, UTC_TIMESTAMP(), UTC_TIMESTAMP())"
    )
    try:
        proxy.lose_next_write_answer(matching=b"held_requests", then_down=True)
        with pytest.raises(StoreUnavailable) as raised:
            database.write(lambda conn: conn.execute(insert))
        assert not isinstance(raised.value, StoreOutcomeUnknown)
        assert proxy.lost == 1
    finally:
        database.dispose()
    assert held_keys(mariadb_store) == []


@pytest.mark.mariadb
def test_a_hold_whose_answer_was_lost_is_still_its_callers_to_handle(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    """The journal's insert went through and its answer was lost; run again, it finds the
    request held by this very call (not by a second delivery of it), so the request is worked
    on now rather than left to the sweeper after its lease."""
    store = SqlStore(make_engine(proxy.url))
    try:
        proxy.lose_next_write_answer(matching=b"held_requests")
        assert store.hold_request("cmd:T:once", "command", {"n": 1}, 60) is True
        assert proxy.lost == 1
        assert store.hold_request("cmd:T:once", "command", {"n": 1}, 60) is False  # a redelivery
    finally:
        store.close()


@pytest.mark.mariadb
def test_a_retry_that_finds_its_own_lost_commit_is_of_unknown_outcome_not_an_error(
    mariadb_store: SqlStore, proxy: LossyMySQLProxy
) -> None:
    """An unfenced insert whose COMMIT answer was lost: run again, it meets its own row (a
    duplicate key). That is no reason to say nothing was saved."""
    database = Database(make_engine(proxy.url))
    insert = text(
        "INSERT INTO held_requests (request_key, kind, payload, attempts, lease_expires_at,"
        " created_at) VALUES ('cmd:T:dup', 'command', '{}', 0, UTC_TIMESTAMP(), UTC_TIMESTAMP())"
    )
    try:
        proxy.lose_next_commit_answer()
        with pytest.raises(StoreOutcomeUnknown):
            database.write(lambda conn: conn.execute(insert))
        assert proxy.lost == 1
    finally:
        database.dispose()
    assert held_keys(mariadb_store) == ["cmd:T:dup"]
