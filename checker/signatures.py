"""The callables given to ``register()``, checked against the calls the runner will make.

A value that is not callable (the result of a call: ``forward=affine_forward(x, w, b)``) is
described by its kind and shapes, never dumped; a function whose signature cannot take the
runner's call (``forward(*inputs, **hyper)``, ``backward(dout, cache)``, ``loss(model, *data)``)
is refused at registration with the call it will get. Callables without a signature (some
builtins) pass and are judged when called.
"""

from __future__ import annotations

import inspect
import reprlib
from collections.abc import Callable, Mapping
from typing import Any

from checker.errors import RegistrationError
from checker.spec import InputSpec

__all__ = ["check_arities", "check_arity", "describe_value", "require_callable"]


def _shape_of(value: object) -> str | None:
    shape = getattr(value, "shape", None)
    return str(tuple(shape)) if isinstance(shape, tuple) and hasattr(value, "dtype") else None


def _counted(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def describe_value(value: object) -> str:
    """A short account of a value, never its contents: ``a tuple of 3 arrays, shapes (2, 3), (3, 4), (4,)``."""
    shape = _shape_of(value)
    if shape is not None:
        return f"an array of shape {shape}"
    if isinstance(value, (tuple, list)):
        kind, more = type(value).__name__, ", ..." if len(value) > 4 else ""
        shapes = [_shape_of(v) for v in value]
        if value and all(shapes):
            listed = ", ".join(s for s in shapes[:4] if s)
            return f"a {kind} of {_counted(len(value), 'array')}, shapes {listed}{more}"
        items = [f"array {s}" if s else type(v).__name__ for v, s in zip(value[:4], shapes[:4], strict=True)]
        return f"a {kind} of {_counted(len(value), 'value')} ({', '.join(items)}{more})"
    if isinstance(value, Mapping):
        more = " ..." if len(value) > 6 else ""
        return f"a {type(value).__name__} with keys {list(value)[:6]}{more}"
    if isinstance(value, (str, int, float, complex, bool)):
        return reprlib.repr(value)
    return f"a {type(value).__name__} ({reprlib.repr(value)})"


def require_callable(value: object, argument: str, name: str) -> None:
    """Raise, naming the registration and the argument, unless ``value`` can be called."""
    if callable(value):
        return
    if isinstance(value, str):
        raise RegistrationError(
            f"register({name!r}): {argument}={reprlib.repr(value)} is not callable; pass the function itself, "
            f"not its name: {argument}={value if value.isidentifier() else 'my_' + argument} (no quotes)"
        )
    if isinstance(value, (bool, int, float, complex)):
        raise RegistrationError(
            f"register({name!r}): {argument}={value!r} is not callable; pass the function itself, "
            f"e.g. {argument}=my_{argument}"
        )
    raise RegistrationError(
        f"register({name!r}): {argument}= got {describe_value(value)}, which is not callable: "
        f"the result of calling a function? Pass the function itself, e.g. {argument}=my_{argument} "
        "(no parentheses: the harness calls it with each case's inputs)"
    )


def check_arity(
    name: str,
    argument: str,
    fn: Callable[..., Any],
    positional: list[str],
    keywords: Mapping[str, Any] | None = None,
    *,
    more_keywords: bool = False,
    usage: str,
) -> None:
    """Refuse ``fn`` at registration when it cannot be called as the runner will call it.

    ``positional``: names of the positional arguments it will get; ``keywords``: the keyword
    arguments (``hyper=``); ``more_keywords``: more may come (``hyper=`` is a callable of the dims),
    so missing parameters are not held against it. Callables without a signature (some builtins)
    pass: they are judged when called.
    """
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    bind = signature.bind_partial if more_keywords else signature.bind
    try:
        bind(*(object() for _ in positional), **dict.fromkeys(keywords or {}))
    except TypeError as err:
        reason = str(err)
        if reason.startswith("too many positional"):
            kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
            takes = sum(p.kind in kinds for p in signature.parameters.values())
            reason = f"it takes {takes} positional argument{'s' if takes != 1 else ''}, not {len(positional)}"
        call = ", ".join([*positional, *(f"{k}=..." for k in keywords or {})])
        called = getattr(fn, "__name__", type(fn).__name__)
        raise RegistrationError(
            f"register({name!r}): {argument}={called}{signature} cannot be called as "
            f"{argument}({call}): {reason}; {usage}"
        ) from None


def check_arities(
    name: str, style: str, given: Mapping[str, Any], specs: Mapping[str, InputSpec], **extra: Any
) -> None:
    """Each user function (and ``torch_forward``) against the call the runner will make."""
    inputs = list(specs)
    hyper = extra["hyper"]
    keywords = hyper if isinstance(hyper, Mapping) else None
    more = callable(hyper)
    as_keywords = " and hyper= as keywords" if hyper is not None else ""
    in_order = f"one positional argument per entry of inputs= in order ({', '.join(inputs)}){as_keywords}"
    if style == "layer":
        check_arity(
            name,
            "forward",
            given["forward"],
            inputs,
            keywords,
            more_keywords=more,
            usage=f"forward is called with {in_order}; make its parameters match",
        )
        outputs = extra["outputs"]
        douts = ["dout"] if outputs == 1 else [f"dout{i + 1}" for i in range(outputs)]
        check_arity(
            name,
            "backward",
            given["backward"],
            [*douts, "cache"],
            usage=f"backward is called as backward({', '.join(douts)}, cache) with the cache forward returned",
        )
    elif style == "loss":
        check_arity(
            name,
            "value_and_grad",
            given["value_and_grad"],
            inputs,
            keywords,
            more_keywords=more,
            usage=f"value_and_grad is called with {in_order}",
        )
    else:
        check_arity(
            name,
            "model",
            given["model"],
            ["dims"],
            usage="model is called with one dict of sizes: model(dims), e.g. lambda d: Net(d['D'], d['C'])",
        )
        check_arity(
            name,
            "loss",
            given["loss"],
            ["model", *inputs],
            usage=f"loss is called as loss(model, {', '.join(inputs)}): the model, then data= in order",
        )
    torch_forward = extra["torch_forward"]
    if torch_forward is not None:
        if style == "model":
            check_arity(
                name,
                "torch_forward",
                torch_forward,
                ["params", *inputs],
                usage="for a model, torch_forward is called as torch_forward(params, *data)",
            )
        else:
            check_arity(
                name,
                "torch_forward",
                torch_forward,
                inputs,
                keywords,
                more_keywords=more,
                usage=f"torch_forward is called like the {'forward' if style == 'layer' else 'loss'}: {in_order}",
            )
    for argument in ("constraint", "hyper"):
        fn = extra[argument]
        if callable(fn):
            check_arity(
                name,
                argument,
                fn,
                ["dims"],
                usage=f"{argument} is called with one dict of sizes: {argument}(dims)",
            )
