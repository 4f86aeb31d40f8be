"""The judging room: how a user's gradient is compared with each oracle, and the rows that says.

- ``exact``: the torch reference, autograd of the user's own forward, a reference solution's answers;
- ``finite_differences``: central differences of the user's own forward, confirmed and explained.

The sequence of checks, and which oracle decides, is :mod:`checker.runner`.
"""
