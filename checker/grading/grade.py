"""Grade submissions: plan the cases, run every submission in its own sandbox, judge, total, write.

Exit rule (the CI gate): every submission must reach ``min_score``, a fraction of its total points.

After student code has run, the grader imports nothing a student could have written to. That holds by
construction: in the sandbox every host file is read-only or absent, and its tmpfs folders die with it.
As a second line (and the only one under ``--no-sandbox``), everything the outputs need is imported
and exercised once before the first submission runs (``outputs.warm_up``).
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from checker.grading import localization
from checker.grading.cluster import Engine, Interrupts, collect_runs, engine_for, not_graded_run
from checker.grading.imports import parse_source
from checker.grading.plan import plan_exercises
from checker.grading.records import Limits, SubmissionRun, clean_text
from checker.grading.runs import NO_SANDBOX
from checker.grading.scoring import ExerciseGrade, grade_exercise, run_problem

__all__ = ["GradeReport", "defined_names", "grade", "select_exercises"]


def _sources(submission: Path) -> list[Path]:
    return sorted(submission.glob("*.py")) if submission.is_dir() else [submission]


def defined_names(submission: Path) -> set[str]:
    """Top-level function and class names a submission defines (read, never imported)."""
    names: set[str] = set()
    for path in _sources(submission):
        try:
            tree = parse_source(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, MemoryError, RecursionError, OSError):
            continue  # that submission's own run reports the problem; the others are graded as usual
        names |= {
            n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        }
    return names


def select_exercises(
    submissions: Sequence[Path], names: Sequence[str] | None, bank: Sequence[Any]
) -> list[Any]:
    """The exercises named, or those whose functions any submission defines (all are then graded for everyone)."""
    by_name = {e.name: e for e in bank}
    if names:
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValueError(f"unknown exercise(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
        return [by_name[n] for n in names]
    defined: set[str] = set()
    for submission in submissions:
        defined |= defined_names(submission)
    chosen = [e for e in bank if any(f in defined for f in e.functions)]
    if not chosen:
        raise ValueError(
            "no submission defines a function of any exercise (e.g. affine_forward); "
            "name the exercises with --exercises or check the file names"
        )
    return chosen


@dataclass
class GradeReport:
    """Every grade, every worker run, and the settings; ``frame()`` is one row per submission x exercise.
    ``not_graded``: submission -> why it was not graded (interrupted, or it ended every Dask worker it
    ran on); its rows score 0 with status ``not graded``. ``interrupted``: the signal's name, or ""."""

    grades: list[ExerciseGrade]
    runs: list[SubmissionRun]
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    sandbox: str = ""
    not_graded: dict[str, str] = field(default_factory=dict)
    interrupted: str = ""

    @property
    def sandboxed(self) -> bool:
        return self.sandbox != NO_SANDBOX

    def totals(self) -> dict[str, tuple[float, float]]:
        """submission -> (score, max score)."""
        totals: dict[str, tuple[float, float]] = {}
        for g in self.grades:
            score, most = totals.get(g.submission, (0.0, 0.0))
            totals[g.submission] = (score + g.score, most + g.max_score)
        return totals

    def frame(self) -> Any:
        import pandas as pd

        rows = [
            {
                "submission": g.submission,
                "exercise": g.exercise,
                "score": g.score,
                "max_score": g.max_score,
                "passed_checks": g.passed,
                "total_checks": g.total,
                "status": "not graded" if g.submission in self.not_graded else g.status,
                "diagnosis": g.diagnosis,
                "hint": g.hint,
                "message": g.message,
                "seconds": round(g.seconds, 4),
                "sandbox": self.sandbox,
            }
            for g in self.grades
        ]
        for submission, (score, most) in self.totals().items():
            rows.append(
                {
                    "submission": submission,
                    "exercise": "TOTAL",
                    "score": round(score, 4),
                    "max_score": most,
                    "passed_checks": sum(g.passed for g in self.grades if g.submission == submission),
                    "total_checks": sum(g.total for g in self.grades if g.submission == submission),
                    "status": "not graded"
                    if submission in self.not_graded
                    else ("passed" if score >= most else "failed"),
                    "diagnosis": "",
                    "hint": "",
                    "message": self.problem(submission),
                    "seconds": round(sum(g.seconds for g in self.grades if g.submission == submission), 4),
                    "sandbox": self.sandbox,
                }
            )
        return pd.DataFrame(rows)

    def problem(self, submission: str) -> str:
        if submission in self.not_graded:
            return f"not graded: {self.not_graded[submission]}"
        run = next((r for r in self.runs if _name(Path(r.submission)) == submission), None)
        return run_problem(run) if run is not None else ""

    def passes(self, min_score: float) -> bool:
        return all(most == 0 or score / most >= min_score - 1e-12 for score, most in self.totals().values())


def _name(path: Path) -> str:
    return clean_text(path.stem if path.suffix == ".py" else path.name, 200)


def grade(
    submissions: Sequence[Path | str],
    exercises: Sequence[Any],
    *,
    seed: int = 0,
    cases: int | None = None,
    limits: Limits | None = None,
    jobs: int = 2,
    sandboxed: bool = True,
    scheduler: str | None = None,
    engine: Engine | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    interrupts: Interrupts | None = None,
    localize: bool = True,
) -> GradeReport:
    """Grade each submission on ``exercises``; a broken or hostile submission only hurts itself.

    Where they run: ``engine`` (kept open), else the one ``scheduler`` names (``cluster.engine_for``:
    None for the local pool of ``jobs`` threads, ``local:N`` or a Dask address; closed at the end).
    An interruption (Ctrl-C; SIGTERM too under ``interrupts``) while submissions run returns a complete
    report: what finished, and "not graded" rows for the rest (``GradeReport.interrupted`` says so).

    Raises ``SandboxUnavailable`` (before any submission runs) when no sandbox can be made, unless
    ``sandboxed=False``: trusted code only, and every output then says it ran without a sandbox.
    ``progress(done, total, last)`` is told when grading starts and as each submission finishes.

    ``localize``: where an exercise's hint would be the generic one about a wrong gradient, run one
    failing case again, unscored, with the backward traced, and say where it goes wrong instead
    (:mod:`checker.grading.localization`); the scores are the same either way."""
    from checker.grading import outputs

    started = time.perf_counter()
    owned = engine is None
    engine = engine or engine_for(scheduler, jobs)
    try:
        sandbox = engine.sandbox(sandboxed)
        outputs.warm_up()
        paths = [Path(s) for s in submissions]
        if progress is not None:
            progress(0, len(paths), "")
        planned, arrays = plan_exercises(list(exercises), seed=seed, cases=cases)
        calls = [c.call for c in planned]
        limits = limits or Limits()
        cases_of = {e.name: [c for c in planned if c.exercise.name == e.name] for e in exercises}
        forwards = localization.warm_up(cases_of) if localize else {}
        judged: dict[int, list[ExerciseGrade]] = {}

        def judge(index: int, run: SubmissionRun) -> None:
            name = _name(paths[index])
            judged[index] = [grade_exercise(name, e, cases_of[e.name], run) for e in exercises]

        def told(done: int, total: int, failed: int, index: int) -> None:
            if progress is not None:
                errors = f" ({failed} with errors so far)" if failed else ""
                progress(done, total, _name(paths[index]) + errors)

        collected = collect_runs(
            engine,
            paths,
            calls,
            arrays,
            limits,
            sandboxed=sandboxed,
            progress=told,
            interrupts=interrupts,
            on_run=judge,  # each run is judged as it arrives, while the others run
        )
        if localize and not collected.interrupted:
            located = {i: judged[i] for i in judged if i not in collected.not_graded}
            try:
                with interrupts.arm() if interrupts else nullcontext():
                    localization.localize_hints(
                        engine, paths, located, cases_of, limits, sandboxed=sandboxed, forwards=forwards
                    )
            except KeyboardInterrupt:  # every submission is graded: only the feedback is cut short
                engine.stop()
    finally:
        if owned:
            engine.close()
    runs = [
        run or not_graded_run(path, calls, limits, sandbox, collected.not_graded[i])
        for i, (path, run) in enumerate(zip(paths, collected.runs, strict=True))
    ]
    grades: list[ExerciseGrade] = []
    for i, run in enumerate(runs):
        if i in collected.not_graded:
            judge(i, run)
            why = f"not graded: {collected.not_graded[i]}"
            judged[i] = [replace(g, message=why, hint="", diagnosis="") for g in judged[i]]
        elif i not in judged:  # the interruption came while it was being judged
            judge(i, run)
        grades += judged[i]
    settings = {
        "seed": seed,
        "cases": cases,
        "exercises": [e.name for e in exercises],
        "jobs": jobs,
        "engine": engine.description,
    }
    not_graded = {_name(paths[i]): reason for i, reason in sorted(collected.not_graded.items())}
    return GradeReport(
        grades, runs, settings, time.perf_counter() - started, sandbox, not_graded, collected.interrupted
    )
