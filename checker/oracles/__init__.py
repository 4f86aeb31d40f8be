"""Oracles: independent ways of computing the gradient a user's backward should return.

- ``finite_diff``: central differences of the user's own forward (no extra code, float64);
- ``torch_reference``: torch autograd of a torch reference the user registered;
- ``torch_numpy``: exact autograd of the user's own numpy forward, run under ``torch._numpy``.
"""
