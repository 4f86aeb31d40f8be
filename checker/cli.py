"""``backprop-check``: a thin door over the runner. Exit codes: 0 all passed, 1 a check failed, 2 usage error."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from checker.errors import BackpropCheckError, OptionError
from checker.presentation.options import (
    parse_dims,
    parse_names,
    parse_seconds,
    parse_tolerance,
    parse_whole_number,
    report_format,
)

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _argument(parse: Callable[..., Any], *args: Any) -> Callable[[str], Any]:
    """An argparse ``type=`` from a parser of :mod:`checker.presentation.options`: its
    :class:`OptionError` becomes argparse's usage error, with the same words."""

    def convert(text: str) -> Any:
        try:
            return parse(text, *args)
        except OptionError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def _seeds_argument(text: str) -> tuple[int, ...]:
    from checker.errors import SpecError
    from checker.spec import parse_seeds

    try:
        return parse_seeds(text, "--seed")
    except SpecError as err:
        raise argparse.ArgumentTypeError(str(err).split(": ", 1)[-1]) from None


def _oracles(text: str, name: str) -> list[str]:
    from checker.suite import ORACLES

    return parse_names(text, name, ORACLES)


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
    run.add_argument(
        "--cases",
        type=_argument(parse_whole_number, "", 1),
        default=None,
        help="cases per function (default 6)",
    )
    run.add_argument(
        "--mode",
        choices=("auto", "full", "directional", "sampled"),
        default="auto",
        help="auto: one exact oracle decides each gradient, the others explain what it fails; "
        "full/directional/sampled: every oracle on every gradient, finite differences element-wise, "
        "along random directions or at sampled entries",
    )
    run.add_argument(
        "--oracles",
        type=_argument(_oracles, ""),
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
        "--dims",
        type=_argument(parse_dims, ""),
        default=None,
        help="check exactly these dims, e.g. N=1,D=3,M=2",
    )
    run.add_argument(
        "--tol",
        type=_argument(parse_tolerance, ""),
        default=None,
        help="tolerances, e.g. rtol=1e-6,fd_rtol=1e-4",
    )
    run.add_argument("--no-shrink", action="store_true", help="do not shrink a failing case")
    run.add_argument(
        "--timeout",
        type=_argument(parse_seconds, ""),
        default=60.0,
        help="seconds one case of user code may take (default 60)",
    )
    run.add_argument("--quiet", action="store_true", help="print only the summary line (and no progress bar)")
    from checker import grading_cli

    grading_cli.add_commands(sub)
    return parser


def _run(args: argparse.Namespace) -> int:
    from checker.presentation.terminal import RunProgress, console_for, print_report
    from checker.report import write_report
    from checker.suite import run

    for path in args.report:  # before the run, not after minutes of it
        report_format(path)
    console = console_for()
    with RunProgress(console, enabled=not args.quiet) as progress:
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
            progress=progress,
        )
    print_report(console, report, quiet=args.quiet)
    for path in args.report:
        console.print(f"report written: {write_report(report, path)}", markup=False)
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
    except (BackpropCheckError, ValueError, OSError) as err:
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
