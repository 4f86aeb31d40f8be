"""What a pytest item sends to where the report is written (the xdist controller included): its
records, summaries and the evidence arrays behind the report's pictures, as plain data.

xdist carries a test report's attributes to the controller through execnet, which takes only plain
Python values (and other plugins may write them as JSON): numbers become Python scalars, and an
evidence array travels as base64 text of its bytes with its dtype and shape. Only the arrays the HTML
report would draw travel (:func:`checker.presentation.pictures.picture_rows`, three per function,
and the step curve beside them), each at most :data:`MAX_ELEMENTS` entries, so a report written by
pytest has the same pictures as the CLI's at a bounded cost. So does the "where" of a localised
function: the ``localize`` row its report shows (:func:`checker.presentation.where.where_row`)
carries its step list (plain strings, already capped by :mod:`checker.localize.rows`) and the first
wrong step's arrays.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from checker.presentation.pictures import PICTURES, has_arrays, picture_rows, step_curve_of
from checker.presentation.where import where_row
from checker.results import COLUMNS, CheckResult, FunctionSummary

__all__ = ["MAX_ELEMENTS", "from_payload", "to_payload"]

#: The largest evidence array that travels (the heatmaps of larger ones are not drawn here either).
MAX_ELEMENTS = 4096
_DTYPES = frozenset({"<f8", "<f4", "<f2", "<i8", "<i4", "|b1", "|u1"})
#: The plain (JSON-able) evidence of a ``localize`` row: its step list and what it could not check.
_STEP_FIELDS = ("name", "matches", "location", "source", "verdict", "diagnosis", "message")

Pending = Iterable[tuple[list[CheckResult], FunctionSummary]]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (execnet refuses them)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def _encode(array: Any) -> dict[str, Any] | None:
    if not isinstance(array, np.ndarray) or array.size > MAX_ELEMENTS:
        return None
    array = np.ascontiguousarray(array)
    if array.dtype.kind not in "biuf":
        return None
    array = array.astype(array.dtype.newbyteorder("<"), copy=False)
    if array.dtype.str not in _DTYPES:
        array = array.astype("<f8")
    return {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(array.tobytes()).decode("ascii"),
    }


def _decode(encoded: Mapping[str, Any]) -> np.ndarray:
    dtype = np.dtype(str(encoded["dtype"]))
    if dtype.str not in _DTYPES:
        raise ValueError(f"evidence of dtype {dtype} does not travel")
    shape = tuple(int(n) for n in encoded["shape"])
    return np.frombuffer(base64.b64decode(encoded["data"]), dtype=dtype).reshape(shape).copy()


def _evidence(row: CheckResult) -> dict[str, Any]:
    """The arrays of ``row`` that its pictures need, encoded (none when one of them is too large), and
    a ``localize`` row's step list."""
    out: dict[str, Any] = {}
    if has_arrays(row):
        pair = {k: _encode(row.evidence[k]) for k in ("expected", "actual")}
        if all(pair.values()):
            out |= pair
    if row.check == "localize" and isinstance(row.evidence.get("steps"), list):
        out["steps"] = [{k: str(s[k]) for k in _STEP_FIELDS if k in s} for s in row.evidence["steps"]]
        out["unmatched"] = [str(n) for n in row.evidence.get("unmatched", [])]
        out["steps_left_out"] = int(row.evidence.get("steps_left_out", 0))
    curve = row.evidence.get("step_curve")
    if curve is not None:
        encoded = [_encode(np.asarray(part)) for part in curve]
        if len(encoded) == 2 and all(encoded):
            out["step_curve"] = encoded
    return out


def _small(row: CheckResult) -> bool:
    return all(row.evidence[k].size <= MAX_ELEMENTS for k in ("expected", "actual"))


def _pictured(rows: list[CheckResult]) -> set[int]:
    """Indices into ``rows`` of the rows whose evidence the HTML report would draw."""
    failing = [r for r in rows if r.failed]
    chosen = picture_rows([r for r in failing if has_arrays(r) and _small(r)], PICTURES)
    curves = [step_curve_of(failing, r.case, r.target) for r in chosen] + [step_curve_of(failing, None, None)]
    where = where_row(failing, MAX_ELEMENTS)
    wanted = {id(r) for r in chosen} | {id(r) for r in curves if r is not None}
    wanted |= {id(where)} if where is not None else set()
    return {i for i, r in enumerate(rows) if id(r) in wanted}


def to_payload(pending: Pending) -> dict[str, list[dict[str, Any]]]:
    """Records (the report's columns, plus ``evidence`` for pictured rows) and summaries as plain dicts."""
    records: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    for rows, summary in pending:
        pictured = _pictured(rows)
        for index, r in enumerate(rows):
            record = {c: _plain(getattr(r, c)) for c in COLUMNS}
            evidence = _evidence(r) if index in pictured else {}
            if evidence:
                record["evidence"] = evidence
            records.append(record)
        summaries.append({k: _plain(v) for k, v in dataclasses.asdict(summary).items()})
    return {"records": records, "summaries": summaries}


def from_payload(payload: Mapping[str, Any]) -> tuple[list[CheckResult], list[FunctionSummary]]:
    """The records (with their evidence arrays) and summaries of :func:`to_payload`."""
    records = []
    for row in payload["records"]:
        fields = {c: row[c] for c in COLUMNS if c in row}
        evidence: dict[str, Any] = {}
        for key, value in dict(row.get("evidence") or {}).items():
            if key == "step_curve":
                evidence[key] = tuple(_decode(part) for part in value)
            elif key in ("expected", "actual"):
                evidence[key] = _decode(value)
            elif key == "steps":
                evidence[key] = [{k: str(v) for k, v in dict(step).items()} for step in value]
            elif key == "unmatched":
                evidence[key] = [str(n) for n in value]
            elif key == "steps_left_out":
                evidence[key] = int(value)
        records.append(CheckResult(**fields, evidence=evidence))
    summaries = [FunctionSummary(**row) for row in payload["summaries"]]
    return records, summaries
