"""Figures still open when a job ends, saved as PNG into `out/` (in the job's own process,
as a notebook shows a figure without `savefig`).

A figure's pixels are its size in inches times the resolution it is saved at (the job's
`savefig.dpi`, or the figure's own); one over MAX_PIXELS is left out before it is drawn, and
it is saved at exactly the resolution checked. The PNG written is checked again with every
file of `out/` (bot/sandbox/files.py)."""

from __future__ import annotations

import os
import sys
from typing import Any

from ..files import MAX_PIXELS


def _free_name(out: str, number: int) -> str:
    name, extra = f"figure-{number}.png", 1
    while os.path.lexists(os.path.join(out, name)):
        extra += 1
        name = f"figure-{number}-{extra}.png"
    return os.path.join(out, name)


def _save_dpi(pyplot: Any, figure: Any) -> float:
    """The resolution savefig would use: the job's `savefig.dpi` unless it is "figure"."""
    dpi = pyplot.rcParams.get("savefig.dpi", "figure")
    return float(figure.dpi if dpi == "figure" else dpi)


def save_open_figures(out: str) -> list[str]:
    """Save every open matplotlib figure as out/figure-N.png; notes on those that could not
    be. Nothing happens unless the job imported matplotlib.pyplot."""
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return []
    notes: list[str] = []
    try:
        numbers = list(pyplot.get_fignums())
    except Exception as exc:
        return [f"open figures could not be listed ({type(exc).__name__})"]
    for number in numbers:
        try:
            figure = pyplot.figure(number)
            dpi = _save_dpi(pyplot, figure)
            width, height = (float(v) * dpi for v in figure.get_size_inches())
            if width * height > MAX_PIXELS:
                notes.append(
                    f"left out: figure {number} ({round(width)}x{round(height)} pixels,"
                    f" limit {MAX_PIXELS:,} pixels)"
                )
                continue
            os.makedirs(out, exist_ok=True)
            figure.savefig(_free_name(out, number), format="png", dpi=dpi)
        except Exception as exc:  # the job's figure, the job's problem: say so, go on
            notes.append(f"left out: figure {number} could not be saved ({type(exc).__name__})")
    return notes
