"""No false alarm at any precision: every correct exercise of the bank and every README example, also
rewritten to compute in float32 (and float16 where it makes sense) and on inputs at large offsets and at
large and small scales, passes; the bank's planted mistakes rewritten in float32 are still caught and named.

``benchmarks/bench_false_alarms.py`` runs the same sweep at 100 seeds.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import checker as bc
import reference_impls
from reference_impls.mistakes import MISTAKES
from tests.variants import SWEEP, bank_targets, readme_targets, rewritten, sweep_variants

SEEDS = (0, 1)


def _failures(report: bc.Report) -> str:
    frame = report.frame
    bad = frame[frame.status.isin(["fail", "error"])]
    return bad[["dims", "check", "target", "diagnosis", "message"]].head(5).to_string()


def false_alarms(report: bc.Report) -> int:
    """Failing rows of correct code, but for a forward that is not finite: code written naively
    (``log(softmax)``) that overflows in float32 on inputs scaled by 1e3 is told so, and rightly."""
    frame = report.frame
    bad = frame[frame.status.isin(["fail", "error"])]
    overflow = (bad.check == "finite") & bad.target.isin(["forward", "loss"])
    return int((~overflow).sum())


@functools.cache
def _readme() -> tuple[bc.Target, ...]:
    return tuple(readme_targets())


@pytest.fixture(autouse=True)
def _quiet_user_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the rewritten user code overflowing, on purpose
        yield


@pytest.mark.parametrize("target", bank_targets(), ids=lambda t: t.name)
def test_correct_bank_code_at_every_precision_offset_and_scale_passes(target):
    for label, variant in sweep_variants(target):
        for seed in SEEDS:  # the second seed runs every oracle on every gradient: each one's own false alarms
            report = bc.check(variant, seed=seed, mode="full" if seed else "auto")
            assert report.passed, f"{label}, seed {seed}:\n{_failures(report)}"
            assert not report.frame.diagnosis.ne("").any()


@pytest.mark.parametrize("oracles", [("fd",), ("fd", "autograd")], ids=["fd", "fd+autograd"])
@pytest.mark.parametrize("target", bank_targets(), ids=lambda t: t.name)
def test_without_a_torch_reference_correct_code_still_passes_in_float32(target, oracles):
    for label, variant in sweep_variants(target):
        if "float64" in label:
            continue
        report = bc.check(variant, seed=2, oracles=list(oracles))
        assert report.passed, f"{label} with {oracles}:\n{_failures(report)}"


def test_every_readme_example_passes_at_every_precision_offset_and_scale():
    targets = _readme()
    assert {"affine", "softmax_loss"} <= {t.name for t in targets} and len(targets) >= 4
    for target in targets:
        for label, variant in sweep_variants(target):
            report = bc.check(variant, seed=0)
            assert false_alarms(report) == 0, f"{target.name}, {label}:\n{_failures(report)}"


def test_the_sweep_covers_float32_float16_offsets_and_scales():
    labels = {label for label, *_ in SWEEP}
    assert {"float32", "float16", "float32 offset 1e2", "float32 scale 1e3", "float32 scale 1e-3"} <= labels


# Mutation mistakes write into the caller's float64 arrays; rewritten in float32 they write into a
# float32 copy the rewrite made, which is no mutation: they are not float32 mistakes.
FLOAT32_MISTAKES = [m for m in MISTAKES if not m.control and m.diagnosis != "mutates_input"]


@pytest.mark.parametrize("mistake", FLOAT32_MISTAKES, ids=lambda m: f"{m.exercise}-{m.name}")
def test_planted_mistakes_in_float32_are_caught_and_named(mistake):
    exercise = reference_impls.exercise(mistake.exercise)
    target = bc.variant(bc.get_target(exercise.name, module=exercise.module), mistake.replaces)
    report = bc.check(rewritten(target, dtype=np.float32), cases=4, shrink=False)
    frame = report.frame
    codes = set(frame[frame.status.isin(["fail", "error"])].diagnosis) - {""}
    assert not report.passed, f"{mistake.exercise}/{mistake.name} was not detected in float32"
    if mistake.diagnosis:
        assert mistake.diagnosis in codes, f"expected {mistake.diagnosis}, got {codes}"
    assert (frame[frame.status == "fail"].precision == "float32").all()
