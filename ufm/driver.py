"""The one driver every family runs through: solve -> best restart -> checks -> :class:`ufm.report.Report`.

The best restart is ``ufm.solver.best_element``'s (the lowest converged element, unless an unconverged one is
lower beyond rounding: then that one, so that the run grades, and fails, the lowest point found). The report's
config is ``{"loss", the problem's fields, "solver": the options the solve ran with, the family's extras}``; its
numbers end with the run's ``seconds``; its convergence record is the solver's, updated by the family's.

:func:`run_batch` runs several problems of one family: where the family writes its solve as steps
(``Family.steps``), the solver calls of problems of one shape (that differ in float fields) share batched solves
(``ufm.algorithms.batched.drive_together``), and each is then checked and reported exactly as :func:`run` does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

from ufm.algorithms.batched import drive_together
from ufm.family import Family
from ufm.precision import float64
from ufm.report import Report
from ufm.solver import SolverOptions, best_element


def with_memory_budget(options: SolverOptions, max_memory_bytes: int | None) -> SolverOptions:
    """``options`` with the solver's memory budget ``max_memory_bytes`` (None: ``options`` as they are)."""
    if max_memory_bytes is None:
        return options
    return dataclasses.replace(options, max_memory_bytes=int(max_memory_bytes))


def _options(family: Family, problem, progress: bool, max_memory_bytes: int | None) -> SolverOptions:
    options = dataclasses.replace(family.solver_options(problem), progress=progress)
    return with_memory_budget(options, max_memory_bytes)


def _report(family: Family, problem, options: SolverOptions, solution, context, seconds: float, extra: dict) -> Report:
    """Best restart, the family's assessment and the Report; ``seconds``: the solve's share of the run's time."""
    t0 = time.perf_counter()
    best = best_element(solution)
    outcome = family.assess(problem, solution, best, context, options)
    name = family.name(problem)
    config = {"loss": name, **dataclasses.asdict(problem), "solver": dataclasses.asdict(options), **outcome.config}
    numbers = {**outcome.numbers, "seconds": seconds + time.perf_counter() - t0}
    convergence = {**solution.report(), **extra, **outcome.convergence}
    return Report(
        name, config, outcome.headline, outcome.checks, convergence, numbers, outcome.arrays, family.arrays_name
    )


@float64
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
    options = _options(family, problem, progress, max_memory_bytes)
    assert family.solve is not None  # derived from steps where not given (Family.__post_init__)
    solution, context = family.solve(problem, options)
    return _report(family, problem, options, solution, context, time.perf_counter() - t0, {})


@float64
def run_batch(
    family: Family, problems: Sequence, *, progress: bool = True, max_memory_bytes: int | None = None
) -> list[Report]:
    """:func:`run` for each of ``problems``, their solver calls joined where the family writes its solve as steps
    (``Family.steps``): at each round, the calls that share one compiled program (problems of one shape that
    differ in float fields) are ONE batched solve (``ufm.algorithms.batched.drive_together``). Otherwise one
    :func:`run` after another.

    Args:
        family: the family's declaration.
        problems: problems of that family.
        progress: the solver's progress lines to stderr.
        max_memory_bytes: the solver's memory budget, as for :func:`run` (a joint batch larger than the budget is
            solved in chunks that fit).

    Returns:
        One Report per problem, in order: :func:`run`'s report of that problem, up to the last bits of the
        solver's values (elements are independent under the solver's vmap; XLA may block batched products by
        batch size). A report whose solver calls were joined with others' adds ``problems_in_solve`` to its
        convergence record (the most problems one of its joint solves held); its compile and solve seconds are
        those of the joint solves, and ``numbers["seconds"]`` an equal share of them plus its own assessment.
    """
    if family.steps is None or len(problems) < 2:
        return [run(family, p, progress=progress, max_memory_bytes=max_memory_bytes) for p in problems]
    t0 = time.perf_counter()
    options = [_options(family, problem, progress, max_memory_bytes) for problem in problems]
    results, joined = drive_together([family.steps(p, opts) for p, opts in zip(problems, options)])
    share = (time.perf_counter() - t0) / len(problems)
    reports = []
    for problem, opts, (solution, context), count in zip(problems, options, results, joined):
        t1 = time.perf_counter()
        extra = {"problems_in_solve": count} if count > 1 else {}
        reports.append(_report(family, problem, opts, solution, context, share + time.perf_counter() - t1, extra))
    return reports
