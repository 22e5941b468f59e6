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

from normlab.runtime import int_argument

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
    """One value per seed. Never flattened: 3 seeds x 4 epochs are not 12 seeds."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name}: need one value per run (a 1-D array), got shape {array.shape}; "
                         "reduce the other axes first, e.g. runs[:, -1]")
    if len(array) < 2:
        raise ValueError(f"{name}: need at least 2 runs for a confidence interval, got {len(array)}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: every run needs a finite value, got {array}")
    return array


def _confidence(confidence: float) -> None:
    if not 0 < confidence < 1:  # also refuses NaN
        raise ValueError(f"confidence must lie between 0 and 1 (e.g. 0.95), got {confidence!r}")


def _no_spread(spread: float, *arrays: np.ndarray) -> bool:
    """True for runs equal up to float rounding: 0.5 - 0.4 and 0.2 - 0.1 differ in their last bits."""
    return spread <= 1e-12 * max(float(np.max(np.abs(array))) for array in arrays)


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


def _digits(values, digits: int) -> int:
    """``digits``, or up to three more where a nonzero value would otherwise print as zero."""
    extra = 0
    while extra < 3 and any(v != 0 and round(abs(v), digits + extra) == 0 for v in values):
        extra += 1
    return digits + extra


def _bound(value: float, digits: int) -> str:
    """An interval's end, with up to three more digits where it takes them to show on which side
    of zero the end lies: "95 % CI -0.02 to 0.9", not "0.0 to 0.9" for an unresolved one."""
    return number(value, _digits([value], digits))


def _resolved(value: float, low: float, high: float, digits: int) -> tuple[str, str, str]:
    """A value and an interval that excludes zero, all with the same digits and none printed as
    zero: "0.03 (95 % CI 0.02 to 0.04)", not "0.0 (95 % CI 0.02 to 0.04)"."""
    digits = _digits([value, low, high], digits)
    return number(value, digits), number(low, digits), number(high, digits)


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
        """``"0.886 (95 % CI 0.881 to 0.891, 3 seeds)"``: where the mean itself lies; runs without
        spread say so (``"0.5 in every seed (3 seeds)"``) rather than print a zero-width interval."""
        mean, low, high = scale * self.mean, scale * self.low, scale * self.high
        if self.std == 0:
            return f"{_bound(mean, digits)} in every seed ({_seeds(self.n)})"
        if low > 0 or high < 0:
            mean_text, low_text, high_text = _resolved(mean, low, high, digits)
        else:
            mean_text, low_text, high_text = number(mean, digits), _bound(low, digits), _bound(high, digits)
        return f"{mean_text} ({_percent(self.confidence)} CI {low_text} to {high_text}, {_seeds(self.n)})"

    def __str__(self) -> str:
        return self.text()


def estimate(values, confidence: float = CONFIDENCE) -> Estimate:
    """Mean, sample std and the Student-t confidence interval of the mean of ``values``."""
    _confidence(confidence)
    array = _values(values)
    mean, std = float(array.mean()), float(array.std(ddof=1))
    if _no_spread(float(np.ptp(array)), array):
        std = 0.0
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
    equal spreads. Runs without spread (equal up to float rounding) get a zero-width interval.
    """
    _confidence(confidence)
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
    spread = np.ptp(a - b) if paired else max(np.ptp(a), np.ptp(b))
    if _no_spread(float(spread), a, b):
        half = 0.0
        value = 0.0 if _no_spread(abs(value), a, b) else value
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
            confidence: float = CONFIDENCE, family: int = 1) -> Comparison:
    """Say how ``a`` compares with ``b``, e.g. "higher by 1.4 points (95 % CI 0.9 to 1.9, 5 seeds
    each)" or "not resolved at 3 seeds: the difference lies between -1.9 and 1.3 points (95 % CI,
    mean -0.3)" (the page prints typeset minus signs).

    ``scale`` and ``unit`` turn the values into what the page talks about (accuracies into
    points by default; ``scale=1, unit="s"`` for seconds); ``higher``/``lower`` name the two
    directions ("faster"/"slower" for a time, say ``lower="faster"``). A resolved interval is
    printed in the direction the sentence words it: "fewer by 2.6 epochs (95 % CI 1.9 to 3.3)".
    ``family=k`` makes this one of k comparisons that share the ``confidence`` (Bonferroni: each
    interval at 1 - (1 - confidence)/k), so that a sweep of k verdicts does not find an effect by
    chance; the sentence names the family. Runs without spread have no interval to report:
    "higher by 1.0 points in every seed (3 seeds, paired)", "identical in every seed (3 seeds each)".
    """
    if not (isinstance(family, int) and family >= 1):
        raise ValueError(f"family must be a whole number of comparisons, at least 1, got {family!r}")
    _confidence(confidence)
    each = 1 - (1 - confidence) / family
    d = difference(a, b, paired=paired, confidence=each)
    unit = f" {unit}" if unit and unit[0].isalnum() else unit or ""
    value, low, high = scale * d.value, scale * d.low, scale * d.high
    if d.paired:
        runs = f"{_seeds(d.n_a)}, paired"
    elif d.n_a == d.n_b:
        runs = f"{_seeds(d.n_a)} each"
    else:
        runs = f"{d.n_a} and {_seeds(d.n_b)}"
    if family > 1:
        runs += f"; one of {family} comparisons"
    direction = higher if d.value > 0 else lower
    if d.low == d.high:  # no spread: no interval to speak of
        verdict = (f"{direction} by {_bound(abs(value), digits)}{unit} in every seed" if d.value
                   else "identical in every seed")
        sentence = f"{verdict} ({runs})"
    elif d.resolved:
        near, far = sorted((abs(low), abs(high)))  # the interval of the size the sentence states
        size, near_text, far_text = _resolved(abs(value), near, far, digits)
        verdict = f"{direction} by {size}{unit}"
        sentence = f"{verdict} ({_percent(each)} CI {near_text} to {far_text}, {runs})"
    else:
        counts = _seeds(d.n_a) if d.n_a == d.n_b else f"{d.n_a} and {_seeds(d.n_b)}"
        verdict = f"not resolved at {counts}"
        details = ", ".join([f"{_percent(each)} CI", f"mean {number(value, digits)}",
                             *(["paired"] if d.paired else []),
                             *([f"one of {family} comparisons"] if family > 1 else [])])
        sentence = (f"{verdict}: the difference lies between {_bound(low, digits)} and "
                    f"{_bound(high, digits)}{unit} ({details})")
    return Comparison(d, sentence, verdict)


REPRODUCED, NOT_REPRODUCED, NOT_RESOLVED = "reproduced", "not reproduced", "not resolved"


def status(evidence, expected: int = 1) -> str:
    """The claims-ledger status of a claim, the one rule every chapter's ledger uses.

    ``evidence`` is a :class:`Comparison` or :class:`Difference` of the runs with and without
    what the claim is about, and ``expected`` the sign the claim predicts (+1: higher, -1: lower,
    0: about the same); or ``True``/``False``, the outcome of an exact check (a worked example
    computed to the digit). A difference is "reproduced" when its interval excludes zero on the
    predicted side, "not reproduced" when it excludes zero on the other side (on either side for
    a claim of no difference), and otherwise "not resolved at n seeds": an interval that contains
    zero neither confirms nor refutes a claim, not even one of no difference, which would need a
    margin the claim does not give.
    """
    if isinstance(evidence, (bool, np.bool_)):
        return REPRODUCED if evidence else NOT_REPRODUCED
    if expected not in (1, 0, -1):
        raise ValueError(f"expected must be +1 (the claim predicts higher), -1 (lower) or 0 (about "
                         f"the same), got {expected!r}")
    d = evidence.difference if isinstance(evidence, Comparison) else evidence
    if not isinstance(d, Difference):
        raise TypeError("evidence must be a Comparison, a Difference or a bool, "
                        f"got {type(evidence).__name__}")
    if d.sign == 0:
        counts = _seeds(d.n_a) if d.n_a == d.n_b else f"{d.n_a} and {_seeds(d.n_b)}"
        return f"{NOT_RESOLVED} at {counts}"
    return REPRODUCED if d.sign == expected else NOT_REPRODUCED


def status_kind(status: str) -> str:
    """One of the three statuses, without the seeds: "not resolved at 3 seeds" is "not resolved"."""
    return NOT_RESOLVED if status.startswith(NOT_RESOLVED) else status


def seeds_needed(a, b=None, *, effect: float, paired: bool = False,
                 confidence: float = CONFIDENCE, most: int = 1000) -> int:
    """How many seeds per arm bring the interval's half-width below ``effect``, judged from a
    pilot's spread: what a chapter computes before it decides how many seeds a verdict needs.

    ``a`` and ``b`` are the pilot runs of the two arms (``paired=True``: matched by seed, and the
    spread is that of the per-seed differences); ``b=None`` sizes the interval of ``a``'s mean.
    ``effect`` is in the units of the values (0.05 for 5 points of accuracy). The answer assumes
    the pilot's standard deviations hold at larger n; it is at least 2, and ``most`` + 1 means
    more than ``most`` seeds would be needed.
    """
    _confidence(confidence)
    if not (math.isfinite(effect) and effect > 0):
        raise ValueError(f"effect must be a positive size in the units of the values, got {effect!r}")
    a = _values(a, "a")
    if b is None:
        spreads = [float(a.std(ddof=1))]
    else:
        b = _values(b, "b")
        if paired:
            if len(a) != len(b):
                raise ValueError(f"paired runs need as many values in a as in b, got {len(a)} and {len(b)}")
            spreads = [float((a - b).std(ddof=1))]
        else:
            spreads = [float(a.std(ddof=1)), float(b.std(ddof=1))]
    variance = sum(s**2 for s in spreads)  # of one seed's difference (or of one run)
    for n in range(2, most + 1):
        se = math.sqrt(variance / n)
        # Welch's degrees of freedom with n runs per arm, or n - 1 for one arm or paired runs
        df = (n - 1) * variance**2 / sum(s**4 for s in spreads) if variance else n - 1
        if _half_width(se, df, confidence) < effect:
            return n
    return most + 1


@dataclass(frozen=True)
class SeedPlan:
    """A powered test's seeds, from :func:`plan_seeds`: ``needed`` is what the pilot's spread asks
    for (``most`` + 1: more than ``most``), ``seeds`` what the test runs, within its budget."""

    needed: int
    seeds: int
    most: int
    effect: float

    def text(self, result: Comparison, *, scale: float = 100.0, unit: str = "points",
             runs: str = "the test runs") -> str:
        """The plan beside the interval it achieved, e.g. "the spread of the pilot runs asks for
        8 seeds to resolve 3 points; the test runs 8, and its interval is ±3.8 points"."""
        asks = f"more than {self.most}" if self.needed > self.most else str(self.needed)
        short = "" if self.needed <= self.seeds else ", the most this page affords"
        half = scale * (result.difference.high - result.difference.low) / 2
        return (f"the spread of the pilot runs asks for {asks} seeds to resolve "
                f"{scale * self.effect:g} {unit}; {runs} {self.seeds}{short}, and its "
                f"interval is ±{half:.1f} {unit}")


def plan_seeds(a, b=None, *, effect: float, least: int, most: int, paired: bool = False,
               confidence: float = CONFIDENCE) -> SeedPlan:
    """How many seeds a test runs: as many as :func:`seeds_needed` asks for from the pilot runs
    ``a`` (and ``b``), but at least ``least`` (the chapter's usual seeds) and at most ``most``
    (what the page can afford), so that a test either resolves ``effect`` or says it could not."""
    least, most = int_argument("least", least), int_argument("most", most)
    if not 2 <= least <= most:
        raise ValueError(f"need 2 <= least <= most, got least={least}, most={most}")
    needed = seeds_needed(a, b, effect=effect, paired=paired, confidence=confidence, most=most)
    return SeedPlan(needed, min(max(needed, least), most), most, effect)


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _percent(confidence: float) -> str:
    return f"{100 * confidence:.3g} %"  # 95 %, 99 %, 98.3 % (a family of 3)
