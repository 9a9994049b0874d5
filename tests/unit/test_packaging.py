"""The package metadata: each dependency pyproject.toml declares is pinned in requirements.txt at
a version its range allows, so `pip install .` and the pinned set agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins() -> dict[str, str]:
    """Name -> version of every `name==version` line of requirements.txt."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if "==" in text:
            name, version = text.split("==", 1)
            found[canonicalize_name(name)] = version.strip()
    return found


def test_every_declared_dependency_is_pinned_within_its_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pinned = pins()
    assert project["dependencies"], "pyproject.toml declares the runtime dependencies"
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{requirement.name} is not pinned in requirements.txt"
        assert requirement.specifier.contains(pinned[name]), (
            f"requirements.txt pins {requirement.name}=={pinned[name]}, outside {text!r}"
        )
