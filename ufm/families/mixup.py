"""Mixup CE with a fixed simplex ETF (Theorem 3.1 of Fisher, Meng, Papyan, ICLR 2024): solve every
(c, c', lambda), check, report.

``--points k`` (k >= 3) runs several-point Dirichlet mixup instead (docs/local_linearity.md): random k-point mixes
checked against the k-point closed form, and the non-linearity measure of Chaudhry et al.'s eq. (3).

The solves (``ufm.objectives.mixup``): the main one of every subproblem, the same targets in another feature
dimension and ETF embedding, and the square-loss contrast, all with :data:`SOLVER`; the checks are
``ufm.checks.mixup`` (pair grid), ``ufm.checks.mixup_points`` (k points) and ``ufm.checks.nonlinearity``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ufm import driver
from ufm.checks import mixup as checks
from ufm.checks import mixup_points as point_checks
from ufm.checks.convergence import auxiliary_converged, every_converged
from ufm.checks.nonlinearity import KAPPA_SWEEP, nonlinearity_defined, nonlinearity_summary, nonlinearity_vs_kappa
from ufm.cli import add_problem_arguments, problem_flags
from ufm.family import Assessment, Family
from ufm.objectives.mixup import (
    SOLVER,
    MixupSolution,
    memory_estimate,
    other_dimension,
    points_steps,
    soft_target,
    solve,
    solve_steps,
    solve_targets,
    square_feature_loss,
    structured_mixes,
)
from ufm.problems import InputError, from_namespace
from ufm.problems.mixup import MixupProblem
from ufm.report import Report
from ufm.solver import SolverOptions

__all__ = [
    "KAPPA_SWEEP",
    "MixupSolution",
    "memory_estimate",
    "nonlinearity_defined",
    "nonlinearity_summary",
    "nonlinearity_vs_kappa",
    "other_dimension",
    "run",
    "solve",
    "solve_targets",
    "structured_mixes",
]
NAME = "mixup"
DESCRIPTION = "mixup cross-entropy, fixed simplex-ETF classifier, free features (Fisher et al. 2024, Thm 3.1)"
FLAGS = problem_flags(MixupProblem)


def add_arguments(parser) -> None:
    # --lambdas unset (None) unless typed: refused with --points >= 3, where it does not apply
    add_problem_arguments(parser, MixupProblem, "mixup", defaults={"n_lambdas": None})


# Every flag applies to the one variant; --lambdas (pair grid) versus --alpha/--mixes (points >= 3) depend on
# --points and are refused by problem_from_args / MixupProblem instead.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def problem_from_args(ns) -> MixupProblem:
    if ns.n_lambdas is not None and isinstance(ns.points, int) and ns.points > 2:
        raise InputError("n_lambdas", "only used with --points 2 (points >= 3 draws random mixes: --mixes)")
    return from_namespace(MixupProblem, ns, defaults=("n_lambdas",))


def solver_options(problem: MixupProblem) -> SolverOptions:
    return SOLVER


def steps(problem: MixupProblem, options: SolverOptions):
    """The family's solve as steps (``ufm.algorithms.batched``): the main solve (its Solution graded) and the
    context: the d-independence and square-loss solves and the targets (pair grid: ``(main, alt, square, y)``; k
    points: ``ufm.objectives.mixup.points_steps``' context)."""
    if problem.points > 2:
        return (yield from points_steps(problem, options))
    quiet = dataclasses.replace(options, progress=False)  # progress lines for the main solve only
    main = yield from solve_steps(problem, options=options)
    alt = yield from solve_steps(other_dimension(problem), options=quiet)
    square = yield from solve_steps(problem, loss=square_feature_loss, options=quiet)
    return main.solution, (main, alt, square, np.asarray(soft_target(problem.C, main.c, main.c_prime, main.lam)))


def assess(problem: MixupProblem, sol, best: int, context, options: SolverOptions) -> Assessment:
    if problem.points <= 2:
        main, alt, square, y = context
        graded, v = checks.grid_checks(problem, main, alt, square, y, checks.feature_tolerance(problem.kappa))
        auxiliary = (("d-independence", alt.solution), ("square-loss", square.solution))
        headline, numbers, arrays = checks.grid_report(problem, main, sol, v)
    else:  # several-point mixup (Chaudhry et al.): random Dirichlet mixes plus vertices and barycentres
        W, W_other, d_other, mixes, h, h_alt, h_sq, (sol_alt, sol_sq) = context
        tol = checks.feature_tolerance(problem.kappa)
        graded, v = point_checks.points_checks(problem, W, W_other, d_other, mixes, h, h_alt, h_sq, tol)
        auxiliary = (("d-independence", sol_alt), ("square-loss", sol_sq))
        headline, numbers, arrays = point_checks.points_report(problem, W, mixes, h, h_sq, sol, v)
    result = [every_converged(sol, options.rtol), *graded, *auxiliary_converged(auxiliary)]
    return Assessment(headline, result, numbers, arrays, config={"kappa": problem.kappa})


FAMILY = Family(name=lambda problem: NAME, solver_options=solver_options, solve=None, assess=assess, steps=steps)


def run(problem: MixupProblem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    """Solve every subproblem (pair grid, or k-point mixes with ``points >= 3``) and check it against Theorem 3.1
    (or the k-point closed form) through the shared driver (``ufm.driver.run``)."""
    return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
