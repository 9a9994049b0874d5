"""Command lines that start a harness module in a fresh isolated interpreter."""

from __future__ import annotations

import os

# -I: ignore PYTHON* variables and user site; -S: no site-packages or .pth hooks;
# -u: unbuffered, so output printed before a kill survives (-I ignores PYTHONUNBUFFERED);
# -B: write no .pyc files
FLAGS = ("-I", "-S", "-u", "-B")

# -I keeps the harness off sys.path, so load its directory as the package "harness"
# (the name it also has inside the Lambda zip) and call `entry(argv)`.
_BOOT = """\
import sys, importlib.util as u
d = sys.argv[1]
s = u.spec_from_file_location("harness", d + "/__init__.py", submodule_search_locations=[d])
m = u.module_from_spec(s); sys.modules["harness"] = m; s.loader.exec_module(m)
from harness.{module} import {func} as entry
del d, s, m, u
entry(sys.argv[2:])
"""


def harness_dir() -> str:
    """The directory of this package's source."""
    return os.path.dirname(os.path.abspath(__file__))


def command(python: str, module: str, func: str, *args: str) -> list[str]:
    """argv that runs harness.<module>.<func>(list(args)) under `python`."""
    code = _BOOT.format(module=module, func=func)
    return [python, *FLAGS, "-c", code, harness_dir(), *args]
