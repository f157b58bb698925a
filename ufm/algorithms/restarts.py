"""Restarts: seeded random starts plus known critical points as candidates, and which restarts are graded.

The best restart itself is chosen by one rule, ``ufm.solver.best_element`` (the lowest converged element, unless
an unconverged one is lower beyond rounding: then that one, so that the run grades, and fails, the lowest point
found).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def with_zero_start(params, add: bool = True):
    """The batch ``params`` (a pytree, starts on the leading axis) with the critical point 0 appended as the last
    start where ``add``: W = H = 0, the optimum wherever the theory says the trivial solution is, which random
    starts approach only slowly (the loss is flat to second order along the directions that kill a class)."""
    if not add:
        return params
    return jax.tree.map(lambda a: jnp.concatenate([jnp.asarray(a), jnp.zeros_like(jnp.asarray(a)[:1])]), params)


def graded_restarts(solution, best: int) -> np.ndarray:
    """Indices of the restarts whose statements about a minimum are graded: the converged ones if the best
    converged (a saddle or a stalled restart is no minimum), else the best alone (whose convergence check then
    fails)."""
    return np.flatnonzero(solution.converged) if solution.converged[best] else np.array([best])
