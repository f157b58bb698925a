"""An augmented-Lagrangian outer loop around the shared solver, for inequality constraints ``c(x) <= 0``.

Each outer step solves the inner problem ``L(x; nu, rho) = f(x)/s + (1/(2 rho)) sum_k [max(0, nu_k + rho c_k)^2 -
nu_k^2]`` for every element of a batch (restarts), with simple bounds ``x >= 0`` on some variables kept by the
solver itself where asked (``ufm.solver.minimise(..., nonnegative=...)``: projected Newton), then updates the
multipliers
``nu <- max(0, nu + rho c)`` (Hestenes, "Multiplier and gradient methods", JOTA 1969; Powell, "A method for
nonlinear constraints in minimization problems", 1969; Nocedal and Wright, "Numerical Optimization", 2nd ed.,
Springer 2006, section 17.4). An element is finished when its inner solve converged and its constraint residual
``|max(c_k, -nu_k/rho)|`` (:func:`constraint_residual`) is below ``tol`` relative to the constraint's size. The
penalty grows x10 only while that residual stalls (:func:`next_penalty`); after the first step the objective is
put in units of its own size s (the multipliers rescaled with it), and the loop gives up after ``patience``
outer steps without progress.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.algorithms.batched import SolveRequest
from ufm.solver import Solution, SolverOptions


def constraint_residual(c: np.ndarray, nu: np.ndarray, rho: float, scale: np.ndarray) -> np.ndarray:
    """Per restart ``max_k |max(c_k, -nu_k/rho)| / scale``: the augmented Lagrangian's KKT residual of ``c <= 0``
    (``nu`` the multipliers the inner problem used; ``scale`` the constraint's own size, e.g. r max_k D_k).

    ``|max(c, -nu/rho)| = |min(-c, nu/rho)|`` vanishes iff c <= 0, nu >= 0 and nu c = 0, and ``rho max(c, -nu/rho)
    = max(0, nu + rho c) - nu`` is the change of the multipliers. Without the absolute value a slack constraint
    (c < 0) passes at any multiplier: ``max(-0.1, -nu/rho) = -0.1 <= tol`` even at nu = 1."""
    return np.max(np.abs(np.maximum(c, -nu / rho)), axis=-1) / scale


def next_penalty(rho: float, worst: float, previous: float, tol: float, rho_max: float) -> float:
    """The penalty for the next outer step: x10 (at most ``rho_max``) while the constraint residual of the
    unfinished restarts (``worst``) is above ``tol`` and did not drop below a quarter of the previous one; else
    unchanged. Raising it where only the inner solves are unfinished worsens their conditioning (memorization-
    dilation, K = 2, n = 4, r = 0.01, weight decays 1e-15: rho reached 1e6 at a residual of 2e-14, and every inner
    solve stalled at 8e-8)."""
    return min(rho * 10.0, rho_max) if tol < worst > 0.25 * previous else rho


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The outer loop's settings: at most ``outer_steps`` steps, stop at a constraint residual ``tol``, penalty
    from ``rho_start`` (x10 while stalling, at most ``rho_max``), give up after ``patience`` steps without
    progress."""

    outer_steps: int
    tol: float
    rho_start: float
    rho_max: float
    patience: int


class OuterResult(NamedTuple):
    """The loop's end: the last inner Solution (its steps, compile and solve seconds summed over the outer steps), every
    restart's multipliers in units of the objective f itself, constraint values c, their scale, residuals, which
    restarts finished, the final penalty, the outer steps taken and the inner steps summed over them."""

    solution: Solution
    multipliers: np.ndarray
    constraint: np.ndarray
    scale: np.ndarray
    residual: np.ndarray
    done: np.ndarray
    rho: float
    outer_steps: int
    inner_steps: np.ndarray


def constrained_steps(
    lagrangian: Callable,
    params: Any,
    data: Any,
    *,
    constraint: Callable,
    objective: Callable,
    schedule: Schedule,
    options: SolverOptions,
    args_axes: Any,
    nonnegative: Any = None,
    label: str = "al",
    progress: bool = False,
) -> Generator[SolveRequest, Solution, OuterResult]:
    """Minimise every restart of ``params`` subject to ``constraint(params) <= 0`` by the augmented Lagrangian,
    as steps (``ufm.algorithms.batched``: yields each inner solve's solver call, is sent its Solution).

    Args:
        lagrangian: ``lagrangian(params, (data, s))``: the inner objective (f / s plus the penalty terms), reading
            the multipliers and penalty from ``data.multipliers`` (per restart, mapped by ``args_axes``) and
            ``data.rho``.
        params: the batch of starts (a pytree, restarts on the leading axis).
        data: the objective's data, a NamedTuple with fields ``multipliers`` and ``rho``.
        constraint: ``params -> (c, scale)``: every restart's constraint values (R x K) and their size (R,).
        objective: ``(params, data) -> f``: every restart's objective (R,), for the units after the first step.
        schedule: the outer loop's settings.
        options: the inner solves' settings (their progress is off).
        args_axes: ``minimise``'s axes of ``(data, s)``.
        nonnegative: ``minimise``'s bounds ``params >= 0`` (a prefix of one element's params with bool leaves),
            kept by every inner solve (projected Newton); None: unconstrained inner problems.
        label: the progress lines' prefix.
        progress: print one line per outer step to stderr.

    Returns:
        An :class:`OuterResult` (the generator's return value: ``yield from`` it, or run it by
        ``ufm.algorithms.batched.drive``).
    """
    R = jax.tree.leaves(params)[0].shape[0]
    nu, rho, units = np.zeros_like(np.asarray(data.multipliers)), schedule.rho_start, 1.0
    previous, stale, done = np.inf, 0, np.zeros(R, bool)
    best_worst, best_grad, best_done = np.inf, np.inf, 0
    inner_steps = np.zeros(R, int)
    compile_seconds = solve_seconds = 0.0
    inner_options = dataclasses.replace(options, progress=False)
    for step in range(schedule.outer_steps):
        inner = (data._replace(multipliers=jnp.asarray(nu), rho=jnp.asarray(rho)), jnp.asarray(units))
        sol = yield SolveRequest(lagrangian, params, inner, inner_options, args_axes, nonnegative)
        params = sol.params
        inner_steps = inner_steps + sol.steps
        compile_seconds, solve_seconds = compile_seconds + sol.compile_seconds, solve_seconds + sol.solve_seconds
        c, scale = constraint(params)
        residual = constraint_residual(c, nu, rho, scale)
        nu = np.maximum(0.0, nu + rho * c)
        done = sol.converged & (residual <= schedule.tol)
        worst = float(np.max(np.where(done, 0.0, residual)))
        if progress:
            print(
                f"[{label}] outer {step:2d}  rho {rho:8.2e}  max residual {float(residual.max()):.3e}  finished "
                f"{int(done.sum())}/{R}  inner rel grad {np.max(sol.rel_grad_norm):.2e}",
                file=sys.stderr,
                flush=True,
            )
        if done.all():
            break
        if step == 0:
            # from here on the objective in units of its size after the first (penalised) solve: rescale the
            # multipliers to those units and restart the penalty (an objective far below the penalties meets the
            # solver's test ||grad|| / max(1, |value|) against 1, and every inner solve stalls)
            f = np.asarray(objective(params, data))
            new_units = float(min(1.0, np.min(f[np.isfinite(f)], initial=1.0)))
            if new_units < 0.5:
                nu, units, rho, previous = nu * units / new_units, new_units, schedule.rho_start, np.inf
                best_worst, best_grad = np.inf, np.inf
                continue
        # give up after `patience` outer steps in which no restart finished, the worst residual did not halve and
        # the inner solves' worst relative gradient did not halve (stuck: e.g. on a kink of the constraint)
        grad = float(np.max(np.where(done, 0.0, sol.rel_grad_norm)))
        moved = int(done.sum()) > best_done or worst < 0.5 * best_worst or grad < 0.5 * best_grad
        stale = 0 if moved else stale + 1
        best_worst, best_grad, best_done = min(best_worst, worst), min(best_grad, grad), max(best_done, int(done.sum()))
        if stale >= schedule.patience:
            break
        rho = next_penalty(rho, worst, previous, schedule.tol, schedule.rho_max)
        previous = worst
    # the inner solves' steps, compile and solve seconds summed over the outer steps (the first step compiles)
    sol = dataclasses.replace(sol, steps=inner_steps, compile_seconds=compile_seconds, solve_seconds=solve_seconds)
    return OuterResult(sol, nu * units, c, scale, residual, done, rho, step + 1, inner_steps)
