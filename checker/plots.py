"""Pictures for reports: gradient heatmaps and the finite-difference error against step size, as PNG bytes.

Drawing uses matplotlib's object-oriented API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``),
never pyplot: no global backend is chosen or switched, so a notebook's own plots are untouched and
no display is needed. matplotlib is imported only when a picture is drawn. The curve's data comes
from :func:`checker.oracles.finite_diff.step_curve` (plain numpy, computed by the runner on failures).
"""

from __future__ import annotations

import base64
import io
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PanelBox",
    "as_matrix",
    "cell_labels",
    "common_cell",
    "css_size",
    "draw_gradient_figure",
    "gradient_figure",
    "panel_layout",
    "panel_size",
    "png_data_uri",
    "png_size",
    "step_curve_figure",
    "without_round_off",
]

#: Diverging, centred at zero: blue negative, white zero, red positive (expected and yours, one scale).
CMAP = "RdBu_r"
#: The difference has its own scale, so it gets its own colours (purple negative, orange positive):
#: nobody reads a difference of 0.01 as a gradient of 0.01.
DIFF_CMAP = "PuOr_r"
#: Pixels per inch of the PNG; the report shows it at half size, so text is sharp on HiDPI screens.
_DPI = 192
#: The inch of the figure as laid out; the report's CSS pixels per figure inch.
CSS_DPI = 96
#: A cell is square, at most this size (in); the long side of a panel at most PANEL_LONG_MAX (in), so
#: an array's cells shrink as it grows; a panel's short side at least PANEL_SHORT_MIN (a 1 x 200 strip
#: stays visible, its cells then no longer square).
CELL_MAX = 0.4
PANEL_LONG_MAX = 2.8
PANEL_SHORT_MIN = 0.22
#: Entries within this fraction of the gradient's largest entry are round-off: drawn and written as 0
#: (a 5.6e-17 where the right value is 0; float64 sums of a few terms are off by ~1e-16 relative).
ROUND_OFF = 1e-9
#: Cell values are written at the largest of these font sizes (pt) at which every label of the panel
#: fits inside its cell; when none fits, the panel shows colours only.
_FONT_SIZES = (8.0, 7.5, 7.0, 6.5)
# Margins (in): row tick labels at the left of each panel, two title lines above, tick labels or the
# tile note below, and a colour bar with its labels to the right of "yours" and of the difference.
_LEFT, _TOP, _BOTTOM, _GAP = 0.26, 0.46, 0.26, 0.22
_SUPTITLE = 0.28
_BAR_GAP, _BAR_WIDTH, _BAR_LABELS, _BAR_MIN_HEIGHT = 0.08, 0.11, 0.38, 0.6
_TITLE_SIZE = 8.5


def as_matrix(a: np.ndarray) -> tuple[np.ndarray, tuple[int, int] | None]:
    """A 2-D view of ``a`` for a heatmap, and the (rows, cols) of one tile when ``a`` was tiled.

    ``()`` -> (1, 1); ``(n,)`` -> one row (1, n); ``(R, C)`` as is; ``(A, H, W)`` -> A tiles of
    (H, W) stacked vertically, (A*H, W); ``(A, B, H, W)`` (a conv batch) -> an A x B grid of (H, W)
    images, (A*H, B*W); more axes are merged into the first. Tiles keep each image whole, so a
    transposed or flipped kernel still looks transposed or flipped. A single tile is returned
    as a plain matrix (tile None).
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim <= 1:
        return a.reshape(1, -1) if a.size else np.zeros((1, 0)), None
    if a.ndim == 2:
        return a, None
    if a.ndim == 3:
        a = a[:, None]
    a = a.reshape(-1, *a.shape[-3:])
    down, across, rows, cols = a.shape
    tile = (rows, cols) if down * across > 1 else None
    return a.transpose(0, 2, 1, 3).reshape(down * rows, across * cols), tile


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` (a report that opens offline)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG header."""
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


def css_size(png: bytes) -> tuple[int, int]:
    """(width, height) at which a PNG drawn here is shown in HTML: its size in inches x :data:`CSS_DPI`."""
    width, height = png_size(png)
    return round(width * CSS_DPI / _DPI), round(height * CSS_DPI / _DPI)


def _new_figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # No "Software" stamp: the same arrays give the same bytes (reproducible reports).
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _finite_max(*arrays: np.ndarray) -> float:
    peaks = [float(np.max(np.abs(a[np.isfinite(a)]))) for a in arrays if np.isfinite(a).any()]
    return max(peaks, default=0.0)


def without_round_off(matrix: np.ndarray, scale: float) -> np.ndarray:
    """``matrix`` with entries within :data:`ROUND_OFF` x ``scale`` of zero set to exactly 0."""
    return np.where(np.abs(matrix) <= ROUND_OFF * scale, 0.0, matrix)


def cell_labels(matrix: np.ndarray, peak: float) -> list[list[str]]:
    """The text of each cell, at one precision per panel, read like a table column.

    The decimals follow the panel's largest entry ``peak`` (two significant digits of it: 0.057
    -> 0.057, -0.003, 0.013); a value that rounds to zero at that precision is written ``0``, so
    round-off never shows as 5.6e-17. Outside 1e-3 <= peak < 1e4 each value gets two significant
    digits with a short exponent (``-4.7e-6``). Non-finite values are written as such.
    """
    fixed = 1e-3 <= peak < 1e4
    decimals = int(np.clip(1 - np.floor(np.log10(peak)), 0, 4)) if fixed else 0

    def label(value: float) -> str:
        if not np.isfinite(value):
            return str(value)
        if fixed:
            text = f"{value:.{decimals}f}"
            return "0" if float(text) == 0 else text
        if value == 0:
            return "0"
        mantissa, _, exponent = f"{value:.2g}".partition("e")
        return f"{mantissa}e{int(exponent)}" if exponent else mantissa

    return [[label(v) for v in row] for row in matrix]


def _tick_label(value: float) -> str:
    return cell_labels(np.array([[value]]), abs(value) or 1.0)[0][0]


@dataclass(frozen=True)
class PanelBox:
    """Where one heatmap panel sits in its figure, in inches from the figure's top-left corner."""

    left: float
    top: float
    width: float
    height: float
    rows: int
    cols: int

    @property
    def cell(self) -> tuple[float, float]:
        """(width, height) of one cell, in inches."""
        return self.width / max(self.cols, 1), self.height / max(self.rows, 1)


def panel_size(shape: tuple[int, int], cell: float) -> tuple[float, float]:
    """(width, height) in inches of a panel of ``shape`` = (rows, cols) with square cells of ``cell``
    inches (see :func:`common_cell`), its short side at least PANEL_SHORT_MIN."""
    rows, cols = max(shape[0], 1), max(shape[1], 1)
    width, height = cols * cell, rows * cell
    return max(width, PANEL_SHORT_MIN), max(height, PANEL_SHORT_MIN)


def common_cell(shapes: Sequence[tuple[int, int]]) -> float:
    """One cell size (in) for every panel of a figure: the largest that keeps each long side within bounds."""
    longest = max((max(s) for s in shapes), default=1)
    return min(CELL_MAX, PANEL_LONG_MAX / max(longest, 1))


def _title_width(title: str) -> float:
    # DejaVu Sans averages about 0.6 em per character.
    return max(len(line) for line in title.split("\n")) * 0.6 * _TITLE_SIZE / 72


def _annotate(ax: Any, matrix: np.ndarray, box: PanelBox, image: Any, renderer: Any) -> None:
    """Write each cell's value in it, at the largest font size at which every label fits its cell."""
    from matplotlib.font_manager import FontProperties

    if min(box.cell) * 72 < 1.5 * min(_FONT_SIZES):  # no room for even one digit: skip the labels
        return
    labels = cell_labels(matrix, image.norm.vmax)
    unique = {text for row in labels for text in row}
    longest = max(map(len, unique), default=0)
    widest = [text for text in unique if len(text) >= longest - 1]
    cell_w, cell_h = (side * _DPI for side in box.cell)
    for size in _FONT_SIZES:
        font = FontProperties(size=size)
        extents = [renderer.get_text_width_height_descent(t, font, ismath=False) for t in widest]
        if all(w <= 0.86 * cell_w and h <= 0.7 * cell_h for w, h, _ in extents):
            break
    else:
        return
    colours = image.cmap(image.norm(matrix))
    for (r, c), text in np.ndenumerate(np.array(labels, dtype=object)):
        red, green, blue, _ = colours[r, c] if np.isfinite(matrix[r, c]) else (0.62, 0.62, 0.62, 1)
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        ax.text(c, r, text, ha="center", va="center", fontsize=size, color="white" if dark else "black")


def _panel(
    ax: Any,
    matrix: np.ndarray,
    tile: tuple[int, int] | None,
    vmax: float,
    cmap_name: str,
    title: str,
    box: PanelBox,
    renderer: Any,
) -> Any:
    import numpy.ma as ma
    from matplotlib import colormaps

    cmap = colormaps[cmap_name].with_extremes(bad="#9e9e9e")
    rows, cols = matrix.shape
    cell_px = min(box.cell) * _DPI
    image = ax.imshow(
        ma.masked_invalid(matrix),
        cmap=cmap,
        vmin=-vmax,
        vmax=vmax,
        interpolation="nearest" if cell_px >= 3 else "antialiased",
        aspect="auto",  # the axes box is already the panel's size
    )
    ax.set_title(title, fontsize=_TITLE_SIZE, linespacing=1.15, pad=6)
    # Tick labels would number rows of the mosaic, not of any one tile: leave them out when tiled.
    ax.set_xticks(range(cols) if cols <= 12 and tile is None and box.cell[0] * 72 >= 9 else [])
    ax.set_yticks(range(rows) if rows <= 12 and tile is None and box.cell[1] * 72 >= 9 else [])
    ax.tick_params(labelsize=6.5, length=0, pad=2)
    if tile is not None:
        ax.set_xlabel(
            f"{rows // tile[0]} × {cols // tile[1]} tiles of {tile[0]} × {tile[1]}", fontsize=6.5, labelpad=2
        )
        for r in range(tile[0], rows, tile[0]):
            ax.axhline(r - 0.5, color="black", linewidth=1.0)
        for c in range(tile[1], cols, tile[1]):
            ax.axvline(c - 0.5, color="black", linewidth=1.0)
    for spine in ax.spines.values():
        spine.set_linewidth(0.6)
    _annotate(ax, matrix, box, image, renderer)
    return image


def _colorbar(figure: Any, image: Any, box: PanelBox, size: tuple[float, float], vmax: float) -> None:
    width, height = size
    bar_height = max(box.height, _BAR_MIN_HEIGHT)
    left = box.left + box.width + _BAR_GAP
    axes = figure.add_axes(
        [left / width, 1 - (box.top + bar_height) / height, _BAR_WIDTH / width, bar_height / height]
    )
    bar = figure.colorbar(image, cax=axes, ticks=[-vmax, 0.0, vmax])
    bar.ax.set_yticklabels([_tick_label(-vmax), "0", _tick_label(vmax)])
    bar.ax.tick_params(labelsize=6.5, length=2, pad=1.5)
    bar.outline.set_linewidth(0.5)


def panel_layout(
    panels: Sequence[tuple[tuple[int, int], str, bool]], title: str = ""
) -> tuple[list[PanelBox], tuple[float, float]]:
    """Boxes of the panels and the figure's (width, height) in inches.

    ``panels``: ((rows, cols), title, followed by a colour bar) each, left to right. Every panel has
    the same cell size, panels are top-aligned under titles of two lines, and each one's slot is
    wide enough for its title, so nothing overlaps whatever the shapes.
    """
    cell = common_cell([shape for shape, _, _ in panels])
    top = _TOP + (_SUPTITLE if title else 0.0)
    boxes: list[PanelBox] = []
    x = _LEFT
    tallest = 0.0
    for shape, panel_title, bar in panels:
        width, height = panel_size(shape, cell)
        slot = max(width, _title_width(panel_title))
        boxes.append(PanelBox(x + (slot - width) / 2, top, width, height, max(shape[0], 1), max(shape[1], 1)))
        x += slot
        tallest = max(tallest, height, _BAR_MIN_HEIGHT if bar else 0.0)
        if bar:
            x = max(x, boxes[-1].left + width + _BAR_GAP + _BAR_WIDTH + _BAR_LABELS)
        x += _GAP
    return boxes, (x - _GAP + 0.12, top + tallest + _BOTTOM)


def draw_gradient_figure(
    expected: np.ndarray, actual: np.ndarray, *, label: str = "gradient", title: str = ""
) -> Any:
    """The matplotlib Figure behind :func:`gradient_figure` (for inspection; see there)."""
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    scale = _finite_max(e, a)
    (em, etile), (am, atile) = as_matrix(e), as_matrix(a)
    # An empty array is one grey cell ("no values"); its title gives its shape.
    em, am = (m if m.size else np.full((1, 1), np.nan) for m in (em, am))
    em, am = without_round_off(em, scale), without_round_off(am, scale)
    same = e.shape == a.shape
    panels = [
        (em.shape, f"expected {label}\n{e.shape}", False),
        (am.shape, f"your {label}\n{a.shape}", True),
    ]
    if same:
        diff = without_round_off(am - em, scale)
        spread = _finite_max(diff)
        panels.append((diff.shape, "yours − expected\nits own scale", True))
    boxes, size = panel_layout(panels, title)
    figure = _new_figure(*size, layout=None)
    renderer = figure.canvas.get_renderer()
    width, height = size

    def axes_for(box: PanelBox) -> Any:
        return figure.add_axes(
            [box.left / width, 1 - (box.top + box.height) / height, box.width / width, box.height / height]
        )

    shared = scale or 1.0
    first = _panel(axes_for(boxes[0]), em, etile, shared, CMAP, panels[0][1], boxes[0], renderer)
    _panel(axes_for(boxes[1]), am, atile, shared, CMAP, panels[1][1], boxes[1], renderer)
    _colorbar(figure, first, boxes[1], size, shared)
    if same:
        spread = spread or shared
        image = _panel(axes_for(boxes[2]), diff, etile, spread, DIFF_CMAP, panels[2][1], boxes[2], renderer)
        _colorbar(figure, image, boxes[2], size, spread)
    if title:
        figure.suptitle(title, fontsize=10, y=1 - 0.06 / height, va="top")
    return figure


def gradient_figure(
    expected: np.ndarray, actual: np.ndarray, *, label: str = "gradient", title: str = ""
) -> bytes:
    """Heatmaps of the expected gradient, the user's and (same shape) their difference, as PNG bytes.

    ``expected``, ``actual``: any shapes (see :func:`as_matrix` for >2-D). Expected and yours share
    one colour scale, symmetric about 0; the difference has its own (and its own colours), so a
    small error is still visible. Every panel of a figure has the same square cells, sized from the
    largest array and bounded (see :func:`panel_layout`), so a (5, 1) and a (1, 5) are drawn as each
    other's transpose. Entries at round-off level are 0; each cell shows its value when the text
    fits in it. When the shapes differ, both are drawn with their shapes and no difference.
    Non-finite entries are grey. ``label`` names the array in the panel titles (``"dw"``).
    """
    return _png(draw_gradient_figure(expected, actual, label=label, title=title))


def step_curve_figure(
    steps: np.ndarray, errors: np.ndarray, *, name: str = "", tolerance: float | None = None, title: str = ""
) -> bytes:
    """Log-log |finite difference(h) - <g, v>| against the step h, its minimum marked, as PNG bytes.

    ``steps``, ``errors``: ``(K,)`` from :func:`checker.oracles.finite_diff.step_curve`. Zero errors are drawn at 1e-17.
    """
    h = np.asarray(steps, dtype=np.float64)
    err = np.clip(np.asarray(errors, dtype=np.float64), 1e-17, None)
    figure = _new_figure(4.2, 2.9)
    ax = figure.add_subplot()
    ax.loglog(h, err, "o-", color="#b2182b", markersize=3.5, linewidth=1.4, label=f"|fd(h) − <d{name}, v>|")
    best = int(np.argmin(err))
    ax.plot([h[best]], [err[best]], "o", markersize=7, markerfacecolor="none", color="#333")
    ax.text(
        0.02,
        0.03,
        f"smallest error {err[best]:.1e} (h = {h[best]:.0e})",
        transform=ax.transAxes,
        fontsize=7,
        color="#333",
    )
    if tolerance is not None:
        ax.axhline(tolerance, color="#1b7837", linewidth=1, label="tolerance")
    ax.set_xlabel("step h", fontsize=8)
    ax.set_ylabel("error of the directional derivative", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_ylim(max(float(err.min()) / 30, 1e-17), float(err.max()) * 10)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    ax.legend(fontsize=7, loc="upper center")
    ax.set_title(title or f"finite differences against your d{name}", fontsize=9)
    return _png(figure)
