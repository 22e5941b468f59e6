"""One plotting style for the whole book, the mean +/- std plots the experiments need, and
:func:`show`, which puts a figure on the page only if a reader can read it.

Figures get an opaque white background so they stay readable on the website's dark mode. They
are at most :data:`COLUMN_WIDTH` wide, so that the website shows them at their natural size, and
are stored at twice their resolution, so that they stay sharp on a phone or when zoomed. A phone
shows a figure at half that width, where three panels side by side have unreadable labels, so
:func:`show` also draws the figure with its panels stacked, :data:`PHONE_WIDTH` wide, for the
website to serve to narrow screens. First used in chapter 1.
"""

from __future__ import annotations

import base64
import io
import math
import os
from itertools import combinations

import matplotlib
import numpy as np
from matplotlib import ticker

from normlab.stats import mean_std

# Inches. At 100 px per inch, with the 0.1 inch margin that Jupyter adds around a figure, a figure
# this wide is at most 720 px: the website's text column is 736 px at a width of 1280 px.
COLUMN_WIDTH = 7.0

# Inches. The text column of a 390 px phone is 342 px wide: a figure 360 px wide fills it.
PHONE_WIDTH = 3.6
PHONE_COLUMN_PX = 342

# The smallest text a reader can read without zooming, in CSS px, where the website shows a
# figure: at its natural size on a desktop, squeezed into the column on a phone.
SMALLEST_TEXT_PX = {"desktop": 11.0, "phone": 9.0}

# Matplotlib sets a mathtext superscript or subscript (the exponent in 10^-3) at 0.7 of its size.
SCRIPT_SHRINK = 0.7

# Set to "1" by ``python -m normlab.notebooks execute``, which makes the figures the website shows:
# only then does :func:`show` check them and draw them for phones. A reader's run (on Colab, on
# other data) and the tests' smoke runs show each figure as it comes.
CHECK_VARIABLE = "NORMLAB_CHECK_FIGURES"

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


def bars(ax, labels, runs_per_bar, xlabel=None):
    """Horizontal bars of means with +/- one std error bars, one bar per label from the top down,
    the seeds as dots. Horizontal, so that long labels never run together, even on a phone."""
    if len(labels) != len(runs_per_bar):
        raise ValueError("need one list of runs per label")
    for i, runs in enumerate(runs_per_bar):
        mean, std = mean_std(runs)
        ax.barh(i, mean, xerr=std, capsize=4, color=f"C{i}", alpha=0.8)
        ax.plot(runs, np.full(len(runs), i), "k.", markersize=4)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.grid(False, axis="y")
    if xlabel:
        ax.set_xlabel(xlabel)
    return ax


def legend_below(fig, ax=None, ncols=3, fontsize=None):
    """One legend for the figure, below its panels, with the entries of ``ax`` (by default the
    first panel that has any; ``fontsize`` in pt, e.g. 12 for an entry with an exponent, which
    is set at 0.7 of it): it covers no data on a desktop, nor on a phone, where
    :func:`stack_for_phone` makes it again with fewer columns if it is too wide."""
    for panel in [ax] if ax is not None else fig.axes:
        handles, labels = panel.get_legend_handles_labels()
        if handles:
            return fig.legend(handles, labels, loc="outside lower center", ncols=min(ncols, len(labels)),
                              fontsize=fontsize)
    raise ValueError("no panel has labelled artists for a legend")


class FigureError(ValueError):
    """A figure a reader could not read: colliding text, a legend over data, or text too small."""


def show(fig=None) -> None:
    """Show a figure as the book does: instead of ``plt.show()``, in every chapter.

    Explained in chapter 1. Log axes are labelled 0.01, 0.1, 1 in full-size text
    (:func:`plain_log_labels`): the exponent of 10^-2 is set at 0.7 of the labels' size, too small
    on a phone. When the chapter is executed for the website (:data:`CHECK_VARIABLE`), the figure
    is checked before it reaches the page: no two texts may overlap, no legend may cover plotted
    data, and its smallest text must be legible where the website shows it
    (:data:`SMALLEST_TEXT_PX`), on a desktop and, drawn again with its panels stacked
    (:func:`stack_for_phone`), on a phone. A figure that fails raises :class:`FigureError` naming
    what collides, so a chapter cannot publish an unreadable figure. Both drawings go into one
    output: the desktop PNG that Jupyter and Colab show, and the phone PNG in the output's
    metadata, which only the website reads.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    fig = plt.gcf() if fig is None else fig
    check = os.environ.get(CHECK_VARIABLE) == "1"
    try:
        summary = repr(fig)
        plain_log_labels(fig)
        desktop = _png(fig, "desktop", 100 * COLUMN_WIDTH, check)
        metadata = {"image/png": desktop["size"]}
        if check:
            stacked = stack_for_phone(fig)
            phone = _png(fig, "phone", PHONE_COLUMN_PX, check)
            metadata["normlab"] = {"phone": {"image/png": phone["png"], **phone["size"],
                                             "stacked": stacked}}
    finally:
        plt.close(fig)
    display({"image/png": desktop["png"], "text/plain": summary}, raw=True, metadata=metadata)


def plain_log_labels(fig) -> None:
    """Label the decades of every log axis as plain numbers (0.001 ... 1000, beyond that 1e-5),
    leave the other ticks unlabelled, and keep an axis whose labels a chapter chose itself."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            default = type(axis.get_major_formatter()) is ticker.LogFormatterSciNotation
            if axis.get_scale() == "log" and default:
                axis.set_major_formatter(ticker.FuncFormatter(_decade_label))
                axis.set_minor_formatter(ticker.NullFormatter())


def _decade_label(value, _position=None) -> str:
    exponent = math.log10(value) if value > 0 else math.nan
    if not math.isclose(exponent, round(exponent), abs_tol=1e-9):
        return ""
    return f"{value:g}" if -3 <= exponent <= 4 else f"1e{round(exponent)}"


def stack_for_phone(fig) -> bool:
    """Lay the panels out :data:`PHONE_WIDTH` wide: as many columns as keep each panel at least
    as wide as on a desktop (one for most figures), row after row in reading order. Colorbars and
    twin axes move with their panels; a figure-wide title stays on top, and a figure-wide legend
    (:func:`legend_below`) below. Returns whether the panels moved, so that the website can say
    that "left" and "right" in a caption now read "above" and "below"."""
    panels = {}
    for ax in fig.axes:
        spec = ax.get_subplotspec()
        if spec is not None:
            panels.setdefault((spec.rowspan.start, spec.colspan.start), []).append((ax, spec))
    if not panels:
        return False
    grid = next(iter(panels.values()))[0][1].get_gridspec()
    rows, columns = grid.get_geometry()
    width, height = fig.get_size_inches()
    narrowest = min(width * len(spec.colspan) / columns for ((_, spec), *_) in panels.values())
    per_row = max(1, min(len(panels), int(PHONE_WIDTH / narrowest)))
    row_height = min(height / rows, 3.0)
    new_rows = math.ceil(len(panels) / per_row)
    stacked = per_row < columns
    new_grid = fig.add_gridspec(new_rows, per_row)
    for i, key in enumerate(sorted(panels)):
        for ax, _ in panels[key]:
            ax.set_subplotspec(new_grid[divmod(i, per_row)])
            # a shared axis labels only the outer panels; stacked, each panel needs its own labels
            if len(ax.get_shared_x_axes().get_siblings(ax)) > 1 and ax.xaxis.get_visible():
                ax.xaxis.set_tick_params(labelbottom=True)
            if len(ax.get_shared_y_axes().get_siblings(ax)) > 1 and ax.yaxis.get_visible():
                ax.yaxis.set_tick_params(labelleft=True)
    legend_rows, renderer = 0, fig.canvas.get_renderer()
    for legend in list(fig.legends):  # made again with as many columns as fit the phone's width
        texts = legend.get_texts()
        handles, labels, size = legend.legend_handles, [t.get_text() for t in texts], texts[0].get_fontsize()
        legend.remove()
        for ncols in range(len(labels), 0, -1):
            narrower = fig.legend(handles, labels, loc="outside lower center", ncols=ncols, fontsize=size)
            if ncols == 1 or narrower.get_window_extent(renderer).width <= 0.95 * PHONE_WIDTH * fig.dpi:
                break
            narrower.remove()
        legend_rows += math.ceil(len(labels) / ncols)
    extra = 0.4 * (fig.get_suptitle() != "") + 0.25 * legend_rows
    fig.set_size_inches(PHONE_WIDTH, new_rows * row_height + extra)
    return stacked


def _png(fig, where: str, column_px: float, check: bool) -> dict:
    """The figure as a PNG at twice its resolution, after the checks :func:`show` promises if
    ``check``.

    Jupyter shows the PNG at half its pixels, one pixel per CSS px at ``fig.dpi``. A checked PNG's
    text chunk ``normlab:smallest-text-px`` holds the smallest text's size in those CSS px, which
    the website's tests turn into what a reader sees."""
    width, height = fig.get_size_inches() * fig.dpi
    record = {}
    if check:
        texts = drawn_texts(fig)
        problems = collisions(fig, texts)
        smallest, smallest_px = min(texts, key=lambda t: t[1], default=(None, math.inf))
        shown_px = smallest_px * min(1.0, column_px / width)
        if shown_px < SMALLEST_TEXT_PX[where]:
            problems.append(f"the smallest text, {smallest.get_text()!r}, is {shown_px:.1f} px on a "
                            f"{where} (at least {SMALLEST_TEXT_PX[where]:g} px): make it larger")
        if problems:
            raise FigureError(f"{where} figure: " + "; ".join(problems))
        record = {"normlab:smallest-text-px": f"{smallest_px:.2f}"}
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=2 * fig.dpi, metadata=record)
    return {"png": base64.b64encode(buffer.getvalue()).decode("ascii"),
            "size": {"width": round(width), "height": round(height)}}


def drawn_texts(fig) -> list:
    """Every text the figure draws, as (Text, its size in px at ``fig.dpi``), an exponent or
    index counted at its own, smaller size. Recorded while drawing, so that tick labels outside
    the axes' limits, which are never drawn, do not count."""
    from matplotlib.cbook import is_math_text
    from matplotlib.text import Text

    drawn, draw = {}, Text.draw

    def record(text, renderer):
        if text.get_visible() and text.get_text().strip():
            drawn[id(text)] = text
        return draw(text, renderer)

    Text.draw = record
    try:
        fig.draw(fig.canvas.get_renderer())
    finally:
        Text.draw = draw

    def size(text):
        scripts = is_math_text(text.get_text()) and any(mark in text.get_text() for mark in "^_")
        return text.get_fontsize() * fig.dpi / 72 * (SCRIPT_SHRINK if scripts else 1)

    return [(text, size(text)) for text in drawn.values()]


def collisions(fig, texts) -> list[str]:
    """What overlaps in a drawn figure: two texts' boxes, or a legend and a plotted line, marker
    or bar of its axes. Boxes may touch (1 px)."""
    renderer = fig.canvas.get_renderer()
    boxes = [(text, text.get_window_extent(renderer).padded(-1)) for text, _ in texts]
    problems = [f"{a.get_text()!r} overlaps {b.get_text()!r}"
                for (a, box_a), (b, box_b) in combinations(boxes, 2) if box_a.overlaps(box_b)]
    frame = fig.bbox
    problems += [f"{text.get_text()!r} is cut off at the figure's edge" for text, box in boxes
                 if box.x0 < frame.x0 or box.x1 > frame.x1 or box.y0 < frame.y0 or box.y1 > frame.y1]
    for number, ax in enumerate(fig.axes, start=1):
        legend = ax.get_legend()
        if legend is None or not legend.get_visible():
            continue
        box = legend.get_window_extent(renderer).padded(-1)
        covered = [artist for artist in [*ax.lines, *ax.patches, *ax.collections]
                   if artist.get_visible() and _covers(box, artist, renderer)]
        if covered:
            panel = repr(ax.get_title()) if ax.get_title() else f"panel {number}"
            problems.append(f"the legend of {panel} covers {_name(covered[0])}")
    return problems


def _name(artist) -> str:
    label = artist.get_label()
    if label and not label.startswith("_"):
        return repr(label)
    kinds = {"Line2D": "a line", "Rectangle": "a bar", "Polygon": "a histogram",
             "PathCollection": "points", "LineCollection": "error bars"}
    return kinds.get(type(artist).__name__, type(artist).__name__)


def _covers(box, artist, renderer) -> bool:
    """Whether a legend's box hides part of a line, its markers, a bar or a scatter's points.
    Bands (filled areas) are left out: a legend over a faint band leaves the line readable."""
    from matplotlib.collections import LineCollection, PathCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle

    if isinstance(artist, Line2D):
        path = artist.get_transform().transform_path(artist.get_path())
        if artist.get_linestyle() not in ("None", "", " ") and len(path.vertices) > 1:
            return path.intersects_bbox(box, filled=False)
        return bool(box.count_contains(path.vertices))
    if isinstance(artist, Rectangle):
        return artist.get_window_extent(renderer).overlaps(box)
    if isinstance(artist, Patch):  # the outline of a step histogram
        return artist.get_transform().transform_path(artist.get_path()).intersects_bbox(box, filled=False)
    if isinstance(artist, PathCollection):
        return bool(len(artist.get_offsets())
                    and box.count_contains(artist.get_offset_transform().transform(artist.get_offsets())))
    if isinstance(artist, LineCollection):  # error bars
        transform = artist.get_transform()
        return any(transform.transform_path(p).intersects_bbox(box, filled=False) for p in artist.get_paths())
    return False
