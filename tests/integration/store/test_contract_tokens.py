"""The store contract of core's ApiTokens port and user lookup: one token hash per user,
replaced by a new one, gone when revoked, and a user's jobs never touched by either."""

from __future__ import annotations

from bot.core.ports import JobStore
from tests.integration.store.conftest import ALICE, BOB, new_job

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_a_token_hash_leads_to_its_user_and_nothing_else_does(store: JobStore) -> None:
    alice = store.ensure_user(ALICE)
    store.set_token(alice.id, A)
    assert store.token_user(A) == alice
    assert store.token_user(B) is None


def test_a_new_token_replaces_the_old_one(store: JobStore) -> None:
    alice, bob = store.ensure_user(ALICE), store.ensure_user(BOB)
    store.set_token(alice.id, A)
    store.set_token(bob.id, B)
    store.set_token(alice.id, C)
    assert store.token_user(A) is None
    assert store.token_user(C) == alice
    assert store.token_user(B) == bob


def test_revoking_forgets_the_token_once_and_keeps_the_jobs(store: JobStore) -> None:
    alice = store.ensure_user(ALICE)
    job_id = new_job(store, ALICE)
    store.set_token(alice.id, A)
    assert store.drop_token(alice.id) is True
    assert store.drop_token(alice.id) is False
    assert store.token_user(A) is None
    assert store.get(job_id) is not None


def test_users_are_found_by_id(store: JobStore) -> None:
    alice = store.ensure_user(ALICE)
    assert store.get_user(alice.id) == alice
    assert store.get_user(alice.id + 1000) is None
