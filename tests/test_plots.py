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
