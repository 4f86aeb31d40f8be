"""The HTML report: a page (or a notebook cell) a person would rather look at than read.

Header (verdict, settings, date), a summary table (pandas Styler, fixed table ids, failing
functions first), then one section per failing function: its diagnoses, the facts every door shows
(:func:`checker.presentation.summary.function_facts`), up to three heatmaps and a finite-difference
step curve (PNG data URIs: nothing is fetched from elsewhere), and its failing checks. A function
whose backward was localised gets a "where" section (:func:`where_section`): its steps in order,
right ones marked right, the first wrong one marked with its statement and diagnosis, and the
heatmap of that step's value against its exact gradient.
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from checker.presentation.markdown_page import ROW_LIMIT
from checker.presentation.pictures import PICTURES, picture_rows, step_curve_of
from checker.presentation.summary import diagnosis_groups, failing_first, function_facts, headline, run_line
from checker.presentation.where import (
    located_gradients,
    shown_steps,
    step_arrays,
    unchecked_names,
    where_row,
)
from checker.presentation.words import gradient_name

if TYPE_CHECKING:
    from checker.results import CheckResult, FunctionSummary, Report

__all__ = ["render_html"]

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
.bc-report table.steps td{border-color:#e6e9ed}
.bc-report table.steps td.mark{white-space:nowrap;font-weight:600}
.bc-report table.steps tr.right td.mark{color:#116329}
.bc-report table.steps tr.first_wrong td{background:#ffebe9}
.bc-report table.steps tr.first_wrong td.mark{color:#a40e26}
.bc-report table.steps tr.why td{background:#fff5f4;color:#1f2328}
.bc-report table.steps tr.wrong td,.bc-report table.steps tr.partial td{color:#57606a}
.bc-report table.steps tr.wrong td.mark{color:#cf222e}
.bc-report table.steps td.at{white-space:nowrap;color:#57606a}
.bc-report p.where{margin:.4em 0}
.bc-report p.advice{background:#fff8c5;border:1px solid #eed888;border-radius:6px;padding:6px 10px;
 margin:.5em 0}
"""

_WHERE_TITLE = "Where the backward goes wrong"

_STATUS_CSS = {
    "pass": "background-color:#dafbe1;color:#116329;font-weight:600",
    "fail": "background-color:#ffebe9;color:#a40e26;font-weight:600",
    "error": "background-color:#ffd8d3;color:#86061d;font-weight:600",
    "skip": "color:#57606a",
}


def _with_code(escaped: str) -> str:
    """HTML-escaped text whose backticked parts (a statement in a message) are shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _anchor(index: int, function: str) -> str:
    return f"fn-{index}-" + re.sub(r"[^A-Za-z0-9_-]+", "-", function)


def _number(value: Any) -> str:
    return "—" if isinstance(value, float) and math.isnan(value) else f"{value:.3g}"


def _summary_table(summaries: Sequence[FunctionSummary], anchors: dict[str, str]) -> str:
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
            for s in summaries
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
    import checker.plots as plots

    figures: list[str] = []
    curve = None
    for row in picture_rows(rows, limit):
        dname = gradient_name(row.target) if row.check != "forward_torch" else row.target
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
            curve = step_curve_of(rows, row.case, row.target)
            if curve is not None:
                figures.append(_curve_html(curve))
    if curve is None:
        curve = step_curve_of(rows, None, None)
        if curve is not None:
            figures.append(_curve_html(curve))
    return figures


def _curve_html(row: CheckResult) -> str:
    import checker.plots as plots

    steps, errors = row.evidence["step_curve"]
    caption = (
        f"<b>{html.escape(gradient_name(row.target))}</b> · case {row.case} ({html.escape(row.dims)}) · finite differences "
        "along a random direction v at each step h: a right gradient dips to about 1e-10 near h = 1e-5, "
        "a wrong one stays on a floor at the size of its error"
    )
    try:
        png = plots.step_curve_figure(np.asarray(steps), np.asarray(errors), name=row.target)
    except Exception as err:
        return f"<p class='muted'>No step curve for {html.escape(gradient_name(row.target))}: {html.escape(repr(err))}</p>"
    return _figure_html(
        png, caption, f"finite-difference error against step size for {gradient_name(row.target)}"
    )


def _step_row(step: Any) -> str:
    name = html.escape(step.name)
    title = f" title='the gradient of {html.escape(step.matches)}'" if step.matches else ""
    cells = (
        f"<tr class='{html.escape(step.verdict)}'><td class='mark'>{html.escape(step.mark)}</td>"
        f"<td><code{title}>{name}</code></td><td class='at'>{html.escape(step.location)}</td>"
        f"<td><code>{html.escape(step.source)}</code></td></tr>"
    )
    if step.verdict == "first_wrong" and (step.diagnosis or step.message):
        code = (
            f"<span class='code'>{html.escape(step.diagnosis)}</span> "
            if step.diagnosis
            else "<span class='code none'>no diagnosis</span> "
        )
        cells += f"<tr class='why'><td></td><td colspan='3'>{code}{html.escape(step.message)}</td></tr>"
    return cells


def where_section(rows: Sequence[CheckResult], anchor: str) -> list[str]:
    """The "where" section of a localised function ([] when nothing was located): the backward's
    steps in order with their verdicts, and the first wrong step's heatmap against its exact gradient."""
    row = where_row(rows)
    if row is None:
        return []
    step = html.escape(row.first_wrong)
    parts = [
        f"<h3 id='{anchor}-where'>{_WHERE_TITLE}</h3>",
        f"<p class='where'>Gradient <b>{html.escape(gradient_name(row.target))}</b>, case {row.case} "
        f"({html.escape(row.dims)}): the first wrong step is <code>{step}</code> at "
        f"<code>{html.escape(row.location)}</code>.</p>",
    ]
    others = [
        g for g in located_gradients(rows) if g[0] != row.target or g[1:] != (row.first_wrong, row.location)
    ]
    if others:
        told = "; ".join(
            f"{html.escape(gradient_name(g))}: <code>{html.escape(w)}</code> at <code>{html.escape(at)}</code>"
            for g, w, at in others
        )
        parts.append(f"<p class='where muted'>Also located: {told}.</p>")
    steps = shown_steps(row)
    if steps:
        parts += [
            f"<table class='steps' id='{anchor}-steps'><thead><tr><th>verdict</th><th>step</th><th>line</th><th>statement</th>"
            "</tr></thead><tbody>",
            *(_step_row(s) for s in steps),
            "</tbody></table>",
        ]
    else:
        parts.append(f"<p class='muted'>{html.escape(row.message)}</p>")
    unmatched, left_out = unchecked_names(row)
    notes = []
    if unmatched:
        notes.append(
            "Not checked (no forward value has their name, so their right values are unknown): "
            + ", ".join(f"<code>{html.escape(n)}</code>" for n in unmatched)
            + "."
        )
    if left_out:
        notes.append(f"{left_out} more step{'s' if left_out != 1 else ''} not listed.")
    if notes:
        parts.append(f"<p class='muted'>{' '.join(notes)}</p>")
    arrays = step_arrays(row)
    if arrays is not None:
        import checker.plots as plots

        matches = next((s.matches for s in steps if s.verdict == "first_wrong"), "")
        exact = (
            f"the exact gradient of <code>{html.escape(matches)}</code>" if matches else "its exact gradient"
        )
        caption = (
            f"<b>{step}</b> at {html.escape(row.location)} · case {row.case} ({html.escape(row.dims)}) · "
        )
        caption += f"its value against {exact}"
        caption += f" · {html.escape(row.diagnosis)}" if row.diagnosis else ""
        try:
            png = plots.gradient_figure(arrays[0], arrays[1], label=row.first_wrong)
            figure = _figure_html(png, caption, f"heatmaps of {row.first_wrong}: expected, yours, difference")
        except Exception as err:  # a picture that cannot be drawn must not cost the report
            figure = f"<p class='muted'>No picture for {step}: {html.escape(repr(err))}</p>"
        parts += ["<div class='figures'>", figure, "</div>"]
    return parts


def _function_section(
    summary: FunctionSummary, records: Sequence[CheckResult], anchor: str, pictures: int
) -> str:
    name = html.escape(summary.function)
    rows = [r for r in records if r.failed]
    parts = [
        f'<section class="function" id="{anchor}">',
        f"<h2><code>{name}</code><span class='badge {summary.status}'>{summary.status}</span></h2>",
        "<h3>Diagnosis</h3><ul class='diagnoses'>",
    ]
    for code, message, count, raised in diagnosis_groups(rows):
        label = (
            f"<span class='code'>{html.escape(code)}</span>"
            if code
            else f"<span class='code none'>{'raised' if raised else 'no diagnosis'}</span>"
        )
        times = f" <span class='count'>({count} checks)</span>" if count > 1 else ""
        parts.append(f"<li>{label} {_with_code(html.escape(message))}{times}</li>")
    parts.append("</ul>")
    facts = [f"failing cases <b>{summary.failed_cases} of {summary.cases}</b>"]
    reproduce = ""
    for fact in function_facts(summary, records):
        text = html.escape(fact.text)
        if fact.key == "reproduce":
            reproduce = text
        elif fact.key == "advice":
            parts.append(f"<p class='advice'><b>{fact.label}:</b> {text}</p>")
        elif fact.key == "where":
            facts.append(f"{fact.label} <a href='#{anchor}-where'><b>{_with_code(text)}</b></a>")
        else:
            facts.append(f"{fact.label} " + (f"<code>{text}</code>" if fact.literal else f"<b>{text}</b>"))
    parts.append(f"<p class='facts'>{' · '.join(facts)}</p>")
    parts += where_section(rows, anchor)
    if reproduce:
        parts.append(f"<h3>Reproduce</h3><pre><code>{reproduce}</code></pre>")
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
    report: Report, standalone: bool = True, *, pictures: int = PICTURES, generated: dt.datetime | None = None
) -> str:
    """A self-contained HTML page, or (``standalone=False``) a fragment for a notebook cell.

    ``pictures``: heatmaps per failing function; ``generated``: the date to print (now when None;
    fix it for byte-identical pages).
    """
    summaries = failing_first(report.summaries)
    failing = [s for s in summaries if s.status != "pass"]
    anchors = {s.function: _anchor(i, s.function) for i, s in enumerate(failing)}
    when = (generated or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    version = _version()
    verdict = "fail" if failing else "pass"
    mark = "✗" if failing else "✓"
    title = html.escape(headline(summaries))
    parts = [
        "<div class='bc-report'>",
        f"<style>{_CSS}</style>",
        "<h1>backprop-check report</h1>" if standalone else "",
        f"<p class='verdict {verdict}'>{mark} {title}</p>",
        f"<p class='settings'>{html.escape(run_line(report.settings, summaries, quote=''))}"
        f" · {html.escape(when)}{f' · backprop-check {html.escape(version)}' if version else ''}</p>",
        _summary_table(summaries, anchors),
    ]
    parts += [
        _function_section(
            s, [r for r in report.records if r.function == s.function], anchors[s.function], pictures
        )
        for s in failing
    ]
    parts.append("</div>")
    body = "\n".join(p for p in parts if p)
    if not standalone:
        return body
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>backprop-check: {title}</title>"
        "<style>body{margin:16px 24px;background:#fff}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
