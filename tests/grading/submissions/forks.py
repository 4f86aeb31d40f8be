"""Forward forks as many children as it can; each leaves the process group and sleeps."""

import os
import time

import numpy as np


def affine_forward(x, w, b):
    children = 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:  # RLIMIT_NPROC
            break
        if pid == 0:
            os.setsid()  # out of the worker's process group: killpg alone would miss it
            time.sleep(60)
            os._exit(0)
        children += 1
    print(f"forked {children} children", flush=True)
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
