"""Looks for what ``leaves_state.py`` left in an earlier run."""

import ctypes
import os

import numpy as np

KEY = 0x0BC0BC
PLACES = ["/run/lock/bc-answers", "/tmp/bc-answers", "/dev/shm/bc-answers", "/var/tmp/bc-answers"]


def _found():
    found = []
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.shmget(KEY, 0, 0) >= 0:
        found.append("sysv shm")
    found += [p for p in PLACES if os.path.exists(p)]
    return found


def affine_forward(x, w, b):
    print(f"found: {_found()}")
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
