"""The ``practice`` and ``grade`` sub-commands: thin doors over :mod:`checker.grading`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_commands"]


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number; give a fraction of the points, 0 to 1"
        ) from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"--min-score {text}: give a fraction of the points, from 0 to 1")
    return value


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be > 0")
        return value

    return parse


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``practice`` and ``grade`` on the CLI's sub-parsers."""
    practice = sub.add_parser("practice", help="write a skeleton file for an exercise of the bank")
    practice.add_argument(
        "name", help="exercise name (backprop-check practice --list to see them)", nargs="?"
    )
    practice.add_argument("--out", default=None, help="file to write (default NAME_practice.py)")
    practice.add_argument("--list", action="store_true", help="list the exercises")
    practice.add_argument("--force", action="store_true", help="overwrite an existing file")
    practice.set_defaults(handler=_practice)

    grade = sub.add_parser("grade", help="grade submissions (.py files or folders) against the exercise bank")
    grade.add_argument("submissions", nargs="+", metavar="SUBMISSION")
    grade.add_argument(
        "--exercises",
        default=None,
        help="comma-separated exercise names (default: those the submissions define)",
    )
    grade.add_argument(
        "--jobs",
        type=_positive(int),
        default=2,
        help="submissions graded in parallel on this machine (default 2; without --scheduler)",
    )
    grade.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="grade on a Dask cluster: its scheduler (tcp://HOST:8786 or a scheduler.json file), or local:N "
        'to start N worker processes here; needs the cluster extra (pip install -e ".[cluster]")',
    )
    grade.add_argument(
        "--timeout",
        type=_positive(float),
        default=60.0,
        help="wall-clock seconds per submission (default 60)",
    )
    grade.add_argument(
        "--memory", type=_positive(int), default=2048, help="address-space limit in MB (default 2048)"
    )
    grade.add_argument(
        "--min-score",
        type=_fraction,
        default=1.0,
        help="fraction of the points every submission must reach (default 1.0)",
    )
    grade.add_argument("--out", default=None, help="folder for scores.csv, junit.xml, gradescope/*.json")
    grade.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run submissions without a sandbox: trusted code only (every output then says so)",
    )
    grade.add_argument(
        "--no-localize",
        action="store_true",
        help="skip the unscored second run that finds the first wrong step of a wrong gradient for the "
        "hint (faster; the scores are the same)",
    )
    grade.add_argument("--seed", type=int, default=0)
    grade.add_argument("--cases", type=_positive(int), default=None, help="cases per exercise (default 4)")
    grade.set_defaults(handler=_grade)


def _bank() -> list[Any]:
    import reference_impls

    return list(reference_impls.EXERCISES)


def _practice(args: argparse.Namespace) -> int:
    from checker.grading.practice import skeleton

    bank = {e.name: e for e in _bank()}
    if args.list or not args.name:
        for e in bank.values():
            print(f"{e.name:18} {e.points:3} pts  {e.title}")
        return 0
    if args.name not in bank:
        raise ValueError(f"no exercise {args.name!r}; known: {', '.join(bank)}")
    out = Path(args.out or f"{args.name}_practice.py")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists; pass --force to overwrite it or --out to choose another file")
    from checker.report import atomic_write

    atomic_write(out, skeleton(bank[args.name], str(out)))
    print(
        f"wrote {out}: implement {', '.join(bank[args.name].functions)}, then run: backprop-check grade {out}"
    )
    return 0


def _grade(args: argparse.Namespace) -> int:
    from checker.grading.cluster import ClusterUnavailable, Interrupts, engine_for
    from checker.grading.grade import grade, select_exercises
    from checker.grading.records import Limits
    from checker.grading.runtime import SandboxUnavailable
    from checker.presentation.terminal import GradeProgress, console_for

    paths = [Path(s) for s in args.submissions]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise ValueError(f"no such submission: {', '.join(missing)}")
    names = [n.strip() for n in args.exercises.split(",") if n.strip()] if args.exercises else None
    exercises = select_exercises(paths, names, _bank())
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory)
    console = console_for()
    # From here on SIGINT/SIGTERM interrupt the running of submissions only; the reports are then
    # still written whole, with a "not graded" row for what had not finished.
    with Interrupts() as interrupts:
        try:
            engine = engine_for(args.scheduler, args.jobs)
        except ClusterUnavailable as exc:
            print(f"backprop-check: error: {exc}", file=sys.stderr)
            return 2
        if engine.dashboard_link and console.is_terminal:
            console.print(f"Dask dashboard: {engine.dashboard_link}", markup=False)
        try:
            with GradeProgress(console) as progress:
                report = grade(
                    paths,
                    exercises,
                    seed=args.seed,
                    cases=args.cases,
                    limits=limits,
                    sandboxed=not args.no_sandbox,
                    localize=not args.no_localize,
                    engine=engine,
                    progress=progress,
                    interrupts=interrupts,
                )
        except (SandboxUnavailable, ClusterUnavailable) as exc:
            print(f"backprop-check: error: {exc}", file=sys.stderr)
            return 2
        finally:
            engine.close()
        code = _show(report, args, console)
    # a signal that came after the submissions had run waited for the reports; it still ends the run
    return 128 + interrupts.signal if interrupts.signal else code


def _show(report: Any, args: argparse.Namespace, console: Any) -> int:
    from rich.table import Table
    from rich.text import Text

    from checker.grading.outputs import sandbox_notice, write_outputs

    table = Table(title="backprop-check grade")
    for column in ("submission", "exercise", "score", "diagnosis", "hint", "seconds"):
        table.add_column(column)
    for g in report.grades:
        colour = "green" if g.status == "passed" else "red"
        table.add_row(  # texts a student influenced are Text, never markup
            Text(g.submission),
            Text(g.exercise),
            Text(f"{g.score:.4g}/{g.max_score:g}", style=colour),
            Text(
                g.diagnosis or (g.message if g.message.startswith(("not implemented", "not graded")) else "")
            ),
            Text(g.hint),
            f"{g.seconds:.2f}",
        )
    console.print(table)
    for submission, (score, most) in report.totals().items():
        problem = report.problem(submission)
        console.print(
            f"{submission}: {score:.4g} / {most:g} points" + (f" ({problem})" if problem else ""),
            markup=False,
        )
    if args.out:
        for path in write_outputs(report, Path(args.out)):
            console.print(f"written: {path}", markup=False)
    console.print(sandbox_notice(report), markup=False)
    ok = report.passes(args.min_score)
    graded = len(report.totals()) - len(report.not_graded)
    console.print(
        f"graded {graded} submission(s) in {report.seconds:.1f} s ({report.settings['engine']}); "
        + ("all reach" if ok else "not all reach")
        + f" --min-score {args.min_score:g}"
        + (f"; {len(report.not_graded)} not graded" if report.not_graded else ""),
        markup=False,
    )
    if report.interrupted:
        console.print(
            f"interrupted by {report.interrupted}: the reports hold what finished and a 'not graded' row "
            "for the rest",
            markup=False,
        )
    return 0 if ok else 1
