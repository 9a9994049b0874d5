"""manifest.yml declares every command, event and scope the Slack code uses."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
SOURCE = "\n".join(p.read_text() for p in sorted((ROOT / "bot" / "slack").glob("*.py")))
MANIFEST = yaml.safe_load((ROOT / "manifest.yml").read_text())

# Web API methods the code calls, and the bot scope each needs (None: no scope).
METHOD_SCOPES = {
    "chat_postMessage": {"chat:write", "chat:write.public"},
    "chat_postEphemeral": {"chat:write"},
    "chat_update": {"chat:write"},
    "files_upload_v2": {"files:write"},
    "files_info": {"files:read"},
    "views_open": set(),
    "views_publish": set(),
    "auth_test": set(),
}
# Bolt event names -> manifest bot events and the scopes they need.
EVENTS = {
    "message": {
        "message.im": "im:history",
        "message.channels": "channels:history",
        "message.groups": "groups:history",
        "message.mpim": "mpim:history",
    },
    "app_mention": {"app_mention": "app_mentions:read"},
    "app_home_opened": {"app_home_opened": None},
}


def test_the_manifest_has_every_command_the_code_registers() -> None:
    used = set(re.findall(r'COMMAND = "(/[a-z]+)"', SOURCE))
    declared = {c["command"] for c in MANIFEST["features"]["slash_commands"]}
    assert used == {"/job"} and used <= declared
    command = MANIFEST["features"]["slash_commands"][0]
    assert command["description"] and "run" in command["usage_hint"]
    assert "commands" in MANIFEST["oauth_config"]["scopes"]["bot"]


def test_the_manifest_has_every_event_and_scope_the_code_uses() -> None:
    scopes = set(MANIFEST["oauth_config"]["scopes"]["bot"])
    events = set(MANIFEST["settings"]["event_subscriptions"]["bot_events"])
    used_events = set(re.findall(r'@app\.event\("([a-z_]+)"\)', SOURCE))
    assert used_events == set(EVENTS)
    for name in used_events:
        for bot_event, scope in EVENTS[name].items():
            assert bot_event in events
            assert scope is None or scope in scopes
    attributes = {"base_url", "retry_handlers"}
    used_methods = set(re.findall(r"client\.([a-z]+_[A-Za-z_0-9]+)", SOURCE)) - attributes
    unknown = used_methods - set(METHOD_SCOPES)
    assert not unknown, f"add the scopes of {unknown} to METHOD_SCOPES and manifest.yml"
    for method in used_methods:
        assert METHOD_SCOPES[method] <= scopes
    assert "files:read" in scopes  # private file downloads
    assert "url_private" in SOURCE


def test_the_manifest_turns_on_interactivity_the_home_tab_and_socket_mode() -> None:
    assert MANIFEST["settings"]["interactivity"]["is_enabled"] is True
    home = MANIFEST["features"]["app_home"]
    assert home["home_tab_enabled"] and home["messages_tab_enabled"]
    assert home["messages_tab_read_only_enabled"] is False
    assert MANIFEST["settings"]["socket_mode_enabled"] is True
    assert len(MANIFEST["display_information"]["name"]) <= 35
    assert re.fullmatch(r"[a-z0-9._-]{1,80}", MANIFEST["features"]["bot_user"]["display_name"])
    assert "/slack/events" in (ROOT / "manifest.yml").read_text()


def test_group_dms_are_subscribed_to_like_dms() -> None:
    assert "message.mpim" in MANIFEST["settings"]["event_subscriptions"]["bot_events"]
    assert "mpim:history" in MANIFEST["oauth_config"]["scopes"]["bot"]
