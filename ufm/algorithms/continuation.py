"""Continuation: one batched solve per stage of a schedule, each warm-started from the last stage's end points.

For an objective whose minima sit where Newton cannot converge (relu's kinks, where the gradient is
discontinuous), a smooth surrogate with a parameter s (softplus(s x)/s) is minimised for s = s_1 < s_2 < ...,
each stage from the previous one's solution. The stage's parameter is data (``with_stage(data, s)``), not a
constant of the objective, so that one compiled solve serves every stage of the same shapes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from ufm.algorithms.batched import SolveRequest
from ufm.solver import Solution, SolverOptions


def continuation_steps(
    fun: Callable,
    params: Any,
    data: Any,
    stages: Sequence[float],
    with_stage: Callable[[Any, float], Any],
    options: SolverOptions,
    *,
    label: str = "stage",
    accept: Callable[[Solution, Any], tuple[Solution, Any]] | None = None,
    record: Callable[[float, Solution, Any, Any], Any] | None = None,
) -> Generator[SolveRequest, Solution, tuple[Solution, list]]:
    """Minimise ``fun(params, with_stage(data, s))`` for every s in ``stages``, each stage from the last's end, as
    steps (``ufm.algorithms.batched``: yields each stage's solver call, is sent its Solution).

    Args:
        fun: the objective ``fun(params, data) -> scalar``.
        params: the batch of starts (leading axis: the batch).
        data: the objective's data; ``with_stage(data, s)`` gives the data of stage s.
        stages: the schedule s_1, s_2, ...
        with_stage: ``(data, s) -> data`` of stage s.
        options: the solver's settings; each stage's progress label is ``"{label} s={s:g}"``.
        accept: optional ``(solution, stage data) -> (solution, extra)`` applied to each stage's solution (for
            example ``ufm.algorithms.rounding_floor``'s acceptance); the next stage starts from the end points.
        record: optional ``(s, solution, stage data, extra) -> entry`` of each stage's history.

    Returns:
        ``(solution of the last stage with the compilation and solve times of every stage, history)``.
    """
    history = []
    compile_seconds = solve_seconds = 0.0
    sol = None
    for s in stages:
        stage_data = with_stage(data, s)
        sol = yield SolveRequest(fun, params, stage_data, dataclasses.replace(options, label=f"{label} s={s:g}"))
        compile_seconds += sol.compile_seconds
        solve_seconds += sol.solve_seconds
        params = jax.tree.map(jnp.asarray, sol.params)
        extra = None
        if accept is not None:
            sol, extra = accept(sol, stage_data)
        if record is not None:
            history.append(record(s, sol, stage_data, extra))
    if sol is None:
        raise ValueError("stages must not be empty")
    return dataclasses.replace(sol, compile_seconds=compile_seconds, solve_seconds=solve_seconds), history
