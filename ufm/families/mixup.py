"""Mixup CE with a fixed simplex ETF (seed 000, Theorem 3.1): solve every (c, c', lambda), check, report."""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from ufm.checks import Check
from ufm.checks import mixup as checks
from ufm.objectives.mixup import MixupData, mixup_feature_loss, soft_target, square_feature_loss
from ufm.problems.mixup import MixupProblem
from ufm.report import Report
from ufm.solver import Solution, SolverOptions, minimise
from ufm.theory import mixup as theory

NAME = "mixup"
DESCRIPTION = "mixup cross-entropy, fixed simplex-ETF classifier, free features (seed 000, Theorem 3.1)"
FLAGS = {"n_lambdas": "--lambdas"}
SOLVER = SolverOptions(rtol=1e-12, linear_solver="cholesky", max_steps=200)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup")
    group.add_argument("--C", type=int, default=10, help="number of classes (>= 2)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    group.add_argument("--m", type=float, default=1.0, help="ETF multiplier, ||w_c|| = m (> 0)")
    group.add_argument("--mu", type=float, default=1e-2, help="feature weight decay mu in (mu/2)||h||^2 (> 0)")
    group.add_argument("--lambdas", type=int, default=101, dest="n_lambdas", help="lambda grid size on [0, 1] (>= 2)")
    group.add_argument("--seed", type=int, default=0, help="seed of the ETF embedding and of the random starts")


def problem_from_args(ns) -> MixupProblem:
    return MixupProblem(C=ns.C, d=ns.d, m=ns.m, mu=ns.mu, n_lambdas=ns.n_lambdas, seed=ns.seed)


@dataclasses.dataclass(frozen=True)
class MixupSolution:
    """Solver output on the full grid: W, subproblem labels, features h (n x d) and the convergence record."""

    W: np.ndarray
    c: np.ndarray
    c_prime: np.ndarray
    lam: np.ndarray
    h: np.ndarray
    solution: Solution


def solve(problem: MixupProblem, *, subproblems=None, loss=mixup_feature_loss, options: SolverOptions | None = None,
          progress: bool = False) -> MixupSolution:
    """Minimise ``loss`` for every (c, c', lam) of the problem's grid (or of ``subproblems``, a tuple of three
    equal-length arrays) in the full dimension d, from seeded random starts (nothing of the ETF structure or of the
    theorem is used)."""
    W = problem.classifier()
    c, c_prime, lam = problem.grid() if subproblems is None else (np.asarray(x) for x in subproblems)
    data = MixupData(jnp.asarray(W), soft_target(problem.C, c, c_prime, lam), jnp.asarray(problem.mu))
    h0 = np.random.default_rng(problem.seed).standard_normal((c.size, problem.d)) / np.sqrt(problem.d)
    sol = minimise(loss, jnp.asarray(h0), data, args_axes=MixupData(None, 0, None),
                   options=dataclasses.replace(options or SOLVER, progress=progress))
    return MixupSolution(W, c, c_prime, lam, np.asarray(sol.params), sol)


def theory_features(problem: MixupProblem, W: np.ndarray, c, c_prime, lam) -> np.ndarray:
    return theory.optimal_features(W, problem.m, problem.mu, c, c_prime, lam)


def other_dimension(problem: MixupProblem) -> MixupProblem:
    """A second problem with another feature dimension and ETF embedding, for the d-independence check."""
    d_other = problem.C - 1 if problem.d != problem.C - 1 else 2 * problem.C + 1
    return dataclasses.replace(problem, d=d_other, seed=problem.seed + 1)


def run(problem: MixupProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    main = solve(problem, progress=progress)
    W, c, c_prime, lam, h = main.W, main.c, main.c_prime, main.lam, main.h
    h_theory = theory_features(problem, W, c, c_prime, lam)
    K = theory.same_class_root(problem.C, problem.kappa)
    same_norm = (problem.C - 1) * abs(K) / problem.m
    rel_err = checks.relative_errors(h, h_theory, same_norm)

    other = other_dimension(problem)
    alt = solve(other, progress=False)
    square = solve(problem, loss=square_feature_loss, progress=False)

    # K as the solver sees it: the centred non-target logit of a same-class optimum (Theorem 3.1).
    z = h @ W.T
    same = c == c_prime
    z_same = z[same] - z[same].mean(axis=-1, keepdims=True)
    K_solver = float(np.mean(z_same[np.arange(z_same.shape[0]), (c[same] + 1) % problem.C]))

    tol = checks.feature_tolerance(problem.kappa)
    result_checks = [
        Check("solver converged on every subproblem (max rel grad)", main.solution.report()["max_rel_grad_norm"]
              if main.solution.converged.all() else float("inf"), SOLVER.rtol,
              f"{int(np.sum(~main.solution.converged))} not converged" if not main.solution.converged.all() else ""),
        checks.feature_error(rel_err, c, c_prime, lam, tol),
        Check("K: solver's non-target logit vs root (rel)", abs(K_solver - K) / abs(K), tol),
        checks.same_class_lambda_independence(h, c, c_prime, tol),
        checks.same_class_alignment(W, h, c, c_prime),
    ]
    if problem.C >= 3:
        result_checks.append(checks.outside_pair_span(W, h, c, c_prime, tol))
    result_checks += [
        checks.boundary_distance_odd(W, h, c, c_prime, lam, problem.n_lambdas, tol),
        checks.half_mix_bulge(h, c, c_prime, lam, problem.C, problem.kappa, tol),
        checks.dimension_independence(z, alt.h @ alt.W.T, problem.d, other.d, tol),
        checks.square_loss_linearity(square.h, c, c_prime, problem.n_lambdas, tol),
        checks.calibration_gap(W, h, c, c_prime, lam),
    ]
    if problem.C == 2:
        result_checks.append(Check("different-class feature in span{w_c, w_c'}", 0.0, None,
                                   "C = 2: the span is all of the row space, nothing to check"))
    for extra in (alt, square):
        if not extra.solution.converged.all():
            result_checks.append(Check("auxiliary solve converged", float("inf"), SOLVER.rtol,
                                       "the d-independence or square-loss solve did not converge"))

    config = {"loss": NAME, **dataclasses.asdict(problem), "kappa": problem.kappa,
              "solver": dataclasses.asdict(SOLVER)}
    headline = [
        f"ufm mixup: C={problem.C} d={problem.d} m={problem.m:g} mu={problem.mu:g} kappa={problem.kappa:.6g}  "
        f"{problem.n_lambdas} lambdas x {problem.C**2} ordered pairs = {c.size} subproblems",
        f"K (root < 0 of K(C-1+e^(-CK)) + kappa = 0) = {K:.15g}   solver: {K_solver:.15g}",
        f"same-class norm (C-1)|K|/m = {same_norm:.12g}   lam=1/2 bulge ratio = "
        f"{theory.half_mix_bulge_ratio(problem.C, problem.kappa):.12g}",
    ]
    numbers = {"kappa": problem.kappa, "K": K, "K_solver": K_solver, "same_class_norm": same_norm,
               "half_mix_bulge_ratio": theory.half_mix_bulge_ratio(problem.C, problem.kappa),
               "max_rel_error": float(np.max(rel_err)), "seconds": time.perf_counter() - t0}
    arrays = {"W": W, "c": c, "c_prime": c_prime, "lam": lam, "h": h, "h_theory": h_theory, "rel_error": rel_err,
              "loss": main.solution.loss, "grad_norm": main.solution.grad_norm, "steps": main.solution.steps,
              "converged": main.solution.converged}
    return Report(NAME, config, headline, result_checks, main.solution.report(), numbers, arrays)
