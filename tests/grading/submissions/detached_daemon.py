"""Leaves a detached daemon behind (double fork + setsid) that outlives the run and kills everyone it can.

Its command line carries the marker bc-daemon-marker, so the test can look for it after the run.
"""

import os
import signal
import sys
import time

import numpy as np


def _daemon():
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    os.execv(sys.executable, [sys.executable, "-S", "-c", _DAEMON, "bc-daemon-marker"])


_DAEMON = """
import os, signal, time
for _ in range(600):
    time.sleep(0.05)
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
"""


def affine_forward(x, w, b):
    _daemon()
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
