"""Reading what a worker sent: split the result stream into frames, and turn frames into records.

Everything here reads bytes written by a process the student controls, so nothing is trusted:

- a frame is refused unless it starts with the protocol magic, announces sizes under the limits, has a
  JSON header with a valid blob list, and its blobs add up to its payload;
- an array reaches the scorer only as a plain ``float64`` / ``int64`` / ``bool`` ``numpy.ndarray``
  built here from ``.npy`` bytes whose header was checked against the byte count before numpy read it
  (never unpickled); anything else (a list, None, a string, an object or complex array, an ndarray or
  float64 *subclass*) becomes a ``Value`` with ``array=None`` and an ``error`` that says what was found;
- every text passes through ``clean_text`` (no control characters, bounded length), every number is
  checked for type and range (a line number is an int from 0 to 10**7, or 0);
- no time comes from the worker: a call's seconds are measured here, from the arrival of its ``begin``
  frame to the arrival of its result.
"""

from __future__ import annotations

import io
import json
import math
import time
from typing import Any

import numpy as np

from checker.grading import worker_values as protocol
from checker.grading.imports import PARSE_LOCK
from checker.grading.records import CallError, CallResult, Returned, Value, article, clean_text
from checker.grading.traced_steps import read_trace

__all__ = [
    "Frame",
    "FrameReader",
    "ProtocolError",
    "call_result",
    "error_record",
    "isolation_info",
    "line_number",
    "load_npy",
    "value",
]

_MAX_HEADER_BYTES = 16 * 2**20
_MAX_LINE = 10**7


class ProtocolError(Exception):
    """The result stream is not a sequence of valid frames."""


Frame = tuple[dict[str, Any], list[bytes], float]  # header, blobs, arrival time (time.monotonic())


class FrameReader:
    """Splits the result pipe into frames, refusing anything malformed or too large."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.total = 0
        self.frames: list[Frame] = []

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        if self.total > self.max_bytes:
            raise ProtocolError(f"the worker sent more than {self.max_bytes} bytes (Limits.max_output_bytes)")
        self.buffer += data
        prefix = len(protocol.MAGIC) + protocol.FRAME_HEAD.size
        while len(self.buffer) >= prefix:
            if bytes(self.buffer[: len(protocol.MAGIC)]) != protocol.MAGIC:
                raise ProtocolError(
                    "a result frame does not start with the protocol magic (something else wrote to the result pipe)"
                )
            header_length, payload_length = protocol.FRAME_HEAD.unpack_from(self.buffer, len(protocol.MAGIC))
            if header_length > _MAX_HEADER_BYTES or prefix + header_length + payload_length > self.max_bytes:
                raise ProtocolError(
                    f"a result frame announces {header_length + payload_length} bytes, over the limit"
                )
            end = prefix + header_length + payload_length
            if len(self.buffer) < end:
                return
            try:
                header = json.loads(bytes(self.buffer[prefix : prefix + header_length]))
            except (ValueError, RecursionError) as exc:
                raise ProtocolError(f"a result frame header is not JSON: {clean_text(exc, 200)}") from None
            sizes = header.get("blobs") if isinstance(header, dict) else None
            if not (isinstance(sizes, list) and all(type(s) is int and s >= 0 for s in sizes)):
                raise ProtocolError("a result frame header has no valid blob list")
            if sum(sizes) != payload_length:
                raise ProtocolError("a result frame's blobs do not add up to its payload")
            blobs, offset = [], prefix + header_length
            for size in sizes:
                blobs.append(bytes(self.buffer[offset : offset + size]))
                offset += size
            self.frames.append((header, blobs, time.monotonic()))
            del self.buffer[:end]


# ------------------------------------------------------------------------------------ values


def load_npy(blob: bytes) -> np.ndarray:
    """A plain float64 / int64 / bool ndarray from ``.npy`` bytes; the header is checked against the
    byte count before numpy allocates anything (a forged shape cannot make the grader allocate)."""
    stream = io.BytesIO(blob)
    version = np.lib.format.read_magic(stream)
    with PARSE_LOCK:  # numpy reads the header with ast.literal_eval: one parse at a time (gh-106905)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise ValueError(f"dtype {dtype} is not numeric")
    if math.prod(shape) * dtype.itemsize != len(blob) - stream.tell():
        raise ValueError("the array's bytes do not match its header")
    with PARSE_LOCK:
        array = np.load(io.BytesIO(blob), allow_pickle=False)
    if type(array) is not np.ndarray or array.shape != tuple(shape) or array.dtype != dtype:
        raise ValueError("the array read back differs from its header")
    target = np.float64 if dtype.kind == "f" else np.int64 if dtype.kind in "iu" else np.bool_
    return np.array(array, dtype=target, order="C", copy=True)


def value(info: Any, blobs: list[bytes]) -> Value:
    """The scorer's view of one returned value; never raises."""
    if not isinstance(info, dict):
        return Value(type="?", array=None, error="could not be read (malformed record)")
    kind = clean_text(info.get("type", "?"), 200)
    family = info.get("family")
    try:
        parsed: np.dtype | None = np.dtype(str(info.get("dtype"))[:64])
        dtype = parsed.name
    except (TypeError, ValueError, SyntaxError):
        parsed, dtype = None, clean_text(info.get("dtype", ""), 64)
    note = clean_text(info.get("note", ""), 300)
    if family == "none":
        return Value(type=kind, array=None, error="is None, expected a numpy array")
    if family not in ("ndarray", "numpy-scalar", "number"):
        detail = f" ({note})" if note else ""
        return Value(
            type=kind, array=None, error=f"is {article(kind)} {kind}, expected a numpy array{detail}"
        )
    if info.get("exact") is not True:
        message = f"is {article(kind)} {kind}, expected a plain numpy array: return np.asarray(...) of it"
        return Value(type=kind, array=None, error=message, dtype=dtype)
    if parsed is None or parsed.kind not in "biuf" or parsed.fields is not None:
        return Value(type=kind, array=None, error=f"has dtype {dtype}, expected a float array", dtype=dtype)
    index = info.get("blob")
    if type(index) is not int or not 0 <= index < len(blobs):
        reason = f": {note}" if note else ""
        return Value(type=kind, array=None, error=f"was not sent{reason}", dtype=dtype)
    try:
        array = load_npy(blobs[index])
    except Exception as exc:
        return Value(type=kind, array=None, error=f"could not be read: {clean_text(exc, 300)}", dtype=dtype)
    if list(array.shape) != info.get("shape"):
        return Value(
            type=kind, array=None, error="could not be read: its shape differs from its record", dtype=dtype
        )
    return Value(type=kind, array=array, dtype=dtype)


def _returned(info: Any, blobs: list[bytes]) -> Returned:
    if not isinstance(info, dict) or not isinstance(info.get("values"), list):
        return Returned("other", ("",), (Value(type="?", array=None, error="could not be read"),))
    values = tuple(value(v, blobs) for v in info["values"][:10_000])
    raw_keys = info.get("keys")
    keys = [clean_text(k, 100) for k in raw_keys[: len(values)]] if isinstance(raw_keys, list) else []
    keys += [str(i) for i in range(len(keys), len(values))]
    structure = info.get("structure")
    known = ("tuple", "list", "dict", "array", "none", "other")
    return Returned(structure if structure in known else "other", tuple(keys), values)


def line_number(raw: Any) -> int:
    """A line number from a worker: an int from 0 to 10**7, else 0."""
    return raw if type(raw) is int and 0 <= raw <= _MAX_LINE else 0


def error_record(info: Any) -> CallError | None:
    if not isinstance(info, dict):
        return None
    return CallError(
        type=clean_text(info.get("type", ""), 200),
        message=clean_text(info.get("message", ""), 1000),
        phase=clean_text(info.get("phase", ""), 40),
        file=clean_text(info.get("file", ""), 300),
        line=line_number(info.get("line")),
        traceback=clean_text(str(info.get("traceback", ""))[-8000:], 8000),
    )


def _named(info: Any, blobs: list[bytes]) -> dict[str, Value]:
    if not isinstance(info, dict):
        return {}
    return {clean_text(k, 200): value(v, blobs) for k, v in list(info.items())[:10_000]}


def call_result(header: dict[str, Any], blobs: list[bytes], seconds: float) -> CallResult:
    """One ``call`` frame as a record; ``seconds`` is the grader's own measure of the call."""
    status = header.get("status") if header.get("status") in ("ok", "error") else "error"
    outputs = header.get("outputs")
    optional = {
        name: (value if name.startswith("loss") else _returned)(header[name], blobs)
        for name in ("loss", "loss_again", "gradients", "gradients_again")
        if header.get(name) is not None
    }
    return CallResult(
        id=clean_text(header.get("id"), 200),
        status=status,
        outputs=tuple(value(v, blobs) for v in outputs[:1000]) if isinstance(outputs, list) else (),
        inputs_after=_named(header.get("inputs_after"), blobs),
        douts_after=_named(header.get("douts_after"), blobs),
        hyper_after=_named(header.get("hyper_after"), blobs),
        error=error_record(header.get("error")),
        seconds=seconds if math.isfinite(seconds) and seconds >= 0 else 0.0,
        trace=read_trace(header["trace"], blobs, value) if header.get("trace") is not None else None,
        **optional,
    )


def isolation_info(header: dict[str, Any]) -> dict[str, Any]:
    """What the worker says it set up (reported, not relied on): ints and bools only."""
    info: dict[str, Any] = {}
    for key in ("pid", "uid"):
        if type(header.get(key)) is int and 0 <= header[key] < 2**32:
            info[key] = header[key]
    if type(header.get("no_new_privs")) is bool:
        info["no_new_privs"] = header["no_new_privs"]
    limits = header.get("limits")
    if isinstance(limits, dict):
        info["limits"] = {
            clean_text(k, 40): v for k, v in list(limits.items())[:20] if type(v) is int and 0 <= v < 2**63
        }
    return info
