"""Report files: :func:`write_report` (CSV, JSON, Markdown or HTML, by extension, written atomically)
and :func:`read_frame` (a CSV or JSON report read back).

Every writer renders the whole text first; :func:`atomic_write` then writes it to a temporary file
beside the target and renames it over the target. An exception while rendering or writing leaves
an older report intact and no partial file. Floats keep full precision in CSV and JSON (an error of
1.2e-12 survives a round trip) and NaN / inf are spelled out. The pages people read (Markdown,
HTML) are drawn by :mod:`checker.presentation`.

Importing this module also tells :class:`~checker.results.Report` how to write itself, render in a
notebook and print (``report.write(path)``, ``_repr_html_``, ``print(report)``): the record layer
imports nothing above it, so the writers are handed to it from here. ``checker.check`` and
``checker.run`` import this module, so every report a user gets has them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

from checker.errors import OptionError
from checker.presentation.html_page import render_html
from checker.presentation.markdown_page import render_markdown
from checker.presentation.options import REPORT_FORMATS, report_format
from checker.results import COLUMNS, CheckResult, Report, install_presenters

__all__ = [
    "FORMATS",
    "atomic_write",
    "read_frame",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "write_report",
]

#: The extensions a report can be written to (``.htm`` is ``.html`` too).
FORMATS = tuple(e for e in REPORT_FORMATS if e != ".htm")
#: How JSON spells the floats it has no literal for; CSV uses the same words.
NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
_FLOAT_COLUMNS = tuple(f.name for f in fields(CheckResult) if f.type == "float")
_INT_COLUMNS = tuple(f.name for f in fields(CheckResult) if f.type == "int")


# ---------------------------------------------------------------------------------------------
# Writing


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); a report is an ordinary file (0666 less the umask).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_report(report: Report, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` to ``path``; the format follows the extension (.csv, .json, .md, .html/.htm).

    An unknown extension raises :class:`~checker.errors.OptionError` before anything is written.
    """
    kind = report_format(path)
    if kind == "csv":
        text = render_csv(report)
    elif kind == "json":
        text = render_json(report)
    elif kind == "markdown":
        text = render_markdown(report)
    else:
        text = render_html(report)
    return atomic_write(Path(path), text)


# ---------------------------------------------------------------------------------------------
# CSV and JSON: for tools


def _float_text(value: float) -> str:
    # repr is the shortest text that reads back as the same float: 1.2e-12, 0.1, inf, nan.
    return repr(float(value))


def render_csv(report: Report) -> str:
    """``report.frame`` as CSV: every float at full precision, NaN and inf written ``nan``, ``inf``."""
    return report.frame.to_csv(index=False, float_format=_float_text, na_rep="nan")


def _json_value(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def render_json(report: Report) -> str:
    """``{"settings", "summary", "records"}`` with every float at full precision (pandas' ``to_json``
    would write 1.2e-12 as 0.0); NaN and inf, which JSON cannot spell, are the strings "nan", "inf", "-inf"."""
    records = [{k: _json_value(v) for k, v in row.items()} for row in report.frame.to_dict(orient="records")]
    summary = [
        {k: _json_value(v) for k, v in row.items()} for row in report.summary().to_dict(orient="records")
    ]
    document = {
        "format": "backprop-check report",
        "non_finite": 'NaN and infinities are the strings "nan", "inf" and "-inf"',
        "settings": report.settings,
        "summary": summary,
        "records": records,
    }
    return json.dumps(document, indent=1, allow_nan=False, default=str) + "\n"


def read_frame(path: str | os.PathLike[str]) -> Any:
    """A report written as .csv or .json, read back as a DataFrame of ``report.frame``'s schema."""
    import pandas as pd

    source = Path(path)
    if source.suffix.lower() == ".csv":
        frame = pd.read_csv(
            source,
            keep_default_na=False,
            na_values={c: ["nan"] for c in _FLOAT_COLUMNS},
            dtype={c: str for c in COLUMNS if c not in _FLOAT_COLUMNS + _INT_COLUMNS},
        )
    elif source.suffix.lower() == ".json":
        records = json.loads(source.read_text(encoding="utf-8"))["records"]
        for record in records:
            for column in _FLOAT_COLUMNS:
                value = record.get(column)
                record[column] = NON_FINITE[value] if isinstance(value, str) else value
        frame = pd.DataFrame(records, columns=list(COLUMNS))
    else:
        raise OptionError(f"cannot read a report from {str(path)!r}: the extension must be .csv or .json")
    types = {c: "float64" for c in _FLOAT_COLUMNS} | {c: "int64" for c in _INT_COLUMNS}
    return frame[list(COLUMNS)].astype(types)


def _notebook_html(report: Report) -> str:
    return render_html(report, standalone=False)


def _text(report: Report) -> str:
    from checker.presentation.terminal import render_text  # rich, only when a report is printed

    return render_text(report)


install_presenters(write=write_report, html=_notebook_html, text=_text)
