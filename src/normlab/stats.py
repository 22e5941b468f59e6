"""Statistics over seeds: means with confidence intervals, differences, and the sentence a page prints.

Explained in chapter 5 ("How sure are we?"). An experiment repeated over a few seeds gives a few
numbers per configuration; whether one configuration is "better" than another is decided by the
confidence interval of the difference of their means, not by which mean is larger. Every
comparison the book states in words is made by :func:`compare`, so a rerun on other data or
another machine cannot contradict its own text.

Intervals use Student's t distribution: with 3 to 10 seeds the normal approximation would make
them far too narrow. Unpaired differences use Welch's interval (the two configurations may have
different spreads); runs paired by seed (the same seed, data order and initial weights in both
arms, e.g. the same network evaluated two ways) use the paired interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _scipy_stats

CONFIDENCE = 0.95


def mean_std(runs) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation over the first axis (one row per seed).

    One seed has no spread: its std is 0, so a curve of one run still plots.
    """
    runs = np.asarray(runs, dtype=float)
    if runs.ndim == 0 or len(runs) < 1:
        raise ValueError("need at least one run")
    std = runs.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros_like(runs[0])
    return runs.mean(axis=0), std


def _values(values, name: str = "values") -> np.ndarray:
    array = np.asarray(values, dtype=float).ravel()
    if len(array) < 2:
        raise ValueError(f"{name}: need at least 2 runs for a confidence interval, got {len(array)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: every run needs a finite value, got {array}")
    return array


def _half_width(se: float, df: float, confidence: float) -> float:
    if se == 0.0:
        return 0.0
    return float(_scipy_stats.t.ppf(0.5 + confidence / 2, df)) * se


def number(value: float, digits: int) -> str:
    """A number with a typeset minus sign (U+2212), never a negative zero: how the prose prints
    a signed number (chapter 5 glues one)."""
    text = f"{value:.{digits}f}"
    if float(text) == 0.0:
        text = text.lstrip("-")
    return text.replace("-", "\N{MINUS SIGN}")


def _bound(value: float, digits: int) -> str:
    """An interval's end, with up to three more digits where it takes them to show on which side
    of zero the end lies: "95 % CI -0.02 to 0.9", not "0.0 to 0.9" for an unresolved one."""
    extra = 0
    while extra < 3 and value != 0 and round(abs(value), digits + extra) == 0:
        extra += 1
    return number(value, digits + extra)


@dataclass(frozen=True)
class Estimate:
    """The mean of one number per seed, its sample std and the confidence interval of the mean."""

    mean: float
    std: float
    n: int
    low: float
    high: float
    confidence: float = CONFIDENCE

    def text(self, scale: float = 1.0, digits: int = 3) -> str:
        """``"0.886 ± 0.004"``: mean ± sample std, the spread of single runs."""
        return f"{number(scale * self.mean, digits)} ± {number(scale * self.std, digits)}"

    def ci_text(self, scale: float = 1.0, digits: int = 3) -> str:
        """``"0.886 (95 % CI 0.881 to 0.891, 3 seeds)"``: where the mean itself lies."""
        return (f"{number(scale * self.mean, digits)} ({_percent(self.confidence)} CI "
                f"{_bound(scale * self.low, digits)} to {_bound(scale * self.high, digits)}, "
                f"{_seeds(self.n)})")

    def __str__(self) -> str:
        return self.text()


def estimate(values, confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sample std and the Student-t confidence interval of the mean of ``values``."""
    array = _values(values)
    mean, std = float(array.mean()), float(array.std(ddof=1))
    half = _half_width(std / math.sqrt(len(array)), len(array) - 1, confidence)
    return Estimate(mean, std, len(array), mean - half, mean + half, confidence)


@dataclass(frozen=True)
class Difference:
    """``mean(a) - mean(b)`` with its confidence interval."""

    value: float
    low: float
    high: float
    n_a: int
    n_b: int
    paired: bool
    confidence: float = CONFIDENCE

    @property
    def resolved(self) -> bool:
        """True when the interval excludes zero: the experiment tells the two apart."""
        return self.low > 0 or self.high < 0

    @property
    def sign(self) -> int:
        """+1 or -1 for a resolved difference, 0 for one the experiment cannot tell from zero."""
        return (self.low > 0) - (self.high < 0)


def difference(a, b, *, paired: bool = False, confidence: float = CONFIDENCE) -> Difference:
    """The difference of the means of ``a`` and ``b`` with a Student-t confidence interval.

    ``paired=True`` for runs matched by seed (``a[i]`` and ``b[i]`` share seed ``i``): the
    interval of the mean per-seed difference. Otherwise Welch's interval, which does not assume
    equal spreads.
    """
    a, b = _values(a, "a"), _values(b, "b")
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired runs need as many values in a as in b, got {len(a)} and {len(b)}")
        d = a - b
        value = float(d.mean())
        half = _half_width(float(d.std(ddof=1)) / math.sqrt(len(d)), len(d) - 1, confidence)
    else:
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        value = float(a.mean() - b.mean())
        se = math.sqrt(va + vb)
        df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)) if se else 1.0
        half = _half_width(se, df, confidence)
    return Difference(value, value - half, value + half, len(a), len(b), paired, confidence)


@dataclass(frozen=True)
class Comparison:
    """A :class:`Difference` in words: what :func:`compare` returns, for the prose to print."""

    difference: Difference
    sentence: str
    verdict: str

    @property
    def resolved(self) -> bool:
        return self.difference.resolved

    def markdown(self) -> str:
        """The sentence with its verdict in bold, where the interval excludes zero only."""
        if not self.resolved:
            return self.sentence
        return self.sentence.replace(self.verdict, f"**{self.verdict}**", 1)

    def __str__(self) -> str:
        return self.sentence


def compare(a, b, *, paired: bool = False, scale: float = 100.0, unit: str = "points",
            digits: int = 1, higher: str = "higher", lower: str = "lower",
            confidence: float = CONFIDENCE) -> Comparison:
    """Say how ``a`` compares with ``b``, e.g. "higher by 1.4 points (95 % CI 0.9 to 1.9, 5 seeds
    each)" or "no reliable difference at 3 seeds (-0.3 points, 95 % CI -1.9 to 1.3)" (the page
    prints typeset minus signs).

    ``scale`` and ``unit`` turn the values into what the page talks about (accuracies into
    points by default; ``scale=1, unit="s"`` for seconds); ``higher``/``lower`` name the two
    directions ("faster"/"slower" for a time, say ``lower="faster"``).
    """
    d = difference(a, b, paired=paired, confidence=confidence)
    unit = f" {unit}" if unit and unit[0].isalnum() else unit
    interval = (f"{_percent(confidence)} CI {_bound(scale * d.low, digits)} to "
                f"{_bound(scale * d.high, digits)}")
    if d.paired:
        runs = f"{_seeds(d.n_a)}, paired"
    elif d.n_a == d.n_b:
        runs = f"{_seeds(d.n_a)} each"
    else:
        runs = f"{d.n_a} and {_seeds(d.n_b)}"
    if d.resolved:
        verdict = f"{higher if d.value > 0 else lower} by {number(abs(scale * d.value), digits)}{unit}"
        sentence = f"{verdict} ({interval}, {runs})"
    else:
        counts = _seeds(d.n_a) if d.n_a == d.n_b else f"{d.n_a} and {_seeds(d.n_b)}"
        verdict = f"no reliable difference at {counts}"
        sentence = (f"{verdict} ({number(scale * d.value, digits)}{unit}, {interval}"
                    f"{', paired' if d.paired else ''})")
    return Comparison(d, sentence, verdict)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _percent(confidence: float) -> str:
    return f"{100 * confidence:g} %"
