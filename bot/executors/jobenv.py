"""The job environment's packages: the pinned list (requirements-jobs.txt) and the versions
installed in a virtualenv, read from its metadata files without importing anything."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def canonical(name: str) -> str:
    """A distribution name as PEP 503 compares them (Pillow, pillow and PIL_low alike)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One line of requirements-jobs.txt."""

    name: str
    version: str
    offered: bool = False  # named to users (help, doctor, the hint after a failed import)
    preload: tuple[str, ...] = ()  # modules the local sandbox's package template imports


def read_pins(path: Path) -> list[Pin]:
    """The pins of a requirements file; a trailing `# offered; preload: a b.c` marks a
    package for users and the modules to preload."""
    pins = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match is None:
            continue
        _, _, comment = line.partition("#")
        marks = [part.strip() for part in comment.split(";")]
        preload: tuple[str, ...] = ()
        for mark in marks:
            if mark.startswith("preload:"):
                preload = tuple(mark.removeprefix("preload:").replace(",", " ").split())
        pins.append(Pin(match[1], match[2], "offered" in marks, preload))
    return pins


def site_packages(python: str) -> list[Path]:
    """The site-packages directories of the virtualenv `python` belongs to; [] when it is
    not a virtualenv's (jobs then import the standard library only)."""
    venv = Path(os.path.abspath(python)).parent.parent
    if not (venv / "pyvenv.cfg").is_file():
        return []
    return sorted(p for p in venv.glob("lib*/python3*/site-packages") if p.is_dir())


def installed(python: str) -> dict[str, str]:
    """{canonical name: version} of every distribution in the job environment of `python`,
    from its *.dist-info/METADATA files: the bot never imports the job environment."""
    found: dict[str, str] = {}
    for directory in site_packages(python):
        for info in directory.glob("*.dist-info"):
            try:
                text = (info / "METADATA").read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            meta = HeaderParser().parsestr(text, headersonly=True)
            if meta["Name"] and meta["Version"]:
                found[canonical(meta["Name"])] = meta["Version"]
    return found


@dataclass(frozen=True)
class JobPackages:
    """What jobs can import beside the standard library: the pins and what is installed."""

    pins: tuple[Pin, ...]
    installed: dict[str, str] = field(default_factory=dict)

    @property
    def offered(self) -> list[str]:
        """ "numpy 2.4.6", ... for each offered package, at its installed version (else the
        pinned one)."""
        return [
            f"{pin.name} {self.installed.get(canonical(pin.name), pin.version)}"
            for pin in self.pins
            if pin.offered
        ]

    @property
    def preload(self) -> list[str]:
        """The modules the package template imports."""
        return [module for pin in self.pins for module in pin.preload]

    @property
    def out_of_date(self) -> list[str]:
        """Pins the environment does not hold as written ("numpy 2.4.6 (installed: 2.3.0)")."""
        wrong = []
        for pin in self.pins:
            have = self.installed.get(canonical(pin.name))
            if have != pin.version:
                wrong.append(f"{pin.name} {pin.version} (installed: {have or 'none'})")
        return wrong


# Run by the job environment's Python: matplotlib's font list of the fonts matplotlib ships and
# no other, written atomically (jobs may be reading the old one) into `out`. Both executors get
# it (the local job environment's mplconfig, the Lambda layer's copy), so a chart can use the
# same fonts on both: the host's fonts are left out, as Lambda has none. Entries under
# matplotlib's data directory are stored relative to it, so the list holds wherever it is.
_FONT_SCRIPT = """\
import os, sys
import matplotlib
from matplotlib import font_manager
want, out = sys.argv[1:3]
if want and matplotlib.__version__ != want:
    sys.exit(f"matplotlib {matplotlib.__version__} there, {want} pinned")
data = os.path.join(matplotlib.get_data_path(), "")
manager = font_manager.FontManager()
manager.ttflist = [f for f in manager.ttflist if f.fname.startswith(data)]
manager.afmlist = [f for f in manager.afmlist if f.fname.startswith(data)]
name = os.path.join(out, f"fontlist-v{font_manager.FontManager.__version__}.json")
font_manager.json_dump(manager, name + ".new")
os.replace(name + ".new", name)
"""


def write_font_list(python: str, out: Path, matplotlib_version: str = "") -> bool:
    """Write matplotlib's font list, of its own fonts only, into the directory `out` with the
    job environment `python` (whose matplotlib must be `matplotlib_version`, if given);
    False when it could not (no matplotlib, another version)."""
    with tempfile.TemporaryDirectory() as config:  # where matplotlib may build its own cache
        env = {"PATH": os.defpath, "MPLCONFIGDIR": config, "MPLBACKEND": "Agg"}
        done = subprocess.run(
            [python, "-I", "-c", _FONT_SCRIPT, matplotlib_version, str(out)],
            capture_output=True,
            env=env,
            check=False,
        )
    return done.returncode == 0 and any(out.glob("fontlist-v*.json"))


def job_packages(requirements: Path, python: str | None) -> JobPackages:
    """The pins of `requirements` and, for a local job environment `python`, its versions."""
    pins = tuple(read_pins(requirements)) if requirements.is_file() else ()
    return JobPackages(pins, installed(python) if python else {})
