"""The public Python API: one entry point, :func:`run`, for every family's problem dataclass.

    >>> import ufm
    >>> result = ufm.run(ufm.MixupProblem(C=3, n_lambdas=5))
    >>> result.passed
    True

:func:`run` solves the problem with the shared solver (batched restarts or subproblems, Newton polish, curvature
test), evaluates the family's closed forms and checks, and returns a :class:`ufm.report.Report`: ``passed``,
``checks`` (name, value, tolerance, verdict PASS / FAIL / info / VOID with its reason), ``convergence``,
``config``, ``numbers`` and ``arrays`` (numpy), and ``save(folder)`` writing what the command line writes
(summary.json, the arrays' NPZ, table.txt). The command line ``python -m ufm.solve --loss NAME`` runs the same.
"""

from __future__ import annotations

import dataclasses
import importlib
import time

from ufm.problems.ce import CEProblem
from ufm.problems.mixup import MixupProblem
from ufm.problems.mixup_deep import MixupDeepProblem
from ufm.problems.mixup_joint import MixupJointProblem
from ufm.problems.nonnegative import MemorizationDilationProblem, NonnegProblem
from ufm.problems.square_loss import SquareLossProblem
from ufm.report import Report

# The family module that solves and checks each problem type (several losses may share one: see ufm.families).
FAMILY_OF = {
    MixupProblem: "ufm.families.mixup",
    MixupDeepProblem: "ufm.families.mixup_deep",
    MixupJointProblem: "ufm.families.mixup_joint",
    SquareLossProblem: "ufm.families.square_loss",
    NonnegProblem: "ufm.families.nonnegative",
    MemorizationDilationProblem: "ufm.families.memorization_dilation",
    CEProblem: "ufm.families.ce",
}


def run(problem, *, progress: bool = False, max_memory_bytes: int | None = None) -> Report:
    """Solve ``problem`` to float64 precision and check the solution against its family's closed forms.

    Args:
        problem: a problem dataclass (``ufm.MixupProblem``, ``ufm.SquareLossProblem``, ``ufm.NonnegProblem``,
            ``ufm.MemorizationDilationProblem``, ``ufm.MixupDeepProblem``, ``ufm.MixupJointProblem``,
            ``ufm.CEProblem``), validated on construction.
        progress: print the solver's progress lines to stderr.
        max_memory_bytes: the solver's memory budget in bytes: a batch of restarts or subproblems whose compiled
            programs need more is solved in chunks that fit, or ``ufm.solver.MemoryBudgetExceeded`` is raised
            before anything runs. None: half the machine's memory (or the family's own setting).

    Returns:
        The :class:`ufm.report.Report` of the run.

    Raises:
        TypeError: ``problem`` is not one of the problem dataclasses.
        ufm.solver.MemoryBudgetExceeded: even one element's compiled programs need more than the budget.
    """
    t0 = time.perf_counter()
    report = _family(problem, "ufm.run").run(problem, progress=progress, max_memory_bytes=max_memory_bytes)
    return dataclasses.replace(report, wall_seconds=time.perf_counter() - t0)


def run_batch(problems, *, progress: bool = False, max_memory_bytes: int | None = None) -> list[Report]:
    """:func:`run` for each of ``problems``, those of one family and one shape in ONE batched solve.

    Problems of one family that differ only in float fields (weight decays, kappa, ...) are solved together where
    the family writes its solve as steps (``ufm.family.Family.steps``): each solver call of theirs joins the same
    call of the others, their starts stacked on the solver's batch axis, each keeping its own data and tolerances
    (``ufm.driver.run_batch``). Each is then checked and reported as :func:`run` would.

        >>> import ufm
        >>> reports = ufm.run_batch([ufm.SquareLossProblem(C=3, lambda_H=h) for h in (1e-3, 1e-2, 1e-1)])
        >>> [r.passed for r in reports], reports[0].convergence["problems_in_solve"]
        ([True, True, True], 3)

    Args:
        problems: problem dataclasses, as for :func:`run` (any mix of families).
        progress: print the solver's progress lines to stderr.
        max_memory_bytes: the solver's memory budget, as for :func:`run` (a joint batch over it is solved in
            chunks that fit).

    Returns:
        One Report per problem, in order; equal to :func:`run`'s up to the last bits of the solver's values
        (XLA may block batched products by batch size). A report from a joint solve adds ``problems_in_solve``
        to its convergence record; its compile and solve seconds are the joint solve's.

    Raises:
        TypeError: one of ``problems`` is not a problem dataclass (before anything is solved).
    """
    from ufm import driver

    modules = [_family(problem, "ufm.run_batch") for problem in problems]
    reports: list = [None] * len(problems)
    for module in dict.fromkeys(modules):
        members = [i for i, m in enumerate(modules) if m is module]
        chosen = [problems[i] for i in members]
        t0 = time.perf_counter()
        declared = getattr(module, "FAMILY", None)
        if declared is not None and declared.steps is not None:
            found = driver.run_batch(declared, chosen, progress=progress, max_memory_bytes=max_memory_bytes)
        else:
            found = [module.run(p, progress=progress, max_memory_bytes=max_memory_bytes) for p in chosen]
        share = (time.perf_counter() - t0) / len(members)
        for i, report in zip(members, found):
            reports[i] = dataclasses.replace(report, wall_seconds=share)
    return reports


def _family(problem, caller: str):
    """The family module of ``problem``'s type; TypeError naming ``caller`` if it is no problem dataclass."""
    module = FAMILY_OF.get(type(problem))
    if module is None:
        raise TypeError(
            f"{caller}: expected one of {', '.join(c.__name__ for c in FAMILY_OF)}, got {type(problem).__name__}"
        )
    return importlib.import_module(module)
