import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from normlab import stats

A = [0.90, 0.91, 0.93]  # hand-computed: mean 0.91333..., sample std 0.0152753
B = [0.85, 0.86, 0.85, 0.87, 0.84]


def test_mean_std_uses_the_sample_std_over_seeds():
    mean, std = stats.mean_std([[1.0, 2.0], [3.0, 2.0]])
    np.testing.assert_allclose(mean, [2.0, 2.0])
    np.testing.assert_allclose(std, [np.sqrt(2.0), 0.0])
    assert stats.mean_std([[1.0, 2.0]])[1].tolist() == [0.0, 0.0]


def test_estimate_is_the_student_t_interval_of_the_mean():
    e = stats.estimate(A)
    assert e.n == 3
    assert e.mean == pytest.approx(0.9133333333)
    assert e.std == pytest.approx(0.0152752523)
    half = 4.302652729911275 * 0.0152752523 / math.sqrt(3)  # t(0.975, 2), from tables
    assert (e.low, e.high) == pytest.approx((e.mean - half, e.mean + half))
    assert e.text() == "0.913 ± 0.015"
    assert e.ci_text(scale=100, digits=1) == "91.3 (95 % CI 87.5 to 95.1, 3 seeds)"


def test_welch_difference_matches_scipy():
    d = stats.difference(A, B)
    result = scipy_stats.ttest_ind(A, B, equal_var=False).confidence_interval(0.95)
    assert d.value == pytest.approx(np.mean(A) - np.mean(B))
    assert (d.low, d.high) == pytest.approx((result.low, result.high))
    assert not d.paired and (d.n_a, d.n_b) == (3, 5)


def test_paired_difference_is_the_interval_of_the_per_seed_differences():
    a, b = [0.90, 0.92, 0.95], [0.89, 0.905, 0.94]
    d = stats.difference(a, b, paired=True)
    result = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((result.low, result.high))
    # the same numbers unpaired: the seed-to-seed spread hides the difference
    assert d.resolved and not stats.difference(a, b).resolved


def test_compare_prints_a_resolved_difference_as_a_verdict_in_bold():
    c = stats.compare(A, B)
    assert c.resolved
    assert c.sentence.startswith("higher by 5.9 points (95 % CI ")
    assert c.sentence.endswith(", 3 and 5 seeds)")
    assert c.markdown().startswith("**higher by 5.9 points** (")
    lower = stats.compare(B, A)
    assert lower.sentence.startswith("lower by 5.9 points")
    assert lower.difference.sign == -1


def test_compare_says_so_when_the_interval_contains_zero():
    c = stats.compare([0.90, 0.86, 0.92], [0.89, 0.91, 0.87])
    assert not c.resolved and c.difference.sign == 0
    assert c.sentence == (
        "no reliable difference at 3 seeds (0.3 points, 95 % CI \N{MINUS SIGN}5.9 to 6.6)")  # Welch, df 3.45
    assert c.markdown() == c.sentence  # nothing in bold


def test_an_interval_end_near_zero_shows_its_side_of_zero():
    just_unresolved = stats.compare([0.00564, 0.00964, 0.01364], [0.0, 0.0, 0.0], paired=True)
    assert -0.0005 < just_unresolved.difference.low < 0 and not just_unresolved.resolved
    assert "95 % CI \N{MINUS SIGN}0.03 to 2.0, paired" in just_unresolved.sentence
    assert stats._bound(0.0, 1) == "0.0" and stats._bound(-0.0004, 1) == "\N{MINUS SIGN}0.0004"
    assert stats._bound(1.25, 1) == "1.2"


def test_compare_takes_units_and_direction_words():
    c = stats.compare([5.0, 5.2, 5.1], [8.0, 8.1, 7.9], scale=1, unit="s", lower="faster")
    assert c.sentence.startswith("faster by 2.9 s (95 % CI \N{MINUS SIGN}3.")
    assert c.sentence.endswith("3 seeds each)")
    assert stats.compare([1, 2, 3], [0, 1, 2.5], paired=True).sentence.endswith("3 seeds, paired)")


def test_identical_runs_have_no_spread_but_a_difference():
    c = stats.compare([0.5, 0.5], [0.4, 0.4])
    assert c.resolved and c.difference.low == c.difference.high == pytest.approx(0.1)


@pytest.mark.parametrize("values", [[0.5], [], [0.5, float("nan")]])
def test_bad_input_is_refused(values):
    with pytest.raises(ValueError, match="run"):
        stats.estimate(values)


def test_paired_runs_need_equal_counts():
    with pytest.raises(ValueError, match="as many"):
        stats.difference([1, 2, 3], [1, 2], paired=True)


def test_a_resolved_size_never_prints_as_zero():
    c = stats.compare([0.0002, 0.0003, 0.0004], [0.0, 0.0, 0.0], paired=True)
    assert c.sentence == "higher by 0.03 points (95 % CI 0.01 to 0.05, 3 seeds, paired)"
    seconds = stats.compare([10.2, 10.3, 10.4], [10.5, 10.6, 10.7], scale=1, unit="s", digits=0,
                            higher="longer", lower="shorter")
    assert seconds.sentence == (
        "shorter by 0.3 s (95 % CI \N{MINUS SIGN}0.5 to \N{MINUS SIGN}0.1, 3 seeds each)")
    assert seconds.markdown().startswith("**shorter by 0.3 s** (")
    e = stats.estimate([0.0002, 0.0003, 0.0004])
    assert e.ci_text(scale=100, digits=1) == "0.03 (95 % CI 0.01 to 0.05, 3 seeds)"


@pytest.mark.parametrize("confidence", [95, 1.0, 0.0, -0.5, float("nan"), float("inf")])
def test_confidence_outside_0_1_is_refused(confidence):
    for call in (lambda: stats.estimate(A, confidence=confidence),
                 lambda: stats.difference(A, B, confidence=confidence),
                 lambda: stats.compare(A, B, confidence=confidence)):
        with pytest.raises(ValueError, match="confidence"):
            call()


def test_runs_with_more_than_one_axis_are_not_flattened():
    runs = np.arange(12.0).reshape(3, 4)  # 3 seeds x 4 epochs
    with pytest.raises(ValueError, match=r"1-D.*\(3, 4\)"):
        stats.estimate(runs)
    with pytest.raises(ValueError, match="a: need one value per run"):
        stats.compare(runs, runs + 1)
    assert stats.estimate(runs[:, -1]).n == 3


def test_runs_without_spread_say_so_instead_of_a_zero_width_interval():
    same = stats.compare([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])
    assert same.sentence == "identical in every seed (3 seeds each)"
    assert not same.resolved and same.difference.sign == 0 and same.markdown() == same.sentence
    offset = stats.compare([0.2, 0.5, 0.9], [0.1, 0.4, 0.8], paired=True)  # 0.1 up to float rounding
    assert offset.sentence == "higher by 10.0 points in every seed (3 seeds, paired)"
    assert offset.resolved
    assert offset.markdown() == "**higher by 10.0 points in every seed** (3 seeds, paired)"
    constant = stats.compare([0.4, 0.4, 0.4], [0.5, 0.5, 0.5, 0.5, 0.5])
    assert constant.sentence == "lower by 10.0 points in every seed (3 and 5 seeds)"
    assert constant.difference.sign == -1
    assert stats.compare([0.1, 0.1, 0.1], [0.1, 0.1, 0.1], paired=True).sentence == (
        "identical in every seed (3 seeds, paired)")
    e = stats.estimate([0.1, 0.1, 0.1])
    assert e.std == 0 and e.low == e.high == e.mean
    assert e.ci_text(digits=1) == "0.1 in every seed (3 seeds)"


@pytest.mark.parametrize("unit", [None, ""])
def test_no_unit_prints_no_unit(unit):
    c = stats.compare([15.0, 15.1, 14.9], [0.0, 0.1, -0.1], scale=1, unit=unit)
    assert c.sentence == "higher by 15.0 (95 % CI 14.8 to 15.2, 3 seeds each)"
