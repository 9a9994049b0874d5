"""The API's OpenAPI document, kept beside this package and served as is, and what the server
takes from it: the paths the API owns and the query parameters each operation declares."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

PREFIX = "/api"
_RULE_VARIABLE = re.compile(r"<(?:\w+:)?(\w+)>")


def owns(path: str) -> bool:
    """Whether a path is the API's (its errors are answered as problems)."""
    return path in {"/", PREFIX} or path.startswith((PREFIX + "/", "/jobs", "/users/"))


def spec_text() -> str:
    """The OpenAPI document kept beside this module."""
    return resources.files("bot.api").joinpath("openapi.json").read_text(encoding="utf-8")


def spec_path(rule: str) -> str:
    """A Flask rule (`/api/jobs/<job_id>`) as the spec spells its path (`/api/jobs/{job_id}`)."""
    return _RULE_VARIABLE.sub(r"{\1}", rule)


def declared_query(spec: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    """The query parameters each operation declares, by (path, method in capitals): the one
    list the server holds a request's query to, so the spec and the server cannot differ."""

    def resolved(parameter: dict[str, Any]) -> dict[str, Any]:
        ref = parameter.get("$ref")
        if ref is None:
            return parameter
        node: Any = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return dict(node)

    declared: dict[tuple[str, str], frozenset[str]] = {}
    for path, item in spec.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters" or not isinstance(operation, dict):
                continue
            parameters = [resolved(p) for p in [*shared, *operation.get("parameters", [])]]
            names = frozenset(p["name"] for p in parameters if p.get("in") == "query")
            declared[(path, method.upper())] = names
    return declared
