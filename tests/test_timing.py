import time

import pytest

from normlab import stats, timing


def test_alternate_keeps_every_round_per_call():
    calls = []
    times = timing.alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             rounds=3, number=2)
    assert calls == ["a", "a", "b", "b"] * 3  # in turns, round by round
    assert set(times) == {"a", "b"} and all(len(t) == 3 for t in times.values())


def test_a_slower_contender_is_resolved_by_stats():
    times = timing.alternate({"slow": lambda: time.sleep(0.004), "fast": lambda: None}, rounds=5)
    assert stats.compare(times["slow"], times["fast"], scale=1e3, unit="ms").resolved


def test_rounds_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        timing.alternate({"a": lambda: None}, rounds=0)
