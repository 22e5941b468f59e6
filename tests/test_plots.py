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


def test_bars_are_horizontal_with_the_first_label_on_top():
    fig, ax = plt.subplots()
    plots.bars(ax, ["first", "second"], [[1.0, 3.0], [5.0, 7.0]], xlabel="value")
    widths = [bar.get_width() for bar in ax.patches]
    assert widths == [2.0, 6.0] and ax.yaxis_inverted()
    assert [t.get_text() for t in ax.get_yticklabels()] == ["first", "second"]
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


def shown(monkeypatch, fig, check=True):
    """What plots.show hands to IPython's display: (data, metadata), as a chapter executed for the
    website (``check``) or a reader's run shows it."""
    import IPython.display

    monkeypatch.setenv(plots.CHECK_VARIABLE, "1" if check else "")
    calls = []
    monkeypatch.setattr(IPython.display, "display",
                        lambda data, raw, metadata: calls.append((data, metadata)))
    plots.show(fig)
    assert plt.fignum_exists(fig.number) is False, "show closes the figure"
    (call,) = calls
    return call


def png(data):
    import base64
    import io

    from PIL import Image

    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_show_gives_a_desktop_drawing_and_a_phone_drawing_with_the_panels_stacked(monkeypatch):
    plots.use_style()
    fig, axes = plt.subplots(1, 3, figsize=(plots.COLUMN_WIDTH, 2.5))
    for ax in axes:
        ax.plot([0, 1], [0, 1])
    data, metadata = shown(monkeypatch, fig)
    desktop, phone = png(data["image/png"]), png(metadata["normlab"]["phone"]["image/png"])
    assert desktop.size == (2 * 700, 2 * 250) and metadata["image/png"] == {"width": 700, "height": 250}
    assert phone.width == 2 * 100 * plots.PHONE_WIDTH and phone.height > 2 * desktop.height
    assert metadata["normlab"]["phone"]["stacked"]
    assert data["text/plain"] == "<Figure size 700x250 with 3 Axes>"
    # each drawing records its smallest text: 10 pt tick labels at 100 dpi
    assert float(desktop.text["normlab:smallest-text-px"]) == pytest.approx(10 * 100 / 72, abs=0.01)


def test_stacking_for_a_phone_keeps_small_panels_side_by_side():
    fig, axes = plt.subplots(2, 4, figsize=(plots.COLUMN_WIDTH, 3.5))
    assert plots.stack_for_phone(fig) is True
    rows_and_columns = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start)
                        for ax in axes.flat}
    assert len(rows_and_columns) == 8 and max(column for _, column in rows_and_columns) == 1  # 2 a row
    assert [ax.get_subplotspec().rowspan.start for ax in axes[0]] == [0, 0, 1, 1]  # reading order
    plt.close(fig)
    fig = plt.figure()
    fig.add_subplot()
    assert plots.stack_for_phone(fig) is False  # one panel: nothing moves
    plt.close(fig)


def test_show_refuses_colliding_labels(monkeypatch):
    fig, ax = plt.subplots()
    ax.set_xticks([0.5, 0.51], ["a long label", "another long label"])
    with pytest.raises(plots.FigureError, match="'a long label' overlaps 'another long label'"):
        shown(monkeypatch, fig)


def legend_over_a_line():
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1], label="diagonal")
    ax.legend(loc="center")
    return fig


def test_show_refuses_a_legend_over_a_line(monkeypatch):
    with pytest.raises(plots.FigureError, match="the legend of panel 1 covers 'diagonal'"):
        shown(monkeypatch, legend_over_a_line())


def test_a_readers_run_shows_the_figure_unchecked_without_a_phone_drawing(monkeypatch):
    """On Colab, with other data, a legend may land on a curve: the chapter must go on."""
    data, metadata = shown(monkeypatch, legend_over_a_line(), check=False)
    assert png(data["image/png"]).width == 2 * metadata["image/png"]["width"] and "normlab" not in metadata
    assert "normlab:smallest-text-px" not in png(data["image/png"]).text  # nothing measured


def test_show_refuses_text_too_small_for_a_desktop(monkeypatch):
    fig, ax = plt.subplots()
    ax.set_title("tiny", fontsize=7)  # 9.7 px: legible on neither screen
    with pytest.raises(plots.FigureError, match=r"'tiny', is 9\.7 px on a desktop"):
        shown(monkeypatch, fig)


def test_an_exponent_counts_at_its_own_smaller_size():
    fig, ax = plt.subplots()
    ax.set_xlabel("$L_k$", fontsize=12)
    sizes = {text.get_text(): size for text, size in plots.drawn_texts(fig)}
    assert sizes["$L_k$"] == pytest.approx(12 * 100 / 72 * plots.SCRIPT_SHRINK)
    plt.close(fig)


def test_log_axes_are_labelled_in_plain_numbers_at_the_decades():
    fig, ax = plt.subplots()
    ax.loglog([1e-6, 1e-2, 10, 1e5], [1, 2, 3, 4])
    plots.plain_log_labels(fig)
    label = ax.xaxis.get_major_formatter()
    assert [label(v) for v in (1e-6, 1e-3, 0.01, 1, 2, 1e4, 1e5)] == ["1e-6", "0.001", "0.01", "1", "",
                                                                         "10000", "1e5"]
    plt.close(fig)


def test_a_legend_below_the_panels_gets_fewer_columns_on_a_phone():
    fig, axes = plt.subplots(1, 2, figsize=(plots.COLUMN_WIDTH, 3))
    for i in range(4):
        axes[0].plot([0, 1], [i, i], label=f"a rather long legend entry {i}")
    plots.legend_below(fig, ncols=4)
    plots.stack_for_phone(fig)
    (legend,) = fig.legends
    assert legend.get_window_extent(fig.canvas.get_renderer()).width <= 100 * plots.PHONE_WIDTH
    plt.close(fig)
