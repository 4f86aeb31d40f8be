"""What localising the first wrong step costs on a failing case, on this machine.

    python benchmarks/bench_localize.py [--repeats 20] [--scale 1]

For each staged exercise of the bank and one planted mistake of each: the time of one ``localize``
call (after a warm-up), against one plain forward + backward of the same code and against one
``bc.check`` of one case (the check that failed and triggers localisation). ``--scale`` multiplies
the batch size. Prints a table; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import checker as bc  # noqa: E402
import reference_impls  # noqa: E402
from checker.cases import make_case  # noqa: E402
from checker.execution.calls import call_forward  # noqa: E402
from checker.localize import localize  # noqa: E402
from reference_impls.mistakes import MISTAKES  # noqa: E402

STAGED = [e.name for e in reference_impls.EXERCISES if e.module == "reference_impls.staged"]


def timed(call: object, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(name: str, repeats: int, scale: int) -> str:
    """One table row: the staged exercise ``name`` with its first planted mistake."""
    mistake = next(m for m in MISTAKES if m.exercise == name and not m.control)
    target = bc.variant(bc.get_target(name, module="reference_impls.staged"), mistake.replaces)
    dims = {s: int(v[len(v) // 2]) for s, v in target.dims.items()}
    dims["N"] = dims["N"] * scale
    case = make_case(target, dims, seed=0)
    rng = np.random.default_rng(case.seed + 1)
    douts: tuple[np.ndarray, ...] = ()
    if target.style == "layer":
        outs, _ = call_forward(target, dict(case.arrays), case.fresh_hyper())
        douts = tuple(rng.standard_normal(np.shape(o)) for o in outs)

    def forward_backward() -> None:
        if target.style == "layer":
            _, cache = call_forward(target, dict(case.arrays), case.fresh_hyper())
            target.backward(*douts, cache)
        else:
            target.value_and_grad(*case.arrays.values(), **case.fresh_hyper())

    def run_localize() -> None:
        localize(target, case.arrays, case.fresh_hyper(), douts, dims=case.dims, seed=case.seed)

    def check_once() -> None:
        bc.check(target, cases=1, shrink=False, dims=dims)

    run_localize()  # warm-up: torch._numpy's lazy imports, parsing the user's files
    check_once()
    fb, check, loc = (timed(f, repeats) for f in (forward_backward, check_once, run_localize))
    text = ", ".join(f"{k}={v}" for k, v in dims.items())
    return (
        f"{name:22} {mistake.name:22} {text:38} {fb * 1e3:7.2f}ms {check * 1e3:7.1f}ms {loc * 1e3:7.1f}ms "
        f"{loc / fb:6.0f} {loc / check:8.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--scale", type=int, default=1, help="multiply the batch size N by this")
    args = parser.parse_args()
    head = f"{'exercise':22} {'mistake':22} {'dims':38} {'fwd+bwd':>9} {'check':>9} {'localize':>9}"
    print(head + f" {'x fb':>6} {'x check':>8}")
    for name in STAGED:
        print(measure(name, args.repeats, args.scale))


if __name__ == "__main__":
    main()
