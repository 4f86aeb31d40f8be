"""False alarms at every precision: the sweep of ``tests/test_precision_sweep.py`` at many seeds.

    python benchmarks/bench_false_alarms.py [--seeds 100] [--oracles fd,torch,autograd] [--mode auto] [--jobs 2]

Every correct exercise of the bank and every README example, as written (float64) and rewritten to
compute in float32 (and float16 where it makes sense), on inputs at an offset of 1e3 (float32: 1e2) and
at scales 1e3 and 1e-3, each at ``--seeds`` seeds with the default cases. Prints each false alarm (a
failing row of correct code, but for a forward that overflowed: ``log(softmax)`` in float32 at scale
1e3 is told so, and rightly) and the count. ``--mode full`` runs every oracle on every gradient (the
default lets one exact oracle decide): each oracle's own false alarms. Then the bank's planted mistakes rewritten in float32:
detected and named as labelled. Measured, never asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _sweep_one(job: tuple[str, int, str, tuple[str, ...], str]) -> tuple[str, int, int, list[str]]:
    """(function, runs, false alarms, descriptions) for one target of the sweep at its seeds."""
    import checker as bc
    from tests.test_precision_sweep import false_alarms
    from tests.variants import bank_targets, readme_targets, sweep_variants

    name, seeds, source, oracles, mode = job
    targets = bank_targets() if source == "bank" else readme_targets()
    target = next(t for t in targets if t.name == name)
    runs, alarms, found = 0, 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for label, variant in sweep_variants(target):
            for seed in range(seeds):
                report = bc.check(variant, seed=seed, oracles=list(oracles), mode=mode)
                runs += 1
                bad = false_alarms(report)
                if bad:
                    alarms += 1
                    frame = report.frame
                    row = frame[frame.status.isin(["fail", "error"])].iloc[0]
                    found.append(
                        f"{name} {label} seed={seed} {row.dims} [{row.check} {row.target}] {row.message[:160]}"
                    )
    return name, runs, alarms, found


def _mistake_table() -> tuple[int, int, int, int]:
    import numpy as np

    import checker as bc
    import reference_impls
    from reference_impls.mistakes import MISTAKES
    from tests.variants import rewritten

    detected = named = labelled = real = 0
    for mistake in MISTAKES:
        if mistake.control or mistake.diagnosis == "mutates_input":
            continue
        exercise = reference_impls.exercise(mistake.exercise)
        target = bc.variant(bc.get_target(exercise.name, module=exercise.module), mistake.replaces)
        report = bc.check(rewritten(target, dtype=np.float32), cases=4, shrink=False)
        frame = report.frame
        codes = set(frame[frame.status.isin(["fail", "error"])].diagnosis) - {""}
        real += 1
        detected += not report.passed
        if mistake.diagnosis:
            labelled += 1
            named += mistake.diagnosis in codes
    return detected, real, named, labelled


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--oracles", default="fd,torch,autograd")
    parser.add_argument("--mode", default="auto", help="auto, or full: every oracle on every gradient")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-mistakes", action="store_true")
    args = parser.parse_args()
    from tests.variants import bank_targets, readme_targets

    oracles = tuple(args.oracles.split(","))
    jobs = [(t.name, args.seeds, "bank", oracles, args.mode) for t in bank_targets()]
    jobs += [(t.name, args.seeds, "readme", oracles, args.mode) for t in readme_targets()]
    started = time.perf_counter()
    runs = alarms = 0
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name, n, bad, found in pool.map(_sweep_one, jobs):
            runs += n
            alarms += bad
            for line in found:
                print("FALSE ALARM", line)
            print(f"{name:24} {n:5} runs, {bad} false alarms", flush=True)
    minutes = (time.perf_counter() - started) / 60
    print(
        f"\n{alarms} false alarms in {runs} runs ({args.seeds} seeds, oracles {args.oracles}, mode {args.mode}, {minutes:.1f} min)"
    )
    if not args.skip_mistakes:
        detected, real, named, labelled = _mistake_table()
        print(
            f"planted mistakes in float32: detected {detected}/{real}, named as labelled {named}/{labelled}"
        )


if __name__ == "__main__":
    main()
