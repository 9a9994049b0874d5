"""The hint added to an import of a module the job environment does not have."""

from __future__ import annotations

import sys

_offered: tuple[str, ...] = ()


def offer(packages: list[str]) -> None:
    """Name the packages jobs can import ("numpy 2.4.6", ...): set once, before any fork."""
    global _offered  # noqa: PLW0603 - one setting per process, made before it forks jobs
    _offered = tuple(packages)


def available() -> str:
    """What jobs can import, as one sentence."""
    if not _offered:
        return "Jobs can import the standard library only."
    return f"Jobs can import the standard library and: {', '.join(_offered)}."


def extend(exc: BaseException) -> None:
    """Add what is available to an uncaught ModuleNotFoundError for a top-level module that
    is not there (`import torch`), not to one for a missing part of a package it has."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return
    top = exc.name.partition(".")[0]
    if top in sys.modules or top in sys.stdlib_module_names:
        return
    message = f"{exc.msg}. {available()}"
    exc.msg = message
    exc.args = (message,)
