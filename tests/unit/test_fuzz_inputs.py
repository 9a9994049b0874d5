"""Property-based fuzzing of the command parser and the input readers: any text or bytes a
user can send either parse or fail with a UserError carrying a message — never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import HelpCommand, RunCommand, parse_command
from bot.core.inputs import check_file, check_input
from bot.errors import InvalidFile, InvalidInput, UsageError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
verbs = st.sampled_from(["run", "status", "mine", "list", "cancel", "rerun", "help", "", "RUN"])


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_crashes_on_any_text(text: str) -> None:
    try:
        command = parse_command(text)
    except UsageError as exc:
        assert exc.message
    else:
        assert command is not None


@settings(max_examples=300, deadline=None)
@given(verbs, st.text(max_size=60))
def test_parser_never_crashes_on_any_arguments(verb: str, rest: str) -> None:
    try:
        command = parse_command(f"{verb} {rest}")
    except UsageError as exc:
        assert exc.message
    else:
        if verb.lower() == "run":
            assert isinstance(command, RunCommand)
        elif verb == "help":
            assert isinstance(command, HelpCommand)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_input_reader_accepts_objects_or_explains(text: str) -> None:
    try:
        checked = check_input(text, 65536)
    except InvalidInput as exc:
        assert exc.message
    else:
        assert isinstance(checked.value, dict)
        assert json.loads(checked.text) == checked.value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6))
def test_any_json_object_round_trips(value: dict[str, Any]) -> None:
    dunder = any(k.startswith("__") and k.endswith("__") for k in value)
    try:
        checked = check_input(json.dumps(value), 1 << 20)
    except InvalidInput:
        assert dunder
    else:
        assert checked.value == value


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.binary(max_size=300))
def test_file_checks_accept_or_explain(name: str, data: bytes) -> None:
    try:
        checked = check_file(name, data, 256)
    except InvalidFile as exc:
        assert exc.message
    else:
        assert checked.name.lower().endswith(".py")
        assert checked.code == data.decode("utf-8").removeprefix("\ufeff")
