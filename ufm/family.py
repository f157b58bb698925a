"""The family protocol: what a loss family declares so that the shared driver (:func:`ufm.driver.run`) can solve
it, choose its best restart, check it and report it.

A family is a problem dataclass (``ufm.problems``), an objective (``ufm.objectives``), closed forms
(``ufm.theory``) and a check list (``ufm.checks``); its module under ``ufm.families`` only wires them into one
:class:`Family` record. The driver does the rest, the same way for every family:

    options  = family.solver_options(problem)            (progress set by the caller)
    solution, context = family.solve(problem, options)   (one batch: seeded restarts or subproblems)
    best     = ufm.solver.best_element(solution)         (the one documented best-restart rule)
    outcome  = family.assess(problem, solution, best, context, options)
    report   = Report(headline, checks, convergence, config, numbers, arrays)

A family whose solve is one call of the solver may declare it as ``request`` + ``finish`` instead: problems of one
shape then share one batched solve (``ufm.driver.run_batch``, ``ufm.algorithms.batched``), as a sweep's do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from ufm.checks import Check
from ufm.solver import minimise


class Assessment(NamedTuple):
    """What a family's ``assess`` returns: the report's headline lines, its checks (convergence first), the
    JSON-ready numbers and the arrays (numpy, samples x features), and entries added to the report's config
    (after the problem's fields and the solver options) and convergence record (over the solver's own)."""

    headline: list[str]
    checks: list[Check]
    numbers: dict
    arrays: dict
    config: dict = {}
    convergence: dict = {}


@dataclasses.dataclass(frozen=True)
class Family:
    """One loss family, declared for :func:`ufm.driver.run`.

    Attributes:
        name: the report's family name, from the problem (one module may serve several ``--loss`` variants).
        solver_options: the solver settings for a problem (read at call time, so that a module's ``SOLVER`` may
            be replaced).
        solve: ``(problem, options) -> (solution, context)``: the batched solve (a ``ufm.solver.Solution``, one
            element per start or subproblem) and whatever the assessment needs of it (points in the report's
            layout, the objective data, auxiliary solves).
        assess: ``(problem, solution, best, context, options) -> Assessment``: the checks against the theory.
        arrays_name: the file name of the report's arrays.
        request: for a family whose solve is one call of the solver: ``(problem, options) ->
            ufm.algorithms.batched.SolveRequest``, that call's objective, starts and data. With ``finish`` it lets
            :func:`ufm.driver.run_batch` solve problems of one shape in one batched solve; ``solve`` is then
            ``finish(problem, options, minimise(request))`` (:func:`solve_by_request`; give ``solve=None``).
        finish: ``(problem, options, solution) -> (solution, context)``: ``solve``'s result from the solver's.
    """

    name: Callable[[Any], str]
    solver_options: Callable[[Any], Any]
    solve: Callable[[Any, Any], tuple[Any, Any]] | None
    assess: Callable[..., Assessment]
    arrays_name: str = "features.npz"
    request: Callable[[Any, Any], Any] | None = None
    finish: Callable[[Any, Any, Any], tuple[Any, Any]] | None = None

    def __post_init__(self):
        if (self.request is None) != (self.finish is None):
            raise ValueError("a family declares request and finish together")
        if self.solve is None:
            if self.request is None or self.finish is None:
                raise ValueError("a family declares solve, or request and finish")
            object.__setattr__(self, "solve", solve_by_request(self.request, self.finish))


def solve_by_request(request: Callable[[Any, Any], Any], finish: Callable[[Any, Any, Any], tuple[Any, Any]]):
    """The ``solve`` of a family declared by ``request`` and ``finish``: one call of ``ufm.solver.minimise``."""

    def solve(problem, options):
        fun, params0, args, args_axes, nonnegative = request(problem, options)
        solution = minimise(fun, params0, args, args_axes=args_axes, options=options, nonnegative=nonnegative)
        return finish(problem, options, solution)

    return solve
