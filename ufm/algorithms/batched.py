"""Several problems of one shape in one solve: their batches joined into one call of ``ufm.solver.minimise``.

A sweep's configurations that share array shapes differ only in data (weight decays, tolerances that follow the
objective's scale): their starts are stacked along the solver's batch axis, the objective data that differ
between them become batched arguments (each problem's data repeated for each of its starts), data they share stay
shared, and every element keeps its own tolerances (``minimise(..., element_options=...)``). One compiled program
then solves the whole group, and the joined :class:`ufm.solver.Solution` is cut back into one per problem.

Elements are independent under the solver's ``vmap`` (each has its own line search, step count and status), so a
problem's elements take the same steps as in a solve of their own; only the last bits of their values can differ,
because XLA blocks batched products by batch size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.solver import Solution, SolverOptions, minimise


class SolveRequest(NamedTuple):
    """One problem's call of ``ufm.solver.minimise``: ``minimise(fun, params0, args, args_axes=args_axes,
    options=..., nonnegative=nonnegative)``. Requests solved together must share ``fun`` and ``nonnegative``."""

    fun: Callable[[Any, Any], jax.Array]
    params0: Any
    args: Any = None
    args_axes: Any = None
    nonnegative: Any = None


def _batch(params) -> int:
    return int(jax.tree.leaves(params)[0].shape[0])


def _leaf_axes(args, args_axes) -> list:
    """``args_axes`` (a prefix of ``args``, as for ``jax.vmap``) as one axis (None or 0) per leaf of ``args``."""
    if args_axes is None or isinstance(args_axes, int):
        return [args_axes] * len(jax.tree.leaves(args))
    expanded = jax.tree.map(
        lambda axis, sub: jax.tree.map(lambda _: axis, sub), args_axes, args, is_leaf=lambda a: a is None
    )
    return jax.tree.leaves(expanded, is_leaf=lambda a: a is None)


def _joined_leaf(values: list, axes: list, counts: list[int]) -> tuple[Any, int | None]:
    """One argument leaf of the joined batch and its axis: shared (None) if every problem shares the same value,
    else batched (0), a shared value repeated once per element of its problem."""
    if all(axis is None for axis in axes) and all(
        np.shape(v) == np.shape(values[0]) and np.array_equal(np.asarray(v), np.asarray(values[0])) for v in values
    ):
        return values[0], None
    for axis in axes:
        if axis not in (None, 0):
            raise ValueError(f"args_axes leaves must be None or 0 to join batches, got {axis!r}")
    parts = [
        jnp.asarray(v) if axis == 0 else jnp.broadcast_to(jnp.asarray(v), (k, *np.shape(v)))
        for v, axis, k in zip(values, axes, counts)
    ]
    return jnp.concatenate(parts), 0


def join(requests: Sequence[SolveRequest]) -> tuple[Any, Any, Any, list[int]]:
    """``(params0, args, args_axes, counts)`` of one batch holding every request's elements in order (``counts``:
    each request's number of elements)."""
    first = requests[0]
    for request in requests[1:]:
        if request.fun is not first.fun or request.nonnegative != first.nonnegative:
            raise ValueError("problems solved together must share their objective and bounds")
    counts = [_batch(request.params0) for request in requests]
    params0 = jax.tree.map(lambda *a: jnp.concatenate([jnp.asarray(x) for x in a]), *[r.params0 for r in requests])
    flat = [jax.tree.flatten(r.args) for r in requests]
    treedef = flat[0][1]
    if any(str(other) != str(treedef) for _, other in flat[1:]):
        raise ValueError("problems solved together must have arguments of one structure")
    axes = [_leaf_axes(r.args, r.args_axes) for r in requests]
    joined = [
        _joined_leaf([leaves[i] for leaves, _ in flat], [ax[i] for ax in axes], counts) for i in range(len(flat[0][0]))
    ]
    args = jax.tree.unflatten(treedef, [value for value, _ in joined])
    args_axes = jax.tree.unflatten(treedef, [axis for _, axis in joined])
    return params0, args, args_axes, counts


def split(solution: Solution, counts: Sequence[int], options: Sequence[SolverOptions]) -> list[Solution]:
    """The joined ``solution`` cut into one Solution per problem (``counts`` elements each, in order), each with
    its problem's ``rtol``; the compile and solve seconds are the joint solve's, in every part."""
    parts, lo = [], 0
    for k, opts in zip(counts, options):
        take = lambda a, lo=lo, k=k: a[lo : lo + k]
        min_eigenvalue = solution.min_eigenvalue
        parts.append(
            dataclasses.replace(
                solution,
                params=jax.tree.map(take, solution.params),
                loss=take(solution.loss),
                grad_norm=take(solution.grad_norm),
                rel_grad_norm=take(solution.rel_grad_norm),
                steps=take(solution.steps),
                status=take(solution.status),
                min_eigenvalue=None if min_eigenvalue is None else take(min_eigenvalue),
                rtol=opts.rtol,
            )
        )
        lo += k
    return parts


def minimise_together(
    requests: Sequence[SolveRequest], options: Sequence[SolverOptions], log: Callable[[str], None] | None = None
) -> list[Solution]:
    """Solve several problems' batches in one call of ``ufm.solver.minimise``.

    Args:
        requests: one :class:`SolveRequest` per problem (one objective and bounds, arguments of one structure).
        options: each problem's solver options; they may differ in ``ufm.solver.TRACED_SETTINGS`` only (the
            tolerances and budgets, data of the compiled program): the first gives the rest (algorithm, memory
            budget, progress).
        log: the solver's progress lines (default as in ``minimise``).

    Returns:
        One Solution per request, as ``minimise`` would return for it alone (up to the last bits of its values),
        each with its problem's rtol and the joint solve's compile and solve seconds.
    """
    params0, args, args_axes, counts = join(requests)
    element_options = [opts for opts, k in zip(options, counts) for _ in range(k)]
    solution = minimise(
        requests[0].fun,
        params0,
        args,
        args_axes=args_axes,
        options=options[0],
        log=log,
        nonnegative=requests[0].nonnegative,
        element_options=element_options,
    )
    return split(solution, counts, options)
