"""What the zygote's templates hold before any job: the job environment on sys.path, the
standard library (both templates) and the offered packages (the package template)."""

from __future__ import annotations

import importlib
import os
import sys
import sysconfig
import traceback

# imported once by the zygote so each job starts with them loaded (fork shares the pages)
STDLIB = (
    *("base64", "bisect", "collections", "copy", "csv", "dataclasses", "datetime", "decimal"),
    *("enum", "fractions", "functools", "hashlib", "heapq", "itertools", "json", "linecache"),
    *("math", "operator", "pathlib", "random", "re", "socket", "statistics", "string"),
    *("struct", "subprocess", "textwrap", "threading", "time", "tokenize", "traceback"),
    *("typing",),
)
MPLCONFIG = "mplconfig"  # matplotlib's config and font cache, built by scripts/setup


def job_environment() -> str | None:
    """The virtualenv this interpreter was started from, or None for a plain interpreter
    (whose jobs then import the standard library only). `-S` skips `site`, which would
    otherwise find it: the zygote adds its packages itself, without running .pth hooks."""
    venv = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    return venv if os.path.isfile(os.path.join(venv, "pyvenv.cfg")) else None


def enter(venv: str | None) -> dict[str, str]:
    """Make the job environment's packages importable, as `site` would for the venv (but
    never a .pth hook); the environment variables its jobs need beside the base ones."""
    if venv is None:
        return {}
    paths = sysconfig.get_paths("posix_prefix", vars={"base": venv, "platbase": venv})
    for key in ("purelib", "platlib"):
        if paths[key] not in sys.path and os.path.isdir(paths[key]):
            sys.path.append(paths[key])
    sys.prefix = sys.exec_prefix = venv
    config = os.path.join(venv, MPLCONFIG)
    extra = {"MPLCONFIGDIR": config} if os.path.isdir(config) else {}
    os.environ.update(extra)  # read by matplotlib when the package template imports it
    return extra


def stdlib() -> None:
    """Import the standard library modules every job may use."""
    for name in STDLIB:
        importlib.import_module(name)


def packages(modules: list[str]) -> dict[str, str]:
    """Import `modules`; {module: why not} for those that failed (the rest are loaded)."""
    failed = {}
    for name in modules:
        try:
            importlib.import_module(name)
        except BaseException as exc:  # any import-time failure leaves the template usable
            failed[name] = "".join(traceback.format_exception_only(exc)).strip()
    return failed


def threads() -> int:
    """Threads of this process now: forking is only safe from one."""
    return len(os.listdir("/proc/self/task"))


def rss_kb() -> int:
    """This process's resident set, in KiB."""
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
