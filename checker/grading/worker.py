"""The child side of grading: run a student's functions on the grader's inputs and send back arrays.

Started by ``sandbox.py`` as ``python -I -B worker.py RESULT_FD`` with the request on stdin. It is run
by path, so it imports only the standard library and numpy: never ``checker`` (which a submission may
not import) and never the student's folder ahead of numpy (``-I`` keeps the script's and the current
directory off ``sys.path``; the submission folder is appended at the end).

The worker judges nothing. Everything it sends is data from a process the student controls (student
code runs in this interpreter and can rewrite any of it), so the grader validates every message and
decides pass/fail itself. What the worker does on its side:

1. reads the request: ``MAGIC, >I header length, JSON header, np.savez bytes`` (no pickle);
2. when started as root: cuts the network (new network namespace, best effort) and drops to the uid the
   grader chose (the interpreter stays importable through directory descriptors opened before the
   drop); then sets the limits (RLIMIT_AS, CPU, FSIZE, CORE, NPROC) and PR_SET_NO_NEW_PRIVS;
3. refuses forbidden imports with a ``sys.meta_path`` finder, and imports the submission: every
   top-level ``*.py`` but ``__init__``/``conftest``/``setup`` and test files, in sorted file-name order;
   a function is looked up in that order and the first module defining it wins. ``__name__`` is the
   file stem (``if __name__ == "__main__"`` blocks do not run); a stem already taken by a loaded module
   (``numpy.py``, ``copy.py``) gets a private name. The folder is appended to ``sys.path`` so that the
   submission's modules can import each other;
4. per call: sends a ``begin`` frame, runs the student's functions on copies of the inputs, sends a
   ``call`` frame with every returned value as ``.npy`` bytes (``allow_pickle=False``);
5. sends ``done`` and leaves with ``os._exit(0)`` (student ``atexit`` hooks and threads never run).

Frames on the result pipe: ``MAGIC`` (4 bytes), ``>IQ`` (header length, payload length), a UTF-8 JSON
header with ``"blobs": [n0, n1, ...]``, then the payload: the blobs back to back. A value refers to its
blob by index. Frame kinds: ``hello``, ``fatal``, ``refused``, ``imported``, ``begin``, ``call``, ``done``.
"""

from __future__ import annotations

import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__":
    # Before numpy loads: one BLAS thread, so RLIMIT_AS does not break OpenBLAS's per-thread buffers
    # and RLIMIT_NPROC does not stop its threads from starting.
    for _variable in THREAD_VARIABLES:
        os.environ[_variable] = "1"

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import struct  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

__all__ = ["FRAME_HEAD", "MAGIC", "REQUEST_HEAD", "main"]

MAGIC = b"BCK1"
FRAME_HEAD = struct.Struct(">IQ")  # JSON header length, payload length
REQUEST_HEAD = struct.Struct(">I")  # JSON header length; the npz bytes follow
EXIT_FATAL = 3  # the worker itself could not start: a harness problem, not the student's

_MESSAGE_CHARS = 500
_TRACEBACK_CHARS = 4000
_TRACEBACK_FRAMES = 8
_NUMERIC_KINDS = "biuf"
_PR_SET_NO_NEW_PRIVS = 38
_CLONE_NEWNET = 0x40000000
_EXACT_TYPES = frozenset({np.ndarray, *np.sctypeDict.values()})


class _Channel:
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


# ----------------------------------------------------------------------------------------- values


def _type_name(value: object) -> tuple[str, bool]:
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
        name, exact = _type_name(value)
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
        return {"type": "?", "exact": False, "family": "other", "note": f"could not be read: {_text(exc)}"}


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


def _text(exc: BaseException) -> str:
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
    except Exception:
        text = ""
    file, line = _location(exc, root)
    public = next(k for k in type(exc).__mro__ if not k.__qualname__.startswith("_"))
    return {
        "type": public.__qualname__,  # numpy's _ArrayMemoryError is reported as MemoryError
        "message": _text(exc),
        "file": file,
        "line": line,
        "phase": phase,
        "traceback": text[-_TRACEBACK_CHARS:],
    }


# -------------------------------------------------------------------------------------- bootstrap


def read_request(stream: io.BufferedIOBase) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The grader's request: JSON (calls, limits, identity, forbidden modules) and the input arrays."""
    data = stream.read()
    if data[:4] != MAGIC:
        raise ValueError("the request does not start with the protocol magic")
    (length,) = REQUEST_HEAD.unpack_from(data, 4)
    start = 4 + REQUEST_HEAD.size
    header = json.loads(data[start : start + length])
    with np.load(io.BytesIO(data[start + length :]), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return header, arrays


def _open_directories(paths: list[str]) -> dict[str, int]:
    """Descriptors of the interpreter's directories, opened while still privileged."""
    opened: dict[str, int] = {}
    for path in paths:
        if path and os.path.isdir(path) and path not in opened:
            opened[path] = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    return opened


def _reach_through_descriptors(opened: dict[str, int]) -> None:
    """After the drop, reach directories the new uid may not traverse (an interpreter under /root)
    through ``/proc/self/fd/N``: the kernel lets a process follow its own descriptors."""

    def remap(path: str) -> str:
        if not isinstance(path, str):
            return path
        for directory, fd in opened.items():
            if (path == directory or path.startswith(directory + "/")) and not _listable(directory):
                return f"/proc/self/fd/{fd}{path[len(directory) :]}"
        return path

    sys.path[:] = [remap(p) for p in sys.path]
    for module in list(sys.modules.values()):
        search = getattr(module, "__path__", None)
        if isinstance(search, list):
            search[:] = [remap(p) for p in search]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def _listable(directory: str) -> bool:
    try:
        os.listdir(directory)
        return True
    except OSError:
        return False


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise RuntimeError(f"could not drop privileges to uid {uid}")
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise RuntimeError("privileges were not dropped: setuid(0) still works")


def _libc(function: str, *args: int) -> bool:
    """Call a libc function that returns 0 on success; False when it fails or cannot be called."""
    try:
        import ctypes

        return getattr(ctypes.CDLL(None, use_errno=True), function)(*args) == 0
    except Exception:
        return False


def _tasks_of(uid: int) -> int | None:
    """Processes and threads whose real uid is ``uid`` (what RLIMIT_NPROC counts); None without /proc."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    total = 0
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as status:
                fields = dict(line.split(":", 1) for line in status if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"].strip())
        except (OSError, KeyError, ValueError):
            continue
    return total


def apply_limits(limits: dict[str, Any]) -> dict[str, Any]:
    """Set this process's resource limits (inherited by anything it forks); returns what was set."""
    import resource
    import signal

    def lower(which: int, soft: int, hard: int) -> int:
        _, current = resource.getrlimit(which)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        resource.setrlimit(which, (soft, hard))
        return soft

    applied: dict[str, Any] = {}
    memory = int(limits["memory_mb"]) * 2**20
    applied["RLIMIT_AS"] = lower(resource.RLIMIT_AS, memory, memory)
    cpu = int(limits["cpu_s"])
    applied["RLIMIT_CPU"] = lower(resource.RLIMIT_CPU, cpu, cpu + 1)
    size = int(limits["max_file_bytes"])
    applied["RLIMIT_FSIZE"] = lower(resource.RLIMIT_FSIZE, size, size)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long write fails with EFBIG instead of killing
    lower(resource.RLIMIT_CORE, 0, 0)
    tasks = _tasks_of(os.getuid())
    if tasks is not None:
        allowed = tasks + int(limits["max_processes"])
        applied["RLIMIT_NPROC"] = lower(resource.RLIMIT_NPROC, allowed, allowed)
    return applied


class _RefuseImports:
    """``sys.meta_path`` finder that refuses forbidden modules and tells the grader who tried."""

    def __init__(self, forbidden: list[str], channel: _Channel, root: str) -> None:
        self.forbidden = frozenset(forbidden)
        self.channel = channel
        self.root = root

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        top = name.partition(".")[0]
        if top not in self.forbidden:
            return None
        file, line = "", 0
        frame = sys._getframe(1)
        while frame is not None:
            if frame.f_code.co_filename.startswith(self.root):
                file, line = os.path.relpath(frame.f_code.co_filename, self.root), frame.f_lineno
                break
            frame = frame.f_back
        if os.getpid() == self.channel.pid:
            self.channel.send({"kind": "refused", "module": name, "root": top, "file": file, "line": line})
        raise ImportError(
            f"importing {name} is not allowed in a submission graded by backprop-check "
            f"(forbidden: {', '.join(sorted(self.forbidden))}); compute the gradients with numpy",
            name=name,
        )


# ------------------------------------------------------------------------------------ the session


def _module_files(root: str) -> list[str]:
    """The submission's top-level modules, sorted: every ``*.py`` but tests, conftest and setup."""
    names = sorted(os.listdir(root))
    skipped = ("__init__.py", "conftest.py", "setup.py")
    return [
        n
        for n in names
        if n.endswith(".py")
        and n not in skipped
        and not n.startswith("test_")
        and not n.endswith("_test.py")
        and os.path.isfile(os.path.join(root, n))
    ]


def _param_name(key: str) -> str:
    """The model parameter an array key stands for: its last ``/`` part (``"net/0/W1"`` -> ``"W1"``)."""
    return key.rsplit("/", 1)[-1]


def _materialize(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    """Fresh copies of a JSON hyper/init value; ``{"$array": name}`` becomes a copy of that input."""
    if isinstance(value, dict):
        if set(value) == {"$array"}:
            return arrays[value["$array"]].copy()
        return {k: _materialize(v, arrays) for k, v in value.items()}
    if isinstance(value, list):
        return [_materialize(v, arrays) for v in value]
    return value


def _arrays_inside(value: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """(dotted path, value) of every ndarray in nested dicts, e.g. ``bn_param.running_mean``."""
    if isinstance(value, np.ndarray):
        return [(prefix, value)]
    if isinstance(value, dict) and depth < 3:
        found: list[tuple[str, Any]] = []
        for key, item in value.items():
            found += _arrays_inside(item, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        return found
    return []


class _CallFailed(Exception):
    """A call cannot go on; carries the error record (the student's exception or a wrong return)."""

    def __init__(self, info: dict[str, Any]) -> None:
        super().__init__(info["message"])
        self.info = info


class Session:
    """One submission in this process: its modules, the grader's arrays, the result channel."""

    def __init__(self, request: dict[str, Any], arrays: dict[str, np.ndarray], channel: _Channel) -> None:
        self.request = request
        self.arrays = arrays
        self.channel = channel
        self.root = os.path.realpath(request["submission_dir"])
        self.max_bytes = int(request["limits"]["max_output_bytes"])
        self.modules: list[Any] = []

    # -- bootstrap ---------------------------------------------------------------------------
    def bootstrap(self) -> dict[str, Any]:
        info: dict[str, Any] = {"pid": os.getpid()}
        identity = self.request.get("identity")
        info["network_cut"] = False
        if identity is not None:
            # A new network namespace holds only a loopback that is down: answers cannot be fetched
            # or sent out. Needs CAP_SYS_ADMIN, which a container may not grant: best effort.
            info["network_cut"] = _libc("unshare", _CLONE_NEWNET)
            opened = _open_directories([*sys.path, self.root])
            _drop_privileges(int(identity["uid"]), int(identity["gid"]))
            _reach_through_descriptors(opened)
            if not _listable(self.root):
                fd = opened[self.root]
                self.root = f"/proc/self/fd/{fd}"
        # setuid programs the student might run gain nothing
        info["no_new_privs"] = _libc("prctl", _PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        info["uid"] = os.getuid()
        info["limits"] = apply_limits(self.request["limits"])
        os.umask(0o077)
        forbidden = list(self.request["forbidden"])
        for name in list(sys.modules):
            if name.partition(".")[0] in forbidden:
                del sys.modules[name]
        sys.meta_path.insert(0, _RefuseImports(forbidden, self.channel, self.root))
        sys.path.append(self.root)
        return info

    # -- import ------------------------------------------------------------------------------
    def import_submission(self) -> None:
        errors = []
        files = _module_files(self.root)
        for index, filename in enumerate(files):
            path = os.path.join(self.root, filename)
            stem = filename[:-3]
            name = stem if stem.isidentifier() and stem not in sys.modules else f"_submission_{index}"
            existing = sys.modules.get(stem)
            if existing is not None and getattr(existing, "__file__", None) == path:
                self.modules.append(existing)  # already imported by a sibling module
                continue
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                self.modules.append(module)
            except BaseException as exc:  # SystemExit and KeyboardInterrupt at import too
                self._after_student_code()
                sys.modules.pop(name, None)
                error = error_info(exc, "import", self.root)
                error["file"] = error["file"] or filename
                errors.append(error)
            self._after_student_code()
        self.channel.send({"kind": "imported", "files": files, "errors": errors})

    def _after_student_code(self) -> None:
        if os.getpid() != self.channel.pid:
            os._exit(0)  # a forked child returned into the worker: it has nothing to report
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()

    def lookup(self, name: str, what: str = "function") -> Any:
        for module in self.modules:
            if name in vars(module):
                found = vars(module)[name]
                if not callable(found):
                    raise _CallFailed(
                        self._failure(f"{name} is a {type(found).__name__}, not a {what}", "lookup")
                    )
                return found
        raise _CallFailed(self._failure(f"submission defines no {what} {name}", "lookup"))

    @staticmethod
    def _failure(message: str, phase: str) -> dict[str, Any]:
        return {"type": "", "message": message, "file": "", "line": 0, "phase": phase, "traceback": ""}

    def _student(self, phase: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except BaseException as exc:
            raise _CallFailed(error_info(exc, phase, self.root)) from None
        finally:
            self._after_student_code()

    # -- calls -------------------------------------------------------------------------------
    def run_call(self, call: dict[str, Any]) -> None:
        self.channel.send({"kind": "begin", "id": call["id"]})
        blobs: list[bytes] = []
        record: dict[str, Any] = {"kind": "call", "id": call["id"], "status": "ok", "error": None}
        state: dict[str, Any] = {"inputs": {}, "douts": {}, "hyper": None}
        start = time.perf_counter()
        try:
            runner = {"layer": self._layer, "loss": self._loss, "model": self._model}[call["style"]]
            runner(call, record, state, blobs)
        except _CallFailed as failed:
            record["status"] = "error"
            record["error"] = failed.info
        record["seconds"] = time.perf_counter() - start
        try:
            self._after_calls(record, state, blobs)
        except Exception as exc:  # the student broke something the worker needs (np.asarray, ...)
            record["status"] = "error"
            record["error"] = error_info(exc, "encode", self.root)
        self.channel.send(record, blobs)

    def _copies(self, names: list[str]) -> dict[str, np.ndarray]:
        return {name: self.arrays[name].copy() for name in names}

    def _value(self, value: object, blobs: list[bytes]) -> dict[str, Any]:
        return describe_value(value, blobs, self.max_bytes)

    def _layer(self, call: dict[str, Any], record: dict, state: dict, blobs: list[bytes]) -> None:
        forward = self.lookup(call["forward"])
        backward = self.lookup(call["backward"]) if call["douts"] else None
        inputs = state["inputs"] = self._copies(call["inputs"])
        hyper = state["hyper"] = _materialize(call["hyper"], self.arrays)
        result = self._student("forward", forward, *inputs.values(), **hyper)
        expected = call["outputs"] + 1
        shape = (
            "(out, cache)"
            if expected == 2
            else f"({', '.join(f'out{i + 1}' for i in range(expected - 1))}, cache)"
        )
        if not isinstance(result, tuple) or len(result) != expected:
            found = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"a {_type_name(result)[0]}"
            message = f"{call['forward']} returned {found}, expected a tuple {shape}"
            raise _CallFailed(self._failure(message, "forward"))
        record["outputs"] = [self._value(v, blobs) for v in result[:-1]]
        cache = result[-1]
        if backward is None:
            return
        douts = state["douts"] = self._copies(call["douts"])
        grads = self._student("backward", backward, *douts.values(), cache)
        record["gradients"] = describe_returned(grads, blobs, self.max_bytes)
        if call["repeat_backward"]:
            again = self._student("backward_again", backward, *self._copies(call["douts"]).values(), cache)
            record["gradients_again"] = describe_returned(again, blobs, self.max_bytes)

    def _loss_result(self, name: str, result: object, record: dict, blobs: list[bytes], suffix: str) -> None:
        if not isinstance(result, tuple) or len(result) != 2:
            found = f"a tuple of {len(result)}" if isinstance(result, tuple) else f"a {_type_name(result)[0]}"
            raise _CallFailed(
                self._failure(f"{name} returned {found}, expected a tuple (loss, grads)", "loss")
            )
        record["loss" + suffix] = self._value(result[0], blobs)
        record["gradients" + suffix] = describe_returned(result[1], blobs, self.max_bytes)

    def _loss(self, call: dict[str, Any], record: dict, state: dict, blobs: list[bytes]) -> None:
        function = self.lookup(call["value_and_grad"])
        inputs = state["inputs"] = self._copies(call["inputs"])
        hyper = state["hyper"] = _materialize(call["hyper"], self.arrays)
        result = self._student("loss", function, *inputs.values(), **hyper)
        self._loss_result(call["value_and_grad"], result, record, blobs, "")
        if call["repeat_backward"]:
            again = self._student("loss_again", function, *self._copies(call["inputs"]).values(), **hyper)
            self._loss_result(call["value_and_grad"], again, record, blobs, "_again")

    def _model(self, call: dict[str, Any], record: dict, state: dict, blobs: list[bytes]) -> None:
        model_class = self.lookup(call["model"], "class")
        obj = self._student("init", model_class, **_materialize(call["init"], self.arrays))
        params = getattr(obj, "params", None)
        if not isinstance(params, dict):
            message = f"{call['model']} object has no params dict (found {_type_name(params)[0]})"
            raise _CallFailed(self._failure(message, "init"))
        for name in call["params"]:
            params[_param_name(name)] = self.arrays[name].copy()
        method_name = f"{call['model']}.{call['method']}"
        method = getattr(obj, call["method"], None)
        if not callable(method):
            raise _CallFailed(self._failure(f"submission defines no method {method_name}", "lookup"))
        inputs = state["inputs"] = self._copies(call["inputs"])
        state["params"] = (obj, call["params"])
        hyper = state["hyper"] = _materialize(call["hyper"], self.arrays)
        result = self._student("loss", method, *inputs.values(), **hyper)
        self._loss_result(method_name, result, record, blobs, "")
        if call["repeat_backward"]:
            for name in call["params"]:
                params[_param_name(name)] = self.arrays[name].copy()
            again = self._student("loss_again", method, *self._copies(call["inputs"]).values(), **hyper)
            self._loss_result(method_name, again, record, blobs, "_again")

    def _after_calls(self, record: dict, state: dict, blobs: list[bytes]) -> None:
        """Inputs, douts, params and hyper arrays as they are now: the grader looks for mutation."""
        after = {name: self._value(a, blobs) for name, a in state["inputs"].items()}
        if "params" in state:
            obj, names = state["params"]
            params = getattr(obj, "params", {})
            for name in names:
                value = params.get(_param_name(name)) if isinstance(params, dict) else None
                after[name] = self._value(value, blobs)
        record["inputs_after"] = after
        record["douts_after"] = {name: self._value(a, blobs) for name, a in state["douts"].items()}
        record["hyper_after"] = {p: self._value(a, blobs) for p, a in _arrays_inside(state["hyper"])}


def main(argv: list[str]) -> int:
    channel = _Channel(int(argv[1]))
    try:
        import faulthandler

        faulthandler.enable()  # a segfault prints where it happened to the student's stderr
        request, arrays = read_request(sys.stdin.buffer)
        session = Session(request, arrays, channel)
        info = session.bootstrap()
    except BaseException as exc:
        channel.send({"kind": "fatal", "message": f"{type(exc).__name__}: {_text(exc)}"})
        os._exit(EXIT_FATAL)
    channel.send({"kind": "hello", **info})
    session.import_submission()
    for call in request["calls"]:
        session.run_call(call)
    channel.send({"kind": "done"})
    session._after_student_code()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
