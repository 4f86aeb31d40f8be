"""Progress of a grading on a terminal: submissions done / total, failures so far, time left.

Shown only when stderr is a terminal (rich); piped or redirected, nothing is printed.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = ["TerminalProgress"]


class TerminalProgress:
    """A ``collect_runs`` progress callback drawing a rich progress bar on stderr, when it is a terminal."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.shown = self.console.is_terminal
        self._bar: Progress | None = None
        self._task: Any = None

    def note(self, text: str) -> None:
        """A line for the terminal only (the dashboard link, say)."""
        if self.shown:
            self.console.print(text, markup=False)

    def __enter__(self) -> TerminalProgress:
        if self.shown:
            self._bar = Progress(
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("submissions, {task.fields[failed]} with errors"),
                TimeElapsedColumn(),
                TextColumn("elapsed,"),
                TimeRemainingColumn(),
                TextColumn("left"),
                console=self.console,
            )
            self._bar.start()
        return self

    def __call__(self, done: int, total: int, failed: int) -> None:
        if self._bar is None:
            return
        if self._task is None:
            self._task = self._bar.add_task("grading", total=total, failed=0)
        self._bar.update(self._task, completed=done, total=total, failed=failed)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
