"""The store contract of core's ApiTokens port and user lookup: one token hash per user,
replaced by a new one, gone when revoked, and a user's jobs never touched by either; a token's
expiry and last use kept with it."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.models import User
from bot.core.ports import JobStore
from tests.integration.store.conftest import ALICE, BOB, new_job

A, B, C = "a" * 64, "b" * 64, "c" * 64


def _user(store: JobStore, digest: str) -> User | None:
    found = store.token(digest)
    return None if found is None else found.user


def test_a_token_hash_leads_to_its_user_and_nothing_else_does(store: JobStore) -> None:
    alice = store.ensure_user(ALICE)
    store.set_token(alice.id, A)
    assert _user(store, A) == alice
    assert store.token(B) is None


def test_a_new_token_replaces_the_old_one(store: JobStore) -> None:
    alice, bob = store.ensure_user(ALICE), store.ensure_user(BOB)
    store.set_token(alice.id, A)
    store.set_token(bob.id, B)
    store.set_token(alice.id, C)
    assert store.token(A) is None
    assert _user(store, C) == alice
    assert _user(store, B) == bob


def test_revoking_forgets_the_token_once_and_keeps_the_jobs(store: JobStore) -> None:
    alice = store.ensure_user(ALICE)
    job_id = new_job(store, ALICE)
    store.set_token(alice.id, A)
    assert store.drop_token(alice.id) is True
    assert store.drop_token(alice.id) is False
    assert store.token(A) is None
    assert store.get(job_id) is not None


def test_users_are_found_by_id(store: JobStore) -> None:
    alice = store.ensure_user(ALICE)
    assert store.get_user(alice.id) == alice
    assert store.get_user(alice.id + 1000) is None


def test_a_token_keeps_its_expiry_and_last_use_and_every_token_is_listed(store: JobStore) -> None:
    alice, bob = store.ensure_user(ALICE), store.ensure_user(BOB)
    ends = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    store.set_token(alice.id, A, ends)
    store.set_token(bob.id, B)
    found = store.token(A)
    assert found is not None and (found.expires_at, found.last_used_at) == (ends, None)
    used = datetime.now(UTC).replace(microsecond=0)
    store.touch_token(A, used)
    found = store.token(A)
    assert found is not None and found.last_used_at == used
    listed = store.tokens()
    assert [(t.user, t.expires_at) for t in listed] == [(alice, ends), (bob, None)]
    assert all(isinstance(t.created_at, datetime) for t in listed)
