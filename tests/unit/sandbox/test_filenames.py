"""The one file-name rule of a job's files (bot/sandbox/filenames.py), shared by the data-file
checks in core and the collection of files out in the sandbox."""

from __future__ import annotations

import pytest

from bot.sandbox.filenames import MAX_NAME, clean_name, unique_name


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("data.csv", "data.csv"),
        ("../../x", "_.._x"),
        ("a\\b.csv", "a_b.csv"),
        ("a\nb.csv", "a_b.csv"),
        ("\x1b[31mred.txt", "_[31mred.txt"),
        ("\u202etxt.exe", "_txt.exe"),
        ("zero\u200bwidth.csv", "zero_width.csv"),
        (".hidden", "hidden"),
        ("..", "file"),
        ("", "file"),
        ("  spaced name.csv ", "spaced name.csv"),
        ("e\u0301te\u0301.csv", "été.csv"),
    ],
)
def test_a_name_becomes_one_plain_printable_component(raw: str, cleaned: str) -> None:
    assert clean_name(raw) == cleaned


def test_a_long_name_is_cut_to_the_limit_keeping_its_extension() -> None:
    assert clean_name("a" * 300 + ".csv") == "a" * (MAX_NAME - 4) + ".csv"
    assert clean_name("a" * 300 + ".not-an-extension") == "a" * MAX_NAME


def test_a_clashing_name_gets_the_first_free_number_before_its_extension() -> None:
    assert unique_name("d.csv", set()) == "d.csv"
    assert unique_name("d.csv", {"d.csv", "d-2.csv"}) == "d-3.csv"
    assert unique_name("README", {"README"}) == "README-2"
    assert unique_name(".csv", {".csv"}) == ".csv-2"


def test_a_reserved_name_is_numbered_whatever_its_case() -> None:
    assert unique_name("OUT", set(), reserved=("out",)) == "OUT-2"
    assert unique_name("out.txt", set(), reserved=("out",)) == "out.txt"
