"""Code from a message: the one code block split from the command, and cleaned."""

from __future__ import annotations

import pytest

from bot.core.snippets import MessageCode, clean_code, take_code
from bot.errors import InvalidFile, UsageError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('run {"a": 1}\n```print(a)```', MessageCode('run {"a": 1}', "print(a)")),
        ("run\n```python\nprint(1)\n```", MessageCode("run", "print(1)\n")),
        ("run ```Python3\nx = 1\n```", MessageCode("run", "x = 1\n")),
        ("```py\nprint(2)```\nrun", MessageCode("run", "print(2)")),
        ("run ```python```", MessageCode("run", "python")),  # a tag needs a line of its own
        ("run {`a`: 1}", None),
    ],
)
def test_the_code_block_is_split_from_the_command(text: str, expected: MessageCode | None) -> None:
    assert take_code(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("run ```a``` and ```b```", "2 code blocks"),
        ("run ```print(1)", "not closed"),
        ("run ```a``` ```", "not closed"),
    ],
)
def test_two_blocks_or_an_open_one_are_refused(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        take_code(text)


def test_smart_quotes_are_undone_only_where_the_code_needs_it() -> None:
    assert clean_code("print(“hi”)") == 'print("hi")\n'
    assert clean_code("print('“kept”')") == "print('“kept”')\n"
    assert clean_code("print(‘it’s’)") == "print(‘it’s’)\n"  # neither way valid: as typed


def test_no_break_spaces_become_spaces_and_an_empty_block_is_refused() -> None:
    assert clean_code("if 1:\n\u00a0\u00a0print(1)") == "if 1:\n  print(1)\n"
    with pytest.raises(InvalidFile, match="empty"):
        clean_code(" \n \n")
