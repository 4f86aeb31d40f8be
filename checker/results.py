"""Result records, the report's column schema, and the per-function summary.

One :class:`CheckResult` per (function, case, check, target). ``evidence`` keeps the arrays behind
a failure (expected, actual) for pictures; it never enters the DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "COLUMNS",
    "STATUSES",
    "CheckResult",
    "FunctionSummary",
    "Report",
    "install_presenters",
    "records_to_frame",
]

STATUSES = ("pass", "fail", "error", "skip")


@dataclass(frozen=True)
class CheckResult:
    """One row of the report. ``status`` is pass, fail, error (the user's code raised) or skip."""

    check: str
    target: str
    status: str
    message: str = ""
    diagnosis: str = ""
    max_abs_err: float = float("nan")
    max_rel_err: float = float("nan")
    expected_shape: str = ""
    actual_shape: str = ""
    oracle: str = ""
    function: str = ""
    case: int = -1
    case_label: str = ""
    dims: str = ""
    seed: int = 0
    seconds: float = 0.0
    evidence: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: the accuracy the row was judged at: float64, float32, float16 (keyword-only, after evidence)
    precision: str = field(default="", kw_only=True)
    #: ``localize`` rows: the backward's first wrong local (``dsqrtvar``) and where (``mylayers.py:123``).
    first_wrong: str = field(default="", kw_only=True)
    location: str = field(default="", kw_only=True)

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "error")


def _columns() -> tuple[str, ...]:
    # The localisation columns sit next to the diagnosis; in the dataclass they come last so that
    # positional construction keeps its meaning.
    names = [f.name for f in fields(CheckResult) if f.name not in ("evidence", "first_wrong", "location")]
    at = names.index("diagnosis") + 1
    return (*names[:at], "first_wrong", "location", *names[at:])


#: The DataFrame's columns, in order (``evidence`` is left out).
COLUMNS = _columns()


@dataclass(frozen=True)
class FunctionSummary:
    """One registered function across its cases: the verdict, what failed and how to reproduce it."""

    function: str
    status: str
    cases: int
    failed_cases: int
    checks: int
    failed_checks: int
    diagnoses: str
    worst_abs_err: float
    seconds: float
    shape_pattern: str = ""
    shrunk_dims: str = ""
    reproduce: str = ""
    first_failure: str = ""
    #: what the headline leaves out: codes found only where a symbol has size 1, or why none is given
    notes: str = ""
    #: the first wrong step of the backward, where one was located: ``dsqrtvar at layers.py:34``
    where: str = ""


def records_to_frame(records: list[CheckResult]) -> Any:
    """The report's DataFrame (pandas imported here, at the edge)."""
    import pandas as pd

    rows = [{c: getattr(r, c) for c in COLUMNS} for r in records]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"case": "int64", "seed": "int64"}) if len(frame) else frame


def summaries_to_frame(summaries: list[FunctionSummary]) -> Any:
    import pandas as pd

    columns = [f.name for f in fields(FunctionSummary)]
    return pd.DataFrame([asdict(s) for s in summaries], columns=columns)


#: How a :class:`Report` is written, drawn in a notebook and printed: ``write(report, path)``,
#: ``html(report)``, ``text(report)``. This record layer imports nothing above it; the report module
#: hands its writers over when it is imported (see :func:`install_presenters`).
_PRESENTERS: dict[str, Callable[..., Any]] = {}


def install_presenters(**presenters: Callable[..., Any]) -> None:
    """Called by :mod:`checker.report` on import: ``write=``, ``html=``, ``text=``."""
    unknown = set(presenters) - {"write", "html", "text"}
    if unknown:
        raise TypeError(f"install_presenters: unknown presenters {sorted(unknown)}")
    _PRESENTERS.update(presenters)


class Report:
    """The outcome of a run: every record and one summary per function. It holds data only.

    ``report.frame`` is the DataFrame (schema: :data:`COLUMNS`); ``report.summary()`` has one row
    per function; ``report.write("reports/run.html")`` (:func:`checker.report.write_report`) picks the
    format from the extension; ``print(report)`` shows the summary table; in a notebook the report
    draws itself.
    """

    def __init__(
        self,
        records: list[CheckResult],
        summaries: list[FunctionSummary],
        settings: dict[str, Any] | None = None,
    ) -> None:
        self.records = records
        self.summaries = summaries
        self.settings = dict(settings or {})
        self._frame: Any = None

    @property
    def frame(self) -> Any:
        if self._frame is None:
            self._frame = records_to_frame(self.records)
        return self._frame

    @property
    def passed(self) -> bool:
        return all(s.status == "pass" for s in self.summaries)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.records if r.failed]

    def summary(self) -> Any:
        """One row per function: status, cases run and failed, diagnoses, worst error, time, shapes that fail."""
        return summaries_to_frame(self.summaries)

    def write(self, path: Any) -> Any:
        """Write the report atomically; the format follows the extension (.csv, .json, .md, .html).

        The same as ``checker.report.write_report(report, path)``, which does the writing.
        """
        writer = _PRESENTERS.get("write")
        if writer is None:
            raise RuntimeError("no report writer: import checker.report (checker.check and checker.run do)")
        return writer(self, path)

    def _repr_html_(self) -> str | None:
        html = _PRESENTERS.get("html")
        return html(self) if html is not None else None

    def __str__(self) -> str:
        text = _PRESENTERS.get("text")
        return text(self) if text is not None else repr(self)

    def __repr__(self) -> str:
        failed = sum(s.status != "pass" for s in self.summaries)
        return f"<Report: {len(self.summaries)} functions, {failed} failing, {len(self.records)} checks>"
