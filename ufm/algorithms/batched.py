"""Several problems in one solve: a family's solve written as steps, and the steps of many problems joined.

A family's solve is a generator of solver calls (``steps(problem, options)``): it yields a :class:`SolveRequest`
(the objective, the starts, the data, the options of one call of ``ufm.solver.minimise``), receives that call's
:class:`ufm.solver.Solution`, and finally returns its result. Algorithms that call the solver several times
(passes relative to the loss, an augmented Lagrangian, a continuation) are such generators too, and a family's
steps run them with ``yield from``. :func:`drive` runs one problem's steps (each request by ``minimise``);
:func:`drive_together` runs many problems' steps in lockstep: at each round, the requests that can share one
compiled program (one objective and bounds, the same per-element shapes, options that differ only in
``ufm.solver.TRACED_SETTINGS``) are joined into ONE batched solve (:func:`minimise_together`) and its solution is
cut back into one per request.

A joined solve stacks the requests' starts along the solver's batch axis; data that differ between them become
batched arguments (each request's data repeated for each of its starts), data they share stay shared, and every
element keeps its own tolerances (``minimise(..., element_options=...)``). Elements are independent under the
solver's ``vmap`` (each has its own line search, step count and status), so a problem's elements take the same
steps as in a solve of their own; only the last bits of their values can differ, because XLA blocks batched
products by batch size.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.solver import Solution, SolverOptions, minimise, static_options


class SolveRequest(NamedTuple):
    """One call of ``ufm.solver.minimise``: ``minimise(fun, params0, args, args_axes=args_axes, options=options,
    nonnegative=nonnegative)``. Requests solved together must share ``fun`` and ``nonnegative``."""

    fun: Callable[[Any, Any], jax.Array]
    params0: Any
    args: Any
    options: SolverOptions
    args_axes: Any = None
    nonnegative: Any = None


# A solve written as steps: yields requests, is sent each one's Solution, returns its result.
Steps = Generator[SolveRequest, Solution, Any]


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


def solve(request: SolveRequest, log: Callable[[str], None] | None = None) -> Solution:
    """``ufm.solver.minimise`` of one request."""
    return minimise(
        request.fun,
        request.params0,
        request.args,
        args_axes=request.args_axes,
        options=request.options,
        log=log,
        nonnegative=request.nonnegative,
    )


def _padded(params0, args, args_axes, element_options: list, size: int):
    """The joined batch with copies of its first element appended up to ``size`` elements (solved and dropped): a
    batch size already compiled, instead of a new compilation."""
    extra = size - len(element_options)
    if extra <= 0:
        return params0, args, element_options
    grow = lambda a: jnp.concatenate([jnp.asarray(a), jnp.repeat(jnp.asarray(a)[:1], extra, axis=0)])
    leaves, treedef = jax.tree.flatten(args)
    leaves = [grow(a) if axis == 0 else a for a, axis in zip(leaves, _leaf_axes(args, args_axes))]
    return (
        jax.tree.map(grow, params0),
        jax.tree.unflatten(treedef, leaves),
        element_options + [element_options[0]] * extra,
    )


def minimise_together(
    requests: Sequence[SolveRequest], log: Callable[[str], None] | None = None, pad_to: int = 0
) -> list[Solution]:
    """Solve several requests' batches in one call of ``ufm.solver.minimise``.

    Args:
        requests: :class:`SolveRequest` s of one objective and bounds, arguments of one structure and the same
            per-element shapes; their options may differ in ``ufm.solver.TRACED_SETTINGS`` only (tolerances and
            budgets, data of the compiled program): the first request's give the rest (algorithm, memory budget,
            progress).
        log: the solver's progress lines (default as in ``minimise``).
        pad_to: solve at least this many elements, the joint batch padded with copies of its first element (a
            batch size compiled before: the compiled programs are keyed by the batch size).

    Returns:
        One Solution per request, as ``minimise`` would return for it alone (up to the last bits of its values),
        each with its request's rtol and the joint solve's compile and solve seconds.
    """
    params0, args, args_axes, counts = join(requests)
    options = [request.options for request in requests]
    element_options = [opts for opts, k in zip(options, counts) for _ in range(k)]
    params0, args, element_options = _padded(params0, args, args_axes, element_options, pad_to)
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


def join_key(request: SolveRequest) -> tuple:
    """What requests must share to be joined (:func:`minimise_together`): the objective, the bounds, the options
    but their traced settings, and the structure and per-element shapes and dtypes of the starts and arguments."""
    element = lambda a, drop: (tuple(np.shape(a)[drop:]), str(getattr(a, "dtype", np.asarray(a).dtype)))
    args_leaves, args_tree = jax.tree.flatten(request.args)
    params_leaves, params_tree = jax.tree.flatten(request.params0)
    axes = _leaf_axes(request.args, request.args_axes)
    return (
        request.fun,
        repr(request.nonnegative),
        static_options(request.options),
        str(params_tree),
        tuple(element(a, 1) for a in params_leaves),
        str(args_tree),
        tuple(element(a, 0 if axis is None else 1) for a, axis in zip(args_leaves, axes)),
    )


# How many times its own size a joint batch may be padded to reuse a compiled batch size (drive_together).
PAD_RATIO = 4


def drive(steps: Steps) -> Any:
    """Run one solve written as steps: each request by ``ufm.solver.minimise``. Returns the steps' result."""
    try:
        request = next(steps)
        while True:
            request = steps.send(solve(request))
    except StopIteration as stop:
        return stop.value


def drive_together(all_steps: Sequence[Steps]) -> tuple[list, list[int]]:
    """Run many solves written as steps in lockstep, the requests of each round that share a :func:`join_key` in
    one joint solve (:func:`minimise_together`); a request alone is solved as :func:`drive` would.

    Returns:
        ``(results, joined)``: each steps' result, in order, and the most requests that any joint solve of its
        steps held (1: always alone).
    """
    results: list = [None] * len(all_steps)
    joined = [1] * len(all_steps)
    pending: dict[int, SolveRequest] = {}
    compiled: dict[tuple, list[int]] = {}  # the joint batch sizes solved so far, by join key

    def advance(index: int, solution: Solution | None) -> None:
        try:
            steps = all_steps[index]
            pending[index] = next(steps) if solution is None else steps.send(solution)
        except StopIteration as stop:
            results[index] = stop.value

    for index in range(len(all_steps)):
        advance(index, None)
    while pending:
        groups: dict[tuple, list[int]] = {}
        for index, request in pending.items():
            groups.setdefault(join_key(request), []).append(index)
        requests = dict(pending)
        pending.clear()
        for key, members in groups.items():
            # a round with fewer requests than an earlier one (some problems finished) is padded to a batch size
            # solved before, up to PAD_RATIO times its own: a new batch size is a new compilation (seconds), the
            # padding a few more elements solved (measured: md's r sweep, 8 points, 152 compilations and 74.9 s
            # unpadded; every point alone, 57 and 19.8 s)
            size = sum(_batch(requests[i].params0) for i in members)
            sizes = compiled.setdefault(key, [])
            target = min((s for s in sizes if size <= s <= PAD_RATIO * size), default=size)
            if target == size and size not in sizes:
                sizes.append(size)
            if len(members) == 1 and target == size:
                solutions = [solve(requests[members[0]])]
            else:
                solutions = minimise_together([requests[i] for i in members], pad_to=target)
            for index, solution in zip(members, solutions):
                joined[index] = max(joined[index], len(members))
                advance(index, solution)
    return results, joined
