"""One plotting style for the whole book, and the mean +/- std plots the experiments need.

Figures get an opaque white background so they stay readable on the website's dark mode. They
are at most :data:`COLUMN_WIDTH` wide, so that the website shows them at their natural size, and
are stored at twice their resolution, so that they stay sharp on a phone or when zoomed.
First used in chapter 1.
"""

from __future__ import annotations

import matplotlib
import numpy as np

from normlab.stats import mean_std

# Inches. At 100 px per inch, with the 0.1 inch margin that Jupyter adds around a figure, a figure
# this wide is at most 720 px: the website's text column is 736 px at a width of 1280 px.
COLUMN_WIDTH = 7.0

STYLE = {
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "figure.dpi": 100,
    "figure.figsize": (COLUMN_WIDTH, 3.6),
    "figure.constrained_layout.use": True,  # panels, labels and legends never overlap
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.frameon": False,
    "font.size": 10,
}


def use_style() -> None:
    """Apply the book's style to every later figure (called once in each setup cell); in Jupyter,
    figures are shown as PNGs at twice ``figure.dpi``, displayed at their size in inches."""
    matplotlib.rcParams.update(STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    if get_ipython() is not None:
        set_matplotlib_formats("retina")


def band(ax, x, runs, label=None, color=None, *, log=False):
    """Plot the mean of several runs (rows) as a line with a +/- one std band around it. With
    ``log=True``, for a log axis, the mean and std are those of the logarithms: the line is the
    geometric mean and the band spans a factor of the geometric std either side, which a log
    axis shows symmetric and which never reaches below zero."""
    runs = np.log(np.asarray(runs, float)) if log else runs
    mean, std = mean_std(runs)
    if mean.shape != np.shape(x):
        raise ValueError(f"x has shape {np.shape(x)} but each run has shape {mean.shape}")
    low, high = mean - std, mean + std
    if log:
        mean, low, high = np.exp(mean), np.exp(low), np.exp(high)
    (line,) = ax.plot(x, mean, label=label, color=color)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    return line


def bars(ax, labels, runs_per_bar, ylabel=None):
    """Bars of means with +/- one std error bars, one bar per label, the seeds as dots."""
    if len(labels) != len(runs_per_bar):
        raise ValueError("need one list of runs per label")
    for i, runs in enumerate(runs_per_bar):
        mean, std = mean_std(runs)
        ax.bar(i, mean, yerr=std, capsize=4, color=f"C{i}", alpha=0.8)
        ax.plot(np.full(len(runs), i), runs, "k.", markersize=4)
    ax.set_xticks(range(len(labels)), labels)
    if ylabel:
        ax.set_ylabel(ylabel)
    return ax

