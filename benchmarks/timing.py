"""What the benchmark scripts share: time contenders in turns (:func:`normlab.timing.alternate`),
report medians and their ratio."""

import statistics

from normlab.timing import alternate as _alternate


def alternate(contenders, rounds):
    """Median wall time of each callable, run once per round in turns."""
    return {name: statistics.median(t) for name, t in _alternate(contenders, rounds).items()}


def report(header, medians, unit, *ratios, scale=1.0):
    """Print each median (times ``scale``, in ``unit``) and each ratio ``(name, baseline, label)``."""
    print(header)
    for name, median in medians.items():
        print(f"  {name:34s} {scale * median:7.2f} {unit}")
    for name, baseline, label in ratios:
        print(f"ratio {label}: {medians[name] / medians[baseline]:.2f}x")
