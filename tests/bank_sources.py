"""Source files of the bank's reference solutions and planted mistakes, written as a student would
submit them: plain numpy, no import of the harness. Used by the grading tests."""

from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

PRELUDE = "from __future__ import annotations\n\nimport numpy as np\nfrom typing import Any\n\nCache = Any\n"


def _source_named(obj: Any, name: str) -> str:
    source = textwrap.dedent(inspect.getsource(obj))
    keyword = "class" if inspect.isclass(obj) else "def"
    return re.sub(rf"^{keyword} {obj.__name__}\b", f"{keyword} {name}", source, count=1, flags=re.M)


def _private_helpers(obj: Any, seen: set[str]) -> list[Any]:
    """Module-level ``_helpers`` that ``obj``'s source refers to, and theirs, in definition order."""
    module = inspect.getmodule(obj)
    source = inspect.getsource(obj)
    found: list[Any] = []
    for name, value in vars(module).items():
        if not name.startswith("_") or name.startswith("__") or name in seen:
            continue
        if (
            inspect.isfunction(value)
            and value.__module__ == module.__name__
            and re.search(rf"\b{name}\(", source)
        ):
            seen.add(name)
            found.extend([*_private_helpers(value, seen), value])
        elif isinstance(value, (dict, list, set)) and re.search(rf"\b{name}\b", source):
            seen.add(name)
            found.append(f"{name} = {type(value).__name__}()  # module-level state, empty at import")
    return found


def _helper_source(helper: Any) -> str:
    return helper if isinstance(helper, str) else _source_named(helper, helper.__name__)


def submission_source(exercise: Any, replaces: Mapping[str, Callable[..., Any]] | None = None) -> str:
    """A submission for ``exercise``: the reference functions, with ``replaces`` swapped in by name.

    A replacement class (a buggy subclass of the reference model) is submitted beside the
    reference class renamed ``<Name>Reference``, since the subclass derives from it.
    """
    module = importlib.import_module(exercise.module)
    parts = [PRELUDE]
    seen: set[str] = set()
    for name in exercise.functions:
        reference = getattr(module, name)
        obj = (replaces or {}).get(name, reference)
        helpers = [_helper_source(h) for h in _private_helpers(obj, seen)]
        if obj is not reference:
            helpers = [_helper_source(h) for h in _private_helpers(reference, seen)] + helpers
        if inspect.isclass(obj) and obj is not reference:
            renamed = reference.__name__ + "Reference"
            parts.append(_source_named(reference, renamed))
            parts.extend(re.sub(rf"\b{reference.__name__}\b", renamed, h) for h in helpers)
            parts.append(re.sub(rf"\b{reference.__name__}\b(?=[.)])", renamed, _source_named(obj, name)))
        else:
            parts.extend(helpers)
            parts.append(_source_named(obj, name))
    return "\n\n".join(parts) + "\n"
