"""The ``practice`` and ``grade`` sub-commands (filled in by the grading package)."""

from __future__ import annotations

import argparse

__all__ = ["add_commands"]


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``practice`` and ``grade`` on the CLI's sub-parsers."""
