"""Replies as ephemeral messages, JSON typed in Slack, and failure classification."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import SlackResponse

from bot.core.inputs import check_input
from bot.core.models import Actor, Identity, Job, JobStatus, User
from bot.core.replies import Detail, Listing, Problem
from bot.errors import InvalidInput
from bot.slack.failures import classify
from bot.slack.formatting import unescape
from bot.slack.replyviews import render

ALICE = Actor(User(1, Identity("slack", "T", "U0ALICE")))
BOB = Identity("slack", "T", "U0BOB")


def job(owner_id: int = 1, owner: Identity = ALICE.user.identity) -> Job:
    return Job(
        id=7,
        owner_id=owner_id,
        owner=owner,
        status=JobStatus.DONE,
        file_name="s.py",
        code="",
        code_sha256="",
        input_json="{}",
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        result_json='"top secret"',
        duration_ms=5,
    )


def text_of(reply: object) -> str:
    message = render(reply)  # type: ignore[arg-type]
    return message.text + json.dumps(message.blocks)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("{&quot;a&quot;: 1}", None),
        ('{"a": "&lt;b&gt; &amp; c"}', {"a": "<b> & c"}),
        ("“{”a”: 1}".replace("“{", "{"), {"a": 1}),
        ('```{"a": 1}```', {"a": 1}),
        ('```json\n{"a": 1}\n```', {"a": 1}),
        ('`{"a": 1}`', {"a": 1}),
        ("{“a”: “x”}", {"a": "x"}),
    ],
)
def test_json_typed_in_slack_is_decoded_then_cleaned(
    typed: str, expected: dict[str, object] | None
) -> None:
    if expected is None:
        with pytest.raises(InvalidInput):
            check_input(unescape(typed), 65536)
    else:
        assert check_input(unescape(typed), 65536).value == expected


def test_json_that_is_not_an_object_is_refused_with_an_example() -> None:
    with pytest.raises(InvalidInput, match="must be a JSON object"):
        check_input(unescape("[1, 2]"), 65536)


def test_others_never_see_output_in_status_or_lists() -> None:
    bobs = job(owner_id=2, owner=BOB)
    assert "top secret" not in text_of(Detail(bobs, full=False))
    assert "only its owner or an admin" in text_of(Detail(bobs, full=False))
    assert "top secret" in text_of(Detail(job(), full=True))
    listing = Listing("Latest jobs", (job(), bobs), ALICE)
    text = text_of(listing)
    assert text.count("top secret") == 1 and "<@U0BOB>" in text


def test_problems_are_escaped_and_keep_snippets_in_a_code_block() -> None:
    message = render(Problem("Bad <!channel> input\n{'a'}\n ^"))
    assert "<!channel>" not in json.dumps(message.blocks)
    assert message.blocks[1]["text"]["text"].startswith("```")


def response(
    status: int, data: dict[str, object], headers: dict[str, str] | None = None
) -> SlackResponse:
    return SlackResponse(
        client=None,
        http_verb="POST",
        api_url="x",
        req_args={},
        data=data,
        headers=headers or {},
        status_code=status,
    )


def test_failures_are_sorted_into_retry_fallback_or_give_up() -> None:
    limited = classify(SlackApiError("x", response(429, {"ok": False}, {"Retry-After": "7"})))
    assert limited.kind == "rate_limited" and limited.transient and limited.retry_after == 7
    assert classify(SlackApiError("x", response(503, {"ok": False}))).kind == "server_error"
    gone = classify(SlackApiError("x", response(200, {"ok": False, "error": "not_in_channel"})))
    assert gone.unreachable and not gone.transient
    auth = classify(SlackApiError("x", response(200, {"ok": False, "error": "invalid_auth"})))
    assert auth.transient and not auth.is_outage
    assert classify(ConnectionResetError()).kind == "connection"
    assert classify(TimeoutError()).kind == "timeout"
    odd = classify(SlackApiError("x", response(200, {"ok": False, "error": "<weird code!>"})))
    assert odd.kind == "api_error" and not odd.transient


def test_cancelling_a_running_job_says_it_is_being_stopped() -> None:
    from dataclasses import replace

    from bot.core.replies import Cancelled

    running = replace(job(), status=JobStatus.RUNNING, stop_requested_at=datetime.now(UTC))
    text = render(Cancelled(running)).text
    assert text == ":no_entry_sign: Stopping job #7."
    cancelled = replace(job(), status=JobStatus.CANCELLED)
    assert render(Cancelled(cancelled)).text == ":no_entry_sign: Job #7 cancelled."
