"""Mixup CE with classifier and features learned jointly (issue 9): is the simplex ETF that Theorem 3.1 of seed 000
assumes actually optimal? Solve the nonconvex joint problem from seeded restarts, measure the ETF error of W W^T,
the learned multiplier m, and compare with the one-dimensional reduction F(m) and the closed-form features."""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from ufm.checks import Check
from ufm.checks import mixup as mixup_checks
from ufm.checks import mixup_joint as checks
from ufm.etf import etf_gram_error
from ufm.objectives.mixup_joint import JointData, JointParams, features, joint_mixup_loss
from ufm.problems.mixup_joint import MixupJointProblem
from ufm.report import Report
from ufm.solver import Solution, SolverOptions, minimise
from ufm.theory import mixup as theory
from ufm.theory import mixup_joint as joint_theory

NAME = "mixup-joint"
DESCRIPTION = "mixup cross-entropy, classifier AND features learned jointly: does the simplex ETF stay optimal?"
FLAGS = {"n_nodes": "--nodes"}
# Nonconvex (rotation symmetry: the Hessian is indefinite away from the optimum and singular at it): L-BFGS first,
# then saddle-free Newton (dense eigh) while the Hessian is small, matrix-free Newton-CG beyond EIGH_MAX_VARS.
SOLVER = SolverOptions(rtol=checks.GRAD_TOL / 10, damping=1.0, quasi_newton_steps=300, quasi_newton_rtol=1e-6,
                       max_steps=300, linear_solver="eigh", label="mixup-joint")
EIGH_MAX_VARS = 1500


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup-joint")
    group.add_argument("--C", type=int, default=10, help="number of classes (>= 2)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    group.add_argument("--alpha", type=float, default=1.0,
                       help="lam ~ Beta(alpha, alpha) (> 0); 0 means ERM (no mixup)")
    group.add_argument("--lam-W", type=float, default=5e-2, dest="lam_W", help="classifier weight decay (> 0)")
    group.add_argument("--lam-H", type=float, default=5e-2, dest="lam_H", help="feature weight decay (> 0)")
    group.add_argument("--nodes", type=int, default=16, dest="n_nodes",
                       help="Gauss-Jacobi nodes for the Beta(alpha, alpha) average (>= 1; ignored for alpha = 0)")
    group.add_argument("--restarts", type=int, default=3, help="seeded random starts, solved as one batch (>= 1)")
    group.add_argument("--samples-per-target", type=int, default=1, dest="samples_per_target",
                       help="feature variables per ordered (c, c', node); > 1 checks the collapse (default 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the random starts")


def problem_from_args(ns) -> MixupJointProblem:
    return MixupJointProblem(C=ns.C, d=ns.d, alpha=ns.alpha, lam_W=ns.lam_W, lam_H=ns.lam_H, n_nodes=ns.n_nodes,
                             restarts=ns.restarts, samples_per_target=ns.samples_per_target, seed=ns.seed)


@dataclasses.dataclass(frozen=True)
class JointSolution:
    """Every restart's W (R x C x d) and features H (R x T x d), the targets (c, c', lam, weight, Y) and the
    solver's record."""

    W: np.ndarray
    H: np.ndarray
    c: np.ndarray
    c_prime: np.ndarray
    lam: np.ndarray
    weight: np.ndarray
    Y: np.ndarray
    solution: Solution


def solver_options(problem: MixupJointProblem, n_targets: int) -> SolverOptions:
    n_vars = (problem.C + n_targets) * problem.d
    return SOLVER if n_vars <= EIGH_MAX_VARS else dataclasses.replace(SOLVER, linear_solver="cg")


def solve(problem: MixupJointProblem, *, progress: bool = False) -> JointSolution:
    """Minimise the joint objective from ``problem.restarts`` seeded Gaussian starts (nothing of the ETF, of the
    theorem or of the collapse is imposed beyond one variable per target)."""
    c, c_prime, lam, weight = problem.targets()
    eye = np.eye(problem.C)
    Y = lam[:, None] * eye[c] + (1 - lam)[:, None] * eye[c_prime]
    data = JointData(jnp.asarray(Y), jnp.asarray(weight), jnp.asarray(problem.lam_W), jnp.asarray(problem.lam_H))
    rng = np.random.default_rng(problem.seed)
    R, T, d = problem.restarts, weight.size, problem.d
    W0 = rng.standard_normal((R, problem.C, d)) / np.sqrt(d)
    G0 = rng.standard_normal((R, T, d)) * np.sqrt(weight)[None, :, None] / np.sqrt(d)
    options = dataclasses.replace(solver_options(problem, T), progress=progress)
    sol = minimise(joint_mixup_loss, JointParams(jnp.asarray(W0), jnp.asarray(G0)), data, options=options)
    H = np.stack([np.asarray(features(JointParams(sol.params.W[r], sol.params.G[r]), data.weight)) for r in range(R)])
    return JointSolution(np.asarray(sol.params.W), H, c, c_prime, lam, weight, Y, sol)


def softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def reduced_multiplier(problem: MixupJointProblem, n_nodes: int | None = None) -> tuple[float, float, float]:
    """``(m*, kappa*, min F)`` of the one-dimensional reduction with the problem's quadrature (or n_nodes nodes)."""
    p = problem if n_nodes is None else dataclasses.replace(problem, n_nodes=n_nodes)
    nodes, w = p.quadrature()
    kappa, F = joint_theory.optimal_etf_kappa(p.C, p.lam_W, p.lam_H, nodes, w)
    return joint_theory.multiplier(p.C, kappa, p.lam_H), kappa, F


def run(problem: MixupJointProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    C = problem.C
    js = solve(problem, progress=progress)
    conv = js.solution.report()
    gram = np.array([etf_gram_error(W) for W in js.W])
    etf_errors, m_restarts = gram[:, 0], gram[:, 1]
    best = int(np.argmin(js.solution.loss))
    W, H, m = js.W[best], js.H[best], float(m_restarts[best])
    loss = float(js.solution.loss[best])

    m_1d, kappa_1d, F_min = reduced_multiplier(problem)
    m_2n = reduced_multiplier(problem, 2 * problem.n_nodes)[0] if not problem.erm else m_1d
    m_erm = reduced_multiplier(dataclasses.replace(problem, alpha=0.0))[0]
    result_checks = [checks.converged(js.solution.grad_norm, conv["all_converged"], conv["failures"]),
                     checks.restart_spread(js.solution.loss)]
    if m_1d == 0.0:  # W = 0 is the global minimum: no multiplier to compare, only the value log C
        result_checks += [Check("W = 0 optimal (lambda_W lambda_H >= threshold): learned m", m, None),
                          checks.objective_agreement(loss, F_min)]
        kappa, h_theory, rel_err, conf = 0.0, np.zeros_like(H), np.zeros(H.shape[0]), float("nan")
    else:
        kappa = theory.kappa(C, m, problem.lam_H)
        h_theory = theory.optimal_features(W, m, problem.lam_H, js.c, js.c_prime, js.lam)
        K = theory.same_class_root(C, kappa)
        rel_err = mixup_checks.relative_errors(H, h_theory, (C - 1) * abs(K) / m)
        P = softmax(H @ W.T)
        # clean points: pure targets e_c, written (c, c, any lam), (c, c', 1) or (c', c, 0)
        clean = np.flatnonzero((js.c == js.c_prime) | (js.lam == 1.0) | (js.lam == 0.0))
        true_class = np.where(js.lam == 0.0, js.c_prime, js.c)
        conf_solver = P[clean, true_class[clean]]
        conf = joint_theory.clean_confidence(C, kappa)
        result_checks += [
            checks.etf_error(etf_errors),
            checks.multiplier_agreement(m, m_1d),
            checks.objective_agreement(loss, F_min),
            checks.feature_error(rel_err, js.c, js.c_prime, js.lam),
            checks.clean_confidence(conf_solver, conf),
            checks.certificate(joint_theory.global_certificate(P, js.Y, js.weight, problem.lam_W, problem.lam_H)),
        ]
        if not problem.erm:
            result_checks.append(checks.quadrature_doubling(m_1d, m_2n, problem.n_nodes))
    if problem.samples_per_target > 1:
        result_checks.append(checks.collapse(H, js.Y))

    nodes, qw = problem.quadrature()
    mixing = "ERM (alpha = 0, no mixup)" if problem.erm else f"alpha={problem.alpha:g}, {nodes.size} Gauss-Jacobi nodes"
    headline = [
        f"ufm mixup-joint: C={C} d={problem.d} {mixing} lambda_W={problem.lam_W:g} lambda_H={problem.lam_H:g}  "
        f"{js.weight.size} feature variables, {problem.restarts} restarts",
        f"ETF error of W W^T {float(np.max(etf_errors)):.2e} (worst restart); m joint {m:.12g}, 1-D reduction "
        f"{m_1d:.12g}" + ("" if problem.erm else f" ({2 * problem.n_nodes} nodes: {m_2n:.12g})")
        + f"; ERM m {m_erm:.12g}",
        f"kappa {kappa:.10g}  clean-point confidence {conf:.12g}  loss {loss:.15g}  min F {F_min:.15g}  "
        f"W = 0 optimal iff lambda_W lambda_H >= {joint_theory.trivial_threshold(C, nodes, qw):.6g}",
    ]
    config = {"loss": NAME, **dataclasses.asdict(problem),
              "solver": dataclasses.asdict(solver_options(problem, js.weight.size))}
    numbers = {"etf_error": float(np.max(etf_errors)), "etf_error_restarts": etf_errors, "m": m,
               "m_restarts": m_restarts, "m_1d": m_1d, "m_1d_2n": m_2n, "m_erm_1d": m_erm, "kappa": kappa,
               "kappa_1d": kappa_1d, "loss": loss, "F_min": F_min, "losses": js.solution.loss,
               "clean_confidence": conf, "max_feature_rel_error": float(np.max(rel_err)),
               "trivial_threshold": joint_theory.trivial_threshold(C, nodes, qw), "nodes": nodes, "node_weights": qw,
               "seconds": time.perf_counter() - t0}
    arrays = {"W": W, "H": H, "h_theory": h_theory, "rel_error": rel_err, "c": js.c, "c_prime": js.c_prime,
              "lam": js.lam, "weight": js.weight, "W_restarts": js.W, "loss": js.solution.loss,
              "grad_norm": js.solution.grad_norm, "steps": js.solution.steps, "status": js.solution.status}
    return Report(NAME, config, headline, result_checks, conv, numbers, arrays)
