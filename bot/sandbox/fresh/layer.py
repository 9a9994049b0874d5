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


def manifest(root: str = ROOT) -> dict[str, Any]:
    """The layer's manifest ({} when there is no jobbot layer, or it cannot be read)."""
    try:
        with open(os.path.join(root, MANIFEST), encoding="utf-8") as fh:
            found = json.load(fh)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def enter(root: str = ROOT) -> list[str]:
    """Append the layer's package directories to sys.path (the standard library wins every
    name); the packages its manifest offers ("numpy 2.4.6", ...), for the import hint."""
    for site in SITES:
        path = os.path.join(root, site)
        if os.path.isdir(path) and path not in sys.path:
            sys.path.append(path)
    offered = manifest(root).get("offered")
    return [str(name) for name in offered] if isinstance(offered, list) else []
