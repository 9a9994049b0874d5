"""Asker: who asked and where, from each payload shape Slack sends; the journal's record of it;
and the keys requests are remembered by, spelled as stored jobs and held requests hold them."""

from __future__ import annotations

from urllib.parse import parse_qsl

from bot.slack import keys
from bot.slack.intake.request import Asker, clicked_on_home, event_team
from bot.slack.origin import Kind
from testbed import slack_requests as sr

RESPONSE_URL = "https://hooks.slack.com/commands/T0TEAM/1/abc"


def test_a_slash_command_names_its_channel_response_url_and_display_name() -> None:
    body = dict(parse_qsl(sr.slash("mine", response_url=RESPONSE_URL).body))
    asker = Asker.from_command(body)
    assert asker == Asker(sr.TEAM, sr.ALICE, sr.CHANNEL, RESPONSE_URL, None, "u0alice")
    assert asker.where.response_url == RESPONSE_URL


def test_the_run_job_form_carries_the_conversation_it_was_opened_in() -> None:
    opened = Asker(sr.TEAM, sr.ALICE, sr.CHANNEL, RESPONSE_URL)
    body = sr.view_submission(None, "{}", metadata=opened.form_metadata())
    assert Asker.from_form(body) == opened
    unreadable = sr.view_submission(None, "{}")
    unreadable["view"]["private_metadata"] = "{not json"
    assert Asker.from_form(unreadable) == Asker(sr.TEAM, sr.ALICE)


def test_a_click_in_a_thread_answers_there_and_one_on_the_home_tab_in_the_dm() -> None:
    in_thread = sr.rerun_click("5", channel="C0OTHER", response_url=RESPONSE_URL)
    on_home = sr.rerun_click("5", home=True)
    assert Asker.from_click(in_thread) == Asker(sr.TEAM, sr.ALICE, "C0OTHER", RESPONSE_URL)
    assert Asker.from_click(on_home) == Asker(sr.TEAM, sr.ALICE)
    assert not clicked_on_home(in_thread) and clicked_on_home(on_home)


def test_a_message_is_answered_in_its_thread_and_a_dm_in_the_dm() -> None:
    dm = sr.dm_text("status 1")
    asker = Asker.from_message(sr.TEAM, dm)
    assert asker == Asker(sr.TEAM, sr.ALICE, "D0ALICE", None, dm["ts"])
    assert asker.where.is_dm and asker.where.thread_ts == dm["ts"]
    other = {**sr.mention("hi"), "team": "T0OTHER"}  # Slack Connect: the sender's workspace
    assert Asker.from_message(sr.TEAM, other).team == "T0OTHER"


def test_the_home_tab_names_only_the_person() -> None:
    envelope = {"team_id": sr.TEAM, "event": sr.home_opened()}
    assert Asker.from_home(event_team(envelope), envelope["event"]) == Asker(sr.TEAM, sr.ALICE)


def test_the_journal_record_of_an_asker_round_trips() -> None:
    asker = Asker(sr.TEAM, sr.ALICE, sr.CHANNEL, RESPONSE_URL, "1.2", "alice")
    assert Asker.from_dict(asker.to_dict()) == asker
    assert Asker.from_dict({**asker.to_dict(), "added_later": 1}) == asker
    assert Asker.from_dict(None) is None
    assert asker.origin(Kind.COMMAND)["slack_channel"] == sr.CHANNEL


def test_keys_are_spelled_as_stored_jobs_and_held_requests_already_hold_them() -> None:
    # A change here would orphan held requests and let re-delivered requests run twice.
    assert keys.command("T1", "trig.1") == "cmd:T1:trig.1"
    assert keys.form("V1") == "view:V1"
    assert keys.message("C1", "1.2") == "msg:C1:1.2"
    assert keys.button("1.3") == "btn:1.3"
    assert keys.refused("msg:C1:1.2") == "msg:C1:1.2:refused"
    assert keys.signature("v0=ab") == "sig:v0=ab"
    assert keys.signature("v0=ab").startswith(keys.SIGNATURE_PREFIX)
