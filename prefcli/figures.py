"""Figures a paper can take as they are: PNG (300 dpi), PDF and SVG from one matplotlib figure.

The house rules every prefcli figure follows:

- each series has its own marker *and* line style (``series_style``), so a
  greyscale print still tells them apart; colours are the Okabe–Ito palette,
  which colour-blind readers can distinguish;
- the legend sits outside the axes (``legend_outside``), so it can never
  cover a point;
- horizontal reference lines with the same value are drawn once, labelled
  with every name they stand for (``merge_equal``), so no baseline hides
  behind another;
- series sharing x positions are dodged a little (``dodge``), so equal
  points and their error bars stay visible side by side;
- files are written atomically and without time stamps, so the same data
  gives the same bytes (SVG/PDF) on every run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

FORMATS = ("png", "pdf", "svg")
DPI = 300
# Okabe & Ito (2008), "Color Universal Design".
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 1)), (0, (5, 3, 1, 3)))


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display, ever), imported only when a figure is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "svg.hashsalt": "prefcli",
            "pdf.fonttype": 42,
            "ps.fonttype": 42,
            "font.size": 9,
            "axes.titlesize": 10,
            "legend.fontsize": 8,
        }
    )
    return plt


def series_style(i: int) -> dict[str, Any]:
    """Colour, marker and line style of the i-th series (all three change together)."""
    return {
        "color": PALETTE[i % len(PALETTE)],
        "marker": MARKERS[i % len(MARKERS)],
        "linestyle": LINESTYLES[i % len(LINESTYLES)],
    }


def dodge(i: int, n: int, width: float = 0.06) -> float:
    """Offset of series i of n around 0 (in axis units; log2 units on a log2 axis)."""
    return 0.0 if n <= 1 else (i - (n - 1) / 2) * width


def merge_equal(items: Iterable[tuple[str, float]], tol: float = 1e-9) -> list[tuple[list[str], float]]:
    """(names, value) per distinct value, in first-seen order: equal baselines become one labelled line."""
    out: list[tuple[list[str], float]] = []
    for name, v in items:
        for names, w in out:
            if abs(w - v) <= tol:
                names.append(name)
                break
        else:
            out.append(([name], v))
    return out


def legend_outside(ax: Any, **kw: Any) -> Any:
    """A legend to the right of the axes: it takes room from the figure, never from the data."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(
        handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False, **kw
    )


def save_figure(fig: Any, stem: str | os.PathLike, formats: Sequence[str] = FORMATS, dpi: int = DPI) -> list[Path]:
    """Write `fig` as STEM.png (at `dpi`), STEM.pdf and STEM.svg, atomically; return the paths.

    `bbox_inches="tight"` grows the canvas to hold a legend placed outside the axes.
    """
    from prefcli import atomic

    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        meta = {
            "png": {"Software": None},
            "pdf": {"CreationDate": None, "ModDate": None, "Producer": None},
            "svg": {"Date": None},
        }.get(fmt, {})
        with atomic.atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight", metadata=meta)
        written.append(path)
    return written
