"""Report writers: CSV, JSON (records), Markdown and HTML, chosen by extension, written atomically.

Every writer renders the whole text first; :func:`atomic_write` then writes it to a temporary file
beside the target and renames it over the target. An exception while rendering or writing leaves
an older report intact and no partial file. Floats keep full precision in CSV and JSON (an error of
1.2e-12 survives a round trip) and NaN / inf are spelled out; :func:`read_frame` reads either back
into ``report.frame``'s schema.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from checker.results import COLUMNS, CheckResult, FunctionSummary

__all__ = [
    "FORMATS",
    "atomic_write",
    "picture_rows",
    "read_frame",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "write_report",
]

FORMATS = (".csv", ".json", ".md", ".html")
#: How JSON spells the floats it has no literal for; CSV uses the same words.
NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
_FLOAT_COLUMNS = tuple(f.name for f in fields(CheckResult) if f.type == "float")
_INT_COLUMNS = tuple(f.name for f in fields(CheckResult) if f.type == "int")
#: Failing rows listed per function (HTML and Markdown); the CSV and JSON keep every row.
ROW_LIMIT = 40


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


def write_report(report: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` to ``path``; the format follows the extension (.csv, .json, .md, .html/.htm)."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".csv":
        text = render_csv(report)
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


# ---------------------------------------------------------------------------------------------
# CSV and JSON: for tools


def _float_text(value: float) -> str:
    # repr is the shortest text that reads back as the same float: 1.2e-12, 0.1, inf, nan.
    return repr(float(value))


def render_csv(report: Any) -> str:
    """``report.frame`` as CSV: every float at full precision, NaN and inf written ``nan``, ``inf``."""
    return report.frame.to_csv(index=False, float_format=_float_text, na_rep="nan")


def _json_value(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def render_json(report: Any) -> str:
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
        raise ValueError(f"cannot read a report from {str(path)!r}: the extension must be .csv or .json")
    types = {c: "float64" for c in _FLOAT_COLUMNS} | {c: "int64" for c in _INT_COLUMNS}
    return frame[list(COLUMNS)].astype(types)


# ---------------------------------------------------------------------------------------------
# What a person reads first: per function, the diagnoses and the rows worth a picture


def _failing_summaries(report: Any) -> list[FunctionSummary]:
    return [s for s in report.summaries if s.status != "pass"]


def _rows_of(report: Any, function: str) -> list[CheckResult]:
    return [r for r in report.records if r.function == function and r.failed]


def _diagnosis_groups(rows: Sequence[CheckResult]) -> list[tuple[str, str, int, bool]]:
    """``(code, first message, count, raised)`` per (diagnosis, target), diagnosed ones first;
    ``raised``: the group's rows are errors (the user's code raised), not wrong values.

    Undiagnosed failures of a target that has a diagnosis are left out: they are the same mistake
    seen by an oracle that does not diagnose (finite differences), and stay in the rows table.
    """
    groups: dict[tuple[str, str], list[Any]] = {}
    for r in rows:
        entry = groups.setdefault((r.diagnosis, r.target), [r.message or r.check, 0, True])
        entry[1] += 1
        entry[2] &= r.status == "error"
    diagnosed = {target for code, target in groups if code}
    kept = [(key, value) for key, value in groups.items() if key[0] or key[1] not in diagnosed]
    kept.sort(key=lambda item: not item[0][0])
    return [(code, message, count, raised) for (code, _), (message, count, raised) in kept]


def _has_arrays(row: CheckResult) -> bool:
    return all(isinstance(row.evidence.get(k), np.ndarray) for k in ("actual", "expected"))


_CHECK_RANK = {"grad_torch": 0, "forward_torch": 0, "shape": 1, "grad_autograd": 1, "grad_fd": 2}


def _readability(row: CheckResult) -> tuple[bool, float]:
    # About 20 entries reads best: a 1x1 case shows nothing, a 4096-entry one shows no single value.
    size = max(row.evidence["actual"].size, row.evidence["expected"].size, 1)
    return (not row.diagnosis, abs(math.log(size / 20)))


def picture_rows(rows: Sequence[CheckResult], limit: int = 3) -> list[CheckResult]:
    """Up to ``limit`` failing rows worth a heatmap (evidence with "actual" and "expected").

    One per (case, target), from the best oracle (torch, then autograd, then finite differences);
    the targets take turns, so a function with two wrong gradients shows both.
    """
    best: dict[tuple[int, str], CheckResult] = {}
    for r in rows:
        if r.failed and _has_arrays(r):
            key = (r.case, r.target)
            rank = (_CHECK_RANK.get(r.check, 3), not r.diagnosis)
            if key not in best or rank < (_CHECK_RANK.get(best[key].check, 3), not best[key].diagnosis):
                best[key] = r
    by_target: dict[str, list[CheckResult]] = {}
    for r in sorted(best.values(), key=_readability):
        queue = by_target.setdefault(r.target, [])
        # A second picture of the same shapes would show the same thing again.
        if all((q.expected_shape, q.actual_shape) != (r.expected_shape, r.actual_shape) for q in queue):
            queue.append(r)
    queues = list(by_target.values())
    chosen: list[CheckResult] = []
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def _step_curve_of(rows: Sequence[CheckResult], case: int | None, target: str | None) -> CheckResult | None:
    for r in rows:
        if "step_curve" in r.evidence and (case is None or (r.case, r.target) == (case, target)):
            return r
    return None


# ---------------------------------------------------------------------------------------------
# Markdown: a pull-request comment or a GitHub Actions job summary


def _md_cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3g}"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in rows]
    return lines


_MARK = {"pass": "✅ pass", "fail": "❌ fail", "error": "💥 error"}


def _settings_line(settings: dict[str, Any], quote: str = "`") -> str:
    """``seed 0 · cases auto · mode auto · targets `mod```; ``quote`` wraps each target."""
    targets = ", ".join(f"{quote}{t}{quote}" for t in settings.get("targets", [])) or "—"
    cases = settings.get("cases")
    return (
        f"seed {settings.get('seed', 0)} · cases {'auto' if cases is None else cases} · "
        f"mode {settings.get('mode', 'auto')} · targets {targets}"
    )


def _headline(report: Any) -> str:
    failing = len(_failing_summaries(report))
    total = len(report.summaries)
    if not failing:
        return f"all {total} functions passed" if total != 1 else "1 function passed"
    return f"{failing} of {total} functions failed"


def render_markdown(report: Any) -> str:
    """A summary table and, per failing function, its diagnoses, shapes, the reproduce command and its
    failing checks (folded), in GitHub-flavoured Markdown."""
    lines = [f"## backprop-check: {_headline(report)}", "", _settings_line(report.settings), ""]
    lines += _md_table(
        ["function", "status", "failing cases", "diagnoses", "worst abs err", "shapes that fail"],
        [
            [
                f"`{s.function}`",
                _MARK.get(s.status, s.status),
                f"{s.failed_cases} / {s.cases}",
                s.diagnoses,
                s.worst_abs_err,
                s.shape_pattern if s.status != "pass" else "",
            ]
            for s in report.summaries
        ],
    )
    for s in _failing_summaries(report):
        rows = _rows_of(report, s.function)
        lines += ["", f"### {_MARK.get(s.status, s.status).split()[0]} `{s.function}`", ""]
        for code, message, count, raised in _diagnosis_groups(rows):
            label = f"**`{code}`**" if code else "*raised*" if raised else "*no diagnosis*"
            times = f" ({count} checks)" if count > 1 else ""
            lines.append(f"- {label}: {_md_cell(message)}{times}")
        if s.shape_pattern:
            lines.append(f"- shapes: {s.shape_pattern}")
        if s.shrunk_dims:
            lines.append(f"- smallest failing dims: `{s.shrunk_dims}`")
        elif rows and rows[0].dims:
            lines.append(f"- first failing dims: `{rows[0].dims}`")
        if s.reproduce:
            lines += ["", "Reproduce:", "", "```sh", s.reproduce, "```"]
        shown = rows[:ROW_LIMIT]
        more = f" (first {ROW_LIMIT})" if len(rows) > ROW_LIMIT else ""
        lines += ["", f"<details><summary>{len(rows)} failing checks{more}</summary>", ""]
        lines += _md_table(
            ["case", "dims", "check", "target", "diagnosis", "max abs err", "message"],
            [[r.case, r.dims, r.check, r.target, r.diagnosis, r.max_abs_err, r.message] for r in shown],
        )
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# HTML: a page (or a notebook cell) a person would rather look at than read

_CSS = """
.bc-report{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#1f2328;
 line-height:1.45;font-size:14px;max-width:1240px}
.bc-report h1{font-size:1.6em;margin:.4em 0 .1em}
.bc-report h2{font-size:1.3em;border-bottom:1px solid #d0d7de;padding-bottom:.25em;margin:1.6em 0 .5em}
.bc-report h2 code{font-size:1em}
.bc-report h3{font-size:1em;margin:1.1em 0 .35em}
.bc-report .verdict{font-size:1.1em;font-weight:600;margin:.2em 0}
.bc-report .verdict.pass{color:#116329}.bc-report .verdict.fail{color:#a40e26}
.bc-report .settings{color:#57606a;margin:.2em 0 1em}
.bc-report table{border-collapse:collapse;font-size:13px;margin:.3em 0}
.bc-report th,.bc-report td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
.bc-report th{background:#f6f8fa;font-weight:600}
.bc-report a{color:#0969da;text-decoration:none}
.bc-report code,.bc-report pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.bc-report pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;
 overflow-x:auto;margin:.3em 0}
.bc-report .badge{display:inline-block;border-radius:10px;padding:0 9px;font-size:12px;font-weight:600;
 vertical-align:middle;margin-left:6px}
.bc-report .badge.fail,.bc-report .badge.error{background:#ffebe9;color:#a40e26;border:1px solid #ffcecb}
.bc-report ul.diagnoses{padding-left:1.2em;margin:.3em 0}
.bc-report ul.diagnoses li{margin:.25em 0}
.bc-report .code{background:#fff8c5;border:1px solid #eed888;border-radius:4px;padding:0 5px;
 font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;font-weight:600}
.bc-report .code.none{background:#f6f8fa;border-color:#d0d7de;font-weight:400;color:#57606a}
.bc-report .count{color:#57606a;font-size:12px}
.bc-report p.facts{margin:.5em 0;color:#57606a}.bc-report p.facts b{color:#1f2328;font-weight:600}
.bc-report .figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,450px),1fr));
 gap:18px 24px;align-items:start;justify-items:start}
.bc-report figure{margin:0;max-width:100%;width:fit-content}
.bc-report figure.wide{grid-column:1/-1}
.bc-report figure img{display:block;max-width:100%;height:auto;border:1px solid #d0d7de;border-radius:4px;
 background:#fff}
.bc-report figcaption{contain:inline-size;font-size:12px;color:#57606a;margin-top:4px}
.bc-report details>summary{cursor:pointer;color:#0969da;margin:.6em 0 .3em}
.bc-report .muted{color:#57606a}
"""

_STATUS_CSS = {
    "pass": "background-color:#dafbe1;color:#116329;font-weight:600",
    "fail": "background-color:#ffebe9;color:#a40e26;font-weight:600",
    "error": "background-color:#ffd8d3;color:#86061d;font-weight:600",
    "skip": "color:#57606a",
}


def _anchor(index: int, function: str) -> str:
    return f"fn-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", function)


def _number(value: Any) -> str:
    return "—" if isinstance(value, float) and math.isnan(value) else f"{value:.3g}"


def _summary_table(report: Any, anchors: dict[str, str]) -> str:
    import pandas as pd

    table = pd.DataFrame(
        [
            {
                "function": s.function,
                "status": s.status,
                "failing cases": f"{s.failed_cases} / {s.cases}",
                "failing checks": f"{s.failed_checks} / {s.checks}",
                "diagnoses": s.diagnoses,
                "worst abs err": s.worst_abs_err,
                "shapes that fail": s.shape_pattern if s.status != "pass" else "",
                "seconds": s.seconds,
            }
            for s in report.summaries
        ]
    )
    if table.empty:
        return "<p class='muted'>No functions were checked.</p>"

    def link(name: str) -> str:
        # ``name`` arrives HTML-escaped (escape="html" applies before the formatter).
        return (
            f'<a href="#{anchors[html.unescape(name)]}">{name}</a>'
            if html.unescape(name) in anchors
            else name
        )

    styler = (
        table.style.set_uuid("summary")
        .hide(axis="index")
        .format({"worst abs err": _number, "seconds": "{:.2f}", "function": link}, escape="html")
        .map(lambda v: _STATUS_CSS.get(v, ""), subset=["status"])
        .set_properties(
            subset=["worst abs err", "seconds", "failing cases", "failing checks"], **{"text-align": "right"}
        )
    )
    return styler.to_html()


def _rows_table(rows: Sequence[CheckResult], uuid: str) -> str:
    import pandas as pd

    table = pd.DataFrame(
        [
            {
                "case": r.case,
                "dims": r.dims,
                "check": r.check,
                "target": r.target,
                "status": r.status,
                "diagnosis": r.diagnosis,
                "max abs err": r.max_abs_err,
                "expected shape": r.expected_shape,
                "actual shape": r.actual_shape,
                "oracle": r.oracle,
                "message": r.message,
            }
            for r in rows
        ]
    )
    styler = (
        table.style.set_uuid(uuid)
        .hide(axis="index")
        .format({"max abs err": _number}, escape="html")
        .map(lambda v: _STATUS_CSS.get(v, ""), subset=["status"])
        .set_properties(subset=["message"], **{"min-width": "26em"})
        .set_properties(subset=["dims", "expected shape", "actual shape"], **{"white-space": "nowrap"})
    )
    return styler.to_html()


def _figure_html(png: bytes, caption: str, alt: str) -> str:
    from checker.plots import css_size, png_data_uri

    width, height = css_size(png)  # drawn at twice that: sharp on HiDPI screens
    # Narrow pictures share the rows of an aligned two-column grid; a wider one takes a row of its own.
    wide = " class='wide'" if width > 560 else ""
    return (
        f"<figure{wide}><img src='{png_data_uri(png)}' width='{width}' height='{height}' "
        f"alt='{html.escape(alt)}'>"
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _pictures(rows: Sequence[CheckResult], limit: int) -> list[str]:
    """Heatmaps of up to ``limit`` wrong gradients and their finite-difference step curves, as <figure>s."""
    from checker import plots

    figures: list[str] = []
    curve = None
    for row in picture_rows(rows, limit):
        dname = f"d{row.target}" if row.check != "forward_torch" else row.target
        what = html.escape(row.diagnosis) if row.diagnosis else "no diagnosis"
        against = f" against {html.escape(row.oracle)}" if row.oracle else ""
        caption = (
            f"<b>{html.escape(dname)}</b> · case {row.case} ({html.escape(row.dims)}) · "
            f"{html.escape(row.check)}{against} · {what}"
        )
        label = dname if row.check != "forward_torch" else "output"
        try:
            png = plots.gradient_figure(row.evidence["expected"], row.evidence["actual"], label=label)
            figures.append(_figure_html(png, caption, f"heatmaps of {dname}: expected, yours, difference"))
        except Exception as err:  # a picture that cannot be drawn must not cost the report
            figures.append(
                f"<p class='muted'>No picture for {html.escape(dname)}: {html.escape(repr(err))}</p>"
            )
        # One step curve per function, beside the first heatmap of the same gradient and case.
        if curve is None:
            curve = _step_curve_of(rows, row.case, row.target)
            if curve is not None:
                figures.append(_curve_html(curve))
    if curve is None:
        curve = _step_curve_of(rows, None, None)
        if curve is not None:
            figures.append(_curve_html(curve))
    return figures


def _curve_html(row: CheckResult) -> str:
    from checker import plots

    steps, errors = row.evidence["step_curve"]
    caption = (
        f"<b>d{html.escape(row.target)}</b> · case {row.case} ({html.escape(row.dims)}) · finite differences "
        "along a random direction v at each step h: a right gradient dips to about 1e-10 near h = 1e-5, "
        "a wrong one stays on a floor at the size of its error"
    )
    try:
        png = plots.step_curve_figure(np.asarray(steps), np.asarray(errors), name=row.target)
    except Exception as err:
        return f"<p class='muted'>No step curve for d{html.escape(row.target)}: {html.escape(repr(err))}</p>"
    return _figure_html(png, caption, f"finite-difference error against step size for d{row.target}")


def _function_section(
    summary: FunctionSummary, rows: Sequence[CheckResult], anchor: str, pictures: int
) -> str:
    name = html.escape(summary.function)
    parts = [
        f'<section class="function" id="{anchor}">',
        f"<h2><code>{name}</code><span class='badge {summary.status}'>{summary.status}</span></h2>",
        "<h3>Diagnosis</h3><ul class='diagnoses'>",
    ]
    for code, message, count, raised in _diagnosis_groups(rows):
        label = (
            f"<span class='code'>{html.escape(code)}</span>"
            if code
            else f"<span class='code none'>{'raised' if raised else 'no diagnosis'}</span>"
        )
        times = f" <span class='count'>({count} checks)</span>" if count > 1 else ""
        parts.append(f"<li>{label} {html.escape(message)}{times}</li>")
    facts = [f"failing cases <b>{summary.failed_cases} of {summary.cases}</b>"]
    if summary.shape_pattern:
        facts.append(f"shapes: <b>{html.escape(summary.shape_pattern)}</b>")
    if summary.shrunk_dims:
        facts.append(f"smallest failing dims <code>{html.escape(summary.shrunk_dims)}</code>")
    elif rows and rows[0].dims:
        facts.append(f"first failing dims <code>{html.escape(rows[0].dims)}</code>")
    parts += ["</ul>", f"<p class='facts'>{' · '.join(facts)}</p>"]
    if summary.reproduce:
        parts.append(f"<h3>Reproduce</h3><pre><code>{html.escape(summary.reproduce)}</code></pre>")
    figures = _pictures(rows, pictures)
    if figures:
        parts += ["<h3>Pictures</h3>", "<div class='figures'>", *figures, "</div>"]
    shown = rows[:ROW_LIMIT]
    more = f", the first {ROW_LIMIT} shown" if len(rows) > ROW_LIMIT else ""
    parts.append(
        f"<details{' open' if len(rows) <= 6 else ''}><summary>{len(rows)} failing checks{more}</summary>"
    )
    parts += [_rows_table(shown, f"rows_{anchor}"), "</details>", "</section>"]
    return "\n".join(parts)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("backprop-check")
    except PackageNotFoundError:
        return ""


def render_html(
    report: Any, standalone: bool = True, *, pictures: int = 3, generated: dt.datetime | None = None
) -> str:
    """A self-contained HTML page, or (``standalone=False``) a fragment for a notebook cell.

    Header (verdict, settings, date), a summary table (pandas Styler, fixed table ids), then one
    section per failing function: diagnoses, shapes, smallest failing dims, the reproduce command,
    up to ``pictures`` heatmaps (PNG data URIs, nothing fetched from elsewhere) and its failing checks.
    ``generated``: the date to print (now when None; fix it for byte-identical pages).
    """
    failing = _failing_summaries(report)
    anchors = {s.function: _anchor(i, s.function) for i, s in enumerate(failing)}
    when = (generated or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    version = _version()
    verdict = "fail" if failing else "pass"
    mark = "✗" if failing else "✓"
    parts = [
        "<div class='bc-report'>",
        f"<style>{_CSS}</style>",
        "<h1>backprop-check report</h1>" if standalone else "",
        f"<p class='verdict {verdict}'>{mark} {html.escape(_headline(report))}</p>",
        f"<p class='settings'>{html.escape(_settings_line(report.settings, quote=''))}"
        f" · {html.escape(when)}{f' · backprop-check {html.escape(version)}' if version else ''}</p>",
        _summary_table(report, anchors),
    ]
    parts += [
        _function_section(s, _rows_of(report, s.function), anchors[s.function], pictures) for s in failing
    ]
    parts.append("</div>")
    body = "\n".join(p for p in parts if p)
    if not standalone:
        return body
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>backprop-check: {html.escape(_headline(report))}</title>"
        "<style>body{margin:16px 24px;background:#fff}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
