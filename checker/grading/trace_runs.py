"""The hints' trace runs, group by group: up to ``concurrent_runs`` groups of an engine at a time.

A group is the submissions that need the same trace calls; most groups are one submission, so one
group at a time leaves all but one of the local pool's sandboxes idle. Groups run on background
threads, and their runs come back to the caller's thread, which judges them one at a time (judging
traces the reference's forward under ``torch._numpy``, which rebinds module globals: never two at
once). An engine without ``concurrent_runs`` (a Dask cluster) runs one group at a time.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from checker.grading.records import Call, Limits

__all__ = ["Group", "group_runs"]


@dataclass(frozen=True)
class Group:
    """Submissions (their indices) that need the same trace ``calls`` on ``arrays``."""

    indices: list[int]
    calls: list[Call]
    arrays: dict[str, np.ndarray]


_DONE = object()


def group_runs(
    engine: Any,
    groups: Sequence[Group],
    paths: Sequence[Path],
    limits: Limits,
    *,
    sandboxed: bool,
    before: Callable[[Group], Any] = lambda group: None,
) -> Iterator[tuple[Group, Any, Any]]:
    """``(group, before(group), finished)`` for every finished run of every group, as they finish.
    ``before(group)`` runs just before the group's runs start (the grader reads its own copy of the
    sources there). A group whose engine call fails (no sandbox after all, a cluster that went away)
    gives nothing more."""
    width = max(1, min(int(getattr(engine, "concurrent_runs", 1) or 1), len(groups)))

    def runs_of(group: Group) -> Iterator[tuple[Group, Any, Any]]:
        prepared = before(group)
        try:
            for finished in engine.run(
                [paths[i] for i in group.indices], group.calls, group.arrays, limits, sandboxed=sandboxed
            ):
                yield group, prepared, finished
        except Exception:
            return

    if width == 1:
        for group in groups:
            yield from runs_of(group)
        return
    results: queue.Queue[Any] = queue.Queue(maxsize=4 * width)  # a bounded backlog of unjudged runs
    pending = iter(groups)
    lock = threading.Lock()

    def work() -> None:
        try:
            while True:
                with lock:
                    group = next(pending, None)
                if group is None:
                    return
                for item in runs_of(group):
                    results.put(item)
        finally:
            results.put(_DONE)

    # Daemon threads: after an interruption nothing waits for them (engine.stop() ends their sandboxes).
    threads = [
        threading.Thread(target=work, name=f"backprop-check-trace-{i}", daemon=True) for i in range(width)
    ]
    for thread in threads:
        thread.start()
    finished_threads = 0
    while finished_threads < width:
        item = results.get()
        if item is _DONE:
            finished_threads += 1
        else:
            yield item
