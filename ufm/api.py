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
    module = FAMILY_OF.get(type(problem))
    if module is None:
        raise TypeError(
            f"ufm.run: expected one of {', '.join(c.__name__ for c in FAMILY_OF)}, got {type(problem).__name__}"
        )
    t0 = time.perf_counter()
    report = importlib.import_module(module).run(problem, progress=progress, max_memory_bytes=max_memory_bytes)
    return dataclasses.replace(report, wall_seconds=time.perf_counter() - t0)
