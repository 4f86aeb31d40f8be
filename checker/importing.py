"""Importing the user's module (a dotted name or a ``.py`` path) for checking.

Any failure (a missing file, a SyntaxError, an exception at import, a bad ``register`` call inside)
is a :class:`~checker.errors.TargetNotFound` whose message carries the reason, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from pathlib import Path
from typing import Any

from checker.errors import BackpropCheckError, TargetNotFound
from checker.execution.user_code import describe_exception

__all__ = ["import_target_module"]


def import_target_module(spec: str, rootdir: Path | None = None) -> Any:
    """Import a dotted module name or a ``.py`` path (relative to ``rootdir`` or the cwd).

    Any failure (missing file, SyntaxError, an exception at import) is a :class:`TargetNotFound`
    whose message carries the reason.
    """
    # A check leaves no trace in the user's folder: no __pycache__ beside their file (the run is
    # asked for reports only); their module is small and compiles in milliseconds.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        return _import(spec, rootdir)
    except TargetNotFound:
        raise
    except ModuleNotFoundError as err:
        raise TargetNotFound(
            f"cannot import {spec!r}: no module named {err.name!r} (is it on the path? run from its folder)"
        ) from None
    except SyntaxError as err:
        raise TargetNotFound(
            f"cannot import {spec!r}: SyntaxError in {err.filename} line {err.lineno}: {err.msg}"
        ) from None
    except BackpropCheckError as err:  # a misuse inside the module (a bad register call)
        raise TargetNotFound(f"cannot import {spec!r}: {_user_line(err)}{err}") from None
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            raise
        raise TargetNotFound(
            f"cannot import {spec!r}: importing it raised {describe_exception(err)}"
        ) from None
    finally:
        sys.dont_write_bytecode = writes_bytecode


def _user_line(err: BaseException) -> str:
    """``mylayers.py line 12: `` for the last frame of ``err`` outside this package, or ``""``."""
    here = Path(__file__).resolve().parent
    found = ""
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        path = Path(frame.f_code.co_filename)
        if path.is_file() and here not in path.resolve().parents and "importlib" not in path.parts:
            found = f"{path.name} line {lineno}: "
    return found


def _import(spec: str, rootdir: Path | None) -> Any:
    base = rootdir or Path.cwd()
    candidate = Path(spec)
    if spec.endswith(".py") or candidate.suffix == ".py":
        path = candidate if candidate.is_absolute() else base / candidate
        if not path.is_file():
            raise TargetNotFound(f"no such file: {path}")
        mod_name = "_backprop_check_" + "_".join(path.resolve().with_suffix("").parts[-3:])
        mod_name = "".join(c if c.isalnum() or c == "_" else "_" for c in mod_name)
        if mod_name in sys.modules:
            return sys.modules[mod_name]
        loader_spec = importlib.util.spec_from_file_location(mod_name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise TargetNotFound(f"cannot import {path}")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[mod_name] = module
        sys.path.insert(0, str(path.parent))
        try:
            loader_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(mod_name, None)
            raise
        finally:
            sys.path.remove(str(path.parent))
        return module
    if str(base) not in sys.path:
        sys.path.insert(0, str(base))
    return importlib.import_module(spec)
