"""RequestGuard: Slack's signature recipe, the 5-minute window, replays, and what happens
while the database cannot remember signatures."""

from __future__ import annotations

import threading

from bot.core.metrics import Metrics
from bot.errors import StoreUnavailable
from bot.slack.guard import Rejection, RequestGuard, malformed
from testbed import slack_requests as sr
from testbed.waiting import wait_until

NOW = 1_800_000_000


def headers(body: str, ts: int = NOW, secret: str = sr.SECRET) -> dict[str, str]:
    return sr.signed(body, sr.FORM, timestamp=ts, secret=secret).headers


class Memory:
    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.down = False
        self.forgotten: list[tuple[str, float]] = []

    def remember(self, key: str) -> bool:
        if self.down:
            raise StoreUnavailable()
        if key in self.keys:
            return False
        self.keys.add(key)
        return True

    def forget(self, prefix: str, older_than_s: float) -> int:
        self.forgotten.append((prefix, older_than_s))
        return 0


def guard(memory: Memory, metrics: Metrics | None = None) -> RequestGuard:
    return RequestGuard(
        sr.SECRET, memory.remember, memory.forget, metrics=metrics, clock=lambda: NOW
    )


def test_a_good_request_passes_once_and_its_replay_is_refused() -> None:
    memory, metrics = Memory(), Metrics()
    check = guard(memory, metrics).check

    assert check(headers("a=1"), b"a=1") is None
    assert check(headers("a=1"), b"a=1") == Rejection(401, "replayed")
    assert metrics.value("jobbot_slack_requests_rejected_total", reason="replayed") == 1
    assert [k[:7] for k in memory.keys] == ["sig:v0="]


def test_signature_age_and_presence_are_checked_first() -> None:
    check = guard(Memory()).check

    assert check({}, b"a=1") == Rejection(401, "unsigned")
    assert check(headers("a=1", ts=NOW - 301), b"a=1") == Rejection(401, "stale_signature")
    assert check(headers("a=1", ts=NOW + 301), b"a=1") == Rejection(401, "stale_signature")
    assert check(headers("a=1", secret="other"), b"a=1") == Rejection(401, "bad_signature")
    assert check(headers("a=1"), b"a=2") == Rejection(401, "bad_signature")
    assert check({**headers("a=1"), "x-slack-request-timestamp": "x1"}, b"a=1") == Rejection(
        401, "stale_signature"
    )


def test_while_the_database_is_down_this_process_remembers_alone() -> None:
    memory = Memory()
    memory.down = True
    check = guard(memory).check

    assert check(headers("b=1"), b"b=1") is None
    assert check(headers("b=1"), b"b=1") == Rejection(401, "replayed")
    memory.down = False
    assert check(headers("b=1"), b"b=1") == Rejection(401, "replayed")  # still known here


def test_after_the_database_failed_it_is_not_asked_again_for_a_few_seconds() -> None:
    memory, now = Memory(), [float(NOW)]
    asked: list[str] = []

    def remember(key: str) -> bool:
        asked.append(key)
        return memory.remember(key)

    check = RequestGuard(sr.SECRET, remember, memory.forget, clock=lambda: now[0]).check
    memory.down = True
    assert check(headers("c=1"), b"c=1") is None
    memory.down = False
    assert check(headers("c=2"), b"c=2") is None  # remembered here, without waiting on it
    assert len(asked) == 1
    now[0] += 5
    assert check(headers("c=3"), b"c=3") is None
    assert len(asked) == 2 and len(memory.keys) == 1


def test_a_silent_database_delays_a_request_by_the_budget_at_most() -> None:
    memory, release, answered = Memory(), threading.Event(), threading.Event()

    def hanging(key: str) -> bool:
        release.wait(10)
        answered.set()
        return memory.remember(key)

    check = RequestGuard(
        sr.SECRET, hanging, memory.forget, clock=lambda: NOW, remember_budget_s=0.05
    ).check
    assert check(headers("d=1"), b"d=1") is None
    assert check(headers("d=1"), b"d=1") == Rejection(401, "replayed")
    assert not answered.is_set(), "both requests went on while the database stayed silent"
    release.set()


def test_old_signatures_are_pruned_about_once_a_minute() -> None:
    memory = Memory()
    check = guard(memory).check
    for n in range(5):
        check(headers(f"c={n}"), f"c={n}".encode())

    wait_until(lambda: memory.forgotten, message="a prune")
    assert memory.forgotten == [("sig:", 360.0)]


def test_payload_shapes_name_what_is_missing() -> None:
    assert malformed({"command": "/job", "team_id": "T", "user_id": "U"}) is None
    assert malformed({"command": "/job", "team_id": "T", "user_id": 7}) == "user_id"
    assert malformed({"type": "event_callback", "team_id": "T", "event": []}) == "event.type"
    assert malformed({"type": "url_verification", "challenge": "x"}) is None
    click = {"type": "block_actions", "user": {"id": "U", "team_id": "T"}}
    assert malformed({**click, "actions": [{"action_id": "job_rerun"}]}) is None
    assert malformed({**click, "actions": [{"action_id": ""}]}) == "actions"
    assert malformed({"type": "view_closed", "user": {"id": "U"}, "team": {"id": "T"}}) == (
        "view.type, view.callback_id"
    )
