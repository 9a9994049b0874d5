"""`.env.example` and the settings table of docs/operations.md, written from the declarations
in bot.app.config. `python -m bot.app.settings_doc [--check] [ROOT]` rewrites (or checks) both."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.app.config import SECTIONS, Spec, declared, kind_of, number_text

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
ENV_HEADER = """\
# jobbot settings. Copy to .env (git-ignored) and fill in what you need;
# environment variables override this file. Every setting is optional: with none set,
# jobbot runs the console on SQLite with the local sandbox.
# Written from bot/app/config.py by scripts/settings: change a setting there, not here.
"""


def accepted(spec: Spec, annotation: Any) -> str:
    """What a setting accepts, in a few words: 'integer 1-256', 'one of json, text'..."""
    kind, optional = kind_of(annotation)
    if kind is bool:
        text = "true or false"
    elif kind is frozenset:
        text = "comma-separated list"
    elif kind in {int, float}:
        name = "integer" if kind is int else "number"
        text = f"{name} {number_text(spec.low or 0)}-{number_text(spec.high or 0)}"
    elif spec.choices:
        text = "one of " + ", ".join(spec.choices)
    else:
        text = "text"
    return f"{text}, or unset" if optional else text


def _remark(spec: Spec, annotation: Any) -> str:
    """The parenthesis after a help line in `.env.example`: what it accepts, if it is secret."""
    parts = [accepted(spec, annotation)] if accepted(spec, annotation) != "text" else []
    parts += ["secret"] if spec.secret else []
    return f" ({', '.join(parts)})" if parts else ""


def env_example() -> str:
    """The whole of `.env.example`."""
    lines = [ENV_HEADER.rstrip("\n")]
    for _, spec, annotation in declared():
        if spec.name in SECTIONS:
            lines += ["", f"# --- {SECTIONS[spec.name]} ---"]
        lines.append(f"# {spec.help}{_remark(spec, annotation)}")
        if spec.example:
            lines.append(f"#   {spec.example}")
        lines.append(f"{spec.name}={spec.default}")
    return "\n".join(lines) + "\n"


def settings_table() -> str:
    """The Markdown table of every setting, between its markers."""
    rows = [BEGIN, "| setting | default | accepts | meaning |", "|---|---|---|---|"]
    for _, spec, annotation in declared():
        default = f"`{spec.default}`" if spec.default else "–"
        rows.append(f"| `{spec.name}` | {default} | {accepted(spec, annotation)} | {spec.help} |")
    return "\n".join([*rows, END])


def with_table(markdown: str) -> str:
    """`markdown` with the text between the settings markers replaced by the table."""
    head, begin, rest = markdown.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"no {BEGIN} ... {END} block")
    return head + settings_table() + tail


def outputs(root: Path) -> dict[Path, str]:
    """Each generated file under `root` and the text it should hold."""
    operations = root / "docs" / "operations.md"
    return {
        root / ".env.example": env_example(),
        operations: with_table(operations.read_text(encoding="utf-8")),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the generated files (or, with --check, exit 1 naming those out of date)."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    root = Path(paths[0]) if paths else Path()
    stale = [p for p, text in outputs(root).items() if p.read_text(encoding="utf-8") != text]
    for path in stale:
        if check:
            print(f"{path} is out of date: run scripts/settings", file=sys.stderr)
        else:
            path.write_text(outputs(root)[path], encoding="utf-8")
            print(f"wrote {path}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
