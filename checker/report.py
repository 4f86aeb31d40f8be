"""Report writers: CSV, JSON (records), Markdown and HTML, chosen by extension, written atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "atomic_write", "render_html", "render_json", "render_markdown", "write_report"]

FORMATS = (".csv", ".json", ".md", ".html")


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def render_json(report: Any) -> str:
    """Records with full float precision (pandas' to_json would round 1.2e-12 to 0.0); NaN -> null."""
    frame = report.frame
    records = [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]
    summary = [
        {k: _json_value(v) for k, v in row.items()} for row in report.summary().to_dict(orient="records")
    ]
    return json.dumps(
        {"settings": report.settings, "summary": summary, "records": records}, indent=1, allow_nan=False
    )


def render_markdown(report: Any) -> str:
    """A summary table and the failures, fit for a pull-request comment or a job summary."""
    summary = report.summary()[["function", "status", "cases", "failed_cases", "diagnoses", "shape_pattern"]]
    lines = ["# backprop-check report", "", summary.to_markdown(index=False), ""]
    failing = [s for s in report.summaries if s.status != "pass"]
    if failing:
        lines += ["## Failures", ""]
        for s in failing:
            lines += [f"### `{s.function}`", "", f"- {s.first_failure}"]
            if s.shape_pattern:
                lines.append(f"- shapes: {s.shape_pattern}")
            if s.shrunk_dims:
                lines.append(f"- smallest failing dims: `{s.shrunk_dims}`")
            lines += [f"- reproduce: `{s.reproduce}`", ""]
    return "\n".join(lines) + "\n"


def render_html(report: Any, standalone: bool = True) -> str:
    """A self-contained HTML page (or fragment for a notebook)."""
    body = report.summary().to_html(index=False)
    if not standalone:
        return body
    return f"<!doctype html><html><head><meta charset='utf-8'><title>backprop-check</title></head><body>{body}</body></html>"


def write_report(report: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` to ``path``; the format follows the extension."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        text = report.frame.to_csv(index=False, float_format="%.17g")
    elif suffix == ".json":
        text = render_json(report)
    elif suffix == ".md":
        text = render_markdown(report)
    elif suffix in (".html", ".htm"):
        text = render_html(report)
    else:
        raise ValueError(
            f"cannot write a report to {str(path)!r}: the extension must be one of {', '.join(FORMATS)}"
        )
    return atomic_write(target, text)
