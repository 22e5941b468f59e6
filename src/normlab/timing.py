"""Timing two ways of doing the same thing, fairly: in turns, in one process, repeated.

Used by the benchmark scripts in ``benchmarks/``, and by any chapter that times something. A
machine's speed drifts (other load, clock changes), so contenders run in turns, once per round,
and every round's time is kept: :func:`normlab.stats.compare` then says whether the difference
is larger than the round-to-round noise.
"""

from __future__ import annotations

import time

import numpy as np


def alternate(contenders: dict, rounds: int, number: int = 1) -> dict[str, np.ndarray]:
    """Seconds per call of each callable in ``contenders``, one value per round.

    Each round calls every contender ``number`` times in a row, in turns, so that drifts of the
    machine hit every contender alike. Call each once before timing it, to leave out tracing.
    """
    if rounds < 1 or number < 1:
        raise ValueError(f"rounds and number must be at least 1, got {rounds} and {number}")
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            for _ in range(number):
                run()
            times[name].append((time.perf_counter() - start) / number)
    return {name: np.array(values) for name, values in times.items()}
