"""What of a job's outcome people are shown, in reading order, for every surface alike: its
result, error, traceback and printed output, whether the job printed past the output limit,
a hint when the error looks like a missing input, and its files listed by role."""

from __future__ import annotations

import ast
import builtins
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from bot.core.models import FileRole, Job, JobStatus, ResultKind, StoredFile
from bot.core.units import human_bytes


class Part(StrEnum):
    """Which part of a job's outcome a piece is."""

    RESULT = "result"  # what main() returned, or the printed output when it returned nothing
    ERROR = "error"  # the error type and message
    TRACEBACK = "traceback"  # the user's frames; its end matters most
    STDOUT = "stdout"  # printed output that is not the result
    STDERR = "stderr"  # the job's stderr


@dataclass(frozen=True)
class Piece:
    """One part of a job's outcome: the raw text, and whether the job printed past the output
    limit (the rest was dropped before jobbot kept it)."""

    part: Part
    text: str
    engine_truncated: bool = False

    @property
    def tail(self) -> bool:
        """Whether its end matters most (a traceback ends with the error)."""
        return self.part is Part.TRACEBACK


def printed_result(job: Job) -> bool:
    """Whether the job's result is its printed output (it returned nothing)."""
    return (
        job.status is JobStatus.DONE
        and job.result_kind is ResultKind.STDOUT
        and (job.stdout or "").strip() == job.result_text.strip()
    )


def pieces(job: Job) -> list[Piece]:
    """The parts worth showing, in reading order. A printed result is the stdout piece under
    another name: it carries the stdout's cut, and stdout is not shown twice."""
    out: list[Piece] = []
    printed = printed_result(job)
    if job.status is JobStatus.DONE:
        cut = printed and job.stdout_truncated
        out.append(Piece(Part.RESULT, job.result_text or "(no result)", engine_truncated=cut))
    if job.error_type or job.error_message:
        out.append(Piece(Part.ERROR, f"{job.error_type or 'Error'}: {job.error_message or ''}"))
    if job.traceback:
        out.append(Piece(Part.TRACEBACK, job.traceback))
    if job.stdout and job.stdout.strip() and not printed:
        out.append(Piece(Part.STDOUT, job.stdout, engine_truncated=job.stdout_truncated))
    if job.stderr and job.stderr.strip():
        out.append(Piece(Part.STDERR, job.stderr, engine_truncated=job.stderr_truncated))
    return out


_UNDEFINED = re.compile(r"^name '([A-Za-z_][A-Za-z0-9_]*)' is not defined")
_MISSING_ARGUMENT = re.compile(r"^main\(\) missing \d+ required positional arguments?: '(\w+)'")


def files_by_role(files: Sequence[StoredFile], name: Callable[[str], str]) -> list[str]:
    """A job's files as "Data files: a.csv (12 bytes), ..." and "Files out: ...", a line for
    each role that has any; `name` makes a file's name safe for the surface."""
    lines = []
    for role, title in ((FileRole.IN, "Data files"), (FileRole.OUT, "Files out")):
        listed = [f for f in files if f.role == role]
        if listed:
            shown = ", ".join(f"{name(f.name)} ({human_bytes(f.size)})" for f in listed)
            lines.append(f"{title}: {shown}")
    return lines


def input_hint(job: Job) -> str | None:
    """A hint for a job that ran with no input and failed for want of one: a NameError on a
    name its file never binds (so it can only come from the input), or main() missing an
    argument. None otherwise."""
    if job.status is not JobStatus.ERROR or job.input_json.strip() not in {"{}", ""}:
        return None
    message = job.error_message or ""
    name = None
    if job.error_type == "NameError" and (match := _UNDEFINED.match(message)):
        name = match.group(1)
        if hasattr(builtins, name) or name in bound_names(job.code):
            return None
    elif job.error_type == "TypeError" and (match := _MISSING_ARGUMENT.match(message)):
        name = match.group(1)
    if name is None:
        return None
    example = json.dumps({name: 1})
    return f"no input was given; pass one like {example}"


def bound_names(code: str) -> set[str]:
    """Every name the code binds anywhere (assignments, definitions, imports, parameters)."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
    return names
