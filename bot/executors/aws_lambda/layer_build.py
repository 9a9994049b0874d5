"""The job packages as a Lambda layer: requirements-jobs.txt installed from manylinux wheels
for the function's runtime and architecture, with a manifest, zipped reproducibly.

The layer unpacks at /opt: its packages under `python/` (/opt/python, where Lambda's Python
runtimes and the sandbox's job child look), and `jobbot/packages.json`, the manifest that
tells the handler what jobs are offered (for the hint after a failed import). A layer is
known by its fingerprint, a hash of the pins, the runtime and the architecture: deploy
publishes a new version only when the fingerprint changes (layers.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from bot.executors.jobenv import Pin, read_pins, write_font_list

PYTHON_VERSION = "3.13"  # the runner function's runtime, python3.13
GLIBC_MINOR = 34  # its OS, Amazon Linux 2023, has glibc 2.34: manylinux_2_17 ... _2_34 fit
MACHINES = {"arm64": "aarch64", "x86_64": "x86_64"}  # Lambda's names -> wheel platform tags
SITE = "python"  # /opt/python in the function: on the runtime's sys.path, and the job's
MANIFEST = "jobbot/packages.json"  # /opt/jobbot/packages.json
FONT_CACHE = "jobbot/matplotlib"  # /opt/jobbot/matplotlib/fontlist-v*.json, copied per job
PRUNED = ("tests",)  # the packages' own test suites: never imported by a job, 15% of the size
FORMAT = 2  # part of the fingerprint: bump when the layout above changes (2: font list)
_EPOCH = (1980, 1, 1, 0, 0, 0)
MIB = 1024 * 1024


class LayerBuildError(Exception):
    """The layer could not be built; the message says why and what to do."""


def platforms(architecture: str) -> list[str]:
    """pip's --platform values for manylinux wheels that run on the runtime's glibc
    (pip does not expand manylinux_2_X to the older ones by itself)."""
    machine = MACHINES[architecture]
    return [f"manylinux2014_{machine}"] + [
        f"manylinux_2_{minor}_{machine}" for minor in range(17, GLIBC_MINOR + 1)
    ]


def fingerprint(pins: list[Pin], runtime: str, architecture: str) -> str:
    """What the layer is made of, as a SHA-256 hex digest: the pins (with their offered and
    preload marks, which the manifest carries), the runtime, the architecture, the format."""
    lines = [f"format {FORMAT}", f"runtime {runtime}", f"architecture {architecture}"]
    for pin in sorted(pins, key=lambda p: p.name.lower()):
        marks = ("offered " if pin.offered else "") + " ".join(pin.preload)
        lines.append(f"{pin.name}=={pin.version} {marks}".rstrip())
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def manifest(pins: list[Pin], runtime: str, architecture: str) -> dict[str, object]:
    """The manifest the handler reads at /opt/jobbot/packages.json."""
    return {
        "fingerprint": fingerprint(pins, runtime, architecture),
        "runtime": runtime,
        "architecture": architecture,
        "offered": [f"{pin.name} {pin.version}" for pin in pins if pin.offered],
        "preload": [module for pin in pins for module in pin.preload],
        "packages": {pin.name: pin.version for pin in pins},
    }


@dataclass(frozen=True)
class BuiltLayer:
    """A layer zip on disk and what deploy checks about it."""

    path: Path
    fingerprint: str
    zip_bytes: int
    unzipped_bytes: int
    bytecode: bool  # .pyc compiled for python3.13 included (imports need not compile)
    font_cache: bool = False  # matplotlib's font list included (jobs need not build it)
    zipped: bool = True  # False: over the size it may take, so never zipped (path absent)


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise LayerBuildError(f"{what} failed (exit {done.returncode}):\n{tail}")


def lambda_python() -> str | None:
    """A python3.13 to compile the layer's bytecode for the runtime: on PATH, else one that
    pyenv installed (None: none here)."""
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    candidates = [shutil.which(f"python{PYTHON_VERSION}")]
    candidates += sorted(
        map(str, pyenv.glob(f"versions/{PYTHON_VERSION}*/bin/python{PYTHON_VERSION}"))
    )
    for found in filter(None, candidates):
        done = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode == 0 and done.stdout.strip() == PYTHON_VERSION:
            return found
    return None


def install(requirements: Path, architecture: str, target: Path) -> None:
    """pip-install the pinned list into `target` from manylinux wheels only (nothing is
    compiled here). The pin is complete, so no dependency is resolved (--no-deps), as for
    the local job environment. pip's own configuration (PIP_INDEX_URL, a pip.conf) applies."""
    argv = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    argv += ["--no-deps", "--no-compile", "--only-binary=:all:", "--implementation", "cp"]
    argv += ["--python-version", PYTHON_VERSION, "--target", str(target)]
    for platform in platforms(architecture):
        argv += ["--platform", platform]
    argv += ["-r", str(requirements)]
    _run(argv, f"pip install of {requirements.name} for {architecture}")


def prune(site: Path) -> None:
    """Drop what a job never uses: the packages' test suites, console scripts, caches."""
    for path in sorted(site.rglob("*"), reverse=True):
        if path.is_dir() and (path.name in PRUNED or path.name == "__pycache__"):
            shutil.rmtree(path)
    shutil.rmtree(site / "bin", ignore_errors=True)


def compile_bytecode(python: str, site: Path) -> None:
    """.pyc for python3.13, checked by nothing at import (unchecked-hash): /opt is
    read-only, so bytecode Python cannot find is compiled again at every cold import."""
    argv = [python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash"]
    argv += ["-d", f"/opt/{SITE}", str(site)]
    _run(argv, f"compiling the layer's bytecode with {python}")


def font_cache(python: str, pins: list[Pin], root: Path) -> bool:
    """Write matplotlib's font list for the layer with `python` (which must have the pinned
    matplotlib: the fonts it ships are the same files in every wheel of a version); False,
    changing nothing, when there is no matplotlib pinned or it differs. The list is the one
    the local job environment has (jobenv.write_font_list): matplotlib's own fonts only."""
    pinned = {pin.name.lower(): pin.version for pin in pins}.get("matplotlib")
    if pinned is None:
        return False
    out = root / FONT_CACHE
    out.mkdir(parents=True)
    if not write_font_list(python, out, pinned):
        shutil.rmtree(out)
        return False
    return True


def tree_bytes(root: Path) -> int:
    """Bytes of every regular file under `root` (what Lambda counts as unzipped size)."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def write_zip(root: Path, destination: Path) -> None:
    """Zip `root`'s files reproducibly: sorted names, fixed times, rw-r--r--, deflated."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    with zipfile.ZipFile(destination, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as archive:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=_EPOCH)
            info.external_attr = (0o100755 if os.access(path, os.X_OK) else 0o100644) << 16
            info.create_system = 3
            info.compress_type = zipfile.ZIP_DEFLATED
            with path.open("rb") as source, archive.open(info, "w") as sink:
                shutil.copyfileobj(source, sink, MIB)


def build(
    requirements: Path,
    architecture: str,
    workdir: Path,
    *,
    runtime: str = f"python{PYTHON_VERSION}",
    python: str | None = None,
    max_unzipped: int | None = None,
    fonts_with: str | None = None,
) -> BuiltLayer:
    """Build the layer zip in `workdir` (which it fills). `python`: a python3.13 to compile
    bytecode with (None: no bytecode, imports compile at each cold start). A layer over
    `max_unzipped` bytes is not zipped (its `zipped` is False): it could not be used.
    `fonts_with`: a Python with the pinned matplotlib (the local job environment's), to build
    matplotlib's font list once here instead of in every job that plots."""
    if architecture not in MACHINES:
        raise LayerBuildError(f"unknown architecture {architecture!r}: arm64 or x86_64")
    pins = read_pins(requirements)
    root = workdir / "layer"
    site = root / SITE
    install(requirements, architecture, site)
    prune(site)
    if python is not None:
        compile_bytecode(python, site)
    (root / MANIFEST).parent.mkdir(parents=True)
    (root / MANIFEST).write_text(json.dumps(manifest(pins, runtime, architecture), indent=1))
    fonts = fonts_with is not None and font_cache(fonts_with, pins, root)
    path = workdir / f"jobbot-packages-{architecture}.zip"
    unzipped = tree_bytes(root)
    zipped = max_unzipped is None or unzipped <= max_unzipped
    if zipped:
        write_zip(root, path)
    return BuiltLayer(
        path=path,
        fingerprint=fingerprint(pins, runtime, architecture),
        zip_bytes=path.stat().st_size if zipped else 0,
        unzipped_bytes=unzipped,
        bytecode=python is not None,
        zipped=zipped,
        font_cache=fonts,
    )
