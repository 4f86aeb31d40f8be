"""Static check of a submission's source for imports it may not use.

A submission must compute its gradients with numpy by hand: importing the harness (``checker``),
the answer key (``reference_impls``) or an autodiff library (``torch``, ``jax``, ``tensorflow``,
``autograd``) is refused. This module finds such imports in the source by walking its AST, so the
grader can report them with file and line before any student code runs. The worker also refuses
them at run time (see ``worker.py``); the static check catches what never executes (an import
inside a function that is not called) and the run-time check catches what the AST cannot see
(``__import__("to" + "rch")``). Neither is a boundary: student code can rewrite the import machinery.
The boundary is the sandbox (``sandbox.py``), in which torch, the harness and the answer key do not
exist; these checks are friendly feedback ("import torch is not allowed here").

Pure: source text in, records out. Imports only the standard library.
"""

from __future__ import annotations

import ast
import threading
from dataclasses import dataclass

__all__ = ["FORBIDDEN_MODULES", "ForbiddenImport", "forbidden_imports"]

FORBIDDEN_MODULES: tuple[str, ...] = ("checker", "reference_impls", "torch", "jax", "tensorflow", "autograd")

_IMPORT_HOOKS = ("meta_path", "path_hooks")


@dataclass(frozen=True)
class ForbiddenImport:
    """One refused import: ``module`` as written (``"torch.nn"``), its forbidden top-level ``root``.

    ``how`` is ``"import"``, ``"from"``, ``"__import__"``, ``"importlib"`` (found in the source),
    ``"runtime"`` (refused by the worker while the code ran) or ``"import-hook"`` (the source touches
    ``sys.meta_path`` / ``sys.path_hooks``; ``module`` is then ``"sys.meta_path"``).
    ``file`` is the path inside the submission (``""`` when unknown), ``line`` is 1-based (0 if unknown).
    """

    module: str
    root: str
    file: str
    line: int
    how: str

    @property
    def message(self) -> str:
        where = f"{self.file or 'submission'} line {self.line}" if self.line else (self.file or "submission")
        if self.how == "import-hook":
            return (
                f"{where}: the submission modifies {self.module}, which can bypass the import rules; "
                "submissions may not change the import machinery"
            )
        return (
            f"{where}: imports {self.module}; a submission may not import {self.root} "
            f"(forbidden: {', '.join(FORBIDDEN_MODULES)}); compute gradients with numpy"
        )


#: CPython 3.11 builds AST objects with a recursion counter shared between threads: two ``ast.parse``
#: at once (the grader's pool threads) can fail with "SystemError: AST constructor recursion depth
#: mismatch". One parse at a time.
_PARSE_LOCK = threading.Lock()


def parse(source: str, filename: str = "<submission>") -> ast.Module:
    """``ast.parse``, one thread at a time (see ``_PARSE_LOCK``)."""
    with _PARSE_LOCK:
        return ast.parse(source, filename=filename)


def forbidden_imports(
    source: str, *, filename: str = "", forbidden: tuple[str, ...] = FORBIDDEN_MODULES
) -> list[ForbiddenImport]:
    """Every forbidden import in ``source``, in line order.

    Finds ``import X``, ``from X import y``, ``__import__("X")``, ``importlib.import_module("X")``
    (also when imported as ``import_module``) with a constant string, for X or any ``X.sub``.
    Relative imports (``from . import layers``) are the submission's own modules and are allowed.
    Source that does not parse (or is too deeply nested to analyse) yields ``[]``: the worker reports
    the error itself.
    """
    try:
        tree = parse(source, filename or "<submission>")
    except (SyntaxError, ValueError, MemoryError, RecursionError, SystemError):
        return []  # the worker reports why the source cannot be compiled (20,000 nested brackets, say)
    found: list[ForbiddenImport] = []

    def refuse(module: str, line: int, how: str) -> None:
        root = module.split(".")[0]
        if root in forbidden:
            found.append(ForbiddenImport(module=module, root=root, file=filename, line=line, how=how))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                refuse(alias.name, node.lineno, "import")
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                refuse(node.module, node.lineno, "from")
        elif isinstance(node, ast.Call):
            how = _dynamic_import_kind(node.func)
            first = node.args[0] if node.args else None
            if how and isinstance(first, ast.Constant) and isinstance(first.value, str):
                refuse(first.value, node.lineno, how)
        elif isinstance(node, ast.Attribute) and node.attr in _IMPORT_HOOKS:
            module = f"sys.{node.attr}"
            found.append(
                ForbiddenImport(module=module, root="sys", file=filename, line=node.lineno, how="import-hook")
            )
    return sorted(found, key=lambda f: (f.line, f.module))


def _dynamic_import_kind(func: ast.expr) -> str | None:
    """``"__import__"`` or ``"importlib"`` when ``func`` names a function that imports by string."""
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
    if name == "__import__":
        return "__import__"
    if name == "import_module":
        return "importlib"
    return None
