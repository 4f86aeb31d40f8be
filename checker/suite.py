"""``check`` and ``run``: one or many targets across fuzzed cases, returned as a :class:`Report`."""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from checker.cases import format_dims, make_case
from checker.checks import gradient_name
from checker.diagnose import scaled_message
from checker.errors import RegistrationError, TargetNotFound
from checker.fuzz import EVERY_SHAPE, TOO_SMALL, plan_dims, shape_pattern, shrink_dims
from checker.registry import (
    REGISTRY,
    Target,
    Tolerances,
    collect,
    get_target,
    import_target_module,
    pin_choices,
)
from checker.results import CheckResult, FunctionSummary, Report
from checker.runner import ORACLES, CheckOptions, check_case
from checker.spec import parse_seeds

__all__ = ["check", "check_target", "resolve_targets", "run"]


def _options(
    mode: str, oracles: Iterable[str] | None, tol: object, timeout: float | None = 60.0
) -> CheckOptions:
    return CheckOptions(
        timeout=timeout,
        mode=mode,
        oracles=tuple(oracles) if oracles is not None else ORACLES,
        tol=None if tol is None else Tolerances.coerce(tol),
    )


def _pinned(target: Target, dims: Mapping[str, Any]) -> Target:
    """``target`` with some symbols fixed (``--dims N=1``), or some hyper-parameter choices (``pad=0``);
    unknown names and bad sizes are usage errors."""
    if not isinstance(dims, Mapping):
        raise RegistrationError(f"dims={dims!r} must be a dict like {{'N': 1, 'D': 3}}")
    unknown = sorted(set(dims) - set(target.dims) - set(target.choices))
    if unknown:
        known = ", ".join([*target.dims, *target.choices])
        raise RegistrationError(f"{target.name}: dims {unknown} are not symbols of it (symbols: {known})")
    sizes = {k: v for k, v in dims.items() if k in target.dims}
    bad = {k: v for k, v in sizes.items() if not isinstance(v, int) or isinstance(v, bool) or v < 1}
    if bad:
        raise RegistrationError(f"{target.name}: dims {bad} must be whole numbers >= 1")
    pinned = dataclasses.replace(target, dims={**target.dims, **{k: (int(v),) for k, v in sizes.items()}})
    picked = {k: v for k, v in dims.items() if k in target.choices}
    return pin_choices(pinned, picked) if picked else pinned


def _check_cases_argument(cases: object) -> None:
    if cases is not None and (not isinstance(cases, int) or isinstance(cases, bool) or cases < 1):
        raise RegistrationError(f"cases={cases!r} must be a whole number >= 1 (or None for the default)")


def _check_timeout_argument(timeout: object) -> None:
    if timeout is not None and (
        not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout < float("inf")
    ):
        raise RegistrationError(
            f"timeout={timeout!r} must be a finite number of seconds > 0 (or None for no limit)"
        )


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
) -> tuple[list[CheckResult], FunctionSummary]:
    """Check one target over its planned cases, for each seed in turn; shrink the first failure.

    ``dims`` pins some symbols (the others are fuzzed as usual); pinning all of them checks one case.
    Several seeds plan and draw the cases once per seed; every record says its seed, the case numbers
    run on across seeds, and the summary covers them all.
    """
    seeds = seeds_of(seed)
    options = options or CheckOptions()
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
    for run_seed, plan in plans:
        for label, case_dims in plan:
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
            rows = check_case(target, make_case(target, candidate, run_seed, index, "shrunk"), options)
            return any(r.failed and (r.check, r.target) == key for r in rows)

        smallest = shrink_dims(planned, failing, still_fails, run_seed)
        if smallest != failing and format_dims(smallest) not in {format_dims(d) for d, _ in outcomes}:
            rows = check_case(target, make_case(target, smallest, run_seed, index, "shrunk"), options)
            records.extend(rows)
            outcomes.append((smallest, any(r.failed for r in rows)))
        shrunk, shrunk_seed = format_dims(smallest), run_seed
    records = narrow_scale_names(records)
    summary = _summarise(
        target, records, outcomes, time.perf_counter() - started, (shrunk, shrunk_seed), source
    )
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


def _degenerate(dims_text: str, choices: Collection[str] = ()) -> list[str]:
    """The symbols of size 1 in a case's dims (``"N=1, D=3"`` -> ``["N"]``): there some terms of a
    gradient vanish (one class, one sample), so a code can be true of the case and not of the function.
    ``choices``: hyper-parameters in the dims (``pad=1``), which are not sizes."""
    sizes = [part.split("=") for part in dims_text.split(", ") if "=" in part]
    return [name for name, size in sizes if size.strip() == "1" and name not in choices]


_NO_DIAGNOSIS = "no diagnosis explains the failures at informative shapes (every size >= 2)"


def _headline(
    failed_rows: list[CheckResult], choices: Collection[str] = ()
) -> tuple[Counter[str], str, CheckResult | None]:
    """(the codes that explain the informative failing rows, a note on the rest, the row to show first).

    A case where a symbol has size 1 is degenerate: a code found only there is not the function's
    headline, it is told as what it is ("at C=1 only: scaled"). When the function fails only at such
    cases, their codes are all the evidence there is and stay the headline.
    """
    informative = [r for r in failed_rows if not _degenerate(r.dims, choices)]
    degenerate = [r for r in failed_rows if _degenerate(r.dims, choices)]
    if not informative:
        codes = Counter(r.diagnosis for r in degenerate if r.diagnosis)
        return codes, "", (degenerate[0] if degenerate else None)
    codes = Counter(r.diagnosis for r in informative if r.diagnosis)
    first = next((r for r in informative if r.diagnosis), informative[0])
    notes = []
    if not codes:
        notes.append(_NO_DIAGNOSIS)
    only_there: dict[str, set[str]] = {}
    for r in degenerate:
        if r.diagnosis and r.diagnosis not in codes:
            only_there.setdefault(r.diagnosis, set()).update(f"{s}=1" for s in _degenerate(r.dims, choices))
    for code, where in only_there.items():
        notes.append(
            f"{code} at {' or '.join(sorted(where))} only, where a size-1 dimension can make a term of the "
            "gradient vanish: true of those cases, not of the function"
        )
    return codes, "; ".join(notes), first


def _summarise(
    target: Target,
    records: list[CheckResult],
    outcomes: list[tuple[dict[str, Any], bool]],
    seconds: float,
    shrunk_at: tuple[str, int | None],
    source: str,
) -> FunctionSummary:
    shrunk, shrunk_seed = shrunk_at
    failed_rows = [r for r in records if r.failed]
    diagnoses, notes, first = _headline(failed_rows, target.choices)
    warned = Counter(r.diagnosis for r in records if r.status == "warn" and r.diagnosis)
    if warned:  # a warning names a cause: the forward lint's
        diagnoses.update(warned)
        notes = notes.replace(
            _NO_DIAGNOSIS, f"{_NO_DIAGNOSIS}: the forward_lint rows say why (a mistake of the forward)"
        )
    pattern = shape_pattern(outcomes, target.choices)
    if pattern and pattern != EVERY_SHAPE and not pattern.endswith(TOO_SMALL):
        diagnoses["shape_dependent"] += 1
    errs = [r.max_abs_err for r in records if r.max_abs_err == r.max_abs_err]
    status = (
        "pass" if not failed_rows else ("error" if all(r.status == "error" for r in failed_rows) else "fail")
    )
    reproduce = ""
    if first is not None:
        where = source or target.module or "MODULE"
        pinned = (shrunk or first.dims).replace(" ", "")
        # With several seeds, the one the pinned dims fail at: the shrunk case's, else the row's shown.
        failed_seed = first.seed if shrunk_seed is None else shrunk_seed
        reproduce = f"backprop-check run {where} --only {target.name} --seed {failed_seed} --dims {pinned}"
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
) -> Report:
    """Check every function a module (or ``.py`` file, or list of names) registers.

    ``seed``: one seed, or several (``[0, 1, 2]``, ``"0-9"``); each record's ``seed`` says which it ran.
    """
    seeds = seeds_of(seed)
    _check_cases_argument(cases)
    _check_timeout_argument(timeout)
    options = _options(mode, oracles, tol, timeout)
    resolved = resolve_targets(targets)
    if only is not None:
        wanted = set(only)
        resolved = [(t, s) for t, s in resolved if t.name in wanted]
        missing = wanted - {t.name for t, _ in resolved}
        if missing:
            raise TargetNotFound(f"--only {', '.join(sorted(missing))}: not registered by {targets!r}")
    records: list[CheckResult] = []
    summaries: list[FunctionSummary] = []
    for target, source in resolved:
        rows, summary = check_target(
            target, seed=seeds, cases=cases, options=options, dims=dims, shrink=shrink, source=source
        )
        records.extend(rows)
        summaries.append(summary)
    settings: dict[str, Any] = {
        "seed": seeds[0] if len(seeds) == 1 else list(seeds),
        "cases": cases,
        "mode": mode,
        "targets": [str(t) for t in ([targets] if isinstance(targets, (str, Target)) else targets)],
    }
    return Report(records, summaries, settings)
