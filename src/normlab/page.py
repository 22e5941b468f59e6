"""What a chapter puts on its page besides plain prints: glued values and deliberate errors.

Kept apart from :mod:`normlab.notebooks` (the maintainer's tool) so that improving how chapters
are executed, checked or turned into reader notebooks does not make their outputs stale.

:func:`glue` hands a computed value to the prose (myst-nb's ``{glue}`` role on the website, plain
text in the reader notebooks), so every number in the text comes from the run.
:func:`verdict` glues and prints a comparison of two sets of runs.
:func:`expect_error` shows an error a chapter means to show without stopping "Run all".
"""

from __future__ import annotations

import contextlib
import traceback


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


def verdict(name: str, a, b, **how):
    """Compare two sets of runs with :func:`normlab.stats.compare` (``how`` are its options),
    glue the sentence for ``{glue:md}`name```, print it, and return the comparison, so the prose
    and the cell output say the same. Explained in chapter 5."""
    from normlab.stats import compare

    comparison = compare(a, b, **how)
    glue(name, comparison.markdown(), markdown=True)
    print(f"{name}: {comparison}")
    return comparison


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
