"""Property-based fuzzing of the command parser and the input readers: any text or bytes a
user can send either parse or fail with a UserError carrying a message — never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.commands import (
    CancelCommand,
    Command,
    HelpCommand,
    ListCommand,
    MineCommand,
    RerunCommand,
    RunCommand,
    StatusCommand,
    TokenCommand,
    parse_command,
)
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
verbs = st.sampled_from(
    ["run", "status", "mine", "list", "cancel", "rerun", "token", "help", "", "RUN"]
)


VERB_CLASSES: dict[str, type[Command]] = {
    "run": RunCommand,
    "status": StatusCommand,
    "mine": MineCommand,
    "list": ListCommand,
    "cancel": CancelCommand,
    "rerun": RerunCommand,
    "token": TokenCommand,
    **dict.fromkeys(("", "help", "-h", "--help", "?"), HelpCommand),
}


def first_word(text: str) -> str:
    """The subcommand as a person reads it: the first word after an optional `/job`."""
    body = text.strip()
    if body.lower().startswith("/job"):
        body = body[4:].strip()
    return body.partition(" ")[0].partition("\n")[0].lower()


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_parser_never_crashes_on_any_text(text: str) -> None:
    try:
        command = parse_command(text)
    except UsageError as exc:
        assert exc.message
    else:
        # the first word decides the command; one it does not know is named back in the help
        verb = first_word(text)
        assert type(command) is VERB_CLASSES.get(verb, HelpCommand)
        if verb not in VERB_CLASSES:
            assert command == HelpCommand(unknown=verb[:40])


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
