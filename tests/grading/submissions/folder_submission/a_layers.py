"""Imported first (sorted order): its affine_forward wins."""

import numpy as np


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)
