"""Correct code rewritten the ways people really write it: in float32 or float16, and on inputs at
large offsets or at large and small scales. Used by the false-alarm sweep (tests and benchmark).

``rewritten(target, dtype=np.float32, offset=1e2, scale=1.0)`` is a new Target whose functions cast
every float input (and dout) to ``dtype`` before calling the original ones, and move the plain float
inputs (kind ``float``) to ``x * scale + offset``; returned gradients of moved inputs are multiplied
by ``scale`` (the chain rule), so the rewritten function is still correct. The torch reference sees
the same moved inputs, in float64.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import checker as bc
from checker.execution.calls import normalize_gradients

__all__ = ["SWEEP", "bank_targets", "readme_targets", "rewritten", "sweep_variants"]

#: (label, dtype, offset, scale): the rewrites of the sweep. float16 only where it makes sense (see
#: ``sweep_variants``): a float16 sum of squares overflows at scale 1e3, and its 3 digits drown an offset.
SWEEP: tuple[tuple[str, Any, float, float], ...] = (
    ("float64 offset 1e3", np.float64, 1e3, 1.0),
    ("float64 scale 1e3", np.float64, 0.0, 1e3),
    ("float64 scale 1e-3", np.float64, 0.0, 1e-3),
    ("float32", np.float32, 0.0, 1.0),
    ("float32 offset 1e2", np.float32, 1e2, 1.0),
    ("float32 scale 1e3", np.float32, 0.0, 1e3),
    ("float32 scale 1e-3", np.float32, 0.0, 1e-3),
    ("float16", np.float16, 0.0, 1.0),
)


def _is_float(value: Any) -> bool:
    return getattr(getattr(value, "dtype", None), "kind", "") == "f"


def rewritten(
    target: bc.Target, *, dtype: Any = np.float64, offset: float = 0.0, scale: float = 1.0
) -> bc.Target:
    """``target`` computing in ``dtype`` on moved inputs (see the module docstring)."""
    names = list(target.inputs)
    dtype = np.dtype(dtype).name  # by name: under torch._numpy (the autograd oracle) np is rebound
    moved = {n for n, s in target.inputs.items() if s.kind == "float"}
    differentiable = target.differentiable

    def cast(value: Any) -> Any:
        # The same array when it already has the dtype: a write into it stays a write into the input.
        return value if str(value.dtype) == dtype else value.astype(dtype)

    def prepare(values: Sequence[Any]) -> list[Any]:
        out = []
        for name, value in zip(names, values, strict=True):
            if name in moved and (scale != 1.0 or offset != 0.0):
                value = value * scale + offset
            out.append(cast(value) if _is_float(value) else value)
        return out

    def chain(raw: Any, where: str) -> Any:
        grads, problems = normalize_gradients(raw, differentiable, where)
        if problems or scale == 1.0:
            return raw
        return {n: g * scale if n in moved else g for n, g in grads.items()}

    changes: dict[str, Callable[..., Any]] = {}
    if target.style == "layer":
        forward, backward = target.forward, target.backward
        assert forward is not None and backward is not None

        def forward_rewritten(*inputs: Any, **hyper: Any) -> Any:
            return forward(*prepare(inputs), **hyper)

        def backward_rewritten(*args: Any) -> Any:
            *douts, cache = args
            return chain(backward(*(cast(d) for d in douts), cache), "backward")

        changes = {"forward": forward_rewritten, "backward": backward_rewritten}
    elif target.style == "loss":
        value_and_grad = target.value_and_grad
        assert value_and_grad is not None

        def loss_rewritten(*inputs: Any, **hyper: Any) -> Any:
            loss, raw = value_and_grad(*prepare(inputs), **hyper)
            return loss, chain(raw, "value_and_grad")

        changes = {"value_and_grad": loss_rewritten}
    else:
        loss = target.loss
        assert loss is not None

        def model_loss_rewritten(model: Any, *data: Any) -> Any:
            # The data moves (it is not differentiated, so no chain factor); parameters are cast for the
            # call and put back, so that the harness sees its own arrays untouched.
            originals = dict(model.params)
            try:
                for key, value in originals.items():
                    model.params[key] = cast(value) if _is_float(value) else value
                return loss(model, *prepare(data))
            finally:
                model.params.clear()
                model.params.update(originals)

        changes = {"loss": model_loss_rewritten}
    torch_forward = target.torch_forward
    if torch_forward is not None and target.style != "model" and (scale != 1.0 or offset != 0.0):

        def torch_rewritten(*inputs: Any, **hyper: Any) -> Any:
            values = [v * scale + offset if n in moved else v for n, v in zip(names, inputs, strict=True)]
            return torch_forward(*values, **hyper)

        changes["torch_forward"] = torch_rewritten
    elif target.style == "model" and torch_forward is not None and (scale != 1.0 or offset != 0.0):

        def torch_model_rewritten(params: Any, *data: Any) -> Any:
            values = [v * scale + offset if n in moved else v for n, v in zip(names, data, strict=True)]
            return torch_forward(params, *values)

        changes["torch_forward"] = torch_model_rewritten
    return dataclasses.replace(target, **changes)


def sweep_variants(target: bc.Target) -> list[tuple[str, bc.Target]]:
    """Every rewrite of :data:`SWEEP` that makes sense for ``target``.

    float16 is swept for layers whose forward is elementwise or a short product (its 3 significant
    digits cannot carry a normalisation or a long recurrence); offsets only move plain float inputs.
    """
    variants = []
    for label, dtype, offset, scale in SWEEP:
        if dtype is np.float16 and target.name not in FLOAT16_SENSIBLE:
            continue
        variants.append((label, rewritten(target, dtype=dtype, offset=offset, scale=scale)))
    return variants


#: Bank exercises that are meaningful in float16 (elementwise, or one short matrix product).
FLOAT16_SENSIBLE = frozenset({"affine", "relu", "leaky_relu", "sigmoid", "tanh", "dropout"})


def bank_targets() -> list[bc.Target]:
    """Every exercise of the bank, as the bank registers it."""
    import reference_impls

    return [bc.get_target(e.name, module=e.module) for e in reference_impls.EXERCISES]


def readme_targets() -> list[bc.Target]:
    """Every function the README's examples register (its Python blocks run in order, in a folder of
    their own so that nothing they write lands in the repository)."""
    import os
    import re
    import tempfile
    from pathlib import Path

    from checker.registry import REGISTRY

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    namespace: dict[str, object] = {"__name__": "readme_sweep"}
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as folder:
        os.chdir(folder)
        try:
            for block in re.findall(r"```python\n(.*?)```", readme, flags=re.S):
                exec(compile(block, "README.md", "exec"), namespace)
        finally:
            os.chdir(here)
    return [t for (module, _), t in REGISTRY.items() if module == "readme_sweep"]
