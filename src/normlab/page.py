"""What a chapter puts on its page besides plain prints: glued values and deliberate errors.

Kept apart from :mod:`normlab.notebooks` (the maintainer's tool) so that improving how chapters
are executed, checked or turned into reader notebooks does not make their outputs stale.

:func:`glue` hands a computed value to the prose (myst-nb's ``{glue}`` role on the website, plain
text in the reader notebooks), so every number in the text comes from the run.
:func:`verdict` glues and prints a comparison of two sets of runs; :func:`report` prints one.
:func:`expect_error` shows an error a chapter means to show without stopping "Run all".
:class:`Ledger` is the table that ends every chapter: what it showed, claim by claim.
"""

from __future__ import annotations

import contextlib
import json
import textwrap
import traceback
from collections import Counter
from dataclasses import asdict, dataclass

from normlab import stats

# Characters in a line of code or output that the website shows without wrapping or scrolling.
OUTPUT_WIDTH = 99


def glue(name: str, value, display: bool = False, *, markdown: bool = False) -> None:
    """Make ``value`` available to the prose as ``{glue:text}`name```; numbers become Python types.

    Explained in chapter 1. NumPy scalars are converted because the website formats glued
    numbers (``name:.3f``) by parsing their stored text, which must read ``0.5``, not
    ``np.float32(0.5)``. ``markdown=True`` glues a string as Markdown, for ``{glue:md}`name```:
    a verdict from :func:`normlab.stats.compare` whose bold part must stay bold, e.g.
    ``glue("gain", comparison.markdown(), markdown=True)``. Where myst-nb is absent (e.g. on
    Colab) nothing is recorded.
    """
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        value = value.item()
    if markdown:
        from IPython.display import Markdown

        value = Markdown(str(value))
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=display)


def verdict(name: str, what: str, a, b, **how):
    """Compare two sets of runs with :func:`normlab.stats.compare` (``how`` are its options),
    glue the sentence for ``{glue:md}`name```, print it after ``what`` was compared, and return
    the comparison, so the prose and the cell output say the same. Explained in chapter 5.

    The output names the comparison in words ("batch norm against none, final accuracy:"), not
    by its glue name, which only the page's source uses (:func:`report`)."""
    comparison = stats.compare(a, b, **how)
    glue(name, comparison.markdown(), markdown=True)
    report(what, comparison)
    return comparison


def report(what: str, comparison) -> None:
    """Print a comparison (or any sentence) under what it is about, wrapped to the code column:
    a cell's output then keeps its shape beside a table, whose lines the website never wraps.
    Explained in chapter 4."""
    print(f"{what}:\n" + textwrap.fill(str(comparison), OUTPUT_WIDTH, initial_indent="  ",
                                       subsequent_indent="  "))


@contextlib.contextmanager
def expect_error(error_type: type[BaseException] = Exception):
    """Run a block that must fail, and print its error as Python would, without a traceback.

    Explained in chapter 3. A cell that raises stops "Run all" on Colab and in JupyterLab, which
    ignore the cell tags the website uses; inside ``with expect_error(ValueError):`` the cell
    shows the error and the notebook goes on. A block that does not raise is a bug in the
    chapter, so it fails loudly with an ``AssertionError``.
    """
    try:
        yield
    except error_type as error:
        print("".join(traceback.format_exception_only(type(error), error)).rstrip())
    else:
        raise AssertionError(f"expected {error_type.__name__}, but nothing was raised")


@dataclass(frozen=True)
class Claim:
    """One row of a chapter's ledger. ``section`` is the label of the section that tests it."""

    claim: str
    source: str
    measurement: str
    result: str
    status: str
    section: str


ROWS_SUFFIX = "_ledger_rows"  # the glued name of a ledger's rows, which the evidence page reads


class Ledger:
    """"What this chapter showed": one row per claim the chapter set out to test, a paper's, a
    source article's or its own, with the measurement, the result and its status.

    Explained in chapter 1. Rows are made from the verdicts the chapter computed, with the one
    status rule of :func:`normlab.stats.status`, so a rerun on other data rewrites the table.
    :meth:`show` glues it for a ``{glue:md}`` directive (``<chapter>_ledger``) and glues the rows
    as a JSON string (``<chapter>_ledger_rows``) for the book's evidence page, which
    ``python -m normlab.notebooks evidence`` writes from every chapter's ledger.
    """

    def __init__(self, chapter: str):
        self.chapter, self.claims = chapter, []

    def add(self, claim: str, *, source: str, measurement: str, evidence, section: str,
            expected: int = 1, result: str | None = None) -> Claim:
        """Add a claim. ``evidence`` is a :class:`normlab.stats.Comparison` (its sentence is the
        result) or the outcome of an exact check, ``True``/``False``, which needs ``result`` in
        words. ``expected`` is the direction the claim predicts: +1 if it says the first set of
        runs of the comparison is higher, -1 if lower."""
        if result is None:
            if not isinstance(evidence, stats.Comparison):
                raise ValueError(f"claim {claim!r}: an exact check needs its result in words "
                                 "(result=...)")
            result = evidence.sentence
        row = Claim(claim, source, measurement, result, stats.status(evidence, expected), section)
        self.claims.append(row)
        return row

    def counts(self) -> dict[str, int]:
        """How many claims have each status, "not resolved" counted as one status."""
        return dict(Counter(stats.status_kind(c.status) for c in self.claims))

    def markdown(self) -> str:
        """The ledger as a Markdown table."""
        columns = ("claim", "source", "measurement", "result", "status")
        rows = ["| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]
        rows += ["| " + " | ".join(table_cell(getattr(c, name)) for name in columns) + " |"
                 for c in self.claims]
        return "\n".join(rows)

    def show(self) -> None:
        """Glue the table and its rows, and print how many claims have each status."""
        if not self.claims:
            raise ValueError(f"{self.chapter}: the ledger has no claims")
        glue(f"{self.chapter}_ledger", self.markdown(), markdown=True)
        glue(self.chapter + ROWS_SUFFIX, json.dumps([asdict(c) for c in self.claims]))
        counts = ", ".join(f"{n} {status}" for status, n in self.counts().items())
        print(f"{self.chapter} ledger: {len(self.claims)} claims: {counts}")


def table_cell(text: str) -> str:
    """Text as one cell of a Markdown table: on one line, its pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
