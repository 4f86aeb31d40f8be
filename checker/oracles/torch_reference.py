"""Exact gradients from torch autograd of a torch reference (``torch_forward=``).

The user's code stays numpy; torch runs only the reference. Labels arrive as int64 tensors, the
other inputs as float64 tensors; for a model, the parameters arrive as a dict of tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from checker.execution.user_code import USER_ERRORS, describe_exception
from checker.registry import Target

__all__ = ["ReferenceResult", "reference_gradients"]


@dataclass(frozen=True)
class ReferenceResult:
    """The reference's outputs (a tuple; the loss for losses) and gradients by input name, or the error."""

    outputs: tuple[np.ndarray, ...]
    gradients: dict[str, np.ndarray]
    error: str = ""


def reference_gradients(
    target: Target,
    values: Mapping[str, np.ndarray],
    hyper: Mapping[str, Any],
    douts: Sequence[np.ndarray],
    differentiable: Sequence[str],
    params: Mapping[str, np.ndarray] | None = None,
    precision: Any = None,
) -> ReferenceResult:
    """Run ``target.torch_forward`` and autograd. ``params`` is given for a model (then ``values`` is the data).

    ``precision``: a torch float dtype to run the reference in (float32, float16) instead of float64:
    the same function in the user's precision, to measure what that precision can resolve.
    """
    import torch

    assert target.torch_forward is not None
    low = precision is not None and precision != torch.float64

    def leaf(array: np.ndarray) -> Any:
        if not low:
            return _shared_leaf(array)
        return torch.tensor(np.asarray(array, dtype=np.float64), dtype=precision).requires_grad_(True)

    tensors: dict[str, Any] = {}
    for name, value in values.items():
        array = np.asarray(value)
        wants_grad = name in differentiable and params is None
        dtype = torch.int64 if array.dtype.kind in "iu" else (precision if low else torch.float64)
        if wants_grad and dtype != torch.int64:
            tensors[name] = leaf(array)
        else:
            tensors[name] = torch.tensor(array, dtype=dtype)
    try:
        if params is not None:
            param_tensors = {k: leaf(np.asarray(v)) for k, v in params.items()}
            result = target.torch_forward(param_tensors, *(tensors[n] for n in target.inputs))
            leaves = param_tensors
        else:
            result = target.torch_forward(*(tensors[n] for n in target.inputs), **hyper)
            leaves = {n: tensors[n] for n in differentiable}
        outs = tuple(result) if isinstance(result, (tuple, list)) else (result,)
        if target.takes_dout:
            total = sum(
                (o * torch.as_tensor(d, dtype=o.dtype)).sum() for o, d in zip(outs, douts, strict=True)
            )
        else:
            total = outs[0].sum()
        grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True)
    except USER_ERRORS as err:
        return ReferenceResult((), {}, f"torch_forward raised {describe_exception(err)}")
    gradients = {
        name: (
            np.zeros(tuple(t.shape))
            if g is None
            else np.asarray(g.detach().double().numpy(), dtype=np.float64)
        )
        for (name, t), g in zip(leaves.items(), grads, strict=True)
    }
    return ReferenceResult(
        tuple(np.asarray(o.detach().double().numpy(), dtype=np.float64) for o in outs), gradients
    )


def _shared_leaf(array: np.ndarray) -> Any:
    """A float64 leaf tensor that requires grad, sharing ``array``'s memory when it can.

    Sharing is safe: autograd refuses an in-place write to a leaf that requires grad (or to a view
    of it) before anything is written, so the reference cannot change the case's arrays.
    """
    import torch

    if array.dtype != np.float64 or not array.flags.writeable or not array.flags.c_contiguous:
        array = np.array(array, dtype=np.float64, order="C")
    return torch.from_numpy(array).requires_grad_(True)
