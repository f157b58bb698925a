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

A family may write its solve as steps (``Family.steps``: a generator of solver calls): the solver calls of many
problems, a sweep's, are then joined into batched solves (``ufm.driver.run_batch``, ``ufm.algorithms.batched``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from ufm.algorithms.batched import drive
from ufm.checks import Check


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
        steps: the solve written as steps (``ufm.algorithms.batched``): ``(problem, options) ->`` a generator that
            yields each call of the solver (a ``SolveRequest``), is sent its Solution, and returns ``(solution,
            context)`` as ``solve`` does. With it, :func:`ufm.driver.run_batch` joins the solver calls of many
            problems into batched solves; ``solve`` is then derived from it (give ``solve=None``).
    """

    name: Callable[[Any], str]
    solver_options: Callable[[Any], Any]
    solve: Callable[[Any, Any], tuple[Any, Any]] | None
    assess: Callable[..., Assessment]
    arrays_name: str = "features.npz"
    steps: Callable[[Any, Any], Any] | None = None

    def __post_init__(self):
        if self.solve is None:
            if self.steps is None:
                raise ValueError("a family declares solve or steps")
            steps = self.steps
            object.__setattr__(self, "solve", lambda problem, options: drive(steps(problem, options)))
