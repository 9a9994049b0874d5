"""`/job token` through the real Bolt app on MariaDB: the token in the slash command's own
ephemeral answer, once, only its hash stored; revoked by `/job token revoke`; never handed out
in a message, whose answer may stay in the conversation."""

from __future__ import annotations

import json
import re

from sqlalchemy import text

from bot.core.models import Identity
from bot.core.tokens import token_hash
from testbed import slack_requests as sr
from testbed.slack_standin import message_text
from testbed.waiting import wait_until
from tests.integration.slack.conftest import Stack

TOKEN = re.compile(r"jobbot_[A-Za-z0-9_-]{43}")


def test_a_slash_command_shows_a_new_token_once_to_its_user_alone(stack: Stack) -> None:
    answer = stack.dispatch(sr.slash("token"))
    body = json.loads(answer.body)
    assert answer.status == 200 and body.get("response_type", "ephemeral") == "ephemeral"
    [token] = set(TOKEN.findall(answer.body))
    actor = stack.runtime.service.tokens.authenticate(token)
    assert actor is not None and actor.user.identity == Identity("slack", sr.TEAM, sr.ALICE)
    with stack.runtime.store.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_sha256 FROM api_tokens")).scalars().all()
    assert stored == [token_hash(token)]
    # nothing posted anywhere: the ack alone carries it
    assert [call.api for call in stack.standin.calls()] == ["auth.test"]


def test_a_new_token_retires_the_old_and_revoke_ends_it(stack: Stack) -> None:
    first = TOKEN.findall(stack.dispatch(sr.slash("token")).body)[0]
    second = TOKEN.findall(stack.dispatch(sr.slash("token")).body)[0]
    service = stack.runtime.service
    assert (
        service.tokens.authenticate(first) is None
        and service.tokens.authenticate(second) is not None
    )
    assert "revoked" in stack.dispatch(sr.slash("token revoke")).body
    assert service.tokens.authenticate(second) is None
    assert "no API token" in stack.dispatch(sr.slash("token revoke")).body


def test_a_token_asked_for_with_a_lifetime_says_when_it_expires(stack: Stack) -> None:
    answer = stack.dispatch(sr.slash("token --expires 30d"))
    [token] = set(TOKEN.findall(answer.body))
    assert "It expires at" in answer.body
    actor = stack.runtime.service.tokens.authenticate(token)
    assert actor is not None
    stored = stack.runtime.service.tokens.of(actor)
    assert stored is not None and stored.expires_at is not None
    assert stored.expires_at.strftime("%Y-%m-%d %H:%M") in answer.body


def test_a_mistyped_token_command_says_what_it_takes(stack: Stack) -> None:
    answer = stack.dispatch(sr.slash("token please"))
    assert "`/job token revoke`" in answer.body and not TOKEN.search(answer.body)


def test_a_token_asked_for_in_a_dm_is_not_handed_out(stack: Stack) -> None:
    stack.dispatch(sr.event(sr.dm_text("token")))
    post = wait_until(
        lambda: stack.standin.calls("chat.postMessage"), message="the answer to the DM"
    )[0]
    stack.finish_intake()
    assert "only by the slash command" in message_text(post.body)
    assert not TOKEN.search(json.dumps(post.body))
    with stack.runtime.store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM api_tokens")).scalar() == 0
