"""Lets torch compute the gradient."""

import numpy as np
import torch


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = (torch.tensor(a, requires_grad=True) for a in cache)
    (x @ w + b).backward(torch.tensor(dout))
    return x.grad.numpy(), w.grad.numpy(), b.grad.numpy()
