"""Restarts: seeded random starts plus known critical points as candidates, and which restarts are graded.

The best restart itself is chosen by one rule, ``ufm.solver.best_element`` (the lowest converged element, unless
an unconverged one is lower beyond rounding: then that one, so that the run grades, and fails, the lowest point
found).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ufm.solver import Solution


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


def concatenate(solutions: Sequence[Solution]) -> Solution:
    """One :class:`ufm.solver.Solution` holding the elements of several batches in order (params of the same
    structure), their compilation and solve times added; the settings (rtol, linear algebra, devices) of the
    first."""
    cat = lambda get: np.concatenate([np.asarray(get(sol)) for sol in solutions])
    eigenvalues = [sol.min_eigenvalue for sol in solutions if sol.min_eigenvalue is not None]
    return dataclasses.replace(
        solutions[0],
        params=jax.tree.map(lambda *a: jnp.concatenate(a), *[sol.params for sol in solutions]),
        loss=cat(lambda s: s.loss),
        grad_norm=cat(lambda s: s.grad_norm),
        rel_grad_norm=cat(lambda s: s.rel_grad_norm),
        steps=cat(lambda s: s.steps),
        status=cat(lambda s: s.status),
        min_eigenvalue=np.concatenate(eigenvalues) if len(eigenvalues) == len(solutions) else None,
        compile_seconds=sum(sol.compile_seconds for sol in solutions),
        solve_seconds=sum(sol.solve_seconds for sol in solutions),
    )
