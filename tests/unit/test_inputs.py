"""The JSON input and .py file checks give clear, specific messages."""

from __future__ import annotations

import hashlib

import pytest

from bot.core.inputs import check_file, check_input, clean_file_name, strip_decorations
from bot.errors import InvalidFile, InvalidInput


def test_empty_input_means_empty_object() -> None:
    checked = check_input("", 1000)
    assert checked.value == {}
    assert checked.text == "{}"


def test_object_input_is_kept_and_canonicalised() -> None:
    checked = check_input('{ "a": 5,  "b": 3 }', 1000)
    assert checked.value == {"a": 5, "b": 3}
    assert checked.text == '{"a":5,"b":3}'


@pytest.mark.parametrize(
    "raw",
    [
        '```{"a": 5}```',
        '```json\n{"a": 5}\n```',
        '`{"a": 5}`',
        "{“a”: 5}",
        '  {"a": 5}  ',
    ],
)
def test_chat_decorations_are_removed(raw: str) -> None:
    assert check_input(raw, 1000).value == {"a": 5}


def test_invalid_json_says_where() -> None:
    with pytest.raises(InvalidInput) as info:
        check_input('{"a": 5,, "b": 3}', 1000)
    message = info.value.message
    assert "not valid JSON" in message
    assert "line 1, column 9" in message
    assert "Example:" in message


def test_single_quotes_get_a_hint() -> None:
    with pytest.raises(InvalidInput) as info:
        check_input("{'a': 5}", 1000)
    assert "double quotes" in info.value.message


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        ("[1, 2]", "a list"),
        ('"hi"', "a string"),
        ("5", "a number"),
        ("null", "null"),
        ("true", "true/false"),
    ],
)
def test_non_object_input_is_refused_with_its_kind(raw: str, kind: str) -> None:
    with pytest.raises(InvalidInput) as info:
        check_input(raw, 1000)
    assert f"not {kind}" in info.value.message


def test_nan_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        check_input('{"a": NaN}', 1000)
    assert "NaN" in info.value.message


def test_too_large_input_states_both_sizes() -> None:
    with pytest.raises(InvalidInput) as info:
        check_input('{"a": "' + "x" * 3000 + '"}', 2048)
    assert "2 KB" in info.value.message


def test_dunder_keys_are_reserved() -> None:
    with pytest.raises(InvalidInput) as info:
        check_input('{"__builtins__": 1}', 1000)
    assert "__builtins__" in info.value.message


def test_curly_quotes_inside_valid_json_strings_are_kept() -> None:
    assert check_input('{"q": "he said “hi” » ok"}', 1000).value == {"q": "he said “hi” » ok"}
    assert check_input("{“q”: “a”}", 1000).value == {"q": "a"}  # autocorrected: fixed


def test_strip_decorations_leaves_plain_json_alone() -> None:
    assert strip_decorations('{"a": "`x`"}') == '{"a": "`x`"}'


def test_valid_file_is_decoded_and_hashed() -> None:
    data = b"print('hi')\n"
    checked = check_file("dir/sub/hello.py", data, 1000)
    assert checked.name == "hello.py"
    assert checked.code == "print('hi')\n"
    assert checked.sha256 == hashlib.sha256(data).hexdigest()


def test_utf8_bom_is_dropped() -> None:
    assert check_file("a.py", b"\xef\xbb\xbfx = 1\n", 100).code == "x = 1\n"


@pytest.mark.parametrize(
    ("name", "data", "limit", "fragment"),
    [
        ("notes.txt", b"x=1", 100, "not a Python file"),
        ("a.py", b"x" * 101, 100, "the limit is 100 bytes"),
        ("a.py", b"   \n", 100, "empty"),
        ("a.py", b"x=1\x00", 100, "NUL bytes"),
        ("a.py", b"x='\xff\xfe'", 100, "not UTF-8"),
        ("", b"x=1", 100, "no name"),
    ],
)
def test_bad_files_get_specific_messages(name: str, data: bytes, limit: int, fragment: str) -> None:
    with pytest.raises(InvalidFile) as info:
        check_file(name, data, limit)
    assert fragment in info.value.message


def test_file_names_lose_paths_and_control_characters() -> None:
    assert clean_file_name("../../etc/evil\x1b[31m.py") == "evil[31m.py"
    assert clean_file_name("C:\\Users\\x\\job.py") == "job.py"
