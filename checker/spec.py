"""Input specs: ``"N,D"`` strings, the input kinds, ``dims=`` rules, and their validation.

A spec names each dimension with a symbol (``N``, ``D``) or a fixed integer (``"N,3,H,W"``); a case
gives every symbol a size. The kinds say how values are drawn and whether the input is
differentiable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checker.errors import SpecError

__all__ = [
    "DEFAULT_SIZES",
    "KINDS",
    "Choices",
    "InputSpec",
    "as_input_spec",
    "choices",
    "const",
    "hyper_choices",
    "labels",
    "mask",
    "normalize_dims",
    "parse_seeds",
    "parse_shape",
    "positive",
    "probability",
    "seed_text",
    "with_choices",
]

_SYMBOL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MULTIPLE = re.compile(r"^([1-9][0-9]*)\*?([A-Za-z_][A-Za-z0-9_]*)$")  # "4H": four times H (LSTM gates)
#: Sizes a symbol may take when ``dims=`` says nothing about it.
DEFAULT_SIZES: tuple[int, ...] = tuple(range(1, 7))
#: kind -> differentiable?
KINDS: dict[str, bool] = {
    "float": True,
    "positive": True,
    "probability": True,
    "labels": False,
    "const": False,
    "mask": False,
}

Dim = str | int


def parse_shape(shape: str | Iterable[Dim]) -> tuple[Dim, ...]:
    """``"N,D"`` -> ``("N", "D")``; ``"N,3"`` -> ``("N", 3)``; ``""`` -> ``()`` (a scalar)."""
    if isinstance(shape, str):
        parts = [p.strip() for p in shape.split(",")] if shape.strip() else []
    else:
        try:
            parts = list(shape)
        except TypeError:
            raise SpecError(f"shape {shape!r} must be a string like 'N,D' or a tuple of symbols") from None
    dims: list[Dim] = []
    for part in parts:
        if isinstance(part, bool):
            raise SpecError(f"shape {shape!r}: {part!r} is not a dimension")
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            size = int(part)
            if size < 1:
                raise SpecError(f"shape {shape!r}: fixed size {size} must be >= 1")
            dims.append(size)
        elif isinstance(part, str) and _is_sum(part):
            dims.append(part.replace("*", "").replace(" ", ""))
        else:
            raise SpecError(
                f"shape {shape!r}: {part!r} is not a dimension; use symbols like N, D, integers, a "
                "multiple like 4H or a sum like D+H, separated by commas ('N,D', 'N,3,H,W', 'D,4H', 'D+H,H')"
            )
    return tuple(dims)


@dataclass(frozen=True)
class InputSpec:
    """How to draw one input: its shape (symbols or ints), its kind, and kind options.

    ``classes`` (labels) is the symbol or int bounding the label values; ``keep`` (mask) is the
    keep probability of an inverted-dropout mask with values ``0`` or ``1/keep``.
    """

    shape: tuple[Dim, ...]
    kind: str = "float"
    classes: Dim | None = None
    keep: float = 0.5
    wants_grad: bool = True

    @property
    def differentiable(self) -> bool:
        return KINDS[self.kind] and self.wants_grad

    @property
    def symbols(self) -> tuple[str, ...]:
        """Symbols in order of appearance (``classes`` last)."""
        found = [sym for d in self.shape if isinstance(d, str) for sym in _symbols_of(d)]
        if isinstance(self.classes, str):
            found.append(self.classes)
        return tuple(dict.fromkeys(found))

    def resolve(self, dims: Mapping[str, int]) -> tuple[int, ...]:
        """The concrete shape for one case: ``("N", 3)`` with ``N=2`` -> ``(2, 3)``."""
        return tuple(_size_of(d, dims) if isinstance(d, str) else d for d in self.shape)

    def describe(self) -> str:
        text = ",".join(str(d) for d in self.shape)
        if self.kind == "float":
            return text
        extra = f", classes={self.classes}" if self.kind == "labels" else ""
        return f"{self.kind}({text}{extra})"


def _is_sum(dim: str) -> bool:
    """``"N"``, ``"4H"``, ``"D+H"``, ``"D+4H+1"``: symbols, multiples of one and integers, added."""
    terms = [t.strip() for t in dim.split("+")]
    if not any(_SYMBOL.match(t) or _MULTIPLE.match(t) for t in terms):
        return False
    return all(_SYMBOL.match(t) or _MULTIPLE.match(t) or (t.isdigit() and int(t) > 0) for t in terms)


def _symbols_of(dim: str) -> list[str]:
    found = []
    for term in dim.split("+"):
        multiple = _MULTIPLE.match(term)
        if multiple:
            found.append(multiple.group(2))
        elif not term.isdigit():
            found.append(term)
    return found


def _size_of(dim: str, dims: Mapping[str, int]) -> int:
    """``"D+4H"`` with ``D=3, H=2`` -> 11."""
    size = 0
    for term in dim.split("+"):
        multiple = _MULTIPLE.match(term)
        size += (
            int(term)
            if term.isdigit()
            else int(multiple.group(1)) * dims[multiple.group(2)]
            if multiple
            else dims[term]
        )
    return size


def labels(shape: str | Iterable[Dim], classes: Dim) -> InputSpec:
    """Integer class labels in ``[0, classes)``; not differentiable (``y`` of a softmax loss)."""
    if isinstance(classes, str):
        if not _SYMBOL.match(classes):
            raise SpecError(f"labels(classes={classes!r}): classes must be a symbol like 'C' or an int >= 1")
    elif not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise SpecError(f"labels(classes={classes!r}): classes must be a symbol like 'C' or an int >= 1")
    return InputSpec(parse_shape(shape), "labels", classes=classes)


def positive(shape: str | Iterable[Dim], *, differentiable: bool = True) -> InputSpec:
    """Floats in (0.5, 2): for inputs of log, sqrt or division; differentiable unless told otherwise."""
    return InputSpec(parse_shape(shape), "positive", wants_grad=bool(differentiable))


def probability(shape: str | Iterable[Dim], *, differentiable: bool = True) -> InputSpec:
    """Floats in (0.05, 0.95): a predicted probability (differentiable), or with
    ``differentiable=False`` a soft target of a cross-entropy."""
    return InputSpec(parse_shape(shape), "probability", wants_grad=bool(differentiable))


def const(shape: str | Iterable[Dim]) -> InputSpec:
    """Standard normal floats that are *not* differentiated (a target, a fixed mask)."""
    return InputSpec(parse_shape(shape), "const")


def mask(shape: str | Iterable[Dim], keep: float = 0.5) -> InputSpec:
    """An inverted-dropout mask: ``1/keep`` with probability ``keep``, else 0; not differentiable."""
    if not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise SpecError(f"mask(keep={keep!r}): keep must be a probability in (0, 1]")
    return InputSpec(parse_shape(shape), "mask", keep=float(keep))


def as_input_spec(name: str, value: str | InputSpec | Iterable[Dim]) -> InputSpec:
    """Accept ``"N,D"`` (a differentiable float input) or an :class:`InputSpec` from a kind helper."""
    if isinstance(value, InputSpec):
        return value
    try:
        return InputSpec(parse_shape(value))
    except SpecError as err:
        raise SpecError(f"input {name!r}: {err}") from None


def normalize_dims(dims: Mapping[str, object] | None, known: Iterable[str]) -> dict[str, tuple[int, ...]]:
    """``dims=`` -> the allowed sizes of each symbol, sorted.

    ``{"C": 10}`` pins, ``{"H": range(4, 9)}`` limits, ``{"S": (1, 2)}`` lists choices. A symbol
    named in ``dims`` but in no input is allowed: the model or ``hyper`` may use it.
    """
    allowed: dict[str, tuple[int, ...]] = {sym: DEFAULT_SIZES for sym in known}
    if dims is None:
        return allowed
    if not isinstance(dims, Mapping):
        raise SpecError(f"dims={dims!r} must be a dict like {{'C': 10, 'H': range(4, 9)}}")
    for sym, rule in dims.items():
        if not isinstance(sym, str) or not _SYMBOL.match(sym):
            raise SpecError(f"dims key {sym!r} is not a symbol name like 'N' or 'H'")
        if isinstance(rule, bool):
            raise SpecError(f"dims[{sym!r}]={rule!r} must be an int, a range or a tuple of ints")
        if isinstance(rule, int):
            values: tuple[int, ...] = (rule,)
        elif isinstance(rule, (range, list, tuple, set, frozenset)):
            values = tuple(sorted(set(rule)))
        else:
            raise SpecError(f"dims[{sym!r}]={rule!r} must be an int, a range or a tuple of ints")
        if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in values):
            raise SpecError(f"dims[{sym!r}]={rule!r} must hold at least one size, each an int >= 0")
        allowed[sym] = values
    return allowed


ConstraintFn = Callable[[Mapping[str, int]], bool]


@dataclass(frozen=True)
class Choices:
    """Values to try for one hyper-parameter: ``hyper={"pad": bc.choices(0, 1, 2)}``.

    A marker rather than a plain tuple, because a tuple is a fixed value people pass today
    (``stride=(1, 2)``, ``kernel_size=(3, 3)``): only what is marked is varied. Each case gets one
    of the values, every value comes up in turn, and the shape summary can say
    ``fails exactly when pad = 0``.
    """

    values: tuple[Any, ...]

    def __repr__(self) -> str:
        return f"choices({', '.join(map(repr, self.values))})"


def choices(*values: Any) -> Choices:
    """Values to try for a hyper-parameter, one per case in turn: ``bc.choices(0, 1, 2)``."""
    if not values:
        raise SpecError("choices() needs at least one value, e.g. bc.choices(0, 1, 2)")
    unique: list[Any] = []
    for value in values:
        if isinstance(value, Choices):
            raise SpecError(f"choices({value!r}) is nested; give the values themselves: bc.choices(0, 1, 2)")
        if not any(value is u or _same(value, u) for u in unique):
            unique.append(value)
    return Choices(tuple(unique))


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(type(a) is type(b) and a == b)
    except Exception:  # arrays compare element-wise: two of them are never merged
        return False


def hyper_choices(hyper: Mapping[str, Any], where: str = "hyper") -> dict[str, tuple[Any, ...]]:
    """The :class:`Choices` in ``hyper`` (nested dicts too), by the key that holds each:
    ``{"conv_param": {"pad": choices(0, 1)}}`` -> ``{"pad": (0, 1)}``. Two with one name are refused."""
    found: dict[str, tuple[Any, ...]] = {}
    for key, value in hyper.items():
        if isinstance(value, Choices):
            if key in found:
                raise SpecError(f"{where}: two hyper-parameters called {key!r} have choices; rename one")
            found[str(key)] = value.values
        elif isinstance(value, Mapping):
            for name, values in hyper_choices(value, f"{where}[{key!r}]").items():
                if name in found:
                    raise SpecError(f"{where}: two hyper-parameters called {name!r} have choices; rename one")
                found[name] = values
    return found


def with_choices(hyper: Mapping[str, Any], picked: Mapping[str, Any]) -> dict[str, Any]:
    """``hyper`` with each :class:`Choices` replaced by the value ``picked`` for its name (else its first)."""
    out: dict[str, Any] = {}
    for key, value in hyper.items():
        if isinstance(value, Choices):
            out[key] = picked.get(key, value.values[0])
        elif isinstance(value, Mapping) and hyper_choices(value):
            out[key] = with_choices(value, picked)
        else:
            out[key] = value
    return out


_SEED_USAGE = "a seed is a whole number >= 0; give one (0), a list (0,1,2), a range (0-9), or both (0,3-5)"
#: More seeds than this in one run is almost surely a typo (0-1000000).
MAX_SEEDS = 10_000


def parse_seeds(value: object, name: str = "seed") -> tuple[int, ...]:
    """``0`` -> ``(0,)``; ``"0,1,2"`` -> ``(0, 1, 2)``; ``"0-9"`` -> ``(0, ..., 9)``; ``[3, 5]`` -> ``(3, 5)``.

    Duplicates are dropped, the order is kept. A bad value raises :class:`SpecError` naming ``name``.
    """
    if isinstance(value, bool):
        raise SpecError(f"{name}={value!r}: {_SEED_USAGE}")
    if isinstance(value, int):
        parts: list[object] = [value]
    elif isinstance(value, str):
        parts = [p.strip().strip("'\"").strip() for p in value.strip().strip("[]()").split(",")]
    elif isinstance(value, (list, tuple, range)):
        parts = list(value)
    else:
        raise SpecError(f"{name}={value!r}: {_SEED_USAGE}")
    seeds: list[int] = []
    for part in parts:
        if isinstance(part, bool):
            raise SpecError(f"{name}={value!r}: {_SEED_USAGE}")
        if isinstance(part, int):
            found = [part]
        elif isinstance(part, str) and re.fullmatch(r"\d+", part):
            found = [int(part)]
        elif isinstance(part, str) and re.fullmatch(r"\d+\s*-\s*\d+", part):
            low, high = (int(x) for x in part.split("-"))
            if high < low or high - low >= MAX_SEEDS:
                raise SpecError(f"{name}={value!r}: the range {part!r} must go up, {MAX_SEEDS} seeds at most")
            found = list(range(low, high + 1))
        else:
            raise SpecError(f"{name}={value!r}: {part!r} is not a seed; {_SEED_USAGE}")
        if any(s < 0 for s in found):
            raise SpecError(f"{name}={value!r}: {_SEED_USAGE}")
        seeds.extend(found)
    unique = tuple(dict.fromkeys(seeds))
    if not unique or len(unique) > MAX_SEEDS:
        raise SpecError(f"{name}={value!r}: {_SEED_USAGE}")
    return unique


def seed_text(seeds: int | Sequence[int]) -> str:
    """``(0, 1, 2, 5)`` -> ``"0-2,5"``: the seeds as ``--seed`` takes them (runs of three or more as ranges)."""
    values = [seeds] if isinstance(seeds, int) else list(seeds)
    runs: list[list[int]] = []
    for seed in values:
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 2 else ",".join(map(str, r)) for r in runs]
    return ",".join(parts)
