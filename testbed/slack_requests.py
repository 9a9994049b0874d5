"""Signed Slack requests (slash commands, Events API, interactivity) built the way Slack
builds them, for Bolt-level and end-to-end tests."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

SECRET = "standin-signing-secret"
TEAM, ALICE, BOB, ADMIN, BOT = "T0TEAM", "U0ALICE", "U0BOB", "U0ADMIN", "U0BOT"
CHANNEL = "C0CHAN"
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_seq = itertools.count(1)


@dataclass(frozen=True)
class SlackRequest:
    """A raw body and its headers, ready to dispatch or POST."""

    body: str
    headers: dict[str, str]


def sign(body: str, timestamp: str, secret: str = SECRET) -> str:
    """v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    return "v0=" + digest.hexdigest()


def signed(
    body: str,
    content_type: str,
    *,
    secret: str = SECRET,
    timestamp: int | None = None,
    extra: dict[str, str] | None = None,
) -> SlackRequest:
    """Headers as Slack sends them (lower-case, as Bolt reads them)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sign(body, ts, secret),
    }
    headers.update(extra or {})
    return SlackRequest(body, headers)


def unique(prefix: str) -> str:
    """A fresh id (trigger ids, event ids, message ts)."""
    n = next(_seq)
    return f"{prefix}{int(time.time() * 1000)}{n:04d}"


def new_trigger_id() -> str:
    """A fresh trigger id as Slack issues one with a request, carrying its issue time (the
    first part, in milliseconds) so the stand-in can tell when it expired (after 3 s)."""
    n = next(_seq)
    return f"{int(time.time() * 1000)}.{n}.{secrets.token_hex(6)}"


def new_ts() -> str:
    """A fresh message ts."""
    n = next(_seq)
    return f"{int(time.time())}.{n:06d}"


def slash(
    text: str,
    *,
    user: str = ALICE,
    channel: str = CHANNEL,
    response_url: str = "https://hooks.slack.com/commands/T0TEAM/1/abc",
    trigger_id: str | None = None,
    **sign_args: Any,
) -> SlackRequest:
    """A `/job` slash command."""
    fields = {
        "token": "x",
        "team_id": TEAM,
        "team_domain": "acme",
        "channel_id": channel,
        "channel_name": "ops",
        "user_id": user,
        "user_name": user.lower(),
        "command": "/job",
        "text": text,
        "api_app_id": "A0APP",
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return signed(urlencode(fields), FORM, **sign_args)


def event(
    inner: dict[str, Any],
    *,
    event_id: str | None = None,
    retry: int | None = None,
    **sign_args: Any,
) -> SlackRequest:
    """An Events API envelope around `inner`."""
    envelope = {
        "token": "x",
        "team_id": TEAM,
        "api_app_id": "A0APP",
        "type": "event_callback",
        "event_id": event_id or unique("Ev"),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": TEAM,
                "user_id": BOT,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event": inner,
    }
    extra = (
        {"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"} if retry else None
    )
    return signed(json.dumps(envelope), JSON, extra=extra, **sign_args)


def interactive(payload: dict[str, Any], **sign_args: Any) -> SlackRequest:
    """An interactivity request: `payload=<urlencoded JSON>`."""
    return signed("payload=" + quote(json.dumps(payload)), FORM, **sign_args)


def file_message(
    text: str,
    files: list[dict[str, Any]],
    *,
    user: str = ALICE,
    channel: str = CHANNEL,
    channel_type: str = "channel",
    ts: str | None = None,
) -> dict[str, Any]:
    """A `message` event with subtype file_share."""
    ts = ts or new_ts()
    return {
        "type": "message",
        "subtype": "file_share",
        "text": text,
        "files": files,
        "upload": False,
        "user": user,
        "display_as_bot": False,
        "ts": ts,
        "channel": channel,
        "channel_type": channel_type,
        "event_ts": ts,
    }


def mention(
    text: str,
    *,
    files: list[dict[str, Any]] | None = None,
    user: str = ALICE,
    channel: str = CHANNEL,
    ts: str | None = None,
) -> dict[str, Any]:
    """An app_mention event."""
    ts = ts or new_ts()
    inner: dict[str, Any] = {
        "type": "app_mention",
        "text": text,
        "user": user,
        "ts": ts,
        "team": TEAM,
        "channel": channel,
        "event_ts": ts,
    }
    if files:
        inner.update(files=files, upload=False, display_as_bot=False)
    return inner


def dm_text(text: str, *, user: str = ALICE, channel: str = "D0ALICE") -> dict[str, Any]:
    """A plain message in the user's DM with the bot."""
    ts = new_ts()
    return {
        "type": "message",
        "text": text,
        "user": user,
        "ts": ts,
        "channel": channel,
        "channel_type": "im",
        "event_ts": ts,
    }


def home_opened(user: str = ALICE, tab: str = "home") -> dict[str, Any]:
    """app_home_opened."""
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": "D0" + user,
        "tab": tab,
        "event_ts": new_ts(),
    }


def view_submission(
    file: dict[str, Any] | None,
    input_text: str,
    *,
    metadata: dict[str, Any] | None = None,
    user: str = ALICE,
    view_id: str | None = None,
) -> dict[str, Any]:
    """A Run job form submission."""
    return {
        "type": "view_submission",
        "team": {"id": TEAM, "domain": "acme"},
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "x",
        "trigger_id": new_trigger_id(),
        "is_enterprise_install": False,
        "enterprise": None,
        "view": {
            "id": view_id or unique("V"),
            "team_id": TEAM,
            "type": "modal",
            "callback_id": "job_run_modal",
            "private_metadata": json.dumps(metadata if metadata is not None else {"c": CHANNEL}),
            "hash": "1700000000.AbCdEf12",
            "app_id": "A0APP",
            "bot_id": "B0BOT",
            "title": {"type": "plain_text", "text": "Run job"},
            "blocks": [],
            "state": {
                "values": {
                    "script_block": {
                        "script_file": {"type": "file_input", "files": [file] if file else []}
                    },
                    "input_block": {
                        "input_json": {"type": "plain_text_input", "value": input_text}
                    },
                }
            },
        },
        "response_urls": [],
    }


def rerun_click(
    job_id: str,
    *,
    user: str = ALICE,
    channel: str = CHANNEL,
    response_url: str | None = None,
    home: bool = False,
) -> dict[str, Any]:
    """A click on a Re-run button, in a thread or on the Home tab."""
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "name": user.lower(), "team_id": TEAM},
        "api_app_id": "A0APP",
        "token": "x",
        "trigger_id": new_trigger_id(),
        "team": {"id": TEAM, "domain": "acme"},
        "actions": [
            {
                "action_id": "job_rerun",
                "block_id": f"job_{job_id}_actions",
                "type": "button",
                "text": {"type": "plain_text", "text": "Re-run"},
                "value": job_id,
                "action_ts": new_ts(),
            }
        ],
    }
    if home:
        payload["container"] = {"type": "view", "view_id": "V0HOME"}
        payload["view"] = {"id": "V0HOME", "type": "home", "blocks": []}
    else:
        ts = new_ts()
        payload["container"] = {
            "type": "message",
            "message_ts": ts,
            "channel_id": channel,
            "is_ephemeral": False,
        }
        payload["channel"] = {"id": channel, "name": "ops"}
        payload["message"] = {
            "type": "message",
            "ts": ts,
            "text": "Job finished",
            "bot_id": "B0BOT",
        }
        payload["response_url"] = response_url or "https://hooks.slack.com/actions/T0TEAM/1/x"
    return payload


@dataclass(frozen=True)
class HttpAnswer:
    """What the HTTP server answered."""

    status: int
    body: str
    elapsed: float

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


def post(url: str, request: SlackRequest, timeout: float = 10.0) -> HttpAnswer:
    """POST a signed request to a running server."""
    req = urllib.request.Request(  # noqa: S310 - the test server's own http URL
        url, data=request.body.encode(), headers=request.headers, method="POST"
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return HttpAnswer(
                response.status, response.read().decode(), time.perf_counter() - started
            )
    except urllib.error.HTTPError as exc:
        return HttpAnswer(exc.code, exc.read().decode(), time.perf_counter() - started)
