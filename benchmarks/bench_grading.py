"""Grading throughput: a class of generated submissions x every exercise of the bank, on this machine.

    python benchmarks/bench_grading.py [--students 100] [--jobs 2] [--no-localize]

Each generated student is a folder with one file per exercise: the reference solution, or (with
probability 0.3 per exercise) one of the bank's planted mistakes. Prints submissions per minute and
checks that every reference exercise got full marks and every mistake less (a fast grader that
grades wrongly is no win). ``--no-localize`` leaves out the unscored trace calls that say where a
backward goes wrong (the difference is their cost; the scores are the same).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import reference_impls  # noqa: E402
from checker.grading.grade import grade  # noqa: E402
from reference_impls.mistakes import MISTAKES  # noqa: E402
from tests.bank_sources import submission_source  # noqa: E402


def make_class(folder: Path, students: int, seed: int) -> dict[tuple[str, str], bool]:
    """Write the submissions; returns (student, exercise) -> True when that exercise is the reference."""
    rng = random.Random(seed)
    truth: dict[tuple[str, str], bool] = {}
    for i in range(students):
        student = folder / f"student{i:03d}"
        student.mkdir()
        for exercise in reference_impls.EXERCISES:
            mistakes = [m for m in MISTAKES if m.exercise == exercise.name and not m.control]
            planted = mistakes and rng.random() < 0.3
            replaces = rng.choice(mistakes).replaces if planted else None
            (student / f"{exercise.name}.py").write_text(submission_source(exercise, replaces))
            truth[(student.name, exercise.name)] = not planted
    return truth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-localize", action="store_true", help="no trace calls for the hints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.chmod(folder, 0o755)
        truth = make_class(folder, args.students, args.seed)
        submissions = sorted(p for p in folder.iterdir() if p.is_dir())
        started = time.perf_counter()
        report = grade(
            submissions,
            reference_impls.EXERCISES,
            seed=args.seed,
            jobs=args.jobs,
            localize=not args.no_localize,
        )
        seconds = time.perf_counter() - started
    wrong = [
        (g.submission, g.exercise, g.score)
        for g in report.grades
        if (g.score == g.max_score) != truth[(g.submission, g.exercise)]
    ]
    per_minute = 60 * len(submissions) / seconds
    print(
        f"graded {len(submissions)} submissions x {len(reference_impls.EXERCISES)} exercises "
        f"on {os.cpu_count()} cores with --jobs {args.jobs}: {seconds:.1f} s, {per_minute:.0f} submissions/minute"
    )
    located = sum("is the first wrong step" in g.hint for g in report.grades)
    failed = sum(g.score < g.max_score for g in report.grades)
    print(f"hints that name the first wrong step: {located} of {failed} failed exercises")
    print(f"grades that disagree with what was planted: {len(wrong)}")
    for item in wrong[:10]:
        print("  ", item)
    return 0 if not wrong else 1


if __name__ == "__main__":
    sys.exit(main())
