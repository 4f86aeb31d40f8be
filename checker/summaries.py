"""A function's summary from its records: the headline diagnosis from its informative cases, the notes,
where its backward goes wrong, its shape pattern and the command that reproduces its first failure.

Also :func:`narrow_scale_names`: an ambiguous ``scaled`` factor named by what the other cases tell apart.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

from checker.diagnose import scaled_message
from checker.fuzz import EVERY_SHAPE, TOO_SMALL, shape_pattern
from checker.presentation.words import gradient_name
from checker.registry import Target
from checker.results import CheckResult, FunctionSummary

__all__ = ["narrow_scale_names", "summarise"]


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
    # A located step's code is told as the step's: "sign_flipped (in dsqrtvar)".
    failed_rows = [
        replace(r, diagnosis=f"{r.diagnosis} (in {r.first_wrong})")
        if r.check == "localize" and r.diagnosis
        else r
        for r in failed_rows
    ]
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


def summarise(
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
    located = next((r for r in failed_rows if r.check == "localize"), None)
    where_wrong = f"{located.first_wrong} at {located.location}" if located else ""
    if located is None:
        reason = next((r.evidence["not_located"] for r in failed_rows if "not_located" in r.evidence), "")
        notes = "; ".join(n for n in (notes, f"not located: {reason}" if reason else "") if n)
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
        where=where_wrong,
    )
