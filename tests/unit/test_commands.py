"""`/job ...` text parses into the right command, and mistakes give the right usage."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.core.commands import (
    CancelCommand,
    HelpCommand,
    ListCommand,
    MineCommand,
    RerunCommand,
    RunCommand,
    StatusCommand,
    TokenCommand,
    parse_command,
    parse_job_id,
)
from bot.errors import UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status 12", StatusCommand(12)),
        ("token", TokenCommand(revoke=False)),
        ("token REVOKE", TokenCommand(revoke=True)),
        ("token --expires 30d", TokenCommand(lifetime=timedelta(days=30))),
        ("token expires 90M", TokenCommand(lifetime=timedelta(minutes=90))),
        ("/job status #12", StatusCommand(12)),
        ("STATUS 7", StatusCommand(7)),
        ("mine", MineCommand(10)),
        ("mine 3", MineCommand(3)),
        ("list", ListCommand(1)),
        ("list 2", ListCommand(2)),
        ("cancel 4", CancelCommand(4)),
        ("rerun 9", RerunCommand(9)),
        ("help", HelpCommand()),
        ("", HelpCommand()),
        ("frobnicate 3", HelpCommand(unknown="frobnicate")),
        ('run {"a": 5}', RunCommand(None, '{"a": 5}')),
        ("run", RunCommand(None, "")),
        (
            'run examples/soma.py {"a": 5, "b": 3}',
            RunCommand("examples/soma.py", '{"a": 5, "b": 3}'),
        ),
        ("run soma.py", RunCommand("soma.py", "")),
        ('run ```{"a": 1}```', RunCommand(None, '```{"a": 1}```')),
    ],
)
def test_parses(text: str, expected: object) -> None:
    assert parse_command(text) == expected


@pytest.mark.parametrize("token", ["abc", "0", "-3", "1.5", "12 13", "1e3", "9" * 30, "²", "١٢"])
def test_bad_job_ids_explain_the_form(token: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(f"status {token}")
    assert "/job status 12" in info.value.message


def test_missing_job_id_asks_which_job() -> None:
    with pytest.raises(UsageError) as info:
        parse_job_id("", "cancel")
    assert "Which job?" in info.value.message
    assert "/job cancel 12" in info.value.message


@pytest.mark.parametrize("token", ["0", "51", "x", "²", "9" * 5000])
def test_mine_count_out_of_range_is_refused(token: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_command(f"mine {token}")
    assert "from 1 to 50" in info.value.message


@pytest.mark.parametrize(
    "text",
    [
        "token --expires",
        "token --expires 0d",
        "token --expires 3w",
        "token --expires 99999d",
        "token forever",
        "token revoke 3d",
    ],
)
def test_a_bad_token_lifetime_is_refused_with_the_form(text: str) -> None:
    with pytest.raises(UsageError, match="30d"):
        parse_command(text)
