"""Leaves a detached daemon behind (double fork + setsid) that outlives the run and then kills every
process it can, when the next student's worker would be starting (the attack that beat the old
uid-wide clean-up).

Its command line carries the marker @MARKER@ (the test plants one of its own, so that it finds this
daemon and no other test's), so the test can look for it after the run. The daemon waits for the
worker that started it to exit before it kills anything: a daemon that killed its own worker would
only end its own run, and whether that run completed would be a race.
"""

import os
import sys

import numpy as np


def _daemon():
    worker = os.getpid()
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    os.execv(sys.executable, [sys.executable, "-S", "-c", _DAEMON, "@MARKER@", str(worker)])


_DAEMON = """
import os, signal, sys, time
worker = int(sys.argv[2])
for _ in range(6000):  # outlive the worker (a zombie still answers kill 0 until it is reaped)
    try:
        os.kill(worker, 0)
    except ProcessLookupError:
        break
    time.sleep(0.01)
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
