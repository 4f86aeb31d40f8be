"""Which forward name a backward's local is the gradient of: ``dmu``, ``d_mu``, ``grad_mu``, ``mu_grad``, ``gmu``.

Pure string rules, no guessing: a local that fits no pattern, or fits patterns of two different
forward names (``d_x`` when the forward has both ``x`` and ``_x``), matches nothing. The upstream
gradient ``dout`` matches the forward's local ``out`` like any other name (it is judged only when the
backward reassigns it: an argument is given, not computed).
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["PATTERNS", "gradient_of"]

#: How people name the gradient of ``name``, as (prefix, suffix).
PATTERNS = (("d", ""), ("d_", ""), ("grad_", ""), ("", "_grad"), ("g", ""))


def _candidates(local: str) -> set[str]:
    found = set()
    for prefix, suffix in PATTERNS:
        if local.startswith(prefix) and local.endswith(suffix):
            stem = local[len(prefix) : len(local) - len(suffix)]
            if stem and stem.isidentifier():
                found.add(stem)
    return found


def gradient_of(local: str, forward_names: Collection[str]) -> str | None:
    """The forward name ``local`` is the gradient of, or ``None`` (no pattern fits, or two names fit).

    >>> gradient_of("dsqrtvar", {"sqrtvar", "var"})
    'sqrtvar'
    >>> gradient_of("dxmu1", {"xmu"}) is None
    True
    """
    if local in forward_names:
        return None  # the backward reads a forward value back from its cache: not a gradient
    found = _candidates(local) & set(forward_names)
    return found.pop() if len(found) == 1 else None
