"""What the benchmark scripts share: time contenders in turns (:func:`normlab.timing.alternate`),
report the median and the fastest round of each and their ratios."""

import statistics

from normlab.timing import alternate


def report(header, times, unit, *ratios, scale=1.0):
    """Print each contender's median and fastest round (times ``scale``, in ``unit``) and each
    ratio ``(name, baseline, label)`` of both. Something else running on the machine can only
    slow a round down, so the fastest rounds are the steadier comparison on a shared machine."""
    print(header)
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, t in times.items():
        print(f"  {name:34s} {scale * medians[name]:7.2f} {unit}  (fastest {scale * min(t):.2f})")
    for name, baseline, label in ratios:
        print(f"ratio {label}: {medians[name] / medians[baseline]:.2f}x "
              f"(fastest rounds: {min(times[name]) / min(times[baseline]):.2f}x)")


__all__ = ["alternate", "report"]
