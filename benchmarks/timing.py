"""What the benchmark scripts share: time contenders in turns, report medians and their ratio."""

import statistics
import time


def alternate(contenders, rounds):
    """Median wall time of each callable, run once per round in turns, so drifts of the machine
    (other load, clock changes) hit every contender alike."""
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, run in contenders.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def report(header, medians, unit, ratio, scale=1.0):
    """Print each median (times ``scale``, in ``unit``) and ``ratio = (name, baseline, label)``."""
    print(header)
    for name, median in medians.items():
        print(f"  {name:34s} {scale * median:7.2f} {unit}")
    name, baseline, label = ratio
    print(f"ratio {label}: {medians[name] / medians[baseline]:.2f}x")
