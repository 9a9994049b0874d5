"""The job packages of a Lambda layer as the fresh child sees them.

Lambda unpacks the function's layers at /opt. `lambda deploy` puts the job packages under
/opt/python (where Lambda's Python runtimes look too) and a manifest at
/opt/jobbot/packages.json. The child runs `python -I -S`, which ignores PYTHONPATH and
site-packages, so it adds the layer's directories itself, after the standard library.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

ROOT = "/opt"
# both places Lambda's python3.13 runtime puts on sys.path for a layer, in its order
SITES = ("python/lib/python3.13/site-packages", "python")
MANIFEST = "jobbot/packages.json"
# matplotlib's font list, built by deploy: seeded into each job's own cache directory, where
# matplotlib would otherwise build it again in every job that plots (seconds)
FONT_CACHE = "jobbot/matplotlib"


def manifest(root: str = ROOT) -> dict[str, Any]:
    """The layer's manifest ({} when there is no jobbot layer, or it cannot be read)."""
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def seed_font_cache(root: str, home: str) -> None:
    """Copy the layer's font list into `home`/.cache/matplotlib (the job's own, writable)."""
    source = os.path.join(root, FONT_CACHE)
    try:
        names = os.listdir(source)
    except OSError:
        return
    target = os.path.join(home, ".cache", "matplotlib")
    os.makedirs(target, exist_ok=True)
    for name in names:
        with (
            open(os.path.join(source, name), "rb") as src,
            open(os.path.join(target, name), "wb") as dst,
        ):
            dst.write(src.read())


def enter(root: str = ROOT, home: str | None = None) -> list[str]:
    """Append the layer's package directories to sys.path (the standard library wins every
    name) and seed matplotlib's font list in `home`; the packages the manifest offers
    ("numpy 2.4.6", ...), for the import hint."""
    for site in SITES:
        path = os.path.join(root, site)
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
    if home is not None:
        seed_font_cache(root, home)
    offered = manifest(root).get("offered")
    return [str(name) for name in offered] if isinstance(offered, list) else []
