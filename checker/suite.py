"""``check`` and ``run``: one or many targets across fuzzed cases, returned as a :class:`Report`."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import checker.report  # noqa: F401  (hands Report its writers: report.write(path), notebooks, print)
from checker.cases import format_dims, make_case
from checker.diagnose import scaled_message
from checker.errors import OptionError, RegistrationError, TargetNotFound
from checker.fuzz import plan_dims, shape_pattern, shrink_dims
from checker.presentation.words import gradient_name
from checker.registry import REGISTRY, OracleTolerances, Target, collect, get_target, import_target_module
from checker.results import CheckResult, FunctionSummary, Report
from checker.runner import MODES, ORACLES, CheckOptions, check_case

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
    if dims is not None:
        if not isinstance(dims, Mapping):
            raise OptionError(f"dims={dims!r} must be a dict like {{'N': 1, 'D': 3}}")
        bad = {k: v for k, v in dims.items() if not _whole_number(v) or v < 1}
        if bad:
            raise OptionError(f"dims {bad} must be whole numbers >= 1")
    if not isinstance(shrink, bool):
        raise OptionError(f"shrink={shrink!r} must be True or False")
    try:
        tolerances = None if tol is None else OracleTolerances.coerce(tol)
    except RegistrationError as err:
        raise OptionError(str(err)) from None
    return CheckOptions(timeout=timeout, mode=mode, oracles=chosen, tol=tolerances)  # type: ignore[arg-type]


def _pinned(target: Target, dims: Mapping[str, int]) -> Target:
    """``target`` with some symbols fixed (``--dims N=1``); unknown symbols and bad sizes are usage errors."""
    if not isinstance(dims, Mapping):
        raise OptionError(f"dims={dims!r} must be a dict like {{'N': 1, 'D': 3}}")
    unknown = sorted(set(dims) - set(target.dims))
    if unknown:
        raise OptionError(
            f"{target.name}: dims {unknown} are not symbols of it (symbols: {', '.join(target.dims)})"
        )
    bad = {k: v for k, v in dims.items() if not _whole_number(v) or v < 1}
    if bad:
        raise OptionError(f"{target.name}: dims {bad} must be whole numbers >= 1")
    return dataclasses.replace(target, dims={**target.dims, **{k: (int(v),) for k, v in dims.items()}})


def _first_failure(rows: list[CheckResult]) -> CheckResult | None:
    return next((r for r in rows if r.failed), None)


def check_target(
    target: Target,
    *,
    seed: int = 0,
    cases: int | None = None,
    options: CheckOptions | None = None,
    dims: Mapping[str, int] | None = None,
    shrink: bool = True,
    source: str = "",
    progress: Progress | None = None,
    position: tuple[int, int] = (0, 1),
) -> tuple[list[CheckResult], FunctionSummary]:
    """Check one target over its planned cases; shrink the first failure.

    ``dims`` pins some symbols (the others are fuzzed as usual); pinning all of them checks one case.
    ``progress`` is called before each case, while shrinking and when done, with a
    :class:`CaseProgress`; ``position``: (this target's index, how many the run checks).
    """
    options = options or CheckOptions()

    def tell(case: int, cases: int, stage: str = "case") -> None:
        if progress is not None:
            progress(CaseProgress(target.name, position[0], position[1], case, cases, stage))

    started = time.perf_counter()
    planned = target if dims is None else _pinned(target, dims)
    plan = plan_dims(planned, cases, seed)
    if not plan:
        raise RegistrationError(
            f"{target.name}: no dims satisfy dims= and constraint= (allowed sizes: "
            f"{', '.join(f'{k} in {list(v)}' for k, v in planned.dims.items())}); loosen them"
        )
    records: list[CheckResult] = []
    outcomes: list[tuple[dict[str, int], bool]] = []
    for index, (label, case_dims) in enumerate(plan):
        tell(index, len(plan))
        rows = check_case(target, make_case(target, case_dims, seed, index, label), options)
        records.extend(rows)
        outcomes.append((case_dims, any(r.failed for r in rows)))
    first = _first_failure(records)
    shrunk = ""
    if first is not None and shrink and len(plan) > 1:
        failing = next(d for d, f in outcomes if f)
        key = (first.check, first.target)

        def still_fails(candidate: dict[str, int]) -> bool:
            tell(len(plan), len(plan), "shrink")
            rows = check_case(target, make_case(target, candidate, seed, len(plan), "shrunk"), options)
            return any(r.failed and (r.check, r.target) == key for r in rows)

        smallest = shrink_dims(planned, failing, still_fails, seed)
        if smallest != failing and format_dims(smallest) not in {format_dims(d) for d, _ in outcomes}:
            rows = check_case(target, make_case(target, smallest, seed, len(plan), "shrunk"), options)
            records.extend(rows)
            outcomes.append((smallest, any(r.failed for r in rows)))
        shrunk = format_dims(smallest)
    records = narrow_scale_names(records)
    summary = _summarise(target, records, outcomes, time.perf_counter() - started, shrunk, seed, source)
    tell(len(plan), len(plan), "done")
    return records, summary


def narrow_scale_names(records: list[CheckResult]) -> list[CheckResult]:
    """A ``scaled`` factor named ambiguously in one case ("1/N or 1/H or 1/2" at N = H = 2) is named by
    the candidates that every ``scaled`` row of the same gradient shares, when other cases' sizes tell
    them apart. Each row's message stays true of its row: only candidates are removed."""
    candidates: dict[tuple[str, str, bool], set[str]] = {}
    for r in records:
        found = r.evidence.get("diagnosis") if r.diagnosis == "scaled" else None
        if found and found.get("names"):
            key = (r.check, r.target, bool(found["inverse"]))
            shared = candidates.setdefault(key, set(found["names"]))
            shared &= set(found["names"])
    narrowed = []
    for r in records:
        found = r.evidence.get("diagnosis") if r.diagnosis == "scaled" else None
        shared = (
            candidates.get((r.check, r.target, bool(found["inverse"])))
            if found and found.get("names")
            else None
        )
        if not found or not shared or shared >= set(found["names"]):
            narrowed.append(r)
            continue
        dname = gradient_name(r.target)
        old, _ = scaled_message(
            dname, found["scale"], found["names"], found["inverse"], found.get("values", "")
        )
        names = [n for n in found["names"] if n in shared]
        new, scale_name = scaled_message(
            dname, found["scale"], names, found["inverse"], _values(found, names)
        )
        suffix = r.message[len(old) :] if r.message.startswith(old) else ""
        details = {**found, "names": tuple(names), "scale_name": scale_name, "values": _values(found, names)}
        narrowed.append(
            dataclasses.replace(r, message=new + suffix, evidence={**r.evidence, "diagnosis": details})
        )
    return narrowed


def _values(found: Mapping[str, Any], names: list[str]) -> str:
    """`` (N=4, H=2)``: the sizes of the symbols in the candidate names."""
    dims = found.get("dims", {})
    used = [s for n in names for s in n.split("*") if s in dims]
    used = list(dict.fromkeys(used))
    return " (" + ", ".join(f"{s}={dims[s]}" for s in used) + ")" if used else ""


def _degenerate(dims_text: str) -> list[str]:
    """The symbols of size 1 in a case's dims (``"N=1, D=3"`` -> ``["N"]``): there some terms of a
    gradient vanish (one class, one sample), so a code can be true of the case and not of the function."""
    sizes = [part.split("=") for part in dims_text.split(", ") if "=" in part]
    return [name for name, size in sizes if size.strip() == "1"]


def _headline(failed_rows: list[CheckResult]) -> tuple[Counter[str], str, CheckResult | None]:
    """(the codes that explain the informative failing rows, a note on the rest, the row to show first).

    A case where a symbol has size 1 is degenerate: a code found only there is not the function's
    headline, it is told as what it is ("at C=1 only: scaled"). When the function fails only at such
    cases, their codes are all the evidence there is and stay the headline.
    """
    # A located step's code is told as the step's: "sign_flipped (in dsqrtvar)".
    failed_rows = [
        replace(r, diagnosis=f"{r.diagnosis} (in {r.first_wrong})")
        if r.check == "localize" and r.diagnosis
        else r
        for r in failed_rows
    ]
    informative = [r for r in failed_rows if not _degenerate(r.dims)]
    degenerate = [r for r in failed_rows if _degenerate(r.dims)]
    if not informative:
        codes = Counter(r.diagnosis for r in degenerate if r.diagnosis)
        return codes, "", (degenerate[0] if degenerate else None)
    codes = Counter(r.diagnosis for r in informative if r.diagnosis)
    first = next((r for r in informative if r.diagnosis), informative[0])
    notes = []
    if not codes:
        notes.append("no diagnosis explains the failures at informative shapes (every size >= 2)")
    only_there: dict[str, set[str]] = {}
    for r in degenerate:
        if r.diagnosis and r.diagnosis not in codes:
            only_there.setdefault(r.diagnosis, set()).update(f"{s}=1" for s in _degenerate(r.dims))
    for code, where in only_there.items():
        notes.append(
            f"{code} at {' or '.join(sorted(where))} only, where a size-1 dimension can make a term of the "
            "gradient vanish: true of those cases, not of the function"
        )
    return codes, "; ".join(notes), first


def _summarise(
    target: Target,
    records: list[CheckResult],
    outcomes: list[tuple[dict[str, int], bool]],
    seconds: float,
    shrunk: str,
    seed: int,
    source: str,
) -> FunctionSummary:
    failed_rows = [r for r in records if r.failed]
    diagnoses, notes, first = _headline(failed_rows)
    located = next((r for r in failed_rows if r.check == "localize"), None)
    where_wrong = f"{located.first_wrong} at {located.location}" if located else ""
    if located is None:
        reason = next((r.evidence["not_located"] for r in failed_rows if "not_located" in r.evidence), "")
        notes = "; ".join(n for n in (notes, f"not located: {reason}" if reason else "") if n)
    pattern = shape_pattern(outcomes)
    if pattern and pattern != "fails at every shape":
        diagnoses["shape_dependent"] += 1
    errs = [r.max_abs_err for r in records if r.max_abs_err == r.max_abs_err]
    status = (
        "pass" if not failed_rows else ("error" if all(r.status == "error" for r in failed_rows) else "fail")
    )
    reproduce = ""
    if first is not None:
        where = source or target.module or "MODULE"
        pinned = (shrunk or first.dims).replace(" ", "")
        reproduce = f"backprop-check run {where} --only {target.name} --seed {seed} --dims {pinned}"
    return FunctionSummary(
        function=target.name,
        status=status,
        cases=len(outcomes),
        failed_cases=sum(f for _, f in outcomes),
        checks=len(records),
        failed_checks=len(failed_rows),
        diagnoses=", ".join(f"{code} x{n}" if n > 1 else code for code, n in diagnoses.most_common()),
        worst_abs_err=max(errs) if errs else float("nan"),
        seconds=seconds,
        shape_pattern=pattern,
        shrunk_dims=shrunk,
        reproduce=reproduce,
        first_failure=f"[{first.check} {first.target}] {first.message}" if first is not None else "",
        notes=notes,
        where=where_wrong,
    )


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
    seed: int = 0,
    cases: int | None = None,
    mode: str = "auto",
    oracles: Iterable[str] | None = None,
    tol: object = None,
    dims: Mapping[str, int] | None = None,
    shrink: bool = True,
    timeout: float | None = 60.0,
) -> Report:
    """Check one registered function; returns a :class:`Report` (renders itself in a notebook).

    ``timeout``: seconds one case of user code may take before it is reported as a hang.
    """
    if not isinstance(name, (str, Target)):
        raise TargetNotFound(
            f"check({name!r}): give one registered name or Target (bc.run takes lists and modules)"
        )
    _checked_options(
        seed=seed, cases=cases, mode=mode, oracles=oracles, tol=tol, dims=dims, shrink=shrink, timeout=timeout
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
    seed: int = 0,
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

    ``progress``: called with a :class:`CaseProgress` before each case (the CLI's progress bar).
    Misused keywords raise :class:`~checker.errors.OptionError` before anything runs.
    """
    options = _checked_options(
        seed=seed, cases=cases, mode=mode, oracles=oracles, tol=tol, dims=dims, shrink=shrink, timeout=timeout
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
            seed=seed,
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
        "seed": seed,
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
