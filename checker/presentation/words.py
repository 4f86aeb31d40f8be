"""The words every message uses for the same thing: a gradient's name and the mismatch of two arrays."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from checker.compare import Comparison

__all__ = ["gradient_name", "mismatch_text"]


def gradient_name(name: str) -> str:
    """``"w"`` -> ``"dw"``: how every message, caption and label names the gradient of input ``name``."""
    return f"d{name}"


def mismatch_text(comparison: Comparison, *, relative: bool = True) -> str:
    """numpy.testing's vocabulary, which people already read:
    ``Mismatched elements: 3 / 12 (25%), Max absolute difference: 0.5, Max relative difference: 0.2``.

    ``relative=False`` leaves out the relative difference (a forward's output, where it adds nothing).
    """
    text = (
        f"Mismatched elements: {comparison.mismatch_summary}, "
        f"Max absolute difference: {comparison.max_abs_err:.3g}"
    )
    if relative:
        text += f", Max relative difference: {comparison.max_rel_err:.3g}"
    return text
