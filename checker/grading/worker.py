"""The child side of grading: run a student's functions on the grader's inputs and send back arrays.

Started by the grader as ``python -I -S -B worker.py PACKAGES RESULT_FD`` with the request on stdin,
inside the sandbox (``sandbox.py``), where the filesystem holds only the standard library, numpy (in
``PACKAGES``, appended to ``sys.path`` here), this file, ``worker_values.py``, ``worker_trace.py`` (with
the localize engine's three stdlib-and-numpy modules it loads by path, for trace calls) and the
submission. It imports nothing else: never the ``checker`` package, never anything of the grader's.

The worker judges nothing. Everything it sends is data from a process the student controls (student
code runs in this interpreter and can rewrite any of it), so the grader validates every message,
measures time itself, and decides pass/fail itself. What the worker does on its side:

1. reads the request: ``MAGIC, >I header length, JSON header, np.savez bytes`` (no pickle);
2. sets its limits (RLIMIT_AS, CPU, FSIZE, CORE, NPROC) before any student code runs;
3. refuses forbidden imports with a ``sys.meta_path`` finder (friendly feedback: the boundary is the
   sandbox, where torch and the answer key do not exist), and imports the submission: every top-level
   ``*.py`` but ``__init__``/``conftest``/``setup`` and test files, in sorted file-name order; a
   function is looked up in that order and the first module defining it wins. ``__name__`` is the
   file stem (``if __name__ == "__main__"`` blocks do not run); a stem already taken by a loaded module
   (``numpy.py``, ``copy.py``) gets a private name. The folder is appended to ``sys.path`` so that the
   submission's modules can import each other;
4. per call: sends a ``begin`` frame, runs the student's functions on copies of the inputs, sends a
   ``call`` frame with every returned value as ``.npy`` bytes (``allow_pickle=False``);
   a ``trace`` call (feedback only, never scored) runs the backward under the tracer instead and adds
   its steps to the ``call`` frame (``worker_trace.py``);
5. sends ``done`` and leaves with ``os._exit(0)`` (student ``atexit`` hooks and threads never run).

Frame kinds: ``hello``, ``fatal``, ``refused``, ``imported``, ``begin``, ``call``, ``done``.
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
    sys.path.append(sys.argv[1])  # numpy's folder, and nothing else of site-packages

import contextlib  # noqa: E402
import importlib.util  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

if __name__ == "__main__":  # run by path in the sandbox: the sibling modules are loaded by path too

    def _sibling(name: str) -> Any:
        spec = importlib.util.spec_from_file_location(
            f"_{name}", os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"_{name}"] = module
        spec.loader.exec_module(module)
        return module

    values = _sibling("worker_values")
    tracing = _sibling("worker_trace")
else:
    from checker.grading import worker_trace as tracing
    from checker.grading import worker_values as values

__all__ = ["Session", "apply_limits", "main", "read_request"]

EXIT_FATAL = 3  # the worker itself could not start: a harness problem, not the student's
Channel = values.Channel
describe_value = values.describe_value
describe_returned = values.describe_returned
error_info = values.error_info
_type_name = values.type_name
_text = values.exception_text


# -------------------------------------------------------------------------------------- bootstrap


def read_request(stream: io.BufferedIOBase) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The grader's request: JSON (calls, limits, forbidden modules) and the input arrays."""
    data = stream.read()
    if data[:4] != values.MAGIC:
        raise ValueError("the request does not start with the protocol magic")
    (length,) = values.REQUEST_HEAD.unpack_from(data, 4)
    start = 4 + values.REQUEST_HEAD.size
    header = json.loads(data[start : start + length])
    with np.load(io.BytesIO(data[start + length :]), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return header, arrays


def _tasks_of(uid: int) -> int | None:
    """Processes and threads whose real uid is ``uid`` (what RLIMIT_NPROC counts); None without /proc.
    In the sandbox, /proc shows this PID namespace only, and the kernel counts per user namespace."""
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


def _no_new_privs() -> bool:
    try:
        with open("/proc/self/status") as status:
            return any(line.split() == ["NoNewPrivs:", "1"] for line in status)
    except OSError:
        return False


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

    def __init__(self, forbidden: list[str], channel: Channel, root: str) -> None:
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

    def __init__(self, request: dict[str, Any], arrays: dict[str, np.ndarray], channel: Channel) -> None:
        self.request = request
        self.arrays = arrays
        self.channel = channel
        self.root = os.path.realpath(request["submission_dir"])
        self.max_bytes = int(request["limits"]["max_output_bytes"])
        self.modules: list[Any] = []

    # -- bootstrap ---------------------------------------------------------------------------
    def bootstrap(self) -> dict[str, Any]:
        info: dict[str, Any] = {"pid": os.getpid(), "uid": os.getuid(), "no_new_privs": _no_new_privs()}
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

    def _backward(
        self,
        call: dict[str, Any],
        record: dict,
        blobs: list[bytes],
        phase: str,
        function: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        """The student's backward (or loss), run as usual; for a ``trace`` call, run under the localize
        engine's tracer, its steps described in ``record["trace"]`` (data for the grader to check)."""
        if not call.get("trace"):
            return self._student(phase, function, *args, **kwargs)
        files = [m.__file__ for m in self.modules if isinstance(getattr(m, "__file__", None), str)]
        run = self._student(phase, tracing.trace, lambda: function(*args, **kwargs), files)
        returned = run.returned
        grads = (
            returned[1]
            if call["style"] != "layer" and isinstance(returned, tuple) and len(returned) == 2
            else returned
        )
        try:
            record["trace"] = tracing.describe_steps(
                run, self.root, grads, blobs, describe_value, self.max_bytes
            )
        except Exception as exc:  # the student broke something the description needs: no steps
            record["trace"] = {"error": _text(exc)}
        return returned

    # -- calls -------------------------------------------------------------------------------
    def run_call(self, call: dict[str, Any]) -> None:
        self.channel.send({"kind": "begin", "id": call["id"]})
        blobs: list[bytes] = []
        record: dict[str, Any] = {"kind": "call", "id": call["id"], "status": "ok", "error": None}
        state: dict[str, Any] = {"inputs": {}, "douts": {}, "hyper": None}
        try:
            runner = {"layer": self._layer, "loss": self._loss, "model": self._model}[call["style"]]
            runner(call, record, state, blobs)
        except _CallFailed as failed:
            record["status"] = "error"
            record["error"] = failed.info
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
        grads = self._backward(call, record, blobs, "backward", backward, *douts.values(), cache)
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
        result = self._backward(call, record, blobs, "loss", function, *inputs.values(), **hyper)
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
        result = self._backward(call, record, blobs, "loss", method, *inputs.values(), **hyper)
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
    channel = Channel(int(argv[2]))
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
