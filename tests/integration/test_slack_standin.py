"""The Slack stand-in is as strict as Slack: a known-bad client (the real slack_sdk WebClient,
bursting past the limits, calling what does not exist, posting where it may not) gets what
Slack would give it."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from testbed import slack_requests as sr
from testbed.slack_limits import POST_PER_CHANNEL, POST_PER_WORKSPACE, TIER_3, RateLimits
from testbed.slack_rules import RESPONSE_URL_USES, SCOPES, Triggers
from testbed.slack_standin import SlackStandIn

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def standin(clock: Clock) -> Iterator[SlackStandIn]:
    with SlackStandIn() as fake:
        fake.limits = RateLimits(clock)
        fake.triggers = Triggers(clock=clock)
        yield fake


@pytest.fixture
def client(standin: SlackStandIn) -> WebClient:
    """A client with no retry handler: it sees every refusal."""
    return WebClient(token=standin.token, base_url=standin.base_url, retry_handlers=[])


def error_of(call: object) -> tuple[int, str, str | None]:
    """(HTTP status, Slack's error, Retry-After) of a call that must fail."""
    with pytest.raises(SlackApiError) as caught:
        call()  # type: ignore[operator]
    response = caught.value.response
    headers = {k.lower(): v for k, v in response.headers.items()}
    return response.status_code, response["error"], headers.get("retry-after")


def test_a_burst_in_one_channel_gets_429_with_retry_after_and_others_go_on(
    client: WebClient, standin: SlackStandIn, clock: Clock
) -> None:
    for n in range(POST_PER_CHANNEL.burst):
        client.chat_postMessage(channel="C1", text=f"post {n}")
    status, error, retry_after = error_of(lambda: client.chat_postMessage(channel="C1", text="x"))
    assert (status, error, retry_after) == (429, "ratelimited", "1")
    client.chat_postMessage(channel="C2", text="another channel is not held up")
    clock.now += 1.0  # one token back, at one per second
    client.chat_postMessage(channel="C1", text="after Retry-After")
    assert len(standin.rate_limited("chat.postMessage")) == 1


def test_posts_across_many_channels_meet_the_workspace_limit(
    client: WebClient, clock: Clock
) -> None:
    for n in range(POST_PER_WORKSPACE.burst):
        client.chat_postMessage(channel=f"C{n:04d}", text="one per channel")
    status, error, retry_after = error_of(
        lambda: client.chat_postMessage(channel="C9999", text="one too many")
    )
    assert status == 429 and error == "ratelimited" and retry_after is not None
    clock.now += 60 / POST_PER_WORKSPACE.per_minute
    client.chat_postMessage(channel="C9999", text="refilled")


def test_a_tier_3_method_is_limited_for_the_whole_workspace(
    client: WebClient, clock: Clock
) -> None:
    posted = [client.chat_postMessage(channel=f"C{n}", text="x") for n in range(TIER_3.burst + 1)]
    for answer in posted[: TIER_3.burst]:
        client.chat_update(channel=answer["channel"], ts=answer["ts"], text="updated")
    last = posted[-1]
    status, _, retry_after = error_of(
        lambda: client.chat_update(channel=last["channel"], ts=last["ts"], text="x")
    )
    assert status == 429 and retry_after == "2"  # 50 a minute: a token every 1.2 s
    clock.now += 1.2
    client.chat_update(channel=last["channel"], ts=last["ts"], text="updated")


def test_an_injected_429_carries_retry_after_too(client: WebClient, standin: SlackStandIn) -> None:
    standin.inject("chat.postMessage", status=429)
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x"))[2] == "1"


def test_without_limits_a_burst_goes_through(standin: SlackStandIn, client: WebClient) -> None:
    standin.limits = None
    for n in range(POST_PER_CHANNEL.burst * 3):
        client.chat_postMessage(channel="C1", text=f"post {n}")
    assert standin.rate_limited() == []


def test_an_unknown_method_is_unknown_method(client: WebClient) -> None:
    assert error_of(lambda: client.api_call("chat.postMesage", json={"channel": "C1"}))[1] == (
        "unknown_method"
    )


def test_posting_where_the_bot_may_not(client: WebClient, standin: SlackStandIn) -> None:
    standin.add_channel("G1", private=True, bot_member=False)
    standin.add_channel("C1", bot_member=False)
    standin.add_channel("C2", archived=True)
    assert error_of(lambda: client.chat_postMessage(channel="G1", text="x"))[1] == (
        "channel_not_found"
    )
    assert error_of(lambda: client.chat_postMessage(channel="GNONE", text="x"))[1] == (
        "channel_not_found"
    )
    client.chat_postMessage(channel="C1", text="chat:write.public: a public channel is fine")
    standin.scopes = SCOPES - {"chat:write.public"}
    assert error_of(lambda: client.chat_postMessage(channel="C1", text="x"))[1] == "not_in_channel"
    assert error_of(lambda: client.chat_postMessage(channel="C2", text="x"))[1] == "is_archived"
    standin.add_channel("C3", members=("U0ALICE",))
    assert error_of(lambda: client.chat_postEphemeral(channel="C3", user="U0BOB", text="x"))[1] == (
        "user_not_in_channel"
    )


def test_what_a_message_may_not_be(client: WebClient, standin: SlackStandIn) -> None:
    standin.limits = None  # a dozen refusals in one channel, each for its content alone

    def post(**kw: object) -> object:
        return client.chat_postMessage(channel="C1", **kw)

    assert error_of(lambda: post(text="x" * 40_001))[1] == "msg_too_long"
    no_text = {"channel": "C1", "text": ""}  # past slack_sdk's own warning, as a raw call
    assert error_of(lambda: client.api_call("chat.postMessage", json=no_text))[1] == "no_text"
    long_section = {"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}
    for blocks in (
        [long_section],
        [{"type": "sektion", "text": {"type": "mrkdwn", "text": "hi"}}],
        [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}],
        [SECTION] * 51,
        [{**SECTION, "block_id": "a"}, {**SECTION, "block_id": "a"}],
        [{"type": "actions", "elements": []}],
    ):
        assert error_of(lambda b=blocks: post(text="x", blocks=b))[1] == "invalid_blocks"
    assert error_of(lambda: post(text="x", blocks="{not json"))[1] == "invalid_blocks_format"
    post(text="fine", blocks=[SECTION])


def test_updating_a_message_that_is_not_there(client: WebClient) -> None:
    assert error_of(lambda: client.chat_update(channel="C1", ts="1.000001", text="x"))[1] == (
        "message_not_found"
    )


def test_a_trigger_id_is_good_once_and_for_3_seconds(client: WebClient, clock: Clock) -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "Run job"},
        "blocks": [SECTION],
    }
    clock.now = 1_700_000_000.0
    fresh = f"{int(clock.now * 1000)}.1.abc"
    client.views_open(trigger_id=fresh, view=view)
    assert error_of(lambda: client.views_open(trigger_id=fresh, view=view))[1] == (
        "exchanged_trigger_id"
    )
    stale = f"{int(clock.now * 1000) - 3001}.2.abc"
    assert error_of(lambda: client.views_open(trigger_id=stale, view=view))[1] == (
        "expired_trigger_id"
    )
    assert error_of(lambda: client.views_open(trigger_id="trig.made.up", view=view))[1] == (
        "invalid_trigger_id"
    )
    long_title = {**view, "title": {"type": "plain_text", "text": "x" * 25}}
    later = f"{int(clock.now * 1000)}.3.abc"
    assert error_of(lambda: client.views_open(trigger_id=later, view=long_title))[1] == (
        "invalid_arguments"
    )


def test_a_response_url_takes_five_posts(standin: SlackStandIn) -> None:
    url = standin.response_url()
    statuses = []
    for _ in range(RESPONSE_URL_USES + 1):
        request = urllib.request.Request(  # noqa: S310 - the stand-in's own http URL
            url, data=json.dumps({"text": "hi"}).encode(), method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                statuses.append(answer.status)
        except urllib.error.HTTPError as exc:
            statuses.append(exc.code)
            assert exc.read() == b"used_url"
    assert statuses == [200] * RESPONSE_URL_USES + [404]


def test_requests_carry_trigger_ids_the_stand_in_accepts(
    client: WebClient, standin: SlackStandIn
) -> None:
    standin.triggers = Triggers()  # the real clock: the id was issued just now
    trigger = sr.new_trigger_id()
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Run"}, "blocks": [SECTION]}
    assert client.views_open(trigger_id=trigger, view=view)["ok"]


def test_a_wait_for_a_call_wakes_as_the_call_is_recorded(
    client: WebClient, standin: SlackStandIn
) -> None:
    def posted() -> dict[str, object] | None:
        found = [c.body for c in standin.calls("chat.postMessage") if c.body.get("text") == "hi"]
        return found[0] if found else None

    poster = threading.Thread(target=lambda: client.chat_postMessage(channel="C1", text="hi"))
    poster.start()
    body = standin.wait_recorded(posted, timeout=10)
    poster.join()
    assert body["channel"] == "C1"
    with pytest.raises(TimeoutError):
        standin.wait_recorded(lambda: None, timeout=0.05)
