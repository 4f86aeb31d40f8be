"""Leaves answers where the next student could read them: System V shared memory, /run/lock, /tmp,
/dev/shm, a POSIX message queue name. ``reads_state.py`` looks for them in a later run."""

import ctypes
import os

import numpy as np

KEY = 0x0BC0BC
SECRET = b"dw = x.T @ dout"
PLACES = ["/run/lock/bc-answers", "/tmp/bc-answers", "/dev/shm/bc-answers", "/var/tmp/bc-answers"]


def _leave():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.shmat.restype = ctypes.c_void_p
    shmid = libc.shmget(KEY, 4096, 0o1666)  # IPC_CREAT | 0666
    if shmid >= 0:
        address = libc.shmat(shmid, None, 0)
        if address not in (None, ctypes.c_void_p(-1).value):
            ctypes.memmove(address, SECRET, len(SECRET))
            print("left: sysv shm")
    for path in PLACES:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(SECRET)
            print(f"left: {path}")
        except OSError:
            pass


def affine_forward(x, w, b):
    _leave()
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
