"""The pytest door: ``pytest --backprop-check mymodule`` and the ``backprop`` fixture.

Every function a module registers becomes one test item, ``mymodule::backprop[affine]``, run next to
the rest of the suite; a failing item prints the harness's own report (check, gradient, diagnosis,
dims, shape pattern, shrunk dims, reproduce command) instead of a traceback from inside the harness.

Only pytest and the standard library are imported here at module level: the harness (numpy,
hypothesis, torch, pandas) loads when ``--backprop-check``, an ini setting or the fixture is used.

Items are made in ``pytest_collection_modifyitems`` (``tryfirst``, so ``-k``, ``-m`` and
``--deselect`` still filter them) by expanding one collector per module with ``session.genitems``: an
unimportable module is then an ordinary collection error, reported by pytest itself. Under xdist
every worker builds the same items; each finished item carries its records, as plain data, on its
call report (``report.backprop_check``), which xdist sends to the controller, and only the
controller gathers them (``pytest_runtest_logreport``), prints the summary and writes the report.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from checker.registry import Target
    from checker.results import CheckResult, FunctionSummary, Report

__all__ = ["BackpropFixture", "BackpropItem", "BackpropModule", "backprop"]

GROUP = "backprop-check"
#: The attribute of a test report that carries its records to the controller.
REPORT_ATTRIBUTE = "backprop_check"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "backprop-check: verify hand-written numpy backprop")
    group.addoption(
        "--backprop-check",
        action="append",
        default=None,
        metavar="MODULE",
        dest="backprop_check",
        help="check every function MODULE registers, one test item each (a dotted module name or a .py "
        "path, relative to the rootdir); repeatable; replaces the backprop_check_modules ini setting",
    )
    group.addoption(
        "--backprop-cases",
        type=int,
        default=None,
        metavar="N",
        dest="backprop_cases",
        help="cases (dimension sizes) per function (default 6)",
    )
    group.addoption(
        "--backprop-seed",
        default=None,
        metavar="N",
        dest="backprop_seed",
        help="random seed for the cases (default 0), or several: 0,1,2 or 0-9; the same seed gives the same cases",
    )
    group.addoption(
        "--backprop-report",
        default=None,
        metavar="PATH",
        dest="backprop_report",
        help="write a report of every check run (.csv .json .md .html, by extension)",
    )
    group.addoption(
        "--backprop-tol",
        default=None,
        metavar="TOL",
        dest="backprop_tol",
        help='tolerances replacing the registered ones, e.g. "rtol=1e-6,fd_rtol=1e-4" (keys: rtol, atol '
        "against exact oracles; fd_rtol, fd_atol against finite differences)",
    )
    parser.addini("backprop_check_modules", "modules to check, one per line", type="linelist", default=[])
    parser.addini("backprop_cases", "cases per function (default 6)", default="")
    parser.addini(
        "backprop_seed",
        "random seed for the cases (default 0), or several: 0,1,2, 0-9, or a TOML list [0, 1, 2]",
        type="args",
        default=[],
    )
    parser.addini(
        "backprop_report", "report path (.csv .json .md .html), relative to the ini file", default=""
    )
    parser.addini("backprop_tol", 'tolerances, e.g. "rtol=1e-6,fd_rtol=1e-4"', default="")


@dataclasses.dataclass(frozen=True)
class Settings:
    """The run's settings, from the command line, else the ini file, else the defaults."""

    modules: tuple[str, ...] = ()
    #: one seed, or several as ``--backprop-seed`` takes them (``"0-2,5"``)
    seed: int | str = 0
    cases: int | None = None
    tol: dict[str, float] | None = None
    tol_text: str = ""
    report: Path | None = None
    #: Whether any backprop-check option or ini setting was given (the header is shown only then).
    active: bool = False


def _seed_setting(value: str, name: str) -> int | str:
    """One seed as an int; several (``0,1,2``, ``0-9``, a TOML list) as ``--backprop-seed`` takes them."""
    from checker.errors import SpecError
    from checker.spec import parse_seeds, seed_text

    try:
        seeds = parse_seeds(value, name)
    except SpecError as err:
        raise pytest.UsageError(str(err)) from None
    return seeds[0] if len(seeds) == 1 else seed_text(seeds)


def _parsed(parse: Any, *args: Any) -> Any:
    """A parser of :mod:`checker.presentation.options` (shared with the CLI); its OptionError is
    pytest's usage error, with the same words."""
    from checker.errors import OptionError

    try:
        return parse(*args)
    except OptionError as err:
        raise pytest.UsageError(str(err)) from None


def _setting(config: pytest.Config, name: str) -> tuple[str, str]:
    """The option's value, else the ini setting's, as stripped text, with the name to blame for it."""
    value = getattr(config.option, name)
    if value is not None:
        return str(value).strip(), "--" + name.replace("_", "-")
    value = config.getini(name)
    if isinstance(value, list):  # an "args" setting: a TOML list, or words of the ini line
        return ",".join(str(v).strip() for v in value), name
    return str(value).strip(), name


def read_settings(config: pytest.Config) -> Settings:
    """Command-line options override ini settings; a bad value is a usage error that names it."""
    option = config.option
    cli_modules = option.backprop_check
    modules = cli_modules if cli_modules is not None else config.getini("backprop_check_modules")
    modules = tuple(dict.fromkeys(m.strip() for m in modules if m.strip()))
    from checker.presentation import options as parse

    seed_raw, seed_name = _setting(config, "backprop_seed")
    seed = _seed_setting(seed_raw, seed_name) if seed_raw else 0
    cases_raw, cases_name = _setting(config, "backprop_cases")
    cases = _parsed(parse.parse_whole_number, cases_raw, cases_name, 1) if cases_raw else None
    tol_text, tol_name = _setting(config, "backprop_tol")
    report: Path | None = None
    if option.backprop_report:
        report = config.invocation_params.dir / option.backprop_report
    elif config.getini("backprop_report"):
        base = config.inipath.parent if config.inipath else config.rootpath
        report = base / str(config.getini("backprop_report"))
    active = bool(modules or seed_raw or cases_raw or tol_text) or report is not None
    if report is not None:
        _parsed(parse.report_format, report, "backprop-check report")
    tol = _parsed(parse.parse_tolerance, tol_text, tol_name) if tol_text else None
    return Settings(modules, seed, cases, tol, tol_text, report, active)


SETTINGS = pytest.StashKey[Settings]()
#: Per item: (records, summary) of each function it checked, not yet put on a report.
PENDING = pytest.StashKey["list[tuple[list[CheckResult], FunctionSummary]]"]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "backprop(seed=None, cases=None, tol=None): settings for the backprop fixture in this test; "
        "also on every --backprop-check item (select them with -m backprop)",
    )
    config.stash[SETTINGS] = read_settings(config)
    config.pluginmanager.register(BackpropSession(config), "backprop-check-session")


# --- items --------------------------------------------------------------------------------------------


def _function_names(target: Target) -> frozenset[str]:
    return frozenset(getattr(fn, "__name__", "") for fn in target.user_functions.values())


class BackpropFailure(Exception):
    """Raised by an item whose function did not pass; its only argument is the text to show."""


class BackpropModule(pytest.Collector):
    """One ``--backprop-check`` module: importing it happens in ``collect``, so a failure is a collection error."""

    def __init__(self, *, spec: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def collect(self) -> list[pytest.Item]:
        from checker.errors import TargetNotFound
        from checker.registry import collect, import_target_module

        try:
            module = import_target_module(self.spec, self.config.rootpath)
        except TargetNotFound as err:
            raise self.CollectError(f"backprop-check: {err}") from None
        targets = collect(module)
        if not targets:
            raise self.CollectError(
                f"backprop-check: {self.spec!r} registers no functions; call bc.register(...) at import time"
            )
        names = [t.name for t in targets]
        module_file = getattr(module, "__file__", None)
        items: list[pytest.Item] = []
        for target in targets:
            label = target.name if names.count(target.name) == 1 else f"{target.module}.{target.name}"
            kwargs: dict[str, Any] = {"path": Path(module_file)} if module_file else {}
            items.append(BackpropItem.from_parent(self, name=f"backprop[{label}]", target=target, **kwargs))
        return items


class BackpropItem(pytest.Item):
    """One registered function, checked over its cases by :func:`checker.suite.check_target`."""

    def __init__(self, *, target: Target, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target
        self.add_marker("backprop")

    @property
    def source(self) -> str:
        """Where the function came from, as the user named it (for the reproduce command)."""
        return self.parent.name if self.parent is not None else self.target.module

    def runtest(self) -> None:
        from checker.registry import OracleTolerances
        from checker.runner import CheckOptions
        from checker.suite import check_target

        settings = self.config.stash[SETTINGS]
        options = CheckOptions(tol=None if settings.tol is None else OracleTolerances.coerce(settings.tol))
        records, summary = check_target(
            self.target, seed=settings.seed, cases=settings.cases, options=options, source=self.source
        )
        if summary.reproduce and settings.tol_text:
            summary = dataclasses.replace(summary, reproduce=f"{summary.reproduce} --tol {settings.tol_text}")
        self.stash.setdefault(PENDING, []).append((records, summary))
        if summary.status != "pass":
            from checker.presentation.failure import failure_text

            names = _function_names(self.target)
            rerun = ("rerun", self._rerun_command(settings))
            raise BackpropFailure(failure_text(summary, records, settings.seed, names, [rerun]))

    def _rerun_command(self, settings: Settings) -> str:
        """The same item again in pytest (the reproduce line above pins the smallest failing dims instead)."""
        options = f"--backprop-check {self.source} --backprop-seed {settings.seed}"
        if settings.cases is not None:
            options += f" --backprop-cases {settings.cases}"
        if settings.tol_text:
            options += f' --backprop-tol "{settings.tol_text}"'
        return f'pytest {options} -k "{self.name}"'

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str | Any:
        if isinstance(excinfo.value, BackpropFailure):
            return str(excinfo.value.args[0])
        from checker.errors import BackpropCheckError

        if isinstance(excinfo.value, BackpropCheckError):
            return f"backprop-check: {type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[os.PathLike[str] | str, int | None, str]:
        functions = self.target.user_functions
        main = functions.get("backward") or functions.get("value_and_grad") or functions.get("loss")
        try:
            path = inspect.getsourcefile(inspect.unwrap(main)) if main is not None else None
            lineno = inspect.getsourcelines(inspect.unwrap(main))[1] - 1 if path else None
        except (OSError, TypeError):
            path, lineno = None, None
        # The domain heads the failure section; pytest's convention is a dotted name.
        where = Path(self.source).stem if self.source.endswith(".py") else self.source
        return (path or self.path), lineno, f"{where}.{self.name}"


# --- the per-run plugin -------------------------------------------------------------------------------


class BackpropSession:
    """Hooks for one pytest run: items, the header, gathering results, the report and the summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.settings: Settings = config.stash[SETTINGS]
        #: (nodeid, payload) per test that ran checks, as received (on the xdist controller: from workers).
        self.outcomes: list[tuple[str, dict[str, list[dict[str, Any]]]]] = []
        self.written: Path | None = None
        self.write_error = ""

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        if not self.settings.active:
            return []
        from checker.fuzz import DEFAULT_CASES

        s = self.settings
        cases = s.cases if s.cases is not None else f"{DEFAULT_CASES} (default)"
        line = f"backprop-check: seed={s.seed}, cases={cases}"
        if s.tol_text:
            line += f", tol={s.tol_text}"
        if s.modules:
            line += f", modules: {', '.join(s.modules)}"
        return [line]

    def _module_node(self, session: pytest.Session, spec: str) -> BackpropModule:
        nodeid = spec
        if spec.endswith(".py"):
            path = Path(spec) if Path(spec).is_absolute() else self.config.rootpath / spec
            try:
                nodeid = path.resolve().relative_to(self.config.rootpath.resolve()).as_posix()
            except ValueError:
                nodeid = Path(spec).as_posix()
        return BackpropModule.from_parent(session, name=nodeid, nodeid=nodeid, spec=spec)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, items: list[pytest.Item]) -> None:
        for spec in self.settings.modules:
            items.extend(session.genitems(self._module_node(session, spec)))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
        outcome = yield
        pending = item.stash.get(PENDING, None)
        if pending:
            from checker.pytest_payload import to_payload

            setattr(outcome.get_result(), REPORT_ATTRIBUTE, to_payload(pending))
            item.stash[PENDING] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = getattr(report, REPORT_ATTRIBUTE, None)
        if payload:
            self.outcomes.append((report.nodeid, payload))

    def report(self) -> Report:
        """Every record (with the evidence its pictures need) and summary received, in node-id order
        (arrival order differs under xdist)."""
        from checker.pytest_payload import from_payload
        from checker.results import Report

        records: list[CheckResult] = []
        summaries: list[FunctionSummary] = []
        for _, payload in sorted(self.outcomes, key=lambda o: o[0]):
            rows, functions = from_payload(payload)
            records += rows
            summaries += functions
        s = self.settings
        settings = {"seed": s.seed, "cases": s.cases, "mode": "auto", "targets": list(s.modules)}
        settings |= {"tol": s.tol_text, "runner": "pytest"}
        return Report(records, summaries, settings)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = self.settings.report
        if path is None or self.is_worker or self.config.option.collectonly:
            return
        from checker.report import write_report

        try:
            self.written = write_report(self.report(), path)
        except OSError as err:
            self.write_error = f"cannot write the backprop-check report {path}: {err}"
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.INTERNAL_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not (self.outcomes or self.written or self.write_error):
            return
        terminalreporter.section(GROUP)
        failed = 0
        for nodeid, payload in sorted(self.outcomes, key=lambda o: o[0]):
            for s in payload["summaries"]:
                where = nodeid if nodeid.endswith(f"[{s['function']}]") else f"{nodeid} -> {s['function']}"
                if s["status"] == "pass":
                    terminalreporter.line(f"PASS {where}: {s['cases']} cases", green=True)
                    continue
                failed += 1
                verb = "failed" if s["status"] == "fail" else "raised an error"
                detail = f"{s['failed_cases']}/{s['cases']} cases {verb}"
                detail += f"; {s['diagnoses']}" if s["diagnoses"] else ""
                detail += f"; where {s['where']}" if s.get("where") else ""
                terminalreporter.line(f"FAIL {where}: {detail}", red=True)
        total = sum(len(p["summaries"]) for _, p in self.outcomes)
        terminalreporter.line(
            f"backprop-check: {total - failed} passed, {failed} failed (seed {self.settings.seed})"
        )
        if self.written is not None:
            terminalreporter.line(f"backprop-check report written: {self.written}")
        if self.write_error:
            terminalreporter.line(self.write_error, red=True)


# --- the fixture ----------------------------------------------------------------------------------------


class BackpropFixture:
    """``backprop.check("affine")`` / ``backprop.run("mylayers")`` inside a test.

    Seed, cases and tolerances come from the keyword arguments, else ``@pytest.mark.backprop(...)``, else
    ``--backprop-seed`` / ``--backprop-cases`` / ``--backprop-tol`` (or their ini settings). Returns the
    :class:`checker.Report`; a function that did not pass fails the test with the harness's report.
    """

    def __init__(self, node: pytest.Item, settings: Settings) -> None:
        self.node = node
        defaults: dict[str, Any] = {"seed": settings.seed, "cases": settings.cases, "tol": settings.tol}
        marker = node.get_closest_marker("backprop")
        self.defaults = defaults | (dict(marker.kwargs) if marker is not None else {})

    @property
    def seed(self) -> int | str:
        return self.defaults["seed"]

    @property
    def cases(self) -> int | None:
        return self.defaults["cases"]

    def check(self, target: str | Target, **kwargs: Any) -> Report:
        """:func:`checker.check` with this run's settings; fails the test if ``target`` did not pass."""
        from checker.suite import check

        report = check(target, **(self.defaults | kwargs))
        return self._verdict(report, target)

    def run(self, targets: str | Target | Iterable[str | Target], **kwargs: Any) -> Report:
        """:func:`checker.run` with this run's settings; fails the test if any function did not pass."""
        from checker.suite import run

        report = run(targets, **(self.defaults | kwargs))
        return self._verdict(report, targets)

    def _verdict(self, report: Report, asked: str | Target | Iterable[str | Target]) -> Report:
        from checker.suite import resolve_targets

        names: dict[str, frozenset[str]] = {}
        for target, _ in resolve_targets(asked):
            names[target.name] = names.get(target.name, frozenset()) | _function_names(target)
        pending = self.node.stash.setdefault(PENDING, [])
        for summary in report.summaries:
            pending.append(([r for r in report.records if r.function == summary.function], summary))
        failing = [s for s in report.summaries if s.status != "pass"]
        if failing:
            from checker.presentation.failure import failure_text

            blocks = [
                failure_text(
                    s,
                    [r for r in report.records if r.function == s.function],
                    report.settings.get("seed", self.seed),
                    names.get(s.function, frozenset()),
                )
                for s in failing
            ]
            if len(report.summaries) > 1:
                blocks.insert(
                    0, f"backprop-check: {len(failing)} of {len(report.summaries)} functions failed"
                )
            pytest.fail("\n".join(blocks), pytrace=False)
        return report


@pytest.fixture
def backprop(request: pytest.FixtureRequest) -> BackpropFixture:
    """Check registered functions from your own tests: ``backprop.check("affine")``."""
    return BackpropFixture(request.node, request.config.stash[SETTINGS])
