"""Cross-entropy UFM with weight decay (``ce``; Zhu, Ding, Zhou, Li, You, Sulam, Qu, NeurIPS 2021, Theorem 3.1).

The joint nonconvex problem over (W, H, b) from ``--restarts`` seeded Gaussian starts, one batch, saddle-free Newton
(dense eigh; an L-BFGS phase first above LBFGS_ABOVE variables), in balanced coordinates ``W sqrt(lambda_W /
Lambda)``, ``H sqrt(lambda_H / Lambda)`` (Lambda = sqrt(lambda_W lambda_H): the logits are unchanged and both
decays become Lambda). The best restart (``ufm.solver.best_element``) is checked against ``ufm.theory.ce``; the
closed-form point itself is evaluated (objective, gradient), and the critical point W = H = 0 (f = log K) is
compared with, not solved from: below the threshold it is a saddle that costs ~30 Newton steps to leave.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from ufm import driver
from ufm.algorithms.batched import SolveRequest
from ufm.checks import ce as checks
from ufm.checks.convergence import best_converged
from ufm.cli import add_problem_arguments, problem_flags
from ufm.family import Assessment, Family
from ufm.objectives.ce import (
    LBFGS_ABOVE,
    LBFGS_STEPS,
    SOLVER,
    ce_loss,
    evaluate,
    objective_data,
    starts,
)
from ufm.problems import filled, from_namespace
from ufm.problems.ce import CEProblem
from ufm.report import Report
from ufm.solver import SolverOptions, peak_bytes
from ufm.theory import ce as theory

NAME = "ce"
DESCRIPTION = "cross-entropy UFM with weight decay: simplex ETF, NC1-NC3, trivial past K^2 n lambda_W lambda_H = 1"
FLAGS = problem_flags(CEProblem)
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def add_arguments(parser) -> None:
    add_problem_arguments(parser, CEProblem, "cross-entropy UFM (ce)")


def problem_from_args(ns) -> CEProblem:
    return from_namespace(CEProblem, ns)


def memory_estimate(problem: CEProblem) -> tuple[int, str]:
    """Peak bytes (dense Hessians and their autodiff tangents per restart, the data) and the driving field."""

    def estimate(C, n, d, restarts):
        v, N = (C + C * n) * d + C, C * n
        return peak_bytes(v, restarts, SOLVER, 8 * 4 * N * (C + d)) + restarts * 8 * 2 * v * 2 * N * (C + d)

    sizes = {"C": problem.C, "n": problem.n, "d": problem.d, "restarts": problem.restarts}
    reduced = {
        f: estimate(**{**sizes, f: low, **({"d": low} if f == "C" else {})})
        for f, low in (("C", 2), ("n", 1), ("d", problem.C - 1), ("restarts", 1))
    }
    return estimate(**sizes), min(reduced, key=lambda field: reduced[field])


def solver_options(problem: CEProblem) -> SolverOptions:
    return dataclasses.replace(SOLVER, quasi_newton_steps=LBFGS_STEPS if problem.n_vars > LBFGS_ABOVE else 0)


def steps(problem: CEProblem, options: SolverOptions):
    """The family's solve as steps (``ufm.algorithms.batched``): one solver call over every seeded restart, in
    balanced coordinates."""
    solution = yield SolveRequest(ce_loss, starts(problem), objective_data(problem, balanced=True), options)
    return solution, None


def assess(problem: CEProblem, sol, best: int, _, options: SolverOptions) -> Assessment:
    Lam = math.sqrt(problem.lambda_W * problem.lambda_H)  # balanced -> original coordinates
    W = np.asarray(sol.params["W"][best]) * math.sqrt(Lam / problem.lambda_W)
    H = np.asarray(sol.params["H"][best]) * math.sqrt(Lam / problem.lambda_H)
    b = np.asarray(sol.params["b"][best]) if "b" in sol.params else np.zeros(problem.C)
    t = theory.optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H)
    params = lambda W, H, b: jax.tree.map(jnp.asarray, {"W": W, "H": H, **({"b": b} if "b" in sol.params else {})})
    d = filled(problem.d, "d")
    W0, H0, b0 = theory.optimal_point(problem.C, problem.n, d, problem.lambda_W, problem.lambda_H, problem.seed)
    f, f_point, grad, grad_fit = evaluate(params(W, H, b), params(W0, H0, b0), objective_data(problem))
    result, numbers = checks.solution_checks(problem, W, H, b, float(f), t, float(sol.grad_norm[best]))
    result.insert(0, best_converged(sol.status, sol.rel_grad_norm, best, options.rtol, notes="; balanced coordinates"))
    flat = lambda tree: np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])
    result += checks.closed_form_point_checks(float(f_point), flat(grad), flat(grad_fit), t, problem.N)
    result += checks.restart_checks(sol.loss, t, problem.C)
    numbers.update(
        {
            "closed_form": {k: v for k, v in t.items() if k not in ("WWt", "MMt")},
            "restart_losses": sol.loss,
            "restart_status": sol.status,
        }
    )
    headline = [
        (
            f"ufm cross-entropy: C={problem.C} n={problem.n} d={problem.d} lambda_W={problem.lambda_W:g} "
            f"lambda_H={problem.lambda_H:g} bias={problem.bias}"
        ),
        (
            f"closed form: objective {t['objective']:.15g}  rho {t['rho']:.6g} (W = H = 0 iff >= 1)  t* "
            f"{t['t']:.12g}  margin {t['margin']:.12g}" + ("  (W = H = 0)" if t["zero"] else "")
        ),
        f"best restart {best}: objective {numbers['objective']:.15g}",
    ]
    arrays = {
        "W": W,
        "H": H,
        "b": b,
        "logits": H @ W.T + b,
        "labels": problem.labels,
        "restart_losses": sol.loss,
        "W_theory": W0,
        "H_theory": H0,
    }
    return Assessment(headline, result, numbers, arrays)


FAMILY = Family(
    name=lambda problem: NAME,
    solver_options=solver_options,
    solve=None,
    assess=assess,
    arrays_name="solution.npz",
    steps=steps,
)


def run(problem: CEProblem, *, progress: bool = True, max_memory_bytes: int | None = None) -> Report:
    return driver.run(FAMILY, problem, progress=progress, max_memory_bytes=max_memory_bytes)
