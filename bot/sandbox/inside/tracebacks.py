"""A failed job's traceback as its user should read it: the harness's frames left out, the
user's own frames in full, each run of library frames shown by its last frame alone, and no
host path anywhere (a library file is named from its place on sys.path: json/decoder.py).

Imported with the runner, before the job's code runs (a job may no longer reach this file);
the standard library's traceback module is imported only when a job fails.
"""

from __future__ import annotations

import os
import sys
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import traceback

_HARNESS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bot/sandbox
_STDLIB = os.path.dirname(os.path.abspath(os.__file__))


@cache
def _stack_class() -> type[traceback.StackSummary]:
    """A StackSummary that prints each library run as its last frame and a count."""
    import traceback

    class Stack(traceback.StackSummary):
        hidden: dict[int, int]  # id of a run's last frame -> frames of the run not shown

        def format_frame_summary(
            self, frame_summary: traceback.FrameSummary, **options: Any
        ) -> str:  # Python 3.13 passes colorize=...
            hidden = self.hidden.get(id(frame_summary))
            if hidden is None:
                return super().format_frame_summary(frame_summary, **options)
            text = f'  File "{frame_summary.filename}", line {frame_summary.lineno}, '
            text += f"in {frame_summary.name}\n"
            if frame_summary.line:
                text += f"    {frame_summary.line.strip()}\n"
            if hidden:
                text += f"    (the last of {hidden + 1} library frames; the others are not shown)\n"
            return text

    return Stack


def _roots() -> list[str]:
    """Where library files live (sys.path and the standard library), longest first."""
    paths = {p for p in sys.path if p and os.path.isabs(p)} | {_STDLIB}
    return sorted((os.path.normpath(p) for p in paths), key=len, reverse=True)


def library_name(path: str, roots: list[str]) -> str:
    """A library file's path from its root on sys.path (json/decoder.py), never a host path;
    a name in angle brackets (<frozen os>, <string>) as it is."""
    if not os.path.isabs(path):
        return path
    for root in roots:
        if path.startswith(root + os.sep):
            return path[len(root) + 1 :]
    return os.path.basename(path)


def _trim(
    stack: traceback.StackSummary, file_name: str, roots: list[str]
) -> traceback.StackSummary:
    import traceback

    frames: list[traceback.FrameSummary] = []
    hidden: dict[int, int] = {}
    run: list[traceback.FrameSummary] = []

    def close_run() -> None:
        if run:
            last = run[-1]
            name = library_name(last.filename, roots)
            summary = traceback.FrameSummary(
                name, last.lineno, last.name, lookup_line=False, line=last.line
            )
            hidden[id(summary)] = len(run) - 1
            frames.append(summary)
            run.clear()

    for frame in stack:
        if frame.filename == file_name:
            close_run()
            frames.append(frame)
        elif not frame.filename.startswith(_HARNESS + os.sep):
            run.append(frame)
    close_run()
    trimmed = _stack_class()(frames)
    trimmed.hidden = hidden  # type: ignore[attr-defined]
    return trimmed


def _chain(top: traceback.TracebackException) -> list[traceback.TracebackException]:
    """Every exception a traceback prints: causes, contexts and a group's members."""
    found: list[traceback.TracebackException] = []
    todo = [top]
    while todo:
        current = todo.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
        todo += getattr(current, "exceptions", None) or []
    return found


def user_traceback(exc: BaseException, file_name: str) -> str:
    """The traceback of `exc` trimmed for the job's user (their file is `file_name`)."""
    import traceback

    roots = _roots()
    top = traceback.TracebackException(type(exc), exc, exc.__traceback__, compact=True)
    for part in _chain(top):
        part.stack = _trim(part.stack, file_name, roots)
        filename = getattr(part, "filename", None)  # a SyntaxError's
        if filename and filename != file_name:
            part.filename = library_name(filename, roots)
    return "".join(top.format())
