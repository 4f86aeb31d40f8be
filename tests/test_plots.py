"""Heatmaps a person can read: proportional bounded sizes, numbers only where they fit, round-off as 0,
one colour scale for expected and yours, and an aligned grid of pictures in the HTML report."""

from __future__ import annotations

import itertools
from html.parser import HTMLParser

import numpy as np
import pytest

import checker as bc
from checker import plots, report
from tests.conftest import affine_forward

RNG = np.random.default_rng(0)


def panels(figure) -> list:
    """The heatmap axes of a figure, left to right (colour bars have no title)."""
    return [ax for ax in figure.axes if ax.get_title()]


def inches(figure, ax) -> tuple[float, float]:
    """(width, height) of an axes box, in inches."""
    box = ax.get_position()
    width, height = figure.get_size_inches()
    return box.width * width, box.height * height


def texts_of(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_a_column_and_a_row_are_drawn_as_each_others_transpose_at_a_bounded_size():
    column = plots.draw_gradient_figure(RNG.standard_normal((5, 1)), RNG.standard_normal((5, 1)))
    row = plots.draw_gradient_figure(RNG.standard_normal((1, 5)), RNG.standard_normal((1, 5)))
    for tall, wide in zip(panels(column), panels(row), strict=True):
        assert inches(column, tall) == pytest.approx(inches(row, wide)[::-1])
    assert inches(column, panels(column)[0])[1] == pytest.approx(5 * plots.CELL_MAX)
    # Was 604 px tall at (5, 1) against 115 at (1, 5); now both within a few hundred pixels.
    assert plots.css_size(plots.gradient_figure(np.ones((5, 1)), np.zeros((5, 1))))[1] <= 280
    assert plots.css_size(plots.gradient_figure(np.ones((1, 5)), np.zeros((1, 5))))[1] <= 140


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ((1, 1), (1, 1)),
        ((3, 4), (3, 4)),
        ((4,), (3, 4)),  # the unreduced broadcast: different shapes, the same cells
        ((3, 4), (4, 3)),
        ((6, 8), (6, 8)),
        ((2, 3, 4, 4), (2, 3, 4, 4)),
        ((30, 40), (30, 40)),
        ((64, 64), (64, 64)),
        ((1, 200), (1, 200)),
    ],
    ids=lambda shape: "x".join(map(str, shape)),
)
def test_every_panel_has_the_same_square_cells_within_the_bounds(expected, actual):
    figure = plots.draw_gradient_figure(RNG.standard_normal(expected), RNG.standard_normal(actual))
    cells = set()
    for ax in panels(figure):
        rows, cols = ax.images[0].get_array().shape
        width, height = inches(figure, ax)
        assert max(width, height) <= plots.PANEL_LONG_MAX + 1e-9
        assert min(width, height) >= plots.PANEL_SHORT_MIN - 1e-9
        cell_w, cell_h = width / cols, height / rows
        assert cell_w <= plots.CELL_MAX + 1e-9
        if min(rows, cols) * cell_w >= plots.PANEL_SHORT_MIN:  # not a strip widened to stay visible
            assert cell_w == pytest.approx(cell_h)
        cells.add(round(cell_w, 9))
    assert len(cells) == 1
    # Panels are top-aligned: their titles line up.
    assert len({round(ax.get_position().y1, 9) for ax in panels(figure)}) == 1


def _pixel_boxes(figure, ax) -> tuple[list, list]:
    """Window extents of the cell texts of ``ax``, and of the cells they belong to."""
    renderer = figure.canvas.get_renderer()
    texts, cells = [], []
    for text in ax.texts:
        column, row = text.get_position()
        corners = ax.transData.transform([(column - 0.5, row - 0.5), (column + 0.5, row + 0.5)])
        texts.append(text.get_window_extent(renderer))
        cells.append((corners.min(axis=0), corners.max(axis=0)))
    return texts, cells


@pytest.mark.parametrize(
    "shape", [(1, 1), (5, 1), (3, 4), (6, 8), (2, 3, 4, 4), (12, 12)], ids=lambda s: "x".join(map(str, s))
)
@pytest.mark.parametrize("scale", [1.0, 0.02, 3e-6, 4e4], ids=["unit", "small", "tiny", "large"])
def test_cell_values_stay_inside_their_cells_and_never_overlap(shape, scale):
    expected = RNG.standard_normal(shape) * scale
    expected.flat[::3] *= 0.05  # mixed magnitudes: the longest labels, "-0.0038" and the like
    figure = plots.draw_gradient_figure(expected, expected * 1.5)
    figure.canvas.draw()
    for ax in panels(figure):
        texts, cells = _pixel_boxes(figure, ax)
        for text, (low, high) in zip(texts, cells, strict=True):
            assert low[0] <= text.x0 and text.x1 <= high[0] and low[1] <= text.y0 and text.y1 <= high[1]
        for a, b in itertools.combinations(texts, 2):
            assert not a.overlaps(b)


def test_at_six_by_eight_every_value_is_written_once_and_readably():
    expected = RNG.standard_normal((6, 8)) * 0.02
    expected[1, 2], expected[2, 5] = -0.0038, 0.031
    figure = plots.draw_gradient_figure(expected, expected * 1.3)
    for ax in panels(figure):
        assert len(ax.texts) == 48
        assert min(t.get_fontsize() for t in ax.texts) >= 6.5
    assert "-0.004" in texts_of(panels(figure)[0]) and "0.031" in texts_of(panels(figure)[0])


@pytest.mark.parametrize("shape", [(30, 40), (64, 64), (1, 200)])
def test_values_are_left_out_when_they_do_not_fit(shape):
    figure = plots.draw_gradient_figure(RNG.standard_normal(shape), RNG.standard_normal(shape))
    assert all(not ax.texts for ax in panels(figure))
    assert all(ax.images for ax in panels(figure))  # the colours still say it


def test_round_off_is_drawn_and_written_as_zero():
    expected = RNG.standard_normal((3, 4))
    expected[1] = [5.6e-17, -1.1e-16, 2.2e-17, 0.0]  # torch's cancellation where the value is 0
    actual = expected.copy()
    actual[1] = 0.0
    actual[0, 0] += 1.0
    figure = plots.draw_gradient_figure(expected, actual)
    mine, _, difference = panels(figure)
    written = [texts_of(ax) for ax in panels(figure)]
    assert not any("e-1" in text for texts in written for text in texts)
    assert texts_of(mine)[4:8] == ["0"] * 4
    assert np.all(mine.images[0].get_array()[1] == 0)
    assert np.count_nonzero(difference.images[0].get_array()) == 1  # only the real mistake


def test_expected_and_yours_share_one_scale_and_the_difference_has_its_own():
    expected = RNG.standard_normal((3, 4))
    actual = expected * 2
    actual[0, 0] += 0.01
    mine, yours, difference = (ax.images[0] for ax in panels(plots.draw_gradient_figure(expected, actual)))
    peak = np.abs(actual).max()
    assert (mine.norm.vmin, mine.norm.vmax) == (yours.norm.vmin, yours.norm.vmax) == (-peak, peak)
    assert difference.norm.vmax == pytest.approx(np.abs(actual - expected).max())
    assert difference.norm.vmin == -difference.norm.vmax
    assert difference.cmap.name != mine.cmap.name  # other colours: nobody reads it on the first scale


def test_cell_labels_use_one_precision_per_panel():
    values = np.array([[0.0026, -0.0038, 0.031, 5.6e-17, -0.0002, np.nan]])
    assert plots.cell_labels(values, 0.031) == [["0.003", "-0.004", "0.031", "0", "0", "nan"]]
    assert plots.cell_labels(np.array([[1.7, -0.26, 0.04]]), 1.7) == [["1.7", "-0.3", "0"]]
    assert plots.cell_labels(np.array([[4700.0, -12.0]]), 4700.0) == [["4700", "-12"]]
    assert plots.cell_labels(np.array([[-4.7e-6, 2e-7, 0.0]]), 4.7e-6) == [["-4.7e-6", "2e-7", "0"]]


@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        (np.zeros((0, 3)), np.zeros((0, 3))),
        (np.full((2, 2), np.nan), np.ones((2, 2))),
        (np.array([[1.0, np.inf]]), np.ones((1, 2))),
        (np.zeros((2, 2)), np.zeros((2, 2))),
        (np.ones((2, 2, 2, 3, 3)), np.zeros((2, 2, 2, 3, 3))),
    ],
    ids=["empty", "nan", "inf", "zeros", "5-d"],
)
def test_degenerate_arrays_still_give_a_picture_without_warnings(expected, actual, recwarn):
    png = plots.gradient_figure(expected, actual)
    assert png.startswith(b"\x89PNG") and min(plots.css_size(png)) > 50
    assert not [w for w in recwarn if "matplotlib" in str(w.filename) or "plots" in str(w.filename)]


def test_the_png_is_drawn_at_twice_the_size_it_is_shown():
    png = plots.gradient_figure(np.ones((3, 4)), np.zeros((3, 4)))
    width, height = plots.png_size(png)
    assert plots.css_size(png) == (round(width / 2), round(height / 2))


# ---------------------------------------------------------------------------------------------
# In the HTML report


class Figures(HTMLParser):
    """The <figure> elements of a page: their class and their <img> attributes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.figures: list[dict[str, str]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self.figures.append({"class": attributes.get("class", "")})
        elif tag == "img" and self.figures:
            self.figures[-1].update(attributes)


def broken_affine_backward(dout, cache):
    x, w, _ = cache
    return dout @ w.T, (x.T @ dout).T, dout  # dw transposed, db not summed


@pytest.fixture(scope="module")
def page() -> str:
    target = bc.register(
        "plots_broken_affine",
        forward=affine_forward,
        backward=broken_affine_backward,
        inputs={"x": "N,D", "w": "D,M", "b": "M"},
        torch_forward=lambda x, w, b: x @ w + b,
    )
    # D == M: dw's transpose has dw's shape, so it gets a difference panel (a wide picture).
    return report.render_html(bc.check(target, dims={"N": 6, "D": 8, "M": 8}))


def test_each_picture_is_shown_at_its_size_and_wide_ones_take_a_row_of_their_own(page):
    import base64

    figures = Figures(page).figures
    assert {figure["class"] for figure in figures} == {"", "wide"}  # a step curve and wide heatmaps
    for figure in figures:
        png = base64.b64decode(figure["src"].split(",", 1)[1])
        width, height = plots.css_size(png)
        assert (figure["width"], figure["height"]) == (str(width), str(height))
        assert width <= 1000 and height <= 400  # within the report's 1240 px, never a tower
        assert ("wide" in figure["class"]) == (width > 560)


def test_the_pictures_sit_in_an_aligned_grid_not_a_wrapping_row(page):
    rule = page[page.index(".bc-report .figures{") :].split("}", 1)[0]
    assert "display:grid" in rule and "grid-template-columns" in rule and "align-items:start" in rule
    assert "flex-wrap" not in rule
