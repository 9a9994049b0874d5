"""The job packages layer for the Lambda stand-in: requirements-jobs.txt built by deploy's own
builder (bot/executors/aws_lambda/layer_build.py) for this machine's architecture and
python3.13, unpacked as Lambda unpacks a layer at /opt. Built once per fingerprint into
.lambda-layer/ (concurrent test processes wait for one build); needs the package index."""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

from bot.executors.aws_lambda import layer_build
from bot.executors.jobenv import read_pins
from testbed import jobenv
from testbed.pythons import require_lambda_python

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "requirements-jobs.txt"
CACHE = REPO / ".lambda-layer"


def host_architecture() -> str:
    """Lambda's name for this machine's processor (the stand-in runs the layer natively)."""
    machine = os.uname().machine
    return {"aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


@functools.cache
def layer_dir(requirements: Path = REQUIREMENTS) -> Path:
    """The unpacked layer of `requirements` for this machine (the stand-in mounts it at /opt)."""
    architecture = host_architecture()
    runtime = f"python{layer_build.PYTHON_VERSION}"
    fingerprint = layer_build.fingerprint(read_pins(requirements), runtime, architecture)
    target = CACHE / f"{architecture}-{fingerprint[:16]}"
    CACHE.mkdir(exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / layer_build.MANIFEST).is_file():
            return target
        python = require_lambda_python()
        with tempfile.TemporaryDirectory(prefix="build-", dir=CACHE) as work:
            built = layer_build.build(
                requirements,
                architecture,
                Path(work),
                python=python,
                fonts_with=jobenv.job_python(),
            )
            unpacked = Path(work) / "unpacked"
            with zipfile.ZipFile(built.path) as archive:
                archive.extractall(unpacked)
            for path in (unpacked, *unpacked.rglob("*")):  # as Lambda: readable by the runtime
                os.chmod(path, 0o755 if path.is_dir() else 0o644)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(unpacked, target)
        for stale in CACHE.glob(f"{architecture}-*"):
            if stale != target:
                shutil.rmtree(stale, ignore_errors=True)
    return target
