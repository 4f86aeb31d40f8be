"""The exercise bank: every reference passes across fuzzed cases (kinks included), every planted
mistake is caught with the diagnosis it is labelled with, and every control stays quiet.

``test_mistake_table`` prints the whole table with the detection and diagnosis rates
(``pytest tests/test_bank.py -k table -s`` shows it).
"""

from __future__ import annotations

import functools

import pytest

import checker as bc
import reference_impls
from reference_impls.mistakes import MISTAKES

SEEDS = (0, 1, 2)


def bank_target(name: str) -> bc.Target:
    """The bank's own registration (tests elsewhere register functions with the same names)."""
    return bc.get_target(name, module=reference_impls.exercise(name).module)


@pytest.mark.parametrize("exercise", [e.name for e in reference_impls.EXERCISES])
def test_reference_passes_every_check_across_fuzzed_cases(exercise):
    for seed in SEEDS:
        report = bc.check(bank_target(exercise), seed=seed, cases=6)
        frame = report.frame
        failures = frame[frame.status.isin(["fail", "error"])]
        assert report.passed, failures[["dims", "check", "target", "message"]].to_string()
        assert not (frame.diagnosis != "").any()


def test_every_exercise_is_registered_with_a_torch_oracle_and_a_statement():
    for exercise in reference_impls.EXERCISES:
        target = bank_target(exercise.name)
        assert target.torch_forward is not None, exercise.name
        assert exercise.statement and exercise.teaches and exercise.points > 0
        assert len([m for m in MISTAKES if m.exercise == exercise.name and not m.control]) >= 2, exercise.name


@functools.cache
def outcome(index: int) -> tuple[bool, tuple[str, ...]]:
    """(detected, diagnosis codes of the failing rows) for MISTAKES[index]."""
    mistake = MISTAKES[index]
    target = bc.variant(bank_target(mistake.exercise), mistake.replaces)
    report = bc.check(target, cases=4, shrink=False)
    frame = report.frame
    codes = set(frame[frame.status.isin(["fail", "error"])].diagnosis) - {""}
    return not report.passed, tuple(sorted(codes))


def ids() -> list[str]:
    return [f"{m.exercise}-{m.name}" for m in MISTAKES]


@pytest.mark.parametrize("index", range(len(MISTAKES)), ids=ids())
def test_planted_mistake_is_caught_with_its_diagnosis(index):
    mistake = MISTAKES[index]
    detected, codes = outcome(index)
    if mistake.control:
        assert not detected, f"control {mistake.name} was flagged: {codes}"
        return
    assert detected, f"{mistake.exercise}/{mistake.name} was not detected"
    if mistake.diagnosis:
        assert mistake.diagnosis in codes, f"expected {mistake.diagnosis}, got {codes}"


def test_mistake_table(capsys):
    lines = [f"{'exercise':16} {'mistake':34} {'label':22} {'detected':9} diagnoses"]
    detected_count = diagnosed = labelled = real = 0
    for index, mistake in enumerate(MISTAKES):
        detected, codes = outcome(index)
        if not mistake.control:
            real += 1
            detected_count += detected
            if mistake.diagnosis:
                labelled += 1
                diagnosed += mistake.diagnosis in codes
        label = "control" if mistake.control else (mistake.diagnosis or "-")
        lines.append(f"{mistake.exercise:16} {mistake.name:34} {label:22} {detected!s:9} {', '.join(codes)}")
    lines.append(
        f"detection rate: {detected_count}/{real}; diagnosis rate: {diagnosed}/{labelled} labelled mistakes"
    )
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert detected_count == real
    assert diagnosed == labelled
