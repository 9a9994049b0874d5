"""The store contract of core's Users, JobReads and Presence ports: one user per identity,
listings, the worker pools alive."""

from __future__ import annotations

import threading

from bot.core.models import Identity, JobStatus
from bot.core.ports import JobStore
from tests.integration.store.conftest import ALICE, BOB, expire, new_job


def test_identity_maps_to_one_user_even_under_concurrent_first_contact(
    store: JobStore, kind: str
) -> None:
    ids: list[int] = []
    barrier = threading.Barrier(8)

    def contact() -> None:
        barrier.wait()
        ids.append(store.ensure_user(Identity("slack", "T9", "URACE")).id)

    threads = [threading.Thread(target=contact) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == 1
    assert store.ensure_user(Identity("slack", "T9", "URACE")).id == ids[0]


def test_listings_are_newest_first_summaries(store: JobStore) -> None:
    a1 = new_job(store, ALICE, code="x" * 5000)
    b1 = new_job(store, BOB)
    a2 = new_job(store, ALICE)
    mine = store.list_by_owner(store.ensure_user(ALICE).id, 10)
    assert [j.id for j in mine] == [a2, a1]
    assert all(j.is_summary and j.code == "" for j in mine)
    assert [j.id for j in store.list_all(2)] == [a2, b1]
    assert [j.id for j in store.list_all(10, before_id=b1)] == [a1]


def test_counts_by_status(store: JobStore) -> None:
    new_job(store)
    new_job(store)
    store.claim("w", 1, 30, 3)
    counts = store.count_by_status()
    assert counts[JobStatus.WAITING] == 1 and counts[JobStatus.RUNNING] == 1
    assert counts[JobStatus.DONE] == 0


def test_worker_pools_are_alive_from_their_last_word_until_they_are_gone(store: JobStore) -> None:
    assert store.workers_alive(15) == 0
    store.worker_seen("host:1:a")
    store.worker_seen("host:2:b")
    store.worker_seen("host:1:a")  # a refresh, not another pool
    assert store.workers_alive(15) == 2
    store.worker_gone("host:1:a")
    assert store.workers_alive(15) == 1
    expire(store)()  # time passes: the fake clock is moved, SQL's runs on
    assert store.workers_alive(0) == 0, "not heard of within the window: gone"
