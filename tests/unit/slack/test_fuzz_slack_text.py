"""Property-based fuzzing of what Slack hands jobbot as text: its entity escaping, smart quotes
typed by Slack clients, backticks and code fences around the JSON. Any JSON object a person
types arrives intact; any other text is a clear refusal. (Arbitrary text through the real
Bolt app: tests/resilience/test_slack_fuzz.py.)"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import RunCommand, parse_command
from bot.core.inputs import check_input
from bot.errors import InvalidInput, UsageError
from bot.slack.formatting import unescape

QUOTES = "\"“”„«»‘’'\\"  # what a smart-quoted text may not carry inside its strings


def slack_escape(text: str) -> str:
    """What Slack does to a person's text before sending it (slack.md 6.1)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def smart(typed: str) -> str:
    """Plain double quotes turned into “ and ” in turn, as a Slack client's autocorrect does."""
    out, opening = [], True
    for ch in typed:
        if ch == '"':
            out.append("“" if opening else "”")
            opening = not opening
        else:
            out.append(ch)
    return "".join(out)


def values(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | text,
        lambda children: (
            st.lists(children, max_size=3) | st.dictionaries(text, children, max_size=3)
        ),
        max_leaves=12,
    )


def objects(text: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    keys = text.filter(lambda k: not (k.startswith("__") and k.endswith("__")))
    return st.dictionaries(keys, values(text), max_size=5)


# Slack's JSON is valid UTF-8: no lone surrogates
any_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
plain_text = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters=QUOTES), max_size=12
)
WRAPPERS = ["{}", "`{}`", "```{}```", "```\n{}\n```", "```json\n{}\n```", "  {}  "]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=200))
def test_slack_escaping_is_undone_exactly(typed: str) -> None:
    assert unescape(slack_escape(typed)) == typed


@settings(max_examples=300, deadline=None)
@given(objects(any_text), st.sampled_from(WRAPPERS), st.booleans())
def test_any_json_object_typed_in_slack_arrives_intact(
    value: dict[str, Any], wrapper: str, ascii_only: bool
) -> None:
    typed = wrapper.format(json.dumps(value, ensure_ascii=ascii_only))

    command = parse_command(unescape("run " + slack_escape(typed)))

    assert isinstance(command, RunCommand) and command.path is None
    assert check_input(command.input_text, 1 << 20).value == value


@settings(max_examples=300, deadline=None)
@given(objects(plain_text), st.sampled_from(WRAPPERS))
def test_a_smart_quoted_json_object_arrives_intact(value: dict[str, Any], wrapper: str) -> None:
    typed = wrapper.format(smart(json.dumps(value, ensure_ascii=False)))

    command = parse_command(unescape("run " + slack_escape(typed)))

    assert isinstance(command, RunCommand)
    assert check_input(command.input_text, 1 << 20).value == value


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_text_after_run_is_an_object_or_a_clear_refusal(typed: str) -> None:
    try:
        command = parse_command(unescape("run " + slack_escape(typed)))
        assert isinstance(command, RunCommand)
        checked = check_input(command.input_text, 65536)
    except (UsageError, InvalidInput) as exc:
        assert exc.message
    else:
        assert isinstance(checked.value, dict)
