"""The one driver every family runs through: solve -> best restart -> checks -> :class:`ufm.report.Report`.

The best restart is ``ufm.solver.best_element``'s (the lowest converged element, unless an unconverged one is
lower beyond rounding: then that one, so that the run grades, and fails, the lowest point found). The report's
config is ``{"loss", the problem's fields, "solver": the options the solve ran with, the family's extras}``; its
numbers end with the run's ``seconds``; its convergence record is the solver's, updated by the family's.
"""

from __future__ import annotations

import dataclasses
import time

from ufm.family import Family
from ufm.report import Report
from ufm.solver import SolverOptions, best_element


def with_memory_budget(options: SolverOptions, max_memory_bytes: int | None) -> SolverOptions:
    """``options`` with the solver's memory budget ``max_memory_bytes`` (None: ``options`` as they are)."""
    if max_memory_bytes is None:
        return options
    return dataclasses.replace(options, max_memory_bytes=int(max_memory_bytes))


def run(family: Family, problem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    """Solve ``problem`` with ``family``'s solver options and check the best restart against its theory.

    Args:
        family: the family's declaration (``ufm.family.Family``).
        problem: the family's problem dataclass (validated on construction).
        progress: print the solver's progress lines to stderr.
        max_memory_bytes: the solver's memory budget (``SolverOptions.max_memory_bytes``: the batch is solved in
            chunks that fit, or ``ufm.solver.MemoryBudgetExceeded`` is raised before anything runs); None: the
            family's setting (half the machine's memory unless it sets one).

    Returns:
        The run's Report (its ``numbers["seconds"]`` the time from the solve's start to the report).
    """
    t0 = time.perf_counter()
    options = dataclasses.replace(family.solver_options(problem), progress=progress)
    options = with_memory_budget(options, max_memory_bytes)
    solution, context = family.solve(problem, options)
    best = best_element(solution)
    outcome = family.assess(problem, solution, best, context, options)
    name = family.name(problem)
    config = {"loss": name, **dataclasses.asdict(problem), "solver": dataclasses.asdict(options), **outcome.config}
    numbers = {**outcome.numbers, "seconds": time.perf_counter() - t0}
    convergence = {**solution.report(), **outcome.convergence}
    return Report(
        name, config, outcome.headline, outcome.checks, convergence, numbers, outcome.arrays, family.arrays_name
    )
