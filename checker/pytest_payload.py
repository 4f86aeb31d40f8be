"""What a pytest item sends to where the report is written (the xdist controller included): its
records and summaries, as plain data.

xdist carries a test report's attributes to the controller through execnet, which takes only plain
Python values (and other plugins may write them as JSON): numbers become Python scalars.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

from checker.results import COLUMNS, CheckResult, FunctionSummary

__all__ = ["from_payload", "to_payload"]

Pending = Iterable[tuple[list[CheckResult], FunctionSummary]]


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars (execnet refuses them)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()
    return value


def to_payload(pending: Pending) -> dict[str, list[dict[str, Any]]]:
    """Records (the report's columns) and summaries as plain dicts."""
    records: list[dict[str, Any]] = []
    summaries: list[dict[str, Any]] = []
    for rows, summary in pending:
        records += [{c: _plain(getattr(r, c)) for c in COLUMNS} for r in rows]
        summaries.append({k: _plain(v) for k, v in dataclasses.asdict(summary).items()})
    return {"records": records, "summaries": summaries}


def from_payload(payload: Mapping[str, Any]) -> tuple[list[CheckResult], list[FunctionSummary]]:
    """The records and summaries of :func:`to_payload`."""
    records = [CheckResult(**{c: row[c] for c in COLUMNS if c in row}) for row in payload["records"]]
    summaries = [FunctionSummary(**row) for row in payload["summaries"]]
    return records, summaries
