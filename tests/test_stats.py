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
    assert c.sentence == ("not resolved at 3 seeds: the difference lies between \N{MINUS SIGN}5.9 "
                          "and 6.6 points (95 % CI, mean 0.3)")  # Welch, df 3.45
    assert c.markdown() == c.sentence  # nothing in bold


def test_an_interval_end_near_zero_shows_its_side_of_zero():
    just_unresolved = stats.compare([0.00564, 0.00964, 0.01364], [0.0, 0.0, 0.0], paired=True)
    assert -0.0005 < just_unresolved.difference.low < 0 and not just_unresolved.resolved
    assert "between \N{MINUS SIGN}0.03 and 2.0 points (95 % CI, mean 1.0, paired)" in just_unresolved.sentence
    assert stats._bound(0.0, 1) == "0.0" and stats._bound(-0.0004, 1) == "\N{MINUS SIGN}0.0004"
    assert stats._bound(1.25, 1) == "1.2"


def test_compare_takes_units_and_direction_words():
    c = stats.compare([5.0, 5.2, 5.1], [8.0, 8.1, 7.9], scale=1, unit="s", lower="faster")
    assert c.sentence.startswith("faster by 2.9 s (95 % CI 2.")  # the interval of the speed-up
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
        "shorter by 0.3 s (95 % CI 0.1 to 0.5, 3 seeds each)")
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


def test_a_resolved_interval_reads_in_the_direction_of_the_sentence():
    fewer = stats.compare([2.0, 3.0, 2.0, 3.0, 3.0], [5.0, 5.0, 6.0, 5.0, 5.0], scale=1, unit="epochs",
                          higher="more", lower="fewer")
    d = fewer.difference
    assert d.high < 0  # the difference itself is negative ...
    near, far = stats.number(-d.high, 1), stats.number(-d.low, 1)
    assert fewer.sentence == f"fewer by 2.6 epochs (95 % CI {near} to {far}, 5 seeds each)"
    assert "\N{MINUS SIGN}" not in fewer.sentence  # ... and the sentence states its size


def test_a_family_of_comparisons_shares_its_confidence():
    a, b = [0.90, 0.92, 0.95, 0.91, 0.93], [0.80, 0.82, 0.81, 0.79, 0.83]
    alone = stats.compare(a, b)
    in_family = stats.compare(a, b, family=5)
    bonferroni = stats.difference(a, b, confidence=1 - 0.05 / 5)
    assert (in_family.difference.low, in_family.difference.high) == (bonferroni.low, bonferroni.high)
    assert in_family.difference.high - in_family.difference.low > alone.difference.high - alone.difference.low
    assert "(99 % CI " in in_family.sentence and in_family.sentence.endswith("one of 5 comparisons)")
    assert "98.3 % CI" in stats.compare(a, b, family=3).sentence
    unresolved = stats.compare([0.90, 0.86, 0.92], [0.89, 0.91, 0.87], family=4)
    assert unresolved.sentence.endswith("(98.8 % CI, mean 0.3, one of 4 comparisons)")
    for family in (0, 2.5, "3"):
        with pytest.raises(ValueError, match="family"):
            stats.compare(a, b, family=family)


def test_the_ledger_status_follows_the_interval_and_the_predicted_direction():
    higher, lower = stats.compare(A, B), stats.compare(B, A)
    unresolved = stats.compare([0.90, 0.86, 0.92], [0.89, 0.91, 0.87])
    assert stats.status(higher) == stats.status(lower, expected=-1) == "reproduced"
    assert stats.status(lower) == stats.status(higher.difference, expected=-1) == "not reproduced"
    assert stats.status(unresolved) == stats.status(unresolved, expected=-1) == "not resolved at 3 seeds"
    assert stats.status(stats.compare(A, [0.1, 0.2, 0.3])) == "reproduced"
    uneven = stats.compare([0.1, 0.2, 0.3, 0.2], [0.1, 0.2, 0.3])
    assert stats.status(uneven) == "not resolved at 4 and 3 seeds"
    assert stats.status(True) == "reproduced" and stats.status(np.bool_(False)) == "not reproduced"
    assert stats.status(stats.compare([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])) == "not resolved at 3 seeds"
    # a claim of no difference: refuted by a resolved difference either way, never confirmed
    assert stats.status(higher, expected=0) == stats.status(lower, expected=0) == "not reproduced"
    assert stats.status(unresolved, expected=0) == "not resolved at 3 seeds"
    with pytest.raises(ValueError, match="expected"):
        stats.status(higher, expected=2)
    with pytest.raises(TypeError, match="Comparison"):
        stats.status(0.3)


def test_seeds_needed_brings_the_half_width_below_the_effect():
    rng = np.random.default_rng(0)
    a, b = 0.80 + 0.02 * rng.standard_normal(5), 0.82 + 0.03 * rng.standard_normal(5)
    n = stats.seeds_needed(a, b, effect=0.02)
    sa, sb = np.std(a, ddof=1), np.std(b, ddof=1)

    def half_width(n):  # Welch's interval with n runs per arm and the pilot's spreads
        va, vb = sa**2 / n, sb**2 / n
        df = (va + vb) ** 2 / ((va**2 + vb**2) / (n - 1))
        return scipy_stats.t.ppf(0.975, df) * np.sqrt(va + vb)

    assert half_width(n) < 0.02 <= half_width(n - 1)
    d = a - b
    paired = stats.seeds_needed(a, b, effect=0.02, paired=True)
    sd = np.std(d, ddof=1)
    t = scipy_stats.t.ppf(0.975, [paired - 1, paired - 2])
    assert t[0] * sd / np.sqrt(paired) < 0.02 <= t[1] * sd / np.sqrt(paired - 1)
    one = stats.seeds_needed(a, effect=0.01)
    assert scipy_stats.t.ppf(0.975, one - 1) * sa / np.sqrt(one) < 0.01
    assert stats.seeds_needed([0.5, 0.5, 0.5], effect=0.01) == 2  # no spread: the fewest there are
    assert stats.seeds_needed(a, b, effect=1e-9, most=50) == 51
    for effect in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="effect"):
            stats.seeds_needed(a, b, effect=effect)


def test_plan_seeds_keeps_the_asked_seeds_within_the_budget_and_says_so():
    rng = np.random.default_rng(1)
    a, b = 0.80 + 0.02 * rng.standard_normal(3), 0.82 + 0.03 * rng.standard_normal(3)
    asked = stats.seeds_needed(a, b, effect=0.03)
    plan = stats.plan_seeds(a, b, effect=0.03, least=2, most=100)
    assert (plan.needed, plan.seeds) == (asked, asked)
    assert stats.plan_seeds(a, b, effect=1.0, least=5, most=20).seeds == 5  # at least the usual
    capped = stats.plan_seeds(a, b, effect=1e-4, least=5, most=20)
    assert (capped.needed, capped.seeds) == (21, 20)
    result = stats.compare(a, b)
    half = 100 * (result.difference.high - result.difference.low) / 2
    assert capped.text(result) == (
        "the spread of the pilot runs asks for more than 20 seeds to resolve 0.01 points; the test "
        f"runs 20, the most this page affords, and its interval is ±{half:.1f} points")
    assert plan.text(result, runs="both arms run").startswith(
        f"the spread of the pilot runs asks for {asked} seeds to resolve 3 points; both arms run "
        f"{asked}, and")
    for least, most in ((1, 5), (6, 5), (2.5, 5)):
        with pytest.raises(ValueError, match="least"):
            stats.plan_seeds(a, b, effect=0.03, least=least, most=most)
