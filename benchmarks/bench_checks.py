"""Cost and detection of backprop-check's checks, measured against torch.autograd.gradcheck.

    python benchmarks/bench_checks.py [--quick] [--out reports/benchmarks.csv]

Measured on this machine, never asserted (the test suite does not run this). The full form takes
about 5 minutes on a quiet 2-core machine, ``--quick`` (sizes 1e4 and 1e6, four exercises in the
detection table, no slow gradcheck) under one. ``--sizes``, ``--methods``, ``--families`` and
``--sections`` narrow a run (``--sizes 10000,1000000 --methods default,gc-fast``).

Cost, per layer family (affine, batchnorm, conv naive up to 1e4, conv im2col) and size (about 1e2
.. 1e6 input elements), each on one case with pinned dims (``make_case`` + ``check_case``):
- ``fb``: one forward + backward of the user's numpy code on the case's inputs: the unit of cost.
- ``no-oracle``: ``check_case`` with no gradient oracle: the shape, mutation, determinism and
  finiteness checks alone (one forward, two backwards, copies and comparisons).
- ``full``, ``sampled``, ``directional``, ``auto``: ``check_case`` in that mode with only the
  finite-difference oracle (``oracles=("fd",)``); ``autograd``: only the torch._numpy oracle;
  ``torch``: only the torch reference; ``default``: ``CheckOptions()`` (auto, every oracle), what
  ``bc.check`` and the CLI run; ``default-noref``: the same for the target registered without
  ``torch_forward`` (what most users write). Every one includes the no-oracle checks.
- ``taylor*``: one forward + backward, then :func:`checker.oracles.taylor.taylor_test` on every
  differentiable input (not wired into the runner: what it would cost and catch).
- ``gc-fast``, ``gc-slow``: ``torch.autograd.gradcheck(fast_mode=True/False)`` (its defaults:
  eps 1e-6, atol 1e-5, rtol 1e-3) on the same numpy functions wrapped in a ``torch.autograd.Function``.
  Slow mode builds dense Jacobians: it is skipped (and the reason printed) where its estimated time
  or memory is out of reach; so is ``full`` past about 20 s.
Seconds: ``time.perf_counter``; after a first (warm-up) call, the median of 5 (first call under
0.2 s) or 3 (under 1 s) repeats, else the first call alone. The fastest repeat is kept too. The
machine is shared: before each measurement the script waits (up to 10 s, 20 s in all) until other
processes use under 0.3 of a core, because a two-thread BLAS call slows 3-10x while another process
holds a core; the busy cores seen are in the CSV (``others_busy_cores``).

Memory, two measures (Linux):
- ``rss``: the peak resident set size during the first call minus the resident size just before it.
  Before it, free heap memory is handed back (``malloc_trim``) and the kernel's peak is reset
  (``/proc/self/clear_refs``), so numpy buffers, torch tensors and Python objects all count. Pages
  are 4 KiB and the allocator keeps some memory: below ~1e5 elements it is mostly noise.
- ``tm``: ``tracemalloc``'s peak in a separate call (not for calls over 0.3 s): numpy buffers and
  Python objects, but not torch tensor storage (torch's CPU allocator does not report to it).
The ratios divide by ``io``: the bytes of the case's inputs plus the forward's outputs.

Detection: every planted mistake of the layer exercises (``reference_impls.mistakes.layers``) on
one case with dims that expose each of them (about 1e3 elements), by the check columns and by
gradcheck; then the four families again at about 1e4 elements without ``full`` and ``gc-slow``. A
gradcheck that raises something other than a GradcheckError (a gradient of an impossible shape)
counts as a detection, marked ``raise``. Controls (harmless variants) must stay quiet.

Everything is also written to ``reports/benchmarks.csv`` (atomically), with the targets' verdicts.
OpenBLAS settings are left as the environment has them.
"""

from __future__ import annotations

import argparse
import copy
import csv
import ctypes
import dataclasses
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.autograd.gradcheck import GradcheckError  # noqa: E402

import checker as bc  # noqa: E402
import reference_impls  # noqa: E402, F401  (registers the exercises)
from checker.cases import Case, make_case  # noqa: E402
from checker.execution.calls import call_forward, normalize_gradients, scalar_objective  # noqa: E402
from checker.oracles.taylor import taylor_test  # noqa: E402
from checker.registry import Target  # noqa: E402
from checker.runner import CheckOptions, check_case  # noqa: E402
from reference_impls import torch_refs_layers  # noqa: E402
from reference_impls.mistakes import layers as layer_mistakes  # noqa: E402

# --- the vectorised convolution: "user code" that reaches 1e6 elements in a blink ---------------


def conv_forward_im2col(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, conv_param: dict[str, int]
) -> tuple[np.ndarray, Any]:
    """Cross-correlation by im2col. x: (N, C, H, W), w: (F, C, HH, WW), b: (F,) -> out (N, F, H', W')."""
    S, P = conv_param["stride"], conv_param["pad"]
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = 1 + (H + 2 * P - HH) // S
    W_out = 1 + (W + 2 * P - WW) // S
    x_pad = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    # One strided slice per kernel offset: (N, C, HH*WW, H', W') -> columns (N, C*HH*WW, H'*W').
    patches = np.stack(
        [x_pad[:, :, k : k + S * H_out : S, m : m + S * W_out : S] for k in range(HH) for m in range(WW)],
        axis=2,
    )
    cols = patches.reshape(N, C * HH * WW, H_out * W_out)
    out = np.matmul(w.reshape(F, -1), cols) + b.reshape(1, F, 1)
    return out.reshape(N, F, H_out, W_out), (x.shape, w, cols, conv_param)


def conv_backward_im2col(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dout: (N, F, H', W'); returns dx (N, C, H, W), dw (F, C, HH, WW), db (F,)."""
    (N, C, H, W), w, cols, conv_param = cache
    S, P = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    d = dout.reshape(N, F, H_out * W_out)
    db = d.sum(axis=(0, 2))
    dw = np.einsum("nfl,nkl->fk", d, cols).reshape(w.shape)
    dcols = np.matmul(w.reshape(F, -1).T, d).reshape(N, C, HH * WW, H_out, W_out)
    dx_pad = np.zeros((N, C, H + 2 * P, W + 2 * P))
    for k in range(HH):
        for m in range(WW):
            dx_pad[:, :, k : k + S * H_out : S, m : m + S * W_out : S] += dcols[:, :, k * WW + m]
    return dx_pad[:, :, P : P + H, P : P + W], dw, db


bc.register(
    "conv_im2col",
    forward=conv_forward_im2col,
    backward=conv_backward_im2col,
    inputs={"x": "N,C,H,W", "w": "F,C,HH,WW", "b": "F"},
    dims={"S": (1, 2), "P": (0, 1), "H": range(3, 8), "W": range(3, 8), "HH": range(1, 4), "WW": range(1, 4)},
    hyper=lambda d: {"conv_param": {"stride": d["S"], "pad": d["P"]}},
    constraint=lambda d: (
        (d["H"] + 2 * d["P"] - d["HH"]) % d["S"] == 0 and (d["W"] + 2 * d["P"] - d["WW"]) % d["S"] == 0
    ),
    torch_forward=torch_refs_layers.conv,
)

# --- families and sizes -----------------------------------------------------------------------

SIZES = (100, 1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 1_000_000)
#: Exercises of the quick detection table.
QUICK_EXERCISES = ("affine", "relu", "batchnorm", "conv")


def _square(n: int) -> dict[str, int]:
    k = max(2, round((n / 2) ** 0.5))
    return {"N": k, "D": k, "M": k}


def _batch(n: int) -> dict[str, int]:
    k = max(2, round(n**0.5))
    return {"N": k, "D": k}


#: (N, C, H=W, F) per size; 3x3 filters, stride 1, pad 1.
_CONV_SHAPES = {
    100: (1, 2, 6, 2),
    1_000: (2, 3, 12, 4),
    10_000: (2, 4, 35, 4),
    100_000: (4, 4, 79, 4),
    1_000_000: (8, 8, 125, 8),
}


def _conv(n: int) -> dict[str, int]:
    N, C, H, F = _CONV_SHAPES[n]
    return {"N": N, "C": C, "H": H, "W": H, "F": F, "HH": 3, "WW": 3, "S": 1, "P": 1}


@dataclass(frozen=True)
class Family:
    """A layer family: the registered target and the pinned dims for about ``n`` input elements."""

    name: str
    target: str
    dims: Callable[[int], dict[str, int]]
    max_size: int = 10**6
    why_not_larger: str = ""


FAMILIES = (
    Family("affine", "affine", _square),
    Family("batchnorm", "batchnorm", _batch),
    Family("conv_naive", "conv", _conv, 10_000, "the naive loop and its torch._numpy trace take seconds"),
    Family("conv_im2col", "conv_im2col", _conv),
)

#: Check columns: name -> CheckOptions (None: measured outside check_case).
CHECK_COLUMNS: dict[str, CheckOptions | None] = {
    "no-oracle": CheckOptions(oracles=()),
    "full": CheckOptions(mode="full", oracles=("fd",)),
    "sampled": CheckOptions(mode="sampled", oracles=("fd",)),
    "directional": CheckOptions(mode="directional", oracles=("fd",)),
    "auto": CheckOptions(mode="auto", oracles=("fd",)),
    "autograd": CheckOptions(oracles=("autograd",)),
    "torch": CheckOptions(oracles=("torch",)),
    "default": CheckOptions(),
    "default-noref": CheckOptions(),
    "taylor*": None,
}
GRADCHECK_COLUMNS = ("gc-fast", "gc-slow")
COLUMNS = (*CHECK_COLUMNS, *GRADCHECK_COLUMNS)
QUICK_METHODS = (
    "no-oracle",
    "directional",
    "auto",
    "autograd",
    "torch",
    "default",
    "default-noref",
    "gc-fast",
)

# --- measuring --------------------------------------------------------------------------------

_LIBC = ctypes.CDLL("libc.so.6") if sys.platform.startswith("linux") else None


def _status_kib(field_name: str) -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> None:
    """Hand free heap memory back to the kernel and reset its peak-RSS counter (Linux 4.0+)."""
    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _cpu_jiffies() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as stat:
        fields = [float(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def wait_for_quiet(max_wait: float = 10.0, threshold: float = 0.3, window: float = 0.05) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` of a core.

    Timings on a shared 2-core machine swing 3-10x while another process runs (two BLAS threads
    then wait for a core). Returns the busy cores seen last (NaN where /proc/stat is unreadable).
    """
    busy = float("nan")
    if max_wait <= 0:
        return busy  # the waiting budget is spent: measure as things are
    deadline = time.perf_counter() + max_wait
    while True:
        try:
            b0, t0 = _cpu_jiffies()
            time.sleep(window)
            b1, t1 = _cpu_jiffies()
        except OSError:
            return busy
        busy = (b1 - b0) / max(t1 - t0, 1.0) * (os.cpu_count() or 1)
        if busy < threshold or time.perf_counter() > deadline:
            return busy
        time.sleep(0.5)


@dataclass
class Measurement:
    """Seconds (median and minimum of the repeats), RSS and tracemalloc peaks in bytes, the result."""

    seconds: float
    best: float
    rss_peak: float
    tm_peak: float
    result: Any = None
    repeats: int = 1
    others_busy: float = float("nan")


def repeats_for(first: float, most: int = 7) -> int:
    """More repeats for quick calls: their timings are the noisiest."""
    count = 7 if first < 0.02 else (5 if first < 0.2 else (3 if first < 1.0 else 0))
    return min(count, most)


def measure(fn: Callable[[], Any], plan: Plan, tracemalloc_below: float | None = None) -> Measurement:
    """Time ``fn`` and take its peak memory (see the module docstring for what is measured)."""
    waited = time.perf_counter()
    others_busy = wait_for_quiet(min(plan.quiet_wait, max(0.0, plan.quiet_budget - plan.waited)))
    plan.waited += time.perf_counter() - waited
    _reset_peak()
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    result = fn()
    first = time.perf_counter() - started
    rss = (_status_kib("VmHWM") - before) * 1024
    times = [first]
    repeats = repeats_for(first, plan.max_repeats)
    if repeats:
        times = []  # the first call was the warm-up
        for _ in range(repeats):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    tm = float("nan")
    limit = (
        plan.tracemalloc_below
        if tracemalloc_below is None
        else min(tracemalloc_below, plan.tracemalloc_below)
    )
    if first < limit:
        gc.collect()
        tracemalloc.start()
        try:
            fn()
            tm = float(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    return Measurement(statistics.median(times), min(times), rss, tm, result, len(times), others_busy)


# --- what is measured -------------------------------------------------------------------------


def forward_backward(target: Target, case: Case, dout: np.ndarray) -> Any:
    """One forward and one backward of the user's code: the unit of cost."""
    _, cache = call_forward(target, case.arrays, case.fresh_hyper())
    assert target.backward is not None
    return target.backward(dout, cache)


def passed(rows: list[Any]) -> bool:
    return not any(r.failed for r in rows)


@dataclass(frozen=True)
class TaylorOutcome:
    """The Taylor test on every differentiable input (after the harness's shape check)."""

    passed: bool
    detail: str


def taylor_check(target: Target, case: Case) -> TaylorOutcome:
    """What wiring the Taylor test would cost and catch: forward, backward, then one test per input."""
    rng = np.random.default_rng(case.seed + 7)
    inputs = {k: v.copy() for k, v in case.arrays.items()}
    outs, cache = call_forward(target, inputs, case.fresh_hyper())
    douts = tuple(rng.standard_normal(np.shape(o)) for o in outs)
    assert target.backward is not None
    grads, problems = normalize_gradients(target.backward(*douts, cache), target.differentiable, "backward")
    if problems:
        return TaylorOutcome(False, problems[0].message)

    def objective(values: Mapping[str, np.ndarray]) -> float:
        return float(scalar_objective(target, values, case.fresh_hyper(), douts))

    details = []
    ok = True
    for name in target.differentiable:
        grad = np.asarray(grads[name], dtype=np.float64)
        if grad.shape != case.arrays[name].shape:
            ok = False
            details.append(f"d{name} shape {grad.shape}")
            continue
        result = taylor_test(objective, case.arrays, name, grad, rng)
        ok &= result.passed
        details.append(f"{name}: {result.verdict} ({result.order:.2f})")
    return TaylorOutcome(ok, "; ".join(details))


def torch_function(target: Target, case: Case) -> Callable[..., torch.Tensor]:
    """The user's numpy forward/backward as a ``torch.autograd.Function`` (inputs in spec order)."""
    names = list(target.inputs)
    differentiable = target.differentiable

    class NumpyLayer(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, *tensors: torch.Tensor) -> torch.Tensor:
            arrays = {n: t.detach().numpy() for n, t in zip(names, tensors, strict=True)}
            outs, cache = call_forward(target, arrays, copy.deepcopy(case.hyper))
            ctx.cache = cache
            return torch.from_numpy(np.ascontiguousarray(outs[0], dtype=np.float64))

        @staticmethod
        def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
            assert target.backward is not None
            raw = target.backward(dout.detach().numpy(), ctx.cache)
            grads, _ = normalize_gradients(raw, differentiable, "backward")
            return tuple(
                torch.from_numpy(np.ascontiguousarray(grads[n], dtype=np.float64)) if n in grads else None
                for n in names
            )

    return NumpyLayer.apply


def gradcheck_inputs(target: Target, case: Case) -> tuple[torch.Tensor, ...]:
    return tuple(
        torch.tensor(case.arrays[n], dtype=torch.float64, requires_grad=n in target.differentiable)
        for n in target.inputs
    )


def run_gradcheck(target: Target, case: Case, fast: bool) -> str:
    """``pass``, ``fail`` (GradcheckError) or ``raise: <what>`` (anything else gradcheck raised)."""
    fn = torch_function(target, case)
    try:
        torch.autograd.gradcheck(fn, gradcheck_inputs(target, case), fast_mode=fast)
    except GradcheckError:
        return "fail"
    except Exception as err:
        return f"raise: {type(err).__name__}: {str(err).splitlines()[0][:90]}"
    return "pass"


def gradcheck_slow_estimate(n_in: int, n_out: int, fb_seconds: float) -> tuple[float, float]:
    """(seconds, bytes) gradcheck's slow mode would need: two forwards per input element, two
    backwards per output element (it re-checks reentrancy), two dense n_in x n_out Jacobians."""
    per_call = fb_seconds / 2 + 60e-6  # plus the Function/autograd overhead of one call
    return 2 * (n_in + n_out) * per_call, 2 * 8.0 * n_in * n_out


# --- the cost table ---------------------------------------------------------------------------


@dataclass
class CostRow:
    family: str
    size: int
    dims: str
    input_elements: int
    io_bytes: int
    method: str
    seconds: float = float("nan")
    best_seconds: float = float("nan")
    ratio_to_fb: float = float("nan")
    best_ratio_to_fb: float = float("nan")
    rss_peak_bytes: float = float("nan")
    tm_peak_bytes: float = float("nan")
    rss_ratio_to_io: float = float("nan")
    tm_ratio_to_io: float = float("nan")
    repeats: int = 0
    others_busy_cores: float = float("nan")
    ok: str = ""
    note: str = ""


def cost_rows(family: Family, size: int, plan: Plan, log: Callable[[str], None]) -> list[CostRow]:
    """The fb row and one row per method in ``methods`` for ``family`` at about ``size`` input elements."""
    target = bc.get_target(family.target)
    case = make_case(target, family.dims(size), seed=0)
    outs, _ = call_forward(target, case.arrays, case.fresh_hyper())
    out = np.asarray(outs[0])
    n_in = sum(a.size for a in case.arrays.values())
    n_diff = sum(case.arrays[n].size for n in target.differentiable)
    io = sum(a.nbytes for a in case.arrays.values()) + out.nbytes
    dout = np.random.default_rng(1).standard_normal(out.shape)
    base = CostRow(family.name, size, case.dims_text, n_in, io, "fb")
    fb = measure(lambda: forward_backward(target, case, dout), plan)

    def row(method: str, m: Measurement | None, ok: str = "", note: str = "") -> CostRow:
        r = copy.copy(base)
        r.method, r.ok, r.note = method, ok, note
        if m is not None:
            r.seconds, r.best_seconds, r.repeats, r.others_busy_cores = (
                m.seconds,
                m.best,
                m.repeats,
                m.others_busy,
            )
            r.ratio_to_fb, r.best_ratio_to_fb = m.seconds / fb.seconds, m.best / fb.best
            r.rss_peak_bytes, r.tm_peak_bytes = m.rss_peak, m.tm_peak
            r.rss_ratio_to_io, r.tm_ratio_to_io = m.rss_peak / io, m.tm_peak / io
        log(
            f"  {family.name:12} {n_in:>8} {method:12} {r.seconds * 1e3:10.2f} ms {r.ratio_to_fb:9.1f}x fb {note or ok}"
        )
        return r

    rows = [row("fb", fb, "yes")]
    per_call = fb.best / 2 + 30e-6  # one forward, plus the harness's bookkeeping around it
    for method in (m for m in CHECK_COLUMNS if m in plan.methods):
        options = CHECK_COLUMNS[method]
        if method == "full" and 2 * n_diff * per_call > plan.full_seconds:
            rows.append(
                row(
                    method,
                    None,
                    note=f"skipped: 2 x {n_diff} forward calls, about {2 * n_diff * per_call:.0f} s",
                )
            )
            continue
        if options is None:
            m = measure(lambda: taylor_check(target, case), plan)
            rows.append(row(method, m, "yes" if m.result.passed else f"no ({m.result.detail})"))
        else:
            checked = dataclasses.replace(target, torch_forward=None) if method == "default-noref" else target
            m = measure(lambda options=options, checked=checked: check_case(checked, case, options), plan)
            rows.append(row(method, m, "yes" if passed(m.result) else "no"))
    seconds, memory = gradcheck_slow_estimate(n_diff, out.size, fb.best)
    for method in (m for m in GRADCHECK_COLUMNS if m in plan.methods):
        fast = method == "gc-fast"
        if not fast and (seconds > plan.slow_seconds or memory > plan.slow_bytes):
            note = f"skipped: estimated {seconds:.0f} s and {memory / 1e9:.1f} GB (dense {n_diff} x {out.size} Jacobians)"
            rows.append(row(method, None, note=note))
            continue
        m = measure(lambda fast=fast: run_gradcheck(target, case, fast), plan, tracemalloc_below=0.5)
        rows.append(row(method, m, "yes" if m.result == "pass" else m.result))
    return rows


# --- the detection table ----------------------------------------------------------------------

#: Dims that expose every planted mistake (non-square, stride 2 and padding for conv), ~1e3 elements.
DETECTION_DIMS: dict[str, dict[str, int]] = {
    "affine": {"N": 16, "D": 24, "M": 20},
    "affine_colmajor": {"D": 24, "N": 16, "M": 20},
    "relu": {"N": 16, "D": 32},
    "leaky_relu": {"N": 16, "D": 32},
    "sigmoid": {"N": 16, "D": 32},
    "tanh": {"N": 16, "D": 32},
    "dropout": {"N": 16, "D": 32},
    "batchnorm": {"N": 16, "D": 24},
    "layernorm": {"N": 16, "D": 24},
    "max_pool": {"N": 2, "C": 3, "H": 8, "W": 8},
    "conv": {"N": 2, "C": 3, "H": 9, "W": 9, "F": 4, "HH": 3, "WW": 3, "S": 2, "P": 1},
}
#: The same families at about 1e4 input elements (the size of the gradcheck targets).
DETECTION_DIMS_1E4: dict[str, dict[str, int]] = {
    "affine": {"N": 64, "D": 80, "M": 72},
    "relu": {"N": 100, "D": 100},
    "batchnorm": {"N": 96, "D": 100},
    "conv": {"N": 2, "C": 4, "H": 35, "W": 35, "F": 4, "HH": 3, "WW": 3, "S": 2, "P": 1},
}


DETECTION_COLUMNS = (
    "default",
    "default-noref",
    "auto",
    "directional",
    "sampled",
    "full",
    "autograd",
    "torch",
    "taylor*",
    *GRADCHECK_COLUMNS,
)
DETECTION_COLUMNS_1E4 = tuple(c for c in DETECTION_COLUMNS if c not in ("full", "gc-slow"))


QUICK_DETECTION_COLUMNS = (
    "default",
    "default-noref",
    "directional",
    "autograd",
    "torch",
    "gc-fast",
    "gc-slow",
)


@dataclass
class Plan:
    """What to run and how hard to measure it (``--quick`` trims every knob)."""

    sizes: tuple[int, ...] = SIZES
    families: tuple[str, ...] = tuple(f.name for f in FAMILIES)
    methods: tuple[str, ...] = COLUMNS
    detection_exercises: tuple[str, ...] = tuple(DETECTION_DIMS)
    detection_columns: tuple[str, ...] = ()
    detection_1e4: bool = True
    cli_runs: int = 3
    full_seconds: float = 20.0  # skip full mode when its estimate is longer
    slow_seconds: float = 40.0  # skip slow gradcheck when its estimate is longer...
    slow_bytes: float = 2.5e9  # ...or its Jacobians larger
    max_repeats: int = 5
    tracemalloc_below: float = 0.3  # seconds of the first call
    quiet_wait: float = 10.0  # per measurement
    quiet_budget: float = 20.0  # in all
    waited: float = 0.0

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            sizes=QUICK_SIZES,
            families=("affine", "batchnorm", "conv_im2col"),
            methods=QUICK_METHODS,
            detection_exercises=QUICK_EXERCISES,
            detection_columns=QUICK_DETECTION_COLUMNS,
            detection_1e4=False,
            cli_runs=1,
            full_seconds=1.0,
            slow_seconds=2.0,
            slow_bytes=5e8,
            max_repeats=3,
            tracemalloc_below=0.2,
            quiet_wait=2.0,
            quiet_budget=5.0,
        )


@dataclass
class DetectionRow:
    exercise: str
    mistake: str
    control: bool
    dims: str
    outcomes: dict[str, str] = field(default_factory=dict)

    def detected(self, column: str) -> bool:
        return self.outcomes.get(column, "-") not in ("-", "skip", "")


def _reset_mistake_state() -> None:
    """The stateful planted mistake keeps a module-level buffer: every column starts it afresh."""
    layer_mistakes._dw_buffers.clear()


def detection_rows(
    dims_by_exercise: Mapping[str, dict[str, int]], columns: tuple[str, ...], log: Callable[[str], None]
) -> list[DetectionRow]:
    rows = []
    for mistake in layer_mistakes.MISTAKES:
        if mistake.exercise not in dims_by_exercise:
            continue
        target = bc.variant(bc.get_target(mistake.exercise), mistake.replaces)
        case = make_case(target, dims_by_exercise[mistake.exercise], seed=0)
        row = DetectionRow(mistake.exercise, mistake.name, mistake.control, case.dims_text)
        for column in columns:
            _reset_mistake_state()
            if column in GRADCHECK_COLUMNS:
                result = run_gradcheck(target, case, fast=column == "gc-fast")
                row.outcomes[column] = {"pass": "-", "fail": "yes"}.get(result, "raise")
                if result.startswith("raise"):
                    row.outcomes[column + " note"] = result
            elif column == "taylor*":
                row.outcomes[column] = "-" if taylor_check(target, case).passed else "yes"
            else:
                checked = (
                    dataclasses.replace(target, torch_forward=None) if column == "default-noref" else target
                )
                rows_ = check_case(checked, case, CHECK_COLUMNS[column])
                row.outcomes[column] = "-" if passed(rows_) else "yes"
        log(f"  {mistake.exercise:16} {mistake.name:30} " + " ".join(row.outcomes[c] for c in columns))
        rows.append(row)
    return rows


# --- the CLI run --------------------------------------------------------------------------------


def cli_seconds(runs: int) -> list[float]:
    """Wall seconds of ``backprop-check run reference_impls --quiet`` (a fresh process each time)."""
    exe = Path(sys.executable).with_name("backprop-check")
    command = [str(exe) if exe.exists() else "backprop-check", "run", "reference_impls", "--quiet"]
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=False, capture_output=True)
        seconds.append(time.perf_counter() - started)
    return seconds


# --- printing and writing -----------------------------------------------------------------------


def _fmt(value: float, digits: int = 1) -> str:
    if value != value:
        return "-"
    if value >= 1000:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _table(
    rows: list[CostRow], title: str, cell: Callable[[CostRow], str], first: Callable[[CostRow], str]
) -> None:
    """One printed table: a line per (family, size), a column per method."""
    order = [f.name for f in FAMILIES]
    keys = sorted({(r.family, r.size) for r in rows}, key=lambda k: (order.index(k[0]), k[1]))
    by = {(r.family, r.size, r.method): r for r in rows}
    methods = [m for m in COLUMNS if any(r.method == m for r in rows)]
    print(f"\n{title}")
    print(f"{'family':12} {'n_in':>8} {'':>9} " + " ".join(f"{m:>11}" for m in methods))
    for family, size in keys:
        fb = by[(family, size, "fb")]
        cells = [cell(by[(family, size, m)]) if (family, size, m) in by else "" for m in methods]
        print(f"{family:12} {fb.input_elements:>8} {first(fb):>9} " + " ".join(f"{c:>11}" for c in cells))


def print_cost_tables(rows: list[CostRow]) -> None:
    _table(
        rows,
        "TIME: one check / one forward+backward of the user's code (fb), medians; first column: fb in ms",
        lambda r: _fmt(r.ratio_to_fb),
        lambda fb: f"{fb.seconds * 1e3:.3f}",
    )
    _table(
        rows,
        "TIME: the same ratio with the fastest repeat of each (least disturbed by other processes)",
        lambda r: _fmt(r.best_ratio_to_fb),
        lambda fb: f"{fb.best_seconds * 1e3:.3f}",
    )
    _table(
        rows,
        "TIME: milliseconds (median)",
        lambda r: _fmt(r.seconds * 1e3, 2),
        lambda fb: f"{fb.seconds * 1e3:.3f}",
    )
    _table(
        rows,
        "MEMORY: RSS peak delta / bytes of inputs+outputs (io); first column: io in MB",
        lambda r: _fmt(r.rss_ratio_to_io),
        lambda fb: f"{fb.io_bytes / 1e6:.3f}",
    )
    _table(
        rows,
        "MEMORY: tracemalloc peak (numpy + Python, not torch storage) / io; first column: io in MB",
        lambda r: _fmt(r.tm_ratio_to_io),
        lambda fb: f"{fb.io_bytes / 1e6:.3f}",
    )
    failed = [r for r in rows if r.ok not in ("yes", "")]
    if failed:
        print("\nreference code NOT passing (a false alarm of that method):")
        for r in failed:
            print(f"  {r.family} {r.input_elements} {r.method}: {r.ok}")
    skipped = [r for r in rows if r.note]
    if skipped:
        print("\nskipped:")
        for r in skipped:
            print(f"  {r.family:12} {r.input_elements:>8} {r.method:8} {r.note}")


def print_detection_table(rows: list[DetectionRow], columns: tuple[str, ...], title: str) -> None:
    print(f"\nDETECTION {title}: yes = flagged, - = passed, raise = gradcheck raised (not GradcheckError)")
    print(f"{'exercise':16} {'mistake':30} {'ctl':3} " + " ".join(f"{c:>11}" for c in columns))
    for r in rows:
        cells = [r.outcomes.get(c, "") for c in columns]
        ctl = "yes" if r.control else ""
        print(f"{r.exercise:16} {r.mistake:30} {ctl:3} " + " ".join(f"{c:>11}" for c in cells))
    real = [r for r in rows if not r.control]
    controls = [r for r in rows if r.control]
    print(
        f"{'detected':16} {f'of {len(real)} mistakes':30} {'':3} "
        + " ".join(f"{sum(r.detected(c) for r in real):>11}" for c in columns)
    )
    print(
        f"{'false alarms':16} {f'of {len(controls)} controls':30} {'':3} "
        + " ".join(f"{sum(r.detected(c) for r in controls):>11}" for c in columns)
    )
    notes = sorted({r.outcomes[k] for r in rows for k in r.outcomes if k.endswith(" note")})
    raised = [
        (r.exercise, r.mistake, r.outcomes.get("gc-fast note", r.outcomes.get("gc-slow note"))) for r in rows
    ]
    if notes:
        print("what gradcheck raised:")
        for exercise, mistake, note in raised:
            if note:
                print(f"  {exercise}/{mistake}: {note}")


def print_targets(
    rows: list[CostRow], detection: Mapping[str, list[DetectionRow]], cli: list[float]
) -> list[dict[str, str]]:
    """The issue's targets, each MET / MISSED on the medians (the fastest repeats shown beside them)."""
    by = {(r.family, r.size, r.method): r for r in rows}
    lines: list[dict[str, str]] = []

    def verdict(name: str, ok: bool | None, detail: str) -> None:
        lines.append(
            {
                "target": name,
                "verdict": "n/a" if ok is None else ("MET" if ok else "MISSED"),
                "detail": detail,
            }
        )

    for family in FAMILIES:
        r = by.get((family.name, 1_000_000, "default"))
        if r is not None and r.seconds == r.seconds:
            detail = f"{r.ratio_to_fb:.1f}x (fastest repeats: {r.best_ratio_to_fb:.1f}x)"
            verdict(f"default <= 10x fb at 1e6 ({family.name})", r.ratio_to_fb <= 10, detail)
    for family in FAMILIES:
        d = by.get((family.name, 10_000, "default"))
        if d is None or d.seconds != d.seconds:
            continue
        slow = by.get((family.name, 10_000, "gc-slow"))
        if slow is not None and slow.seconds == slow.seconds:
            ratio = slow.seconds / d.seconds
            verdict(f">= 50x faster than gc-slow at 1e4 ({family.name})", ratio >= 50, f"{ratio:.0f}x")
        elif slow is not None:
            verdict(f">= 50x faster than gc-slow at 1e4 ({family.name})", None, slow.note)
        fast = by.get((family.name, 10_000, "gc-fast"))
        if fast is not None and fast.seconds == fast.seconds:
            verdict(
                f"not slower than gc-fast at 1e4 ({family.name})",
                d.seconds <= fast.seconds,
                f"default {d.seconds * 1e3:.2f} ms vs gc-fast {fast.seconds * 1e3:.2f} ms "
                f"(fastest: {d.best_seconds * 1e3:.2f} vs {fast.best_seconds * 1e3:.2f})",
            )
    for size, table in detection.items():
        real = [r for r in table if not r.control]
        for mine in ("default", "default-noref"):
            ours = sum(r.detected(mine) for r in real)
            for column in (c for c in GRADCHECK_COLUMNS if any(c in r.outcomes for r in real)):
                theirs = sum(r.detected(column) for r in real)
                only_theirs = [r.mistake for r in real if r.detected(column) and not r.detected(mine)]
                verdict(
                    f"detection {mine} >= {column} at {size}",
                    ours >= theirs and not only_theirs,
                    f"{ours} vs {theirs} of {len(real)}"
                    + (f"; only {column}: {only_theirs}" if only_theirs else ""),
                )
        alarms = [r.mistake for r in table if r.control and r.detected("default")]
        if table:
            verdict(
                f"no false alarm of default on controls at {size}", not alarms, ", ".join(alarms) or "none"
            )
    for family in FAMILIES:
        r = by.get((family.name, 1_000_000, "default"))
        fb = by.get((family.name, 1_000_000, "fb"))
        if r is not None and fb is not None and r.seconds == r.seconds:
            verdict(
                f"peak memory of default check <= 4x io at 1e6 ({family.name})",
                r.rss_ratio_to_io <= 4,
                f"RSS {r.rss_ratio_to_io:.1f}x, tracemalloc {r.tm_ratio_to_io:.1f}x of io {r.io_bytes / 1e6:.1f} MB "
                f"(fb alone: RSS {fb.rss_ratio_to_io:.1f}x, tracemalloc {fb.tm_ratio_to_io:.1f}x)",
            )
            verdict(
                f"  same, beyond the user's own fb peak ({family.name})",
                r.rss_ratio_to_io - fb.rss_ratio_to_io <= 4,
                f"RSS +{r.rss_ratio_to_io - fb.rss_ratio_to_io:.1f}x, "
                f"tracemalloc +{r.tm_ratio_to_io - fb.tm_ratio_to_io:.1f}x",
            )
    if cli:
        verdict(
            "backprop-check run reference_impls --quiet < 10 s",
            max(cli) < 10,
            ", ".join(f"{s:.2f}" for s in cli) + " s",
        )
    print("\nTARGETS (on medians)")
    for line in lines:
        print(f"  {line['verdict']:7} {line['target']:60} {line['detail']}")
    return lines


def write_csv(path: Path, records: list[dict[str, Any]]) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for record in records:
        fields.extend(k for k in record if k not in fields)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=fields)
            writer.writeheader()
            writer.writerows(records)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would survive the rename
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def warm_up(plan: Plan, log: Callable[[str], None]) -> None:
    """Pay one-time costs (torch._numpy imports, gradcheck's first call) before anything is measured."""
    for family in (f for f in FAMILIES if f.name in plan.families):
        target = bc.get_target(family.target)
        case = make_case(target, family.dims(100), seed=0)
        for method, options in CHECK_COLUMNS.items():
            if method not in plan.methods and method not in plan.detection_columns:
                continue
            if options is None:
                taylor_check(target, case)
            else:
                check_case(target, case, options)
        run_gradcheck(target, case, True)
        if "gc-slow" in plan.methods or "gc-slow" in plan.detection_columns:
            run_gradcheck(target, case, False)
    log("warmed up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes, lower limits (under a minute)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "benchmarks.csv")
    parser.add_argument("--sections", default="cost,detection,cli", help="any of cost, detection, cli")
    parser.add_argument(
        "--sizes", default="", help="comma-separated input-element counts, e.g. 10000,1000000"
    )
    parser.add_argument("--methods", default="", help=f"cost columns, any of {', '.join(COLUMNS)}")
    parser.add_argument("--families", default="", help=", ".join(f.name for f in FAMILIES))
    parser.add_argument("--verbose", action="store_true", help="print each measurement as it is taken")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    log = print if args.verbose else (lambda _: None)
    started = time.perf_counter()
    print(
        f"bench_checks: {os.cpu_count()} cores, numpy {np.__version__}, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}, OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '')}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    plan = Plan.quick() if args.quick else Plan(detection_columns=DETECTION_COLUMNS)
    if args.sizes:
        plan.sizes = tuple(int(float(x)) for x in args.sizes.split(","))
    if args.methods:
        plan.methods = tuple(args.methods.split(","))
    if args.families:
        plan.families = tuple(args.families.split(","))
    warm_up(plan, log)
    cost: list[CostRow] = []
    if "cost" in sections:
        for family in (f for f in FAMILIES if f.name in plan.families):
            for size in plan.sizes:
                if size > family.max_size:
                    print(f"  {family.name} at {size}: skipped ({family.why_not_larger})")
                    continue
                cost.extend(cost_rows(family, size, plan, log))
        print_cost_tables(cost)
        print(f"(cost section done at {time.perf_counter() - started:.0f} s)")
    detection: list[DetectionRow] = []
    detection_1e4: list[DetectionRow] = []
    if "detection" in sections:
        dims = {k: v for k, v in DETECTION_DIMS.items() if k in plan.detection_exercises}
        detection = detection_rows(dims, plan.detection_columns, log)
        print_detection_table(detection, plan.detection_columns, "(about 1e3 input elements)")
        if plan.detection_1e4:
            detection_1e4 = detection_rows(DETECTION_DIMS_1E4, DETECTION_COLUMNS_1E4, log)
            print_detection_table(
                detection_1e4,
                DETECTION_COLUMNS_1E4,
                "(about 1e4 input elements; full and gc-slow left out: slow)",
            )
        print(f"(detection section done at {time.perf_counter() - started:.0f} s)")
    cli = cli_seconds(plan.cli_runs) if "cli" in sections else []
    targets = print_targets(cost, {"1e3": detection, "1e4": detection_1e4}, cli)
    records: list[dict[str, Any]] = [{"section": "cost", **asdict(r)} for r in cost]
    for label, table in (("detection_1e3", detection), ("detection_1e4", detection_1e4)):
        for r in table:
            for column, outcome in r.outcomes.items():
                if not column.endswith(" note"):
                    records.append(
                        {
                            "section": label,
                            "family": r.exercise,
                            "dims": r.dims,
                            "method": column,
                            "mistake": r.mistake,
                            "control": r.control,
                            "ok": outcome,
                            "note": r.outcomes.get(column + " note", ""),
                        }
                    )
    records.extend(
        {"section": "cli", "method": "backprop-check run reference_impls --quiet", "seconds": s} for s in cli
    )
    records.extend(
        {"section": "target", "method": t["target"], "ok": t["verdict"], "note": t["detail"]} for t in targets
    )
    write_csv(args.out, records)
    seconds = time.perf_counter() - started
    print(
        f"\nwrote {args.out} ({len(records)} rows) in {seconds:.0f} s (of which {plan.waited:.0f} s waiting "
        f"for other processes); load average now {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
