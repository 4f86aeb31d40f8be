"""The static import check: every way of writing a forbidden import, and what it must leave alone."""

from __future__ import annotations

import ast
import threading
import time

import pytest

from checker.grading.imports import ForbiddenImport, forbidden_imports, parse_source


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import torch", [("torch", "import", 1)]),
        ("import numpy as np, torch.nn as nn", [("torch.nn", "import", 1)]),
        ("from torch import tensor", [("torch", "from", 1)]),
        ("from checker.compare import relative_error", [("checker.compare", "from", 1)]),
        (
            "def f():\n    from reference_impls.layers import affine_backward",
            [("reference_impls.layers", "from", 2)],
        ),
        ("jax = __import__('jax')", [("jax", "__import__", 1)]),
        ("import importlib\nimportlib.import_module('tensorflow')", [("tensorflow", "importlib", 2)]),
        (
            "from importlib import import_module\nimport_module('autograd.numpy')",
            [("autograd.numpy", "importlib", 2)],
        ),
        ("import builtins\nbuiltins.__import__('torch')", [("torch", "__import__", 2)]),
        ("import sys\nsys.meta_path.clear()", [("sys.meta_path", "import-hook", 2)]),
        ("import sys\nsys.path_hooks.insert(0, None)", [("sys.path_hooks", "import-hook", 2)]),
    ],
)
def test_forbidden_imports_are_found_with_their_line(source, expected):
    found = forbidden_imports(source, filename="layers.py")
    assert [(f.module, f.how, f.line) for f in found] == expected
    assert all(f.file == "layers.py" for f in found)


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nfrom numpy.lib.stride_tricks import as_strided",
        "import torchvision_free_name as t",  # a different top-level name that merely starts alike
        "from . import checker",  # the submission's own module
        "from .reference_impls import x",
        "name = 'torch'\n__import__(name)",  # not a constant: the worker refuses it at run time
        "# import torch\ns = 'import torch'",
        "def f(:\n    import torch",  # does not parse: the worker reports the SyntaxError
    ],
)
def test_allowed_or_unknowable_sources_yield_nothing(source):
    assert forbidden_imports(source) == []


def test_message_names_file_line_module_and_the_fix():
    (found,) = forbidden_imports("import numpy\nimport torch.nn.functional as F", filename="net.py")
    assert found == ForbiddenImport("torch.nn.functional", "torch", "net.py", 2, "import")
    assert found.message == (
        "net.py line 2: imports torch.nn.functional; a submission may not import torch "
        "(forbidden: checker, reference_impls, torch, jax, tensorflow, autograd); compute gradients with numpy"
    )


def test_sources_are_parsed_one_thread_at_a_time(monkeypatch):
    """The grader reads submissions on several threads, and CPython's ast.parse before 3.12 is not
    thread-safe (a spurious "SystemError: AST constructor recursion depth mismatch" cost a student
    the whole submission): parsing is serialised."""
    inside, most = 0, 0
    count = threading.Lock()
    parse = ast.parse

    def slow_parse(*args, **kwargs):
        nonlocal inside, most
        with count:
            inside += 1
            most = max(most, inside)
        time.sleep(0.02)
        try:
            return parse(*args, **kwargs)
        finally:
            with count:
                inside -= 1

    monkeypatch.setattr(ast, "parse", slow_parse)
    threads = [threading.Thread(target=forbidden_imports, args=("import torch",)) for _ in range(4)]
    threads += [threading.Thread(target=parse_source, args=("x = 1",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
