"""The hints' trace groups run several at a time on an engine that allows it, and come back to the
caller's thread one at a time; a group whose engine call fails costs only that group."""

from __future__ import annotations

import threading
from pathlib import Path
from types import SimpleNamespace

from checker.grading.records import Limits
from checker.grading.trace_runs import Group, group_runs


class FakeEngine:
    def __init__(self, concurrent_runs: int, parties: int = 0, failing: frozenset[str] = frozenset()):
        self.concurrent_runs = concurrent_runs
        self.barrier = threading.Barrier(parties) if parties else None
        self.failing = failing
        self.threads: set[int] = set()

    def run(self, submissions, calls, arrays, limits, *, sandboxed):
        self.threads.add(threading.get_ident())
        if self.barrier is not None:
            self.barrier.wait(timeout=60)  # passes only when the groups run at the same time
        for index, path in enumerate(submissions):
            if path.name in self.failing:
                raise RuntimeError("the sandbox went away")
            yield SimpleNamespace(index=index, run=path.name)


def _groups(names):
    return [Group([i], [], {}) for i in range(len(names))], [Path(n) for n in names]


def test_two_groups_run_at_the_same_time_and_are_judged_in_the_callers_thread():
    groups, paths = _groups(["a.py", "b.py"])
    engine = FakeEngine(concurrent_runs=2, parties=2)
    caller = threading.get_ident()
    seen = []
    for _group, prepared, finished in group_runs(
        engine, groups, paths, Limits(), sandboxed=True, before=lambda g: g.indices[0]
    ):
        assert threading.get_ident() == caller
        seen.append((prepared, finished.run))
    assert sorted(seen) == [(0, "a.py"), (1, "b.py")]
    assert len(engine.threads) == 2 and caller not in engine.threads


def test_an_engine_without_concurrent_runs_takes_one_group_at_a_time():
    groups, paths = _groups(["a.py", "b.py", "c.py"])
    engine = FakeEngine(concurrent_runs=0)
    found = [f.run for _, _, f in group_runs(engine, groups, paths, Limits(), sandboxed=True)]
    assert found == ["a.py", "b.py", "c.py"]  # in order, in this thread
    assert engine.threads == {threading.get_ident()}


def test_a_failing_group_costs_only_itself():
    groups, paths = _groups(["a.py", "gone.py", "c.py"])
    for width in (1, 2):
        engine = FakeEngine(concurrent_runs=width, failing=frozenset({"gone.py"}))
        found = {f.run for _, _, f in group_runs(engine, groups, paths, Limits(), sandboxed=True)}
        assert found == {"a.py", "c.py"}
