"""``check`` and ``run``: one or many targets across fuzzed cases, returned as a :class:`Report`."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import checker.report  # noqa: F401  (hands Report its writers: report.write(path), notebooks, print)
from checker.cases import format_dims, make_case
from checker.errors import OptionError, RegistrationError, TargetNotFound
from checker.fuzz import plan_dims, shrink_dims
from checker.registry import (
    REGISTRY,
    OracleTolerances,
    Target,
    collect,
    get_target,
    import_target_module,
    pin_choices,
)
from checker.results import CheckResult, FunctionSummary, Report
from checker.runner import MODES, ORACLES, CheckOptions, check_case
from checker.spec import parse_seeds
from checker.summaries import narrow_scale_names, summarise

__all__ = ["MODES", "ORACLES", "CaseProgress", "check", "check_target", "resolve_targets", "run"]


@dataclass(frozen=True)
class CaseProgress:
    """Where a run is, for a progress display: ``function`` (the ``index``-th of ``functions``) is
    about to check case ``case`` (0-based) of ``cases`` (``stage="case"``), is shrinking a failure
    (``"shrink"``), or is done (``"done"``)."""

    function: str
    index: int
    functions: int
    case: int
    cases: int
    stage: str = "case"


Progress = Callable[[CaseProgress], None]


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_options(
    *,
    seed: object,
    cases: object,
    mode: object,
    oracles: object,
    tol: object,
    dims: object,
    shrink: object,
    timeout: object,
) -> CheckOptions:
    """The keywords of ``check``/``run``, refused with an :class:`OptionError` naming the keyword and
    the fix before anything runs; the runner never sees a bad option."""
    if not _whole_number(seed):
        raise OptionError(f"seed={seed!r} must be a whole number, e.g. seed=0")
    if cases is not None and (not _whole_number(cases) or cases < 1):  # type: ignore[operator]
        raise OptionError(f"cases={cases!r} must be a whole number >= 1 (or None for the default)")
    if mode not in MODES:
        raise OptionError(f"mode={mode!r} must be one of {', '.join(MODES)}")
    if oracles is not None and (isinstance(oracles, str) or not isinstance(oracles, Iterable)):
        raise OptionError(f"oracles={oracles!r} must be a list of names from {', '.join(ORACLES)}")
    chosen = tuple(oracles) if oracles is not None else ORACLES  # type: ignore[arg-type]
    unknown = [o for o in chosen if o not in ORACLES]
    if unknown or not chosen:
        raise OptionError(f"oracles={list(chosen)!r}: choose one or more of {', '.join(ORACLES)}")
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < float("inf")
    ):
        raise OptionError(
            f"timeout={timeout!r} must be a finite number of seconds > 0 (or None for no limit)"
        )
    if dims is not None and not isinstance(dims, Mapping):
        raise OptionError(f"dims={dims!r} must be a dict like {{'N': 1, 'D': 3}}")
    if not isinstance(shrink, bool):
        raise OptionError(f"shrink={shrink!r} must be True or False")
    try:
        tolerances = None if tol is None else OracleTolerances.coerce(tol)
    except RegistrationError as err:
        raise OptionError(str(err)) from None
    return CheckOptions(timeout=timeout, mode=mode, oracles=chosen, tol=tolerances)  # type: ignore[arg-type]


def _pinned(target: Target, dims: Mapping[str, Any]) -> Target:
    """``target`` with some symbols fixed (``--dims N=1``), or some hyper-parameter choices (``pad=0``);
    unknown names and bad sizes are usage errors."""
    if not isinstance(dims, Mapping):
        raise OptionError(f"dims={dims!r} must be a dict like {{'N': 1, 'D': 3}}")
    unknown = sorted(set(dims) - set(target.dims) - set(target.choices))
    if unknown:
        known = ", ".join([*target.dims, *target.choices])
        raise OptionError(f"{target.name}: dims {unknown} are not symbols of it (symbols: {known})")
    sizes = {k: v for k, v in dims.items() if k in target.dims}
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise OptionError(f"{target.name}: dims {bad} must be whole numbers >= 1")
    pinned = dataclasses.replace(target, dims={**target.dims, **{k: (int(v),) for k, v in sizes.items()}})
    picked = {k: v for k, v in dims.items() if k in target.choices}
    return pin_choices(pinned, picked) if picked else pinned


def _first_failure(rows: list[CheckResult]) -> CheckResult | None:
    return next((r for r in rows if r.failed), None)


def seeds_of(seed: int | Sequence[int] | str) -> tuple[int, ...]:
    """The run's seeds: one (``0``), several (``[0, 1, 2]``), or as ``--seed`` takes them (``"0-9"``)."""
    return parse_seeds(seed)


def check_target(
    target: Target,
    *,
    seed: int | Sequence[int] | str = 0,
    cases: int | None = None,
    options: CheckOptions | None = None,
    dims: Mapping[str, int] | None = None,
    shrink: bool = True,
    source: str = "",
    progress: Progress | None = None,
    position: tuple[int, int] = (0, 1),
) -> tuple[list[CheckResult], FunctionSummary]:
    """Check one target over its planned cases, for each seed in turn; shrink the first failure.

    ``dims`` pins some symbols (the others are fuzzed as usual); pinning all of them checks one case.
    ``progress`` is called before each case, while shrinking and when done, with a
    :class:`CaseProgress`; ``position``: (this target's index, how many the run checks).
    Several seeds plan and draw the cases once per seed; every record says its seed, the case numbers
    run on across seeds, and the summary covers them all.
    """
    seeds = seeds_of(seed)
    options = options or CheckOptions()

    def tell(case: int, cases: int, stage: str = "case") -> None:
        if progress is not None:
            progress(CaseProgress(target.name, position[0], position[1], case, cases, stage))

    started = time.perf_counter()
    planned = target if dims is None else _pinned(target, dims)
    plans = [(s, plan_dims(planned, cases, s)) for s in seeds]
    if not plans[0][1]:
        raise RegistrationError(
            f"{target.name}: no dims satisfy dims= and constraint= (allowed sizes: "
            f"{', '.join(f'{k} in {list(v)}' for k, v in planned.dims.items())}); loosen them"
        )
    records: list[CheckResult] = []
    outcomes: list[tuple[dict[str, Any], bool]] = []
    failing_case: tuple[int, dict[str, Any]] | None = None
    total = sum(len(plan) for _, plan in plans)
    for run_seed, plan in plans:
        for label, case_dims in plan:
            tell(len(outcomes), total)
            rows = check_case(target, make_case(target, case_dims, run_seed, len(outcomes), label), options)
            records.extend(rows)
            failed = any(r.failed for r in rows)
            outcomes.append((case_dims, failed))
            if failed and failing_case is None:
                failing_case = (run_seed, case_dims)
    first = _first_failure(records)
    shrunk = ""
    shrunk_seed = None
    if first is not None and failing_case is not None and shrink and len(outcomes) > 1:
        run_seed, failing = failing_case
        key = (first.check, first.target)
        index = len(outcomes)

        def still_fails(candidate: dict[str, int]) -> bool:
            tell(total, total, "shrink")
            rows = check_case(target, make_case(target, candidate, run_seed, index, "shrunk"), options)
            return any(r.failed and (r.check, r.target) == key for r in rows)

        smallest = shrink_dims(planned, failing, still_fails, run_seed)
        if smallest != failing and format_dims(smallest) not in {format_dims(d) for d, _ in outcomes}:
            rows = check_case(target, make_case(target, smallest, run_seed, index, "shrunk"), options)
            records.extend(rows)
            outcomes.append((smallest, any(r.failed for r in rows)))
        shrunk, shrunk_seed = format_dims(smallest), run_seed
    records = narrow_scale_names(records)
    summary = summarise(
        target, records, outcomes, time.perf_counter() - started, (shrunk, shrunk_seed), source
    )
    tell(total, total, "done")
    return records, summary


def resolve_targets(items: str | Target | Iterable[str | Target]) -> list[tuple[Target, str]]:
    """Module names, ``.py`` paths, registered names or Targets -> (target, where it came from)."""
    if isinstance(items, (str, Target)):
        items = [items]
    if not isinstance(items, (list, tuple)):
        raise TargetNotFound(
            f"{items!r}: give a registered name, a module name, a .py path, a Target, or a list of them"
        )
    found: list[tuple[Target, str]] = []
    for item in items:
        if not isinstance(item, (str, Target)):
            raise TargetNotFound(f"{item!r} is not a registered name, a module name, a .py path or a Target")
        if isinstance(item, Target):
            found.append((item, item.module))
            continue
        try:
            found.append((get_target(item), ""))
            continue
        except TargetNotFound:
            pass
        try:
            module = import_target_module(item)
        except TargetNotFound as err:
            if item.endswith(".py") or "no module named" not in str(err):
                raise
            known = ", ".join(sorted({t.name for t in REGISTRY.values()})) or "none yet"
            raise TargetNotFound(
                f"{item!r} is neither a registered function (registered: {known}) nor an importable module"
            ) from None
        targets = collect(module)
        if not targets:
            raise TargetNotFound(f"{item!r} registers no functions; call bc.register(...) at import time")
        found.extend((t, item) for t in targets)
    return found


def check(
    name: str | Target,
    *,
    seed: int | Sequence[int] | str = 0,
    cases: int | None = None,
    mode: str = "auto",
    oracles: Iterable[str] | None = None,
    tol: object = None,
    dims: Mapping[str, int] | None = None,
    shrink: bool = True,
    timeout: float | None = 60.0,
) -> Report:
    """Check one registered function; returns a :class:`Report` (renders itself in a notebook).

    ``seed``: one seed, or several (``[0, 1, 2]``, ``"0-9"``): the cases are planned and drawn for each.
    ``mode``: ``"auto"`` lets one exact oracle decide each gradient (the others explain what it fails);
    ``"full"``, ``"directional"``, ``"sampled"`` run every oracle, finite differences in that mode.
    ``timeout``: seconds one case of user code may take before it is reported as a hang.
    """
    if not isinstance(name, (str, Target)):
        raise TargetNotFound(
            f"check({name!r}): give one registered name or Target (bc.run takes lists and modules)"
        )
    return run(
        [name],
        seed=seed,
        cases=cases,
        mode=mode,
        oracles=oracles,
        tol=tol,
        dims=dims,
        shrink=shrink,
        timeout=timeout,
    )


def run(
    targets: str | Target | Iterable[str | Target],
    *,
    seed: int | Sequence[int] | str = 0,
    cases: int | None = None,
    mode: str = "auto",
    oracles: Iterable[str] | None = None,
    tol: object = None,
    dims: Mapping[str, int] | None = None,
    only: Iterable[str] | None = None,
    shrink: bool = True,
    timeout: float | None = 60.0,
    progress: Progress | None = None,
) -> Report:
    """Check every function a module (or ``.py`` file, or list of names) registers.

    ``seed``: one seed, or several (``[0, 1, 2]``, ``"0-9"``); each record's ``seed`` says which it ran.
    ``progress``: called with a :class:`CaseProgress` before each case (the CLI's progress bar).
    Misused keywords raise :class:`~checker.errors.OptionError` before anything runs.
    """
    try:
        seeds = seeds_of(seed)
    except RegistrationError as err:
        raise OptionError(str(err)) from None
    options = _checked_options(
        seed=seeds[0],
        cases=cases,
        mode=mode,
        oracles=oracles,
        tol=tol,
        dims=dims,
        shrink=shrink,
        timeout=timeout,
    )
    if only is not None and (isinstance(only, str) or not isinstance(only, Iterable)):
        raise OptionError(f"only={only!r} must be a list of registered names, e.g. only=['affine']")
    resolved = resolve_targets(targets)
    if only is not None:
        wanted = set(only)
        resolved = [(t, s) for t, s in resolved if t.name in wanted]
        missing = wanted - {t.name for t, _ in resolved}
        if missing:
            raise TargetNotFound(f"--only {', '.join(sorted(missing))}: not registered by {targets!r}")
    records: list[CheckResult] = []
    summaries: list[FunctionSummary] = []
    warm_up_seconds = _warm_up(options)
    for index, (target, source) in enumerate(resolved):
        rows, summary = check_target(
            target,
            seed=seeds,
            cases=cases,
            options=options,
            dims=dims,
            shrink=shrink,
            source=source,
            progress=progress,
            position=(index, len(resolved)),
        )
        records.extend(rows)
        summaries.append(summary)
    settings: dict[str, Any] = {
        "seed": seeds[0] if len(seeds) == 1 else list(seeds),
        "cases": cases,
        "mode": mode,
        "targets": [str(t) for t in ([targets] if isinstance(targets, (str, Target)) else targets)],
        "warm_up_seconds": round(warm_up_seconds, 3),
    }
    return Report(records, summaries, settings)


def _warm_up(options: CheckOptions) -> float:
    """Pay torch's one-time costs (its import, torch._numpy's lazy imports) before any function's clock
    starts, so that the first function's ``seconds`` is its own; returns what it cost (0 the second time)."""
    started = time.perf_counter()
    if "autograd" in options.oracles:
        from checker.oracles.torch_numpy import warm_up

        warm_up()
    elif "torch" in options.oracles:
        import torch  # noqa: F401
    return time.perf_counter() - started
