"""The hint an uncaught failed import gets: what jobs can import instead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.sandbox.inside import hints


@pytest.fixture(autouse=True)
def _offered() -> Iterator[None]:
    hints.offer(["numpy 2.4.6", "pandas 3.1.1"])
    yield
    hints.offer([])


def failed_import(name: str) -> ModuleNotFoundError:
    try:
        __import__(name)
    except ModuleNotFoundError as exc:
        return exc
    raise AssertionError(f"{name} imported")


def test_a_missing_top_level_module_gets_the_list_of_packages() -> None:
    exc = failed_import("no_such_package_here")
    hints.extend(exc)
    expected = (
        "No module named 'no_such_package_here'. Jobs can import the standard library and: "
        "numpy 2.4.6, pandas 3.1.1."
    )
    assert str(exc) == expected
    assert exc.args == (expected,)


def test_a_missing_part_of_a_loaded_package_keeps_its_message() -> None:
    exc = failed_import("json.no_such_part")
    hints.extend(exc)
    assert str(exc) == "No module named 'json.no_such_part'"


def test_without_packages_the_hint_says_standard_library_only() -> None:
    hints.offer([])
    exc = failed_import("no_such_package_here")
    hints.extend(exc)
    assert str(exc).endswith(". Jobs can import the standard library only.")


def test_other_errors_are_left_alone() -> None:
    exc = ImportError("cannot import name 'x'")
    hints.extend(exc)
    assert str(exc) == "cannot import name 'x'"
