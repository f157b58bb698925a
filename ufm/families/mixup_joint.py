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

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from ufm.checks import Check
from ufm.checks import mixup as mixup_checks
from ufm.checks import mixup_joint as checks
from ufm.etf import etf_gram_error
from ufm.families.mixup import driving_field
from ufm.objectives.mixup_joint import JointData, JointParams, features, joint_mixup_loss
from ufm.problems import InputError
from ufm.problems.mixup_joint import MAX_NODES, MixupJointProblem, count_targets
from ufm.report import Report
from ufm.solver import STATUS_MESSAGES, Solution, SolverOptions, best_element, minimise, peak_bytes
from ufm.theory import mixup as theory
from ufm.theory import mixup_joint as joint_theory

NAME = "mixup-joint"
DESCRIPTION = "mixup cross-entropy, classifier AND features learned jointly: does the simplex ETF stay optimal?"
FLAGS = {"n_nodes": "--nodes"}
# Nonconvex (rotation symmetry: the Hessian is indefinite away from the optimum and singular at it): L-BFGS first,
# then saddle-free Newton: dense eigh while the Hessian is small, matrix-free Newton-CG with a Lanczos curvature
# test beyond (the solver's choice, ufm.solver.linear_algebra).
SOLVER = SolverOptions(rtol=checks.GRAD_TOL / 10, damping=1.0, quasi_newton_steps=300, quasi_newton_rtol=1e-6,
                       max_steps=300, linear_solver="eigh", label="mixup-joint")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup-joint")
    group.add_argument("--C", type=int, default=10, help="number of classes (>= 2)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    group.add_argument("--alpha", type=float, default=1.0,
                       help="lam ~ Beta(alpha, alpha) (in [1e-6, 1e6]); 0 means ERM (no mixup)")
    group.add_argument("--lam-W", type=float, default=5e-2, dest="lam_W",
                       help="classifier weight decay (> 0; lam_W lam_H >= 1e-10, lam_W / lam_H in [1e-4, 1e4])")
    group.add_argument("--lam-H", type=float, default=5e-2, dest="lam_H",
                       help="feature weight decay (> 0; see --lam-W)")
    group.add_argument("--nodes", type=int, default=None, dest="n_nodes",
                       help=f"Gauss-Jacobi nodes for the Beta(alpha, alpha) average (1 .. {MAX_NODES}; default "
                       f"{MixupJointProblem.n_nodes}; not with --alpha 0)")
    group.add_argument("--restarts", type=int, default=3, help="seeded random starts, solved as one batch (>= 1)")
    group.add_argument("--samples-per-target", type=int, default=1, dest="samples_per_target",
                       help="feature variables per ordered (c, c', node); > 1 checks the collapse (default 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the random starts")


# One variant; --nodes does not apply to ERM (--alpha 0), which problem_from_args refuses.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def problem_from_args(ns) -> MixupJointProblem:
    if ns.n_nodes is not None and ns.alpha == 0:
        raise InputError("n_nodes", "does not apply to --alpha 0 (ERM: lam is 0 or 1, no quadrature)")
    n_nodes = MixupJointProblem.n_nodes if ns.n_nodes is None else ns.n_nodes
    return MixupJointProblem(C=ns.C, d=ns.d, alpha=ns.alpha, lam_W=ns.lam_W, lam_H=ns.lam_H, n_nodes=n_nodes,
                             restarts=ns.restarts, samples_per_target=ns.samples_per_target, seed=ns.seed)


@dataclasses.dataclass(frozen=True)
class JointSolution:
    """Every start's W (R x C x d) and features H (R x T x d), the start kinds ("random" or "zero"), the targets
    (c, c', lam, weight, Y) and the solver's record."""

    W: np.ndarray
    H: np.ndarray
    starts: tuple[str, ...]
    c: np.ndarray
    c_prime: np.ndarray
    lam: np.ndarray
    weight: np.ndarray
    Y: np.ndarray
    solution: Solution


def solver_options(problem: MixupJointProblem, n_targets: int) -> SolverOptions:
    return SOLVER


def zero_can_be_optimal(problem: MixupJointProblem) -> bool:
    """W = H = 0 is always a critical point; it is the global minimum iff ``lambda_W lambda_H >=`` the trivial
    threshold ``E||P y||^2 / (C-1)`` (``ufm.theory.mixup_joint.trivial_threshold``); then it is a candidate start."""
    nodes, w = problem.quadrature()
    return problem.lam_W * problem.lam_H >= joint_theory.trivial_threshold(problem.C, nodes, w)


def start_kinds(problem: MixupJointProblem) -> tuple[str, ...]:
    """``problem.restarts`` seeded Gaussian starts, plus W = H = 0 where :func:`zero_can_be_optimal`."""
    return ("random",) * problem.restarts + (("zero",) if zero_can_be_optimal(problem) else ())


def solve(problem: MixupJointProblem, *, progress: bool = False) -> JointSolution:
    """Minimise the joint objective from ``problem.restarts`` seeded Gaussian starts and the known critical point
    W = H = 0 where it can be optimal (nothing of the ETF, of the theorem or of the collapse is imposed beyond one
    variable per target), as one batch."""
    c, c_prime, lam, weight = problem.targets()
    eye = np.eye(problem.C)
    Y = lam[:, None] * eye[c] + (1 - lam)[:, None] * eye[c_prime]
    data = JointData(jnp.asarray(Y), jnp.asarray(weight), jnp.asarray(problem.lam_W), jnp.asarray(problem.lam_H))
    rng = np.random.default_rng(problem.seed)
    starts = start_kinds(problem)
    R, T, d = problem.restarts, weight.size, problem.d
    W0 = rng.standard_normal((R, problem.C, d)) / np.sqrt(d)
    G0 = rng.standard_normal((R, T, d)) * np.sqrt(weight)[None, :, None] / np.sqrt(d)
    if "zero" in starts:
        W0 = np.concatenate([W0, np.zeros((1, problem.C, d))])
        G0 = np.concatenate([G0, np.zeros((1, T, d))])
    options = dataclasses.replace(solver_options(problem, T), progress=progress)
    sol = minimise(joint_mixup_loss, JointParams(jnp.asarray(W0), jnp.asarray(G0)), data, options=options)
    H = np.stack([np.asarray(features(JointParams(sol.params.W[r], sol.params.G[r]), data.weight))
                  for r in range(len(starts))])
    return JointSolution(np.asarray(sol.params.W), H, starts, c, c_prime, lam, weight, Y, sol)


def graded_restarts(solution: Solution, best: int) -> np.ndarray:
    """Indices of the restarts whose statements are graded: the converged ones if the best converged, else the
    best alone (whose convergence check then fails)."""
    return np.flatnonzero(solution.converged) if solution.converged[best] else np.array([best])


def _estimate(sizes: dict) -> int:
    """Peak bytes of a run from its sizes (python ints, nothing allocated); see :func:`memory_estimate`."""
    C, d, T, n = sizes["C"], sizes["d"], sizes["T"], sizes["n"]
    R = sizes["restarts"] + 1  # the zero start
    n_vars = (C + T) * d
    # shared data (targets, weights) and one evaluation's intermediates (features, logits, softmax), and what one
    # tangent of them keeps (the dense Hessian carries one per variable)
    data = 8 * (3 * T * C + 2 * T * d)
    solve = peak_bytes(n_vars, R, SOLVER, data, 8 * 2 * (4 * T * C + 2 * T * d))
    # the targets' construction (C^2 n ordered entries, several int arrays and np.unique) and the report's arrays
    # (every start's features, the closed form and its gathers, softmax, certificate matrix)
    report = 8 * (12 * C * C * n + R * T * d + 8 * T * d + 6 * T * C + R * C * d)
    return solve + report


def _sizes(problem: MixupJointProblem) -> dict:
    return {"C": problem.C, "d": problem.d, "T": problem.n_targets, "n": 2 if problem.erm else problem.n_nodes,
            "restarts": problem.restarts, "samples_per_target": problem.samples_per_target}


def memory_estimate(problem: MixupJointProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of :func:`run`: the batched solve of every start (``ufm.solver.peak_bytes``
    with the linear solver the size selects, plus the per-restart autodiff intermediates), the targets'
    construction and the report's arrays. From the sizes only; nothing is allocated."""
    sizes = _sizes(problem)

    def estimate(sz):
        return _estimate({**sz, "T": count_targets(sz["C"], sz["n"], sz["samples_per_target"], problem.erm)})

    reference = {"C": 10, "d": sizes["C"], "restarts": 3, "samples_per_target": 1, **({} if problem.erm else {"n": 16})}
    field = driving_field(estimate, sizes, reference)
    return _estimate(sizes), {"n": "n_nodes"}.get(field, field)


def softmax(z: np.ndarray) -> np.ndarray:
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def reduced_multiplier(problem: MixupJointProblem, n_nodes: int | None = None,
                       alpha: float | None = None) -> tuple[float, float, float]:
    """``(m*, kappa*, min F)`` of the one-dimensional reduction with the problem's quadrature, or with ``n_nodes``
    nodes and/or another ``alpha`` (e.g. 2n nodes beyond the problem's own limit, or alpha = 0 for ERM)."""
    alpha = problem.alpha if alpha is None else alpha
    nodes, w = joint_theory.beta_quadrature(alpha, problem.n_nodes if n_nodes is None else n_nodes)
    kappa, F = joint_theory.optimal_etf_kappa(problem.C, problem.lam_W, problem.lam_H, nodes, w)
    return joint_theory.multiplier(problem.C, kappa, problem.lam_H), kappa, F


def run(problem: MixupJointProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    C = problem.C
    js = solve(problem, progress=progress)
    sol = js.solution
    conv = {**sol.report(), "starts": list(js.starts)}
    gram = np.array([etf_gram_error(W) for W in js.W])
    etf_errors, m_restarts = gram[:, 0], gram[:, 1]
    best = best_element(sol)
    graded = graded_restarts(sol, best)
    W, H, m = js.W[best], js.H[best], float(m_restarts[best])
    loss = float(sol.loss[best])

    m_1d, kappa_1d, F_min = reduced_multiplier(problem)
    m_2n = reduced_multiplier(problem, 2 * problem.n_nodes)[0] if not problem.erm else m_1d
    m_erm = reduced_multiplier(problem, alpha=0.0)[0]
    result_checks = [checks.converged(sol, best, js.starts), checks.restart_spread(sol.loss[graded], js.starts)]
    kappa, h_theory, rel_err, conf = 0.0, np.zeros_like(H), np.zeros(H.shape[0]), float("nan")
    if m_1d == 0.0:  # W = 0 is the global minimum: no multiplier to compare, only the value log C
        result_checks += [Check("W = 0 optimal (lambda_W lambda_H >= threshold): learned m", m, None),
                          checks.objective_agreement(loss, F_min)]
    elif not m > 0:  # the best point found is W = 0 although the reduction's optimum is not: nothing to compare
        result_checks += [Check("learned m > 0 (the 1-D reduction's optimum has m > 0)", float("inf"), checks.M_TOL,
                                f"best restart has W = 0 (status {STATUS_MESSAGES.get(int(sol.status[best]))}); "
                                f"1-D m {m_1d:.12g}"),
                          checks.objective_agreement(loss, F_min)]
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
            checks.etf_error(etf_errors[graded], graded),
            checks.multiplier_agreement(m, m_1d),
            checks.objective_agreement(loss, F_min),
            checks.feature_error(rel_err, js.c, js.c_prime, js.lam),
            checks.clean_confidence(conf_solver, conf),
            checks.certificate(joint_theory.global_certificate(P, js.Y, js.weight, problem.lam_W, problem.lam_H)),
        ]
    quadrature = None
    if not problem.erm:
        quadrature = checks.quadrature_doubling(m_1d, m_2n, problem.n_nodes)
        result_checks.append(quadrature)
    if problem.samples_per_target > 1:
        result_checks.append(checks.collapse(H, js.Y))

    nodes, qw = problem.quadrature()
    mixing = "ERM (alpha = 0, no mixup)" if problem.erm else f"alpha={problem.alpha:g}, {nodes.size} Gauss-Jacobi nodes"
    extra = " + W = H = 0" if "zero" in js.starts else ""
    headline = [
        f"ufm mixup-joint: C={C} d={problem.d} {mixing} lambda_W={problem.lam_W:g} lambda_H={problem.lam_H:g}  "
        f"{js.weight.size} feature variables, {problem.restarts} restarts{extra}; best: start {best} "
        f"({js.starts[best]})",
        (f"W = 0 optimal: ETF error undefined (W W^T ~ 0); m joint {m:.3g}, " if m_1d == 0.0 else
         f"ETF error of W W^T {float(np.max(etf_errors[graded])):.2e} (worst graded restart); m joint {m:.12g}, ")
        + f"1-D reduction {m_1d:.12g}" + ("" if problem.erm else f" ({2 * problem.n_nodes} nodes: {m_2n:.12g})")
        + f"; ERM m {m_erm:.12g}",
        f"kappa {kappa:.10g}  clean-point confidence {conf:.12g}  loss {loss:.15g}  min F {F_min:.15g}  "
        f"W = 0 optimal iff lambda_W lambda_H >= {joint_theory.trivial_threshold(C, nodes, qw):.6g}",
    ]
    if quadrature is not None and quadrature.value > checks.QUADRATURE_TOL:
        headline.append(f"note: {problem.n_nodes} nodes do not resolve the Beta({problem.alpha:g}, "
                        f"{problem.alpha:g}) average (m moves by {quadrature.value:.1e} relative with "
                        f"{2 * problem.n_nodes}); the checks above are of the {problem.n_nodes}-node problem; "
                        "more --nodes for the Beta law itself")
    config = {"loss": NAME, **dataclasses.asdict(problem),
              "solver": dataclasses.asdict(solver_options(problem, js.weight.size))}
    numbers = {"etf_error": float(np.max(etf_errors[graded])) if m_1d > 0 else float("nan"),
               "etf_error_restarts": etf_errors, "m": m,
               "m_restarts": m_restarts, "m_1d": m_1d, "m_1d_2n": m_2n, "m_erm_1d": m_erm, "kappa": kappa,
               "kappa_1d": kappa_1d, "loss": loss, "F_min": F_min, "losses": sol.loss, "best": best,
               "graded_restarts": graded, "starts": list(js.starts),
               "clean_confidence": conf, "max_feature_rel_error": float(np.max(rel_err)),
               "trivial_threshold": joint_theory.trivial_threshold(C, nodes, qw), "nodes": nodes, "node_weights": qw,
               "seconds": time.perf_counter() - t0}
    arrays = {"W": W, "H": H, "h_theory": h_theory, "rel_error": rel_err, "c": js.c, "c_prime": js.c_prime,
              "lam": js.lam, "weight": js.weight, "W_restarts": js.W, "loss": sol.loss,
              "grad_norm": sol.grad_norm, "steps": sol.steps, "status": sol.status,
              "min_eigenvalue": sol.min_eigenvalue}
    return Report(NAME, config, headline, result_checks, conv, numbers, arrays)
