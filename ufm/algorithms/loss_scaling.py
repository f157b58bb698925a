"""Solving to a gradient tolerance relative to the loss itself, where the loss is tiny.

The solver's test ``||grad f|| / max(1, |f|) <= rtol`` is absolute where ``|f| < 1``; a cross-entropy at a large
margin is ~ (K-1) e^{-M} (5e-11 at M = 24.5, 1e-53 at M = 122), and a test against 1 passes at any point there.
Passes of the same compiled solve on ``f / s``, each from the previous one's end points, make it relative: the
first with s = 1, the next with s = (smallest loss found) / margin, repeated while a pass ends with a loss below
its s. The test is then ``||grad f|| / max(s, f) <= rtol``, i.e. relative to f in the last pass.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ufm.algorithms.batched import SolveRequest
from ufm.solver import SolverOptions


def relative_to_loss_steps(
    fun, params, data, evaluate, *, options: SolverOptions, nonnegative=None, max_passes: int = 8, margin: float = 8.0
):
    """Minimise ``fun(params, (data, s))`` (= f / s) by passes of one compiled solve (see the module docstring),
    as steps (``ufm.algorithms.batched``: yields each pass's solver call, is sent its Solution).

    Args:
        fun: the scaled objective, ``fun(params, (data, scale))``.
        params: the batch of starts (leading axis).
        data: the objective's data, shared by the batch.
        evaluate: ``evaluate(params, data) -> f`` for every element (unscaled).
        options: the solver options of every pass.
        nonnegative: bounds, as ``ufm.solver.minimise`` takes them.
        max_passes: at most this many passes (one start from 1e19 times above the optimum needs several).
        margin: a pass divides by (smallest loss so far) / margin: its test stays relative unless the loss falls
            ``margin``-fold within it.

    Returns:
        (the last pass's Solution with ``steps``, ``compile_seconds`` and ``solve_seconds`` summed over the passes,
        the last scale s).
    """
    scale = 1.0
    sol = yield SolveRequest(fun, params, (data, jnp.asarray(scale)), options, nonnegative=nonnegative)
    steps, compile_s, solve_s = sol.steps, sol.compile_seconds, sol.solve_seconds
    for _ in range(max_passes - 1):
        values = np.asarray(evaluate(sol.params, data))
        finite = values[np.isfinite(values)]
        lowest = float(finite.min()) if finite.size else 0.0
        if not 0.0 < lowest < scale:  # every loss >= s: the pass's test was relative to the loss already
            break
        scale = lowest / margin
        sol = yield SolveRequest(fun, sol.params, (data, jnp.asarray(scale)), options, nonnegative=nonnegative)
        steps, compile_s, solve_s = steps + sol.steps, compile_s + sol.compile_seconds, solve_s + sol.solve_seconds
    return dataclasses.replace(sol, steps=steps, compile_seconds=compile_s, solve_seconds=solve_s), scale
