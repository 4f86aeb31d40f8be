"""Speed a person feels: one small case against gradcheck's fast mode, side by side, and start-up.

    python benchmarks/bench_small_cases.py [--repeats 15]

1. One case of an affine layer (every dim pinned, the torch reference given) through the user's own
   path, ``bc.check(target, dims=..., cases=1, shrink=False)``, against
   ``torch.autograd.gradcheck(fast_mode=True)`` on the same numpy code wrapped in a
   ``torch.autograd.Function``, in one process, after a warm-up call of each: the median of
   ``--repeats`` calls, alternating the two so that load from other processes hits both alike. The ratio
   is backprop-check / gradcheck (below 1: backprop-check is faster, while doing more: shape, mutation,
   determinism, finiteness, two oracles, a diagnosis on failure).
2. Start-up: ``python -c "import checker.cli"`` and ``backprop-check run reference_impls --quiet`` wall
   seconds (median of 3), and the warm-up the run reports apart (torch._numpy's lazy imports), which is
   never charged to a function's ``seconds``.
Measured, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.autograd.gradcheck import GradcheckError  # noqa: E402

import checker as bc  # noqa: E402

SIZES = (4, 8, 16, 32, 48, 100, 200, 400)


def affine_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, Any]:
    return x @ w + b, (x, w)


def affine_backward(dout: np.ndarray, cache: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, w = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


class NumpyAffine(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        out, cache = affine_forward(x.detach().numpy(), w.detach().numpy(), b.detach().numpy())
        ctx.cache = cache
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx: Any, dout: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.from_numpy(g) for g in affine_backward(dout.detach().numpy(), ctx.cache))


def gradcheck_fast(n: int) -> None:
    rng = np.random.default_rng(0)
    inputs = [torch.tensor(rng.standard_normal(s), requires_grad=True) for s in ((n, n), (n, n), (n,))]
    try:
        torch.autograd.gradcheck(NumpyAffine.apply, inputs, fast_mode=True)
    except GradcheckError:
        pass


def small_cases(repeats: int) -> list[tuple[int, float, float]]:
    target = bc.register(
        "bench_affine", forward=affine_forward, backward=affine_backward,
        inputs={"x": "N,D", "w": "D,M", "b": "M"}, torch_forward=lambda x, w, b: x @ w + b,
    )  # fmt: skip
    rows = []
    for n in SIZES:
        dims = {"N": n, "D": n, "M": n}

        def ours(dims: dict[str, int] = dims) -> None:
            report = bc.check(target, dims=dims, cases=1, shrink=False)
            assert report.passed

        def theirs(n: int = n) -> None:
            gradcheck_fast(n)

        ours()
        theirs()  # warm-up of each
        a, b = [], []
        for _ in range(repeats):
            for fn, into in ((ours, a), (theirs, b)):
                started = time.perf_counter()
                fn()
                into.append(time.perf_counter() - started)
        rows.append((n, statistics.median(a), statistics.median(b)))
    return rows


def wall(command: list[str], repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, cwd=ROOT, capture_output=True, check=False)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"{'N=D=M':>6} {'elements':>9} {'backprop-check':>15} {'gradcheck fast':>15} {'ratio':>6}")
    for n, ours, theirs in small_cases(args.repeats):
        print(f"{n:6} {2 * n * n + n:9} {ours * 1e3:12.2f} ms {theirs * 1e3:12.2f} ms {ours / theirs:6.2f}")
    imports = wall([sys.executable, "-c", "import checker.cli"])
    run = wall([sys.executable, "-m", "checker.cli", "run", "reference_impls", "--quiet"])
    report = bc.run("reference_impls")
    print(
        f"\nimport checker.cli: {imports:.2f} s; backprop-check run reference_impls --quiet: {run:.2f} s wall"
    )
    print(f"warm-up reported apart (this process, already warm: {report.settings['warm_up_seconds']:.2f} s)")


if __name__ == "__main__":
    main()
