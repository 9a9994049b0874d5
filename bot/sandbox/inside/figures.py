"""Figures still open when a job ends, saved as PNG into `out/` (in the job's own process,
as a notebook shows a figure without `savefig`)."""

from __future__ import annotations

import os
import sys

from ..files import MAX_PIXELS


def _free_name(out: str, number: int) -> str:
    name, extra = f"figure-{number}.png", 1
    while os.path.lexists(os.path.join(out, name)):
        extra += 1
        name = f"figure-{number}-{extra}.png"
    return os.path.join(out, name)


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
            width, height = (float(v) * float(figure.dpi) for v in figure.get_size_inches())
            if width * height > MAX_PIXELS:
                notes.append(
                    f"left out: figure {number} ({round(width)}x{round(height)} pixels,"
                    f" limit {MAX_PIXELS:,} pixels)"
                )
                continue
            os.makedirs(out, exist_ok=True)
            figure.savefig(_free_name(out, number), format="png")
        except Exception as exc:  # the job's figure, the job's problem: say so, go on
            notes.append(f"left out: figure {number} could not be saved ({type(exc).__name__})")
    return notes
