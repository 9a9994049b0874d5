"""The replay guard on a real MariaDB connection that dies after the signature's insert (in
autocommit, its own commit): the request whose answer was lost is retried by the database
layer and still passes; a replay of it is still refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.slack.guard import Rejection, RequestGuard
from bot.store import SqlStore, make_engine
from testbed import slack_requests as sr
from tests.support.lossy_mysql import LossyMySQLProxy


def keep(prefix: str, older_than_s: float) -> int:
    """The guard's pruning, not under test here."""
    return 0


@pytest.fixture
def proxy(_mariadb_schema: str) -> Iterator[LossyMySQLProxy]:
    with LossyMySQLProxy(_mariadb_schema) as lossy:
        yield lossy


def test_a_request_whose_insert_answer_was_lost_is_not_its_own_replay(
    proxy: LossyMySQLProxy,
) -> None:
    store = SqlStore(make_engine(proxy.url))
    guard = RequestGuard(sr.SECRET, store.first_time, keep, remember_budget_s=60)
    request = sr.slash("help")
    proxy.lose_next_write_answer()
    try:
        assert guard.check(request.headers, request.body.encode()) is None
        assert proxy.lost == 1, "the signature was committed, and the answer to that lost"
        replayed = guard.check(request.headers, request.body.encode())
        assert replayed == Rejection(401, "replayed")
        other = RequestGuard(sr.SECRET, store.first_time, keep)
        assert other.check(request.headers, request.body.encode()) == replayed
    finally:
        store.close()


def test_a_lost_insert_answer_does_not_turn_a_first_dedupe_key_into_a_second(
    proxy: LossyMySQLProxy,
) -> None:
    store = SqlStore(make_engine(proxy.url))
    proxy.lose_next_write_answer()
    try:
        assert store.first_time("msg:C0CHAN:1.000001")
        assert proxy.lost == 1
        assert not store.first_time("msg:C0CHAN:1.000001")
    finally:
        store.close()
