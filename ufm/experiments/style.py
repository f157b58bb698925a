"""One matplotlib style for every figure: single-column width, readable fonts, colour-blind-safe colours."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: figures are files

import matplotlib.pyplot as plt  # noqa: E402
from cycler import cycler  # noqa: E402  (matplotlib's dependency)

# Okabe & Ito (2008) colour-blind-safe palette.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000"]
SEQUENTIAL = "viridis"  # perceptually uniform and colour-blind safe
SINGLE_COLUMN = 3.4  # inches (a typical two-column paper's column)
DOUBLE_COLUMN = 7.0

# matplotlib's stubs type rc keys as a Literal of every rc name; a dict literal of str keys is checked as that
# only where it is written inline, so the style is typed as a mapping to Any.
RC: Any = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "lines.linewidth": 1.2,
    "lines.markersize": 3,
    "axes.prop_cycle": cycler(color=COLOURS),
    "savefig.dpi": 200,
    "figure.dpi": 100,
    "pdf.fonttype": 42,  # TrueType in PDFs (editable text, accepted by publishers)
}


def figure(ncols: int = 1, nrows: int = 1, width: float = SINGLE_COLUMN, height: float | None = None, **kwargs):
    """A figure of the given grid in the package style (``constrained`` layout avoids overlapping labels)."""
    with plt.rc_context(RC):
        fig, axes = plt.subplots(
            nrows,
            ncols,
            figsize=(width, height or 0.8 * width * nrows / ncols + 0.3),
            layout="constrained",
            squeeze=False,
            **kwargs,
        )
    return fig, axes
