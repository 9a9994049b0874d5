"""Runs the user's file inside the child: binds input, executes, calls main, reports a Record."""

from __future__ import annotations

import atexit
import builtins
import json
import os
import sys
import types
from typing import NamedTuple, NoReturn

from ..files import OUT_DIR
from ..protocol import Request
from . import figures, hints
from .tracebacks import user_traceback

# the runner writes at most this much besides the result and the traceback
_RECORD_SLACK = 64 * 1024
# bound now: a job that replaces json.dumps changes its own module, not how it is reported
_dumps = json.dumps


class Record(NamedTuple):
    """What the child reports about its run; result_json None with status ok means "use stdout".

    A NamedTuple, not a dataclass, like the other value objects a fresh child imports.
    """

    status: str  # "ok", "error" or "memory"
    result_json: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    exit_code: int = 0
    notes: list[str] | None = None  # about files left out (figures that could not be saved)

    def encode(self) -> bytes:
        """ASCII JSON, so lone surrogates in user text survive the pipe."""
        return _dumps(self._asdict(), ensure_ascii=True).encode("ascii")

    @classmethod
    def decode(cls, data: bytes) -> Record | None:
        """The record in `data`, or None if the child wrote something else."""
        try:
            raw = json.loads(data)
            record = cls(**raw)
        except (ValueError, TypeError):
            return None
        ok = record.status in ("ok", "error", "memory") and isinstance(record.exit_code, int)
        notes = record.notes
        if notes is not None and not (
            isinstance(notes, list) and all(isinstance(n, str) for n in notes)
        ):
            return None
        return record if ok else None


def record_limit(request: Request) -> int:
    """The most bytes a genuine record can take, for the reader's cap."""
    return 3 * request.max_output_bytes + _RECORD_SLACK


def type_name(cls: type) -> str:
    """An exception class name, qualified the way Python's own traceback does it."""
    if cls.__module__ in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a user __str__ may raise anything
        return f"<unprintable {type(exc).__name__} object>"


def prime_source(request: Request) -> None:
    """Make tracebacks show the source that ran, even if the job changed or deleted its file."""
    import linecache  # only failing jobs pay for it (with tokenize)

    lines = request.code.splitlines(keepends=True)
    linecache.cache[request.file_name] = (len(request.code), None, lines, request.file_name)


def _trimmed(exc: BaseException, request: Request) -> str:
    prime_source(request)
    limit = request.max_output_bytes
    text = user_traceback(exc, request.file_name)
    if len(text) > limit:
        text = "... (traceback truncated)\n" + text[-limit:]
    return text


def _failure(exc: BaseException, request: Request) -> Record:
    if isinstance(exc, MemoryError):
        message = f"the job ran out of memory (limit {request.memory_mb} MB)"
        try:
            trace: str | None = _trimmed(exc, request)
        except MemoryError:
            trace = None
        return Record("memory", None, "MemoryError", message, trace, 1)
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or code == 0:
            return Record("ok")
        if isinstance(code, int):
            code = int(code)  # True is an exit code of 1
            return Record("error", None, "SystemExit", f"exit code {code}", None, code & 0xFF)
        # like the interpreter: a non-integer code is printed and the status is 1
        print(code, file=sys.stderr)
        return Record("error", None, "SystemExit", f"exit code 1 ({code})", None, 1)
    if isinstance(exc, SyntaxError) and exc.filename == request.file_name and exc.lineno:
        message = f"{exc.msg} (line {exc.lineno})"
    else:
        hints.extend(exc)
        message = _message(exc)
    trace = _trimmed(exc, request)
    return Record("error", None, type_name(type(exc)), message, trace, 1)


def _encode(value: object, request: Request) -> Record:
    try:
        text = _dumps(value, ensure_ascii=False, allow_nan=False)
        size = len(text.encode("utf-8"))
    except MemoryError as exc:
        return _failure(exc, request)
    except Exception as exc:  # TypeError, ValueError, RecursionError, UnicodeEncodeError, ...
        message = (
            f"main() returned a {type(value).__name__} value, which cannot be encoded as JSON"
            f" ({_message(exc)})"
        )
        return Record("error", None, "UnserializableResult", message, None, 1)
    if size > request.max_output_bytes:
        message = (
            f"the result is {size} bytes of JSON, more than the limit of"
            f" {request.max_output_bytes} bytes"
        )
        return Record("error", None, "ResultTooLarge", message, None, 1)
    return Record("ok", text)


PLAIN_RECURSION_LIMIT = 1000  # CPython's default
_EXEC_DEPTH = 1 if sys.version_info < (3, 12) else 0  # 3.11 also counts the exec() call


def _depth() -> int:
    frame: types.FrameType | None = sys._getframe(1)
    depth = 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1
    return depth


class _Forked(Exception):
    """The user's code forked and this copy reached the end of the file."""


def run_code(request: Request) -> Record:
    """Execute the user's file as __main__ in this process and call main(**input) if defined."""
    try:
        if "\0" in request.code:  # 3.11 raises ValueError here, 3.12+ SyntaxError: be uniform
            raise SyntaxError(
                "source code cannot contain null bytes", (request.file_name, 1, 0, "")
            )
        code = compile(request.code, request.file_name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        return _failure(exc, request)
    module = types.ModuleType("__main__")
    namespace = module.__dict__
    namespace.update(request.input)
    # module attributes win over input keys such as "__name__"
    namespace.update(__name__="__main__", __file__=request.file_name, __builtins__=builtins)
    namespace.update(__cached__=None, __package__=None, __spec__=None, __loader__=None)
    sys.argv = [request.file_name]
    sys.modules["__main__"] = module
    pid = os.getpid()
    # as deep as in `python file.py`, however many harness frames sit below (they differ by mode)
    sys.setrecursionlimit(PLAIN_RECURSION_LIMIT + _depth() + _EXEC_DEPTH)
    try:
        exec(code, namespace)  # noqa: S102 - running the user's file is the point
        if os.getpid() != pid:
            raise _Forked
        main = namespace.get("main")
        if not callable(main):
            return Record("ok")
        value = main(**request.input)
        if os.getpid() != pid:
            raise _Forked
    except _Forked:
        raise
    except BaseException as exc:  # SystemExit and KeyboardInterrupt are the user's too
        return _failure(exc, request)
    return Record("ok") if value is None else _encode(value, request)


def _finish_interpreter() -> None:
    """What interpreter shutdown would do before exit: join threads, run atexit callbacks."""
    threading = sys.modules.get("threading")  # no module, no threads to wait for
    main = threading.main_thread() if threading else None
    for thread in threading.enumerate() if threading else ():
        if thread is not main and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except Exception:  # noqa: S110 - the job may have closed or replaced its streams
            pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def refuse(result_fd: int, error_type: str, message: str) -> NoReturn:
    """End the child before the user's code ran, with an error record saying why."""
    try:
        _write_all(result_fd, Record("error", None, error_type, message, None, 1).encode())
    finally:
        os._exit(1)


def execute(request: Request, result_fd: int) -> NoReturn:
    """Run the job in this (child) process, write its Record to `result_fd`, and exit."""
    atexit._clear()  # callbacks inherited from the harness are not the job's
    pid = os.getpid()
    out = os.path.join(os.getcwd(), OUT_DIR)  # before the job may change directory
    forked = False
    try:
        record = run_code(request)
    except _Forked:
        forked, record = True, Record("ok")
    except BaseException as exc:  # a harness bug must still end in a record
        record = _failure(exc, request)
    if not forked and os.getpid() == pid and record.status != "memory":
        try:
            notes = figures.save_open_figures(out)
        except BaseException as exc:  # the job may have broken anything, even this
            notes = [f"open figures could not be saved ({type(exc).__name__})"]
        if notes:
            record = record._replace(notes=notes)
    try:
        _finish_interpreter()
    except BaseException as exc:
        record = _failure(exc, request) if record.status == "ok" else record
    if forked or os.getpid() != pid:
        # a copy made by the job's os.fork(): exit like a plain interpreter would
        if record.traceback:
            sys.stderr.write(record.traceback)
        os._exit(record.exit_code)
    try:
        _write_all(result_fd, record.encode())
        os.close(result_fd)
    except OSError:
        os._exit(70)
    os._exit(record.exit_code)
