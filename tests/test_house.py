"""The shape of the house: small modules with one job, and imports that flow one way.

Every module of ``checker/`` stays under 500 lines, and the imports between them (at any depth, lazy
ones inside functions included) form no cycle; the record layer at the bottom imports nothing above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "checker"
LIMIT = 500


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``checker`` modules ``path`` imports (a package's ``from p import m`` counts as ``p.m``)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(name, path, set(found)) for name, path in found.items()}


@pytest.mark.parametrize("name", sorted(modules()))
def test_every_module_is_under_500_lines(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= LIMIT, f"{name} has {lines} lines: split it along its seams"


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import cycle, as a path, or [] (packages importing their own submodules are not cycles)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue  # a package and its own modules
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_there_is_no_import_cycle():
    cycle = _cycle(graph())
    assert not cycle, " -> ".join(cycle)


def test_the_record_layer_imports_nothing_above_it():
    edges = graph()
    assert edges["checker.results"] == set()
    assert edges["checker.compare"] == set()
    assert edges["checker.execution.user_code"] == set()
