"""Forward is fine; backward waits forever without using the CPU (a deadlock): only the wall clock
can end it, the CPU-time limit never would."""

import threading

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    threading.Event().wait()
