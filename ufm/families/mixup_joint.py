"""Mixup CE with classifier and features learned jointly: is the simplex ETF that Theorem 3.1 (Fisher, Meng,
Papyan, ICLR 2024) assumes actually optimal? Solve the nonconvex joint problem from seeded restarts (and from the
critical point W = H = 0 where the theory says it can be the optimum), measure the ETF error of W W^T, the learned
multiplier m, and compare with the one-dimensional reduction F(m) and the closed-form features.

Restarts: the best one is ``ufm.solver.best_element``'s (the lowest converged, unless an unconverged one is lower
beyond rounding: then that one, graded and failed). The statements about the optimum are graded on the restarts
that converged (saddles and stalled restarts are reported in the convergence record and the restart check's
detail, not graded as minima); if the best restart did not converge, on it alone (and the convergence check fails,
naming the reason)."""

from __future__ import annotations

import numpy as np

from ufm import driver
from ufm.algorithms.restarts import graded_restarts
from ufm.checks import mixup_joint as checks
from ufm.cli import add_problem_arguments, problem_flags
from ufm.etf import etf_gram_error
from ufm.family import Assessment, Family
from ufm.objectives.mixup_joint import (
    SOLVER,
    JointSolve,
    memory_estimate,
    solve,
    solve_request,
    solve_result,
    start_kinds,
)
from ufm.problems import InputError, from_namespace
from ufm.problems.mixup_joint import MixupJointProblem
from ufm.report import Report
from ufm.solver import STATUS_MESSAGES, SolverOptions, best_element
from ufm.theory.mixup_joint import reduced_multiplier

__all__ = [
    "JointSolve",
    "SOLVER",
    "best_element",
    "graded_restarts",
    "memory_estimate",
    "reduced_multiplier",
    "run",
    "solve",
    "start_kinds",
]
NAME = "mixup-joint"
DESCRIPTION = "mixup cross-entropy, classifier AND features learned jointly: does the simplex ETF stay optimal?"
FLAGS = problem_flags(MixupJointProblem)


def add_arguments(parser) -> None:
    # --nodes unset (None) unless typed: refused with --alpha 0 (ERM), where it does not apply
    add_problem_arguments(parser, MixupJointProblem, "mixup-joint", defaults={"n_nodes": None})


# One variant; --nodes does not apply to ERM (--alpha 0), which problem_from_args refuses.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def problem_from_args(ns) -> MixupJointProblem:
    if ns.n_nodes is not None and ns.alpha == 0:
        raise InputError("n_nodes", "does not apply to --alpha 0 (ERM: lam is 0 or 1, no quadrature)")
    return from_namespace(MixupJointProblem, ns, defaults=("n_nodes",))


def solver_options(problem: MixupJointProblem, n_targets: int | None = None) -> SolverOptions:
    return SOLVER


def assess(problem: MixupJointProblem, sol, best: int, js: JointSolve, options: SolverOptions) -> Assessment:
    gram = np.array([etf_gram_error(W) for W in js.W])
    etf_errors, m_restarts = gram[:, 0], gram[:, 1]
    graded = graded_restarts(sol, best)
    W, H, m, loss = js.W[best], js.H[best], float(m_restarts[best]), float(sol.loss[best])
    m_1d, kappa_1d, F_min = reduced_multiplier(problem)
    m_2n = reduced_multiplier(problem, 2 * problem.n_nodes)[0] if not problem.erm else m_1d
    m_erm = reduced_multiplier(problem, alpha=0.0)[0]
    status = STATUS_MESSAGES.get(int(sol.status[best]), "running")  # every final status has a message
    optimum, at = checks.optimum_checks(problem, W, H, m, loss, etf_errors, graded, js[2:7], m_1d, F_min, status)
    result = [checks.converged(sol, best, js.starts), checks.restart_spread(sol.loss[graded], js.starts), *optimum]
    quadrature = None if problem.erm else checks.quadrature_doubling(m_1d, m_2n, problem.n_nodes)
    result += [quadrature] if quadrature is not None else []
    result += [checks.collapse(H, js.Y)] if problem.samples_per_target > 1 else []
    reduced = (m_1d, kappa_1d, F_min, m_2n, m_erm)
    headline, numbers, arrays = checks.report(problem, sol, best, js, gram, graded, reduced, at, quadrature)
    return Assessment(headline, result, numbers, arrays, convergence={"starts": list(js.starts)})


def steps(problem: MixupJointProblem, options: SolverOptions):
    """The family's solve as steps (``ufm.algorithms.batched``): one solver call, then the result."""
    return solve_result(problem, options, (yield solve_request(problem, options)))


FAMILY = Family(
    name=lambda problem: NAME,
    solver_options=solver_options,
    solve=None,  # from steps
    assess=assess,
    steps=steps,
)


def run(problem: MixupJointProblem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
