"""Practice skeletons: the exercise's signatures and docstrings (with shapes), bodies left to write."""

from __future__ import annotations

import importlib
import inspect
import textwrap
from typing import Any

__all__ = ["skeleton"]


def _function_stub(function: Any, indent: str = "") -> str:
    signature = inspect.signature(function)
    params = ", ".join(
        str(p).split(":")[0].strip() if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        for p in signature.parameters.values()
    )
    doc = inspect.getdoc(function) or ""
    doc_block = textwrap.indent(f'"""{doc}\n"""', indent + "    ") if doc else ""
    body = f'{indent}    raise NotImplementedError("write {function.__name__}")'
    return "\n".join(filter(None, [f"{indent}def {function.__name__}({params}):", doc_block, body]))


def _class_stub(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    head = f"class {cls.__name__}:" + ("\n" + textwrap.indent(f'"""{doc}\n"""', "    ") if doc else "")
    parts = [head]
    init = cls.__dict__.get("__init__")
    if init is not None:
        # The constructor is set-up, not the exercise: it is given as written.
        parts.append(textwrap.indent(textwrap.dedent(inspect.getsource(init)), "    "))
    for name, member in cls.__dict__.items():
        if callable(member) and not name.startswith("_"):
            parts.append(_function_stub(member, "    "))
    return "\n\n".join(filter(None, parts))


def skeleton(exercise: Any, path: str = "FILE") -> str:
    """Python source for a practice file of ``exercise``: imports, statement, stubs raising NotImplementedError."""
    module = importlib.import_module(exercise.module)
    stubs = []
    for name in exercise.functions:
        obj = getattr(module, name)
        stubs.append(_class_stub(obj) if inspect.isclass(obj) else _function_stub(obj))
    statement = textwrap.fill(exercise.statement, width=96)
    header = (
        f'"""Practice: {exercise.title} ({exercise.points} points).\n\n{statement}\n\n'
        f"Grade it with: backprop-check grade {path}\n"
        '"""\n\nimport numpy as np\n'
    )
    return header + "\n\n" + "\n\n\n".join(stubs) + "\n"
