"""The API's pure parts: pacing, wait slots, wording for the API, a job's JSON by visibility,
and a spec that names every route the blueprint serves."""

from __future__ import annotations

import json
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot.api.jobjson import job_json
from bot.api.limits import (
    STALE_S,
    ApiLimits,
    Refusals,
    SharedRateLimit,
    WaitSlots,
    retry_after,
)
from bot.api.problems import api_wording
from bot.api.routes import JobsApi
from bot.api.spec import owns, spec_text
from bot.app.server import Mount, build_web_app
from bot.core.metrics import Metrics
from bot.core.models import Identity, Outcome, RunResult
from bot.core.service import JobService, JobView, Limits
from testbed.waiting import wait_until
from tests.support.fakes import FakeClock, InMemoryStore

OUTPUT = {"input", "result", "stdout", "stderr", "stdout_truncated", "stderr_truncated", "error"}


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_token_gets_its_burst_then_its_rate() -> None:
    clock = Clock()
    limit = SharedRateLimit(InMemoryStore(FakeClock()), "t:", per_minute=60, burst=3, clock=clock)
    assert [limit.take("1") for _ in range(3)] == [0, 0, 0]
    assert limit.take("1") == pytest.approx(1.0)
    assert limit.take("2") == 0  # another key is paced apart
    clock.now += 1.0
    assert limit.take("1") == 0
    assert retry_after(0.2) == "1" and retry_after(2.1) == "3"


def test_a_busy_key_takes_turns_ahead_and_lets_unused_ones_lapse() -> None:
    clock, store = Clock(), InMemoryStore(FakeClock())
    limit = SharedRateLimit(store, "t:", per_minute=600, burst=8, clock=clock)  # 2 ahead
    assert limit.take("1") == 0
    store.down = True  # the second turn was taken with the first: no store needed
    assert limit.take("1") == 0
    store.down = False
    assert limit.take("1") == 0  # two more taken
    clock.now += 5.0  # the one held lapses unused, and the bucket has refilled
    assert [limit.take("1") for _ in range(4)] == [0, 0, 0, 0]
    assert store.turns_ahead("t:", 0) != []


def test_stale_buckets_are_pruned_in_the_background_and_live_ones_kept() -> None:
    clock, store = Clock(), InMemoryStore(FakeClock())
    limit = SharedRateLimit(store, "t:", per_minute=60, burst=1, clock=clock)
    other = SharedRateLimit(store, "u:", per_minute=60, burst=1, clock=clock)
    clock.now = 1000.0
    assert limit.take("old") == 0 and other.take("kept") == 0
    clock.now += STALE_S + 60
    assert limit.take("new") == 0  # the first take past PRUNE_EVERY_S prunes, off the request
    wait_until(lambda: [k for k, _ in store.turns_ahead("t:", 0)] == ["t:new"], timeout=5)
    assert [k for k, _ in store.turns_ahead("u:", 0)] == ["u:kept"]  # another limit's rows
    assert limit.prune(clock.now) == 0  # nothing stale left


def test_a_revoked_token_spends_nothing_and_says_so() -> None:
    store = InMemoryStore(FakeClock())
    service = JobService(store, FakeClock(), Limits(1000, 100))
    alice = service.actor(Identity("local", "h", "alice"))
    digest = service.tokens.check(service.tokens.mint(alice)).digest
    limit = SharedRateLimit(store, "t:", per_minute=60, burst=1)
    assert limit.take("1", digest) == 0
    service.tokens.revoke(alice)
    assert limit.take("1", digest) is None


def test_an_address_refused_stays_refused_until_its_time() -> None:
    clock = Clock()
    refused = Refusals(clock)
    assert refused.left("10.0.0.1") == 0
    refused.refuse("10.0.0.1", 2.0)
    assert refused.left("10.0.0.1") == 2.0 and refused.left("10.0.0.2") == 0
    clock.now += 2.5
    assert refused.left("10.0.0.1") == 0


def test_wait_slots_cap_each_key_and_the_total() -> None:
    slots = WaitSlots(total=3, per_key=2)
    with slots.hold(1) as a, slots.hold(1) as b, slots.hold(1) as c:
        assert (a, b, c) == (None, None, "key")
        with slots.hold(2) as d, slots.hold(3) as e:
            assert (d, e) == (None, "total")
    with slots.hold(1) as again:
        assert again is None


def test_core_messages_name_api_requests() -> None:
    text = "There is no job #9. `/job mine` lists your jobs; see `/job status 12`."
    assert api_wording(text, 7) == (
        "There is no job #9. `GET /api/users/7/jobs` lists your jobs; see `GET /api/jobs/12`."
    )
    assert api_wording("try `/job list 2` or `/job cancel 4`") == (
        "try `GET /api/jobs?page=2` or `POST /api/jobs/4/cancel`"
    )


def test_output_fields_are_absent_for_those_who_may_not_see_them() -> None:
    store = InMemoryStore(FakeClock())
    service = JobService(store, FakeClock(), Limits(1000, 100))
    alice = service.actor(Identity("local", "h", "alice"))
    job, _ = service.submit(alice, "a.py", b"print(1)", '{"a": 1}')
    [claim] = store.claim("w", 1, 60, 3)
    store.finish(job.id, claim.token, RunResult(Outcome.OK, 4, '"1"', stdout="1\n"))
    done = store.get(job.id)
    assert done is not None
    hidden = job_json(JobView(done, full=False))
    assert not OUTPUT & hidden.keys() and hidden["status"] == "done"
    shown = job_json(JobView(done, full=True))
    assert shown.keys() >= OUTPUT and shown["input"] == {"a": 1} and shown["result"] == "1"


def test_the_spec_names_every_route_and_method_the_api_serves() -> None:
    store = InMemoryStore(FakeClock())
    service = JobService(store, FakeClock(), Limits(1000, 100))
    api = JobsApi(service, ApiLimits(1000, 100, 4000, 10, 0.1, 60, 10, 2), Metrics(), store)
    app = Flask("spec")
    app.register_blueprint(api.blueprint)
    served = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    spec = json.loads(spec_text())
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert served == documented


def served(store: InMemoryStore) -> tuple[FlaskClient, str]:
    """serve's web app with only the API mounted, on `store`; a test client and a token."""
    service = JobService(store, FakeClock(), Limits(1000, 100))
    token = service.tokens.mint(service.actor(Identity("local", "h", "alice")))
    api = JobsApi(service, ApiLimits(1000, 100, 4000, 10, 0.1, 60, 10, 2), Metrics(), store)
    app = build_web_app(lambda: None, Metrics(), [Mount(api.blueprint, owns, api.error)])
    return app.test_client(), token


def test_a_crash_and_a_database_outage_are_problems_too(caplog: pytest.LogCaptureFixture) -> None:
    store = InMemoryStore(FakeClock())
    client, token = served(store)
    auth = {"Authorization": f"Bearer {token}"}

    def crash(*args: object) -> None:
        raise RuntimeError("a bug")

    store.list_all = crash  # type: ignore[method-assign]
    crashed = client.get("/api/jobs", headers=auth)
    assert (crashed.status_code, crashed.content_type) == (500, "application/problem+json")
    assert "a bug" not in crashed.get_data(as_text=True)
    assert "Exception on /api/jobs" in caplog.text  # the operator's side has it
    store.down = True
    down = client.get("/api/jobs/1", headers=auth)
    assert (down.status_code, down.headers["Retry-After"]) == (503, "5")
    assert "Nothing was saved" in down.get_json()["detail"]
    store.down, store.answer_lost = False, True
    lost = client.post("/api/jobs", json={"code": "print(1)"}, headers=auth)
    assert (lost.status_code, lost.headers["Retry-After"]) == (503, "5")
    assert "may have been saved" in lost.get_json()["detail"]
    assert "Nothing was saved" not in lost.get_json()["detail"]
    elsewhere = client.get("/not-the-api")
    assert (elsewhere.status_code, elsewhere.data) == (404, b"not found\n")  # not the API's


def test_a_token_reply_shows_the_token_but_never_in_its_repr() -> None:
    from bot.core.replies import TokenIssued, TokenRevoked
    from bot.slack.replyviews import render as slack_render
    from bot.terminal.textview import render as text_render

    token = "jobbot_" + "t" * 43
    reply = TokenIssued(token, user_id=7)
    assert token not in repr(reply)
    assert token in json.dumps(slack_render(reply).as_kwargs()) and token in text_render(reply)
    assert "no API token" in text_render(TokenRevoked(had_one=False))
