"""Tokens and pacing across serve processes, over real HTTP on MariaDB and SQLite: two
servers on one database share each token's rate and each address's allowance of requests
without a valid token, a token revoked through one is refused by the other within a second
(the turns it took ahead), and an
expired token is refused in words that say so."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from bot.api.limits import LEASE_S
from bot.core.tokens import token_hash
from testbed.waiting import wait_until
from tests.integration.api.conftest import Api, start_api
from tests.integration.api.test_refusals import is_problem

BAD = {"Authorization": "Bearer jobbot_" + "x" * 43}


@pytest.fixture
def pair(backend: str, tmp_path: Path) -> Iterator[Callable[..., list[Api]]]:
    """Starts two servers on the same database with the settings given."""
    servers: list[Api] = []

    def start(**settings: str) -> list[Api]:
        for name in ("a", "b"):
            servers.append(start_api(backend, tmp_path / name, workers=False, **settings))
        return servers

    yield start
    for served in servers:
        served.process.stop(grace_s=5)


def test_two_servers_share_each_token_s_rate(pair: Callable[..., list[Api]]) -> None:
    a, b = pair(JOBBOT_API_RATE="1", JOBBOT_API_BURST="2")
    alice, bob = a.caller(), a.caller()
    assert alice.get("/api/jobs").status_code == 200
    through_b = {"Authorization": f"Bearer {alice.token}"}
    assert b.request("GET", "/api/jobs", headers=through_b).status_code == 200  # burst: 2
    for limited in (alice.get("/api/jobs"), b.request("GET", "/api/jobs", headers=through_b)):
        assert "1 requests a minute" in is_problem(limited, 429)["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert bob.get("/api/jobs").status_code == 200  # another token has its own


def test_requests_without_a_valid_token_are_paced_per_address_across_servers(
    pair: Callable[..., list[Api]],
) -> None:
    a, b = pair(JOBBOT_API_UNAUTHORIZED_RATE="1", JOBBOT_API_UNAUTHORIZED_BURST="3")
    alice = a.caller()
    assert alice.get("/api/jobs").status_code == 200  # a token a now knows
    assert is_problem(a.request("GET", "/api/jobs"), 401)
    assert is_problem(b.request("GET", "/api/jobs", headers=BAD), 401)
    assert is_problem(a.request("GET", "/api/jobs/1", headers=BAD), 401)  # 3: the burst
    for server, headers in ((b, BAD), (a, {}), (a, BAD), (b, {})):
        limited = server.request("GET", "/api/jobs", headers=headers)
        assert "without a valid token" in is_problem(limited, 429)["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # While the address is refused no token is looked up (a guess cannot be tried): a good
    # token this server does not know yet is refused too; one it knows still works.
    fresh = a.caller()
    assert is_problem(fresh.get("/api/jobs"), 429)
    assert alice.get("/api/jobs").status_code == 200


def test_a_token_revoked_through_another_server_is_refused_within_a_second(
    pair: Callable[..., list[Api]],
) -> None:
    a, b = pair()
    alice = a.caller()
    assert alice.get("/api/jobs").status_code == 200  # a now remembers the token
    b.process.runtime.service.tokens.revoke(alice.actor)

    # a may still spend a turn it took ahead (for at most LEASE_S), then asks the database
    def refused() -> tuple[requests.Response] | None:
        got = alice.get("/api/jobs")
        return (got,) if got.status_code == 401 else None  # a 401 Response is falsy itself

    [answer] = wait_until(refused, timeout=LEASE_S + 5, message="the revoked token refused")
    assert "not valid" in is_problem(answer, 401)["detail"]


def test_an_expired_token_is_401_and_says_it_expired(api: Api) -> None:
    alice = api.caller()
    store = api.process.runtime.store
    ended = datetime.now(UTC) - timedelta(seconds=1)
    store.set_token(alice.user_id, token_hash(alice.token), expires_at=ended)
    answer = alice.get("/api/jobs")
    body = is_problem(answer, 401)
    assert body["type"].endswith(":token-expired") and "expired at" in body["detail"]
    assert "expired" in answer.headers["WWW-Authenticate"]


def test_a_token_with_a_lifetime_works_until_then_and_records_its_last_use(api: Api) -> None:
    alice = api.caller()
    service = api.process.runtime.service
    alice.token = service.tokens.mint(alice.actor, timedelta(days=30))
    assert alice.get("/api/jobs").status_code == 200
    record = service.tokens.of(alice.actor)
    assert record is not None and record.expires_at is not None and record.last_used_at
    assert timedelta(days=29) < record.expires_at - datetime.now(UTC) <= timedelta(days=30)
    assert datetime.now(UTC) - record.last_used_at < timedelta(minutes=1)


def test_behind_a_trusted_proxy_each_client_address_is_paced_apart(
    pair: Callable[..., list[Api]],
) -> None:
    a, _ = pair(
        JOBBOT_API_UNAUTHORIZED_RATE="1",
        JOBBOT_API_UNAUTHORIZED_BURST="1",
        JOBBOT_TRUSTED_PROXIES="1",
    )

    def from_client(address: str, forged: str = "") -> int:
        hops = f"{forged}, {address}" if forged else address  # the proxy appends what it saw
        return a.request("GET", "/api/jobs", headers={"X-Forwarded-For": hops}).status_code

    assert from_client("203.0.113.7") == 401
    assert from_client("203.0.113.7", forged="198.51.100.1") == 429  # a forged hop is ignored
    assert from_client("203.0.113.8") == 401  # another client has its own allowance
