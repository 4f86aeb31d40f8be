"""``backprop-check``: a thin door over the runner. Exit codes: 0 all passed, 1 a check failed, 2 usage error."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from checker.errors import BackpropCheckError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _UsageError(Exception):
    pass


def _dims_argument(text: str) -> dict[str, int]:
    """``N=1,D=3`` -> ``{"N": 1, "D": 3}``."""
    dims: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not value.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--dims {text!r}: expected SYMBOL=SIZE pairs like N=1,D=3")
        dims[key.strip()] = int(value)
    return dims


def _oracles_argument(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = sorted(set(names) - {"fd", "torch", "autograd"})
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--oracles {text!r}: choose from fd, torch, autograd (comma-separated)"
        )
    return names


def _seeds_argument(text: str) -> tuple[int, ...]:
    from checker.errors import SpecError
    from checker.spec import parse_seeds

    try:
        return parse_seeds(text, "--seed")
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return int(text)


def _seconds_argument(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(
            f"{text!r} must be a finite number of seconds > 0, e.g. --timeout 60"
        )
    return seconds


def _tolerance_argument(text: str) -> dict[str, float]:
    """``rtol=1e-5,fd_rtol=1e-3`` -> dict."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"--tol {text!r}: expected KEY=NUMBER pairs like rtol=1e-5,fd_rtol=1e-3"
            ) from None
        if not sep:
            raise argparse.ArgumentTypeError(f"--tol {text!r}: expected KEY=NUMBER pairs")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="backprop-check", description="Verify hand-written backpropagation."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="check every function a module or .py file registers")
    run.add_argument(
        "targets", nargs="+", metavar="TARGET", help="a module name (reference_impls) or a .py path"
    )
    run.add_argument(
        "--report",
        action="append",
        default=[],
        metavar="PATH",
        help="write a report (.csv .json .md .html); repeatable",
    )
    run.add_argument(
        "--seed",
        type=_seeds_argument,
        default=(0,),
        help="random seed (default 0), or several: 0,1,2 or 0-9 (each row says its seed); "
        "the same seed gives the same cases",
    )
    run.add_argument("--cases", type=_positive_int, default=None, help="cases per function (default 6)")
    run.add_argument(
        "--mode",
        choices=("auto", "full", "directional", "sampled"),
        default="auto",
        help="finite-difference mode",
    )
    run.add_argument(
        "--oracles",
        type=_oracles_argument,
        default=None,
        help="comma-separated oracles to run: fd, torch, autograd (default all three)",
    )
    run.add_argument(
        "--only",
        action="append",
        default=None,
        metavar="NAME",
        help="check only this registered function; repeatable",
    )
    run.add_argument(
        "--dims", type=_dims_argument, default=None, help="check exactly these dims, e.g. N=1,D=3,M=2"
    )
    run.add_argument(
        "--tol", type=_tolerance_argument, default=None, help="tolerances, e.g. rtol=1e-6,fd_rtol=1e-4"
    )
    run.add_argument("--no-shrink", action="store_true", help="do not shrink a failing case")
    run.add_argument(
        "--timeout",
        type=_seconds_argument,
        default=60.0,
        help="seconds one case of user code may take (default 60)",
    )
    run.add_argument("--quiet", action="store_true", help="print only the summary line")
    from checker import grading_cli

    grading_cli.add_commands(sub)
    return parser


def _print_report(report: Any, quiet: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    if not quiet:
        table = Table(title="backprop-check", show_lines=False)
        for column in ("function", "status", "cases", "failed", "diagnoses", "worst abs err", "seconds"):
            table.add_column(
                column,
                justify="right" if column in ("cases", "failed", "worst abs err", "seconds") else "left",
            )
        for s in report.summaries:
            colour = "green" if s.status == "pass" else "red"
            table.add_row(
                s.function,
                f"[{colour}]{s.status}[/{colour}]",
                str(s.cases),
                str(s.failed_cases),
                s.diagnoses,
                f"{s.worst_abs_err:.2g}",
                f"{s.seconds:.2f}",
            )
        console.print(table)
        for s in report.summaries:
            if s.status == "pass":
                continue
            console.print(f"[bold red]{s.function}[/bold red]: {s.first_failure}", markup=True)
            if s.notes:
                console.print(f"  note: {s.notes}")
            if s.shape_pattern:
                console.print(f"  shapes: {s.shape_pattern}")
            if s.shrunk_dims:
                console.print(f"  smallest failing dims: {s.shrunk_dims}")
            console.print(f"  reproduce: {s.reproduce}")
    failed = [s.function for s in report.summaries if s.status != "pass"]
    total = len(report.summaries)
    line = f"{total - len(failed)} passed, {len(failed)} failed" + (
        f": {', '.join(failed)}" if failed else ""
    )
    console.print(line)


def _run(args: argparse.Namespace) -> int:
    from checker.report import FORMATS
    from checker.suite import run

    for path in args.report:  # before the run, not after minutes of it
        if os.path.splitext(path)[1].lower() not in (*FORMATS, ".htm"):
            raise _UsageError(
                f"cannot write a report to {path!r}: the extension must be one of {', '.join(FORMATS)}"
            )

    report = run(
        args.targets,
        seed=args.seed if len(args.seed) > 1 else args.seed[0],
        cases=args.cases,
        mode=args.mode,
        oracles=args.oracles,
        tol=args.tol,
        dims=args.dims,
        only=args.only,
        shrink=not args.no_shrink,
        timeout=args.timeout,
    )
    _print_report(report, args.quiet)
    for path in args.report:
        written = report.write(path)
        print(f"report written: {written}")
    return EXIT_OK if report.passed else EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) and EXIT_USAGE
    try:
        if args.command == "run":
            return _run(args)
        return int(args.handler(args))
    except (BackpropCheckError, _UsageError, ValueError, OSError) as err:
        print(f"backprop-check: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as err:
        print(
            f"backprop-check: error: cannot import {getattr(err, 'name', '') or ''}: {err}", file=sys.stderr
        )
        return EXIT_USAGE
    except Exception as err:  # a bug of ours: one line, the traceback on request
        if os.environ.get("BACKPROP_CHECK_DEBUG"):
            raise
        print(
            f"backprop-check: internal error: {type(err).__name__}: {err} "
            "(set BACKPROP_CHECK_DEBUG=1 for the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
