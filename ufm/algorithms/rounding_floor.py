"""Stalls at a degenerate minimum's rounding floor, accepted as converged where float64 can resolve nothing more.

Near a degenerate minimum (null or soft Hessian directions: an unused feature coordinate under H = G*G, the
linear networks of a consistency loss) the solver's Levenberg-Marquardt shift ~ ||g|| shrinks with the gradient
while the gradient's rounding noise along those directions does not: a Newton step divides that noise by the
shift, f is flat to rounding along the ray (within the line search's window ``delta_f = FLAT_WINDOW eps max(1,
|f|) sqrt(#vars)``), the "halve the gradient" rule fails and the element ends STALLED above rtol with its geometry
right to rounding. Two tests decide whether such a stall is the floor (never with clearly negative curvature, and
only within a relative gradient ``rtol`` that the family sets):

- :func:`accept_gradient_floor`: the gradient is below the f-resolvable level ``sqrt(2 lambda_max delta_f)``;
- :func:`accept_newton_floor`: the decrease the Newton model predicts in the directions of clearly nonzero
  curvature, where it is trustworthy, is within ``delta_f``.

Both return the solution with the accepted elements marked CONVERGED and ``{element: (measured, bound)}``, so
that the report can say which were accepted and why.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ufm.solver import CONVERGED, NEGATIVE_CURVATURE, STALLED, Solution, SolverOptions, extreme_eigenvalues

FLAT_WINDOW = 64  # the solver's line search: f is flat to rounding within 64 eps max(1, |f|) sqrt(#vars)


def flat_window(loss: float, n_vars: int) -> float:
    """``delta_f``: the change of f that float64 cannot tell from rounding at a point of ``n_vars`` variables."""
    return FLAT_WINDOW * np.finfo(float).eps * max(1.0, abs(float(loss))) * np.sqrt(n_vars)


def _accept(sol: Solution, accepted: dict) -> tuple[Solution, dict]:
    status = sol.status.copy()
    status[list(accepted)] = CONVERGED
    return dataclasses.replace(sol, status=status), accepted


def accept_gradient_floor(
    sol: Solution, fun, args, args_of=None, *, options: SolverOptions, rtol: float
) -> tuple[Solution, dict]:
    """Accept every element that STALLED with relative gradient <= ``rtol``, no clearly negative curvature
    (``ufm.solver.extreme_eigenvalues`` with ``options``) and a gradient norm below ``sqrt(2 lambda_max
    delta_f)``.

    Args:
        sol: the batch's solution.
        fun: the objective ``fun(params, args)``.
        args: its arguments, shared by the batch; or None with ``args_of(i)``: element i's.
        options: the solver options the curvature is estimated with.
        rtol: the largest relative gradient a floor may have.

    Returns:
        (solution with the accepted elements CONVERGED, {element: (grad norm, f-resolvable gradient)}).
    """
    accepted = {}
    for i in np.flatnonzero((sol.status == STALLED) & (sol.rel_grad_norm <= rtol)):
        params = jax.tree.map(lambda a, i=i: a[i], sol.params)
        lam_min, lam_max = extreme_eigenvalues(fun, params, args if args_of is None else args_of(int(i)), options)
        if lam_min < -NEGATIVE_CURVATURE * max(1.0, lam_max):
            continue
        n_vars = sum(np.size(a) for a in jax.tree.leaves(params))
        floor = float(np.sqrt(2.0 * lam_max * flat_window(sol.loss[i], n_vars)))
        if sol.grad_norm[i] <= floor:
            accepted[int(i)] = (float(sol.grad_norm[i]), floor)
    return _accept(sol, accepted)


@functools.lru_cache(maxsize=32)
def _flat_derivatives(loss, shapes: tuple):
    """Jitted gradient and Hessian of ``loss`` in the flat parameter vector of a params dict with these
    (name, shape) entries (cached: compiled once per objective and shapes, not op by op at every call)."""
    from jax.flatten_util import ravel_pytree

    _, unravel = ravel_pytree({k: jnp.zeros(shape) for k, shape in shapes})
    flat = lambda x, data: loss(unravel(x), data)
    return jax.jit(jax.grad(flat)), jax.jit(jax.hessian(flat))


def newton_decrease(loss, params: dict, data, grad_norm: float, damping: float) -> float:
    """``sum_i (v_i^T g)^2 / (2 (|w_i| + shift))`` over the Hessian eigenpairs (w_i, v_i) of clearly nonzero
    curvature, ``|w_i| > NEGATIVE_CURVATURE max(1, max |w|)`` (shift = damping ||g||, as in the solver's eigh
    direction), at one element's ``params`` (a dict): the decrease of f that the Newton model predicts in the
    directions where it is trustworthy."""
    from jax.flatten_util import ravel_pytree

    x, _ = ravel_pytree(params)
    grad, hessian = _flat_derivatives(loss, tuple((k, np.shape(v)) for k, v in sorted(params.items())))
    g = np.asarray(grad(x, data))
    w, V = np.linalg.eigh(np.asarray(hessian(x, data)))
    stiff = np.abs(w) > NEGATIVE_CURVATURE * max(1.0, float(np.max(np.abs(w))))
    return float(0.5 * np.sum((V[:, stiff].T @ g) ** 2 / (np.abs(w[stiff]) + damping * grad_norm)))


def accept_newton_floor(sol: Solution, loss, data, *, damping: float, rtol: float) -> tuple[Solution, dict]:
    """Accept every element that STALLED (no trial along the Newton ray decreased f beyond ``delta_f``) with
    relative gradient <= ``rtol``, no clearly negative curvature (the solver's smallest eigenvalue) and a Newton
    model decrease (:func:`newton_decrease`, params a dict) within ``delta_f``.

    Returns:
        (solution with the accepted elements CONVERGED, {element: (predicted decrease, delta_f)}).
    """
    accepted = {}
    for i in np.flatnonzero((sol.status == STALLED) & (sol.rel_grad_norm <= rtol)):
        if sol.min_eigenvalue is not None and sol.min_eigenvalue[i] < -NEGATIVE_CURVATURE:
            continue
        params = {k: v[i] for k, v in sol.params.items()}
        window = flat_window(sol.loss[i], sum(int(np.size(v)) for v in params.values()))
        decrease = newton_decrease(loss, params, data, float(sol.grad_norm[i]), damping)
        if decrease <= window:
            accepted[int(i)] = (decrease, float(window))
    return _accept(sol, accepted)
