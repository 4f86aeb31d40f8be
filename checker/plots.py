"""Pictures for reports: gradient heatmaps and the finite-difference error against step size, as PNG bytes.

Drawing uses matplotlib's object-oriented API on an Agg canvas (``Figure`` + ``FigureCanvasAgg``),
never pyplot: no global backend is chosen or switched, so a notebook's own plots are untouched and
no display is needed. matplotlib is imported only when a picture is drawn. The curve's data comes
from :func:`checker.oracles.finite_diff.step_curve` (plain numpy, computed by the runner on failures).
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "as_matrix",
    "gradient_figure",
    "png_data_uri",
    "step_curve_figure",
]

#: Diverging, centred at zero: blue negative, white zero, red positive.
CMAP = "RdBu_r"
_DPI = 96
#: Write the value into each cell when a panel has at most this many rows and columns.
_ANNOTATE_LIMIT = 8


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


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    # No "Software" stamp: the same arrays give the same bytes (reproducible reports).
    figure.savefig(buffer, format="png", dpi=_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _finite_max(*arrays: np.ndarray) -> float:
    peaks = [float(np.max(np.abs(a[np.isfinite(a)]))) for a in arrays if np.isfinite(a).any()]
    peak = max(peaks, default=0.0)
    return peak if peak > 0 else 1.0


def _panel(ax: Any, matrix: np.ndarray, tile: tuple[int, int] | None, vmax: float, title: str) -> Any:
    import numpy.ma as ma
    from matplotlib import colormaps

    cmap = colormaps[CMAP].with_extremes(bad="#9e9e9e")
    rows, cols = matrix.shape
    # Square cells, unless that would make a long vector a hairline.
    aspect = "equal" if max(rows, cols) <= 25 * max(min(rows, cols), 1) else "auto"
    image = ax.imshow(
        ma.masked_invalid(matrix), cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest", aspect=aspect
    )
    if aspect == "auto":  # keep the panel's outline close to the array's proportions
        ax.set_box_aspect(float(np.clip(rows / max(cols, 1), 0.1, 10.0)))
    ax.set_title(title, fontsize=9)
    # Tick labels would number rows of the mosaic, not of any one tile: leave them out when tiled.
    ax.set_xticks(range(cols) if cols <= 12 and tile is None else [])
    ax.set_yticks(range(rows) if rows <= 12 and tile is None else [])
    ax.tick_params(labelsize=7, length=0)
    if tile is not None:
        ax.set_xlabel(f"{rows // tile[0]} × {cols // tile[1]} tiles of {tile[0]} × {tile[1]}", fontsize=7)
        for r in range(tile[0], rows, tile[0]):
            ax.axhline(r - 0.5, color="black", linewidth=1.2)
        for c in range(tile[1], cols, tile[1]):
            ax.axvline(c - 0.5, color="black", linewidth=1.2)
    if rows <= _ANNOTATE_LIMIT and cols <= _ANNOTATE_LIMIT:
        for (r, c), value in np.ndenumerate(matrix):
            text = f"{value + 0.0:.2g}" if np.isfinite(value) else str(value)  # + 0.0: no "-0"
            dark = np.isfinite(value) and abs(value) > 0.6 * vmax
            ax.text(c, r, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    return image


def _cell_inches(matrices: Sequence[np.ndarray]) -> float:
    longest = max(max(m.shape) for m in matrices)
    return float(np.clip(2.2 / max(longest, 1), 0.05, 0.34))


def gradient_figure(
    expected: np.ndarray, actual: np.ndarray, *, label: str = "gradient", title: str = ""
) -> bytes:
    """Heatmaps of the expected gradient, the user's and (same shape) their difference, as PNG bytes.

    ``expected``, ``actual``: any shapes (see :func:`as_matrix` for >2-D). Expected and actual
    share one colour scale, symmetric about 0; the difference has its own, so a small error is
    still visible. When the shapes differ, both are drawn with their shapes and no difference.
    Non-finite entries are grey. ``label`` names the array in the panel titles (``"dw"``).
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    (em, etile), (am, atile) = as_matrix(e), as_matrix(a)
    panels = [(em, etile, f"expected {label} {e.shape}"), (am, atile, f"your {label} {a.shape}")]
    same = e.shape == a.shape
    if same:
        diff = a - e
        panels.append((as_matrix(diff)[0], etile, "yours − expected"))
    cell = _cell_inches([m for m, _, _ in panels])
    widths = [float(np.clip(m.shape[1] * cell, 1.1, 4.5)) for m, _, _ in panels]
    ratios = [np.clip(m.shape[0] / max(m.shape[1], 1), 0.1, 10.0) for m, _, _ in panels]
    heights = [w * r for w, r in zip(widths, ratios, strict=True)]
    height = float(np.clip(max(heights), 0.4, 6.0))
    figure = _new_figure(sum(widths) + 0.9 * (2 if same else 1) + 0.3, height + 0.8)
    axes = figure.subplots(1, len(panels), gridspec_kw={"width_ratios": widths})
    shared = _finite_max(e, a)
    first = _panel(axes[0], em, etile, shared, panels[0][2])
    _panel(axes[1], am, atile, shared, panels[1][2])
    figure.colorbar(first, ax=list(axes[:2]), shrink=0.8, pad=0.02)
    if same:
        spread = _finite_max(diff)
        image = _panel(axes[2], panels[2][0], etile, spread, panels[2][2])
        figure.colorbar(image, ax=axes[2], shrink=0.8, pad=0.02)
    if title:
        figure.suptitle(title, fontsize=10)
    return _png(figure)


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
