import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest

from normlab import plots


def test_style_gives_white_backgrounds():
    plots.use_style()
    fig = plt.figure()
    assert matplotlib.colors.to_hex(fig.get_facecolor()) == "#ffffff"
    assert matplotlib.rcParams["savefig.facecolor"] == "white"
    plt.close(fig)


def test_band_checks_shapes_and_draws():
    fig, ax = plt.subplots()
    line = plots.band(ax, [0, 1, 2], [[1, 2, 3], [2, 3, 4]], label="a")
    np.testing.assert_allclose(line.get_ydata(), [1.5, 2.5, 3.5])
    with pytest.raises(ValueError, match="shape"):
        plots.band(ax, [0, 1], [[1, 2, 3]])
    with pytest.raises(ValueError, match="one list of runs per label"):
        plots.bars(ax, ["a", "b"], [[1, 2]])
    plt.close(fig)


def test_a_log_band_is_the_geometric_mean_times_or_over_the_geometric_std():
    fig, ax = plt.subplots()
    line = plots.band(ax, [0, 1], [[1, 100], [100, 10_000]], log=True)
    np.testing.assert_allclose(line.get_ydata(), [10, 1000])  # geometric means
    (band,) = ax.collections
    lows_and_highs = band.get_paths()[0].vertices[:, 1]
    spread = np.exp(np.std(np.log([1, 100]), ddof=1))  # the geometric (sample) std of a column
    np.testing.assert_allclose([lows_and_highs.min(), lows_and_highs.max()],
                               [10 / spread, 1000 * spread], rtol=1e-9)
    plt.close(fig)
