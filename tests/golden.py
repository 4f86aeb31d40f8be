"""The behaviour of the harness, saved: what a refactoring must leave unchanged.

    python -m tests.golden --write     # after a change of behaviour that is meant
    python -m pytest tests/test_golden.py

Three snapshots, each a CSV under ``tests/golden/``: the records of ``backprop-check run
reference_impls`` (seed 0); the records of every planted mistake of the bank (seeds 0 and 1, four
cases, no shrinking); the ``scores.csv`` rows of grading a student with every reference solution and
one student per planted mistake. The ``seconds`` columns are left out: they are the only thing a
move of code may change.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

FOLDER = Path(__file__).parent / "golden"
#: The report's volatile columns: times, and the precision column's absence in older snapshots.
IGNORED = ("seconds",)


def reference_records() -> pd.DataFrame:
    import checker as bc

    frame = bc.run("reference_impls", seed=0).frame
    return frame.drop(columns=list(IGNORED))


def mistake_records() -> pd.DataFrame:
    import checker as bc
    import reference_impls
    from reference_impls.mistakes import MISTAKES

    frames = []
    for mistake in MISTAKES:
        exercise = reference_impls.exercise(mistake.exercise)
        target = bc.variant(bc.get_target(exercise.name, module=exercise.module), mistake.replaces)
        for seed in (0, 1):
            _forget_module_state(mistake.replaces.values())
            frame = bc.check(target, seed=seed, cases=4, shrink=False).frame
            frame.insert(0, "mistake", f"{mistake.exercise}/{mistake.name}")
            frames.append(frame)
    return pd.concat(frames, ignore_index=True).drop(columns=list(IGNORED))


def _forget_module_state(functions: Any) -> None:
    """Empty the module-level buffers a planted mistake keeps between calls (an accumulating gradient
    buffer), so that its records do not depend on which tests ran before in the same process."""
    for function in functions:
        module = sys.modules.get(getattr(function, "__module__", ""), None)
        for name, value in vars(module).items() if module is not None else ():
            if name.startswith("_") and not name.startswith("__") and isinstance(value, (dict, list, set)):
                value.clear()


def grading_scores() -> pd.DataFrame:
    import reference_impls
    from checker.grading.grade import grade
    from reference_impls.mistakes import MISTAKES
    from tests.bank_sources import submission_source

    with tempfile.TemporaryDirectory(prefix="bc-golden-") as folder:
        root = Path(folder)
        complete = root / "complete_student"
        complete.mkdir()
        for exercise in reference_impls.EXERCISES:
            (complete / f"{exercise.name}.py").write_text(submission_source(exercise))
        submissions = [complete]
        for mistake in MISTAKES:
            path = root / f"{mistake.exercise}__{mistake.name}.py"
            path.write_text(submission_source(reference_impls.exercise(mistake.exercise), mistake.replaces))
            submissions.append(path)
        report = grade(submissions, reference_impls.EXERCISES, seed=0, jobs=2)
        frame = report.frame()
    keep = frame.exercise.eq("TOTAL") | frame.submission.eq("complete_student")
    keep |= frame.apply(lambda r: r.submission.split("__")[0] == r.exercise, axis=1)
    return frame[keep].drop(columns=list(IGNORED)).reset_index(drop=True)


SNAPSHOTS: dict[str, Callable[[], pd.DataFrame]] = {
    "reference.csv": reference_records,
    "mistakes.csv": mistake_records,
    "grading.csv": grading_scores,
}


def read(name: str) -> pd.DataFrame:
    return pd.read_csv(FOLDER / name, keep_default_na=False, na_values=["nan"], dtype=str)


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text a CSV round trip gives, so that saved and fresh frames compare exactly."""
    with tempfile.TemporaryFile("w+") as handle:
        frame.to_csv(handle, index=False)
        handle.seek(0)
        return pd.read_csv(handle, keep_default_na=False, na_values=["nan"], dtype=str)


def differences(name: str, fresh: pd.DataFrame) -> list[str]:
    """The rows of ``fresh`` that differ from the saved snapshot ``name`` (at most 20, as text)."""
    saved, now = read(name), as_text(fresh)
    if list(saved.columns) != list(now.columns):
        return [f"{name}: columns {list(saved.columns)} became {list(now.columns)}"]
    if len(saved) != len(now):
        return [f"{name}: {len(saved)} rows became {len(now)}"]
    found: list[str] = []
    for index in range(len(saved)):
        before, after = saved.iloc[index], now.iloc[index]
        changed = [c for c in saved.columns if before[c] != after[c]]
        if changed:
            found.append(
                f"{name} row {index}: " + "; ".join(f"{c}: {before[c]!r} -> {after[c]!r}" for c in changed)
            )
        if len(found) >= 20:
            break
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--write", action="store_true", help="save fresh snapshots")
    parser.add_argument("names", nargs="*", default=list(SNAPSHOTS))
    args = parser.parse_args(argv)
    status = 0
    for name in args.names:
        fresh = SNAPSHOTS[name]()
        if args.write:
            FOLDER.mkdir(exist_ok=True)
            fresh.to_csv(FOLDER / name, index=False)
            print(f"wrote {FOLDER / name}: {len(fresh)} rows")
            continue
        found = differences(name, fresh)
        print("\n".join(found) if found else f"{name}: unchanged")
        status |= bool(found)
    return status


def _cli() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    _cli()
