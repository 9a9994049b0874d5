"""Command lines that start a sandbox module in a fresh isolated interpreter."""

from __future__ import annotations

import os

# -I: ignore PYTHON* variables and user site; -S: no site-packages or .pth hooks;
# -u: unbuffered, so output printed before a kill survives (-I ignores PYTHONUNBUFFERED);
# -B: write no .pyc files
FLAGS = ("-I", "-S", "-u", "-B")

# -I keeps the sandbox off sys.path: import it by its directory's name ("sandbox", as in the
# Lambda zip) from its parent, appended so the standard library wins every other name, and
# removed again so jobs cannot import the bot's other modules; then call `entry(argv)`.
_BOOT = """\
import sys
parent, _, name = sys.argv[1].rpartition("/")
sys.path.append(parent)
entry = getattr(__import__(name + ".{module}", fromlist=["_"]), "{func}")
sys.path.remove(parent)
del parent, name
entry(sys.argv[2:])
"""


def sandbox_dir() -> str:
    """The directory of this package's source."""
    return os.path.dirname(os.path.abspath(__file__))


def command(python: str, module: str, func: str, *args: str) -> list[str]:
    """argv that runs sandbox.<module>.<func>(list(args)) under `python` (module may be dotted)."""
    code = _BOOT.format(module=module, func=func)
    return [python, *FLAGS, "-c", code, sandbox_dir(), *args]
