"""The worker's side of the protocol: frames on the result pipe, and how returned values are recorded.

Imported by ``worker.py`` inside the sandbox (by file path: the sandbox holds only the standard library,
numpy and these two files) and by the grader for the constants. Standard library and numpy only.

Frames: ``MAGIC`` (4 bytes), ``>IQ`` (header length, payload length), a UTF-8 JSON header with
``"blobs": [n0, n1, ...]``, then the payload: the blobs back to back. A value refers to its blob by index.
The request on stdin: ``MAGIC, >I header length, JSON header, np.savez bytes`` (no pickle anywhere).
"""

from __future__ import annotations

import io
import json
import os
import struct
import traceback
from typing import Any

import numpy as np

__all__ = [
    "FRAME_HEAD",
    "MAGIC",
    "REQUEST_HEAD",
    "Channel",
    "describe_returned",
    "describe_value",
    "error_info",
    "exception_text",
    "type_name",
]

MAGIC = b"BCK1"
FRAME_HEAD = struct.Struct(">IQ")  # JSON header length, payload length
REQUEST_HEAD = struct.Struct(">I")  # JSON header length; the npz bytes follow

_MESSAGE_CHARS = 500
_TRACEBACK_CHARS = 4000
_TRACEBACK_FRAMES = 8
_NUMERIC_KINDS = "biuf"
_EXACT_TYPES = frozenset({np.ndarray, *np.sctypeDict.values()})


class Channel:
    """Frames on the result pipe. Only the worker process itself may send: a forked child that
    wanders back into worker code leaves silently instead of sending duplicate frames."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pid = os.getpid()

    def send(self, header: dict[str, Any], blobs: list[bytes] | None = None) -> None:
        if os.getpid() != self.pid:
            os._exit(0)
        blobs = blobs or []
        header = {**header, "blobs": [len(b) for b in blobs]}
        text = json.dumps(header, allow_nan=True).encode()
        payload = b"".join(blobs)
        data = memoryview(MAGIC + FRAME_HEAD.pack(len(text), len(payload)) + text + payload)
        while data:
            written = os.write(self.fd, data)
            data = data[written:]


def type_name(value: object) -> tuple[str, bool]:
    """``("numpy.ndarray", True)``, or ``("EvilFloat (a subclass of numpy.float64)", False)``.

    The flag is False only for a subclass of an array or number type (``np.matrix``, a ``float64``
    subclass overriding ``__abs__``): the grader refuses those by exact type.
    """
    kind = type(value)
    if kind in _EXACT_TYPES or kind.__module__ == "builtins":
        return _qualified(kind), True
    base = next((k for k in kind.__mro__[1:] if k in _EXACT_TYPES or k.__module__ == "builtins"), object)
    if base is object:
        return _qualified(kind), True  # a class of its own: refused anyway, by its family
    return f"{_qualified(kind)} (a subclass of {_qualified(base)})", False


def _qualified(kind: type) -> str:
    if kind.__module__ == "builtins":
        return kind.__qualname__
    if kind.__module__ == "numpy" or kind.__module__.startswith("numpy."):
        return f"numpy.{kind.__qualname__}"
    return kind.__qualname__


def _family(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, np.ndarray):
        return "ndarray"
    if isinstance(value, np.generic):
        return "numpy-scalar"
    if isinstance(value, (bool, int, float)):
        return "number"
    if isinstance(value, (list, tuple)):
        return "sequence"
    return "other"


def describe_value(value: object, blobs: list[bytes], max_bytes: int) -> dict[str, Any]:
    """Record one returned value; numeric arrays (and scalars) go into ``blobs`` as ``.npy`` bytes.

    The JSON says what the student returned (``type``, ``exact``: not a subclass, ``family``) and,
    when numpy can read it as an array, its ``dtype``/``shape`` and the index of its blob.
    """
    try:
        name, exact = type_name(value)
        info: dict[str, Any] = {"type": name, "exact": exact, "family": _family(value)}
        if info["family"] not in ("ndarray", "numpy-scalar", "number"):
            return info
        array = np.asarray(value)  # base ndarray: a subclass's __abs__/__lt__ stay behind
        info["dtype"] = array.dtype.str
        info["shape"] = list(array.shape)
        if array.dtype.kind not in _NUMERIC_KINDS or array.dtype.fields is not None:
            return info
        if array.nbytes > max_bytes:
            info["note"] = (
                f"{array.nbytes} bytes is over the {max_bytes}-byte limit (Limits.max_output_bytes)"
            )
            return info
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, array, allow_pickle=False)
        info["blob"] = len(blobs)
        blobs.append(buffer.getvalue())
        return info
    except Exception as exc:  # a hostile __array__ or dtype: the value is lost, not the call
        return {
            "type": "?",
            "exact": False,
            "family": "other",
            "note": f"could not be read: {exception_text(exc)}",
        }


def describe_returned(value: object, blobs: list[bytes], max_bytes: int) -> dict[str, Any]:
    """Structure of a returned gradient set: ``tuple``/``list`` (keys "0", "1", ...), ``dict``
    (keys as ``str``), ``array`` (one bare value, key ""), ``none``, or ``other`` (key "")."""
    if value is None:
        return {"structure": "none", "keys": [], "values": []}
    if isinstance(value, (tuple, list)):
        items = [(str(i), v) for i, v in enumerate(value)]
        structure = "tuple" if isinstance(value, tuple) else "list"
    elif isinstance(value, dict):
        items = [(k if isinstance(k, str) else repr(k), v) for k, v in value.items()]
        structure = "dict"
    else:
        items = [("", value)]
        structure = "array" if _family(value) in ("ndarray", "numpy-scalar", "number") else "other"
    return {
        "structure": structure,
        "keys": [k for k, _ in items],
        "values": [describe_value(v, blobs, max_bytes) for _, v in items],
    }


def exception_text(exc: BaseException) -> str:
    try:
        text = exc.msg if isinstance(exc, SyntaxError) and isinstance(exc.msg, str) else str(exc)
    except Exception:
        text = "<the exception could not be printed>"
    return text if len(text) <= _MESSAGE_CHARS else text[: _MESSAGE_CHARS - 3] + "..."


def _location(exc: BaseException, root: str) -> tuple[str, int]:
    """(file inside the submission, line) where ``exc`` happened; ("", 0) when not in the submission."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.filename.startswith(root):
        return os.path.relpath(exc.filename, root), exc.lineno or 0
    found = ("", 0)
    for frame, line in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.startswith(root):
            found = (os.path.relpath(filename, root), line)
    return found


def error_info(exc: BaseException, phase: str, root: str) -> dict[str, Any]:
    """Type, last line, where in the submission, and the traceback's tail (worker frames cut off)."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(root):
        tb = tb.tb_next  # skip the worker's own frames above the student's
    try:
        lines = traceback.format_exception(type(exc), exc, tb, limit=-_TRACEBACK_FRAMES)
        text = "".join(lines)
    except BaseException:  # a RecursionError while formatting a deep traceback, say
        text = ""
    try:
        file, line = _location(exc, root)
    except BaseException:
        file, line = "", 0
    public = next(k for k in type(exc).__mro__ if not k.__qualname__.startswith("_"))
    return {
        "type": public.__qualname__,  # numpy's _ArrayMemoryError is reported as MemoryError
        "message": exception_text(exc),
        "file": file,
        "line": line,
        "phase": phase,
        "traceback": text[-_TRACEBACK_CHARS:],
    }
