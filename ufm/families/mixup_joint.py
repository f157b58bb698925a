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

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ufm import driver
from ufm.algorithms.restarts import graded_restarts, with_zero_start
from ufm.checks import mixup_joint as checks
from ufm.estimate import driving_field
from ufm.etf import etf_gram_error
from ufm.family import Assessment, Family
from ufm.objectives.mixup_joint import JointData, JointParams, features, joint_mixup_loss
from ufm.problems import InputError
from ufm.problems.mixup_joint import MAX_NODES, MixupJointProblem, count_targets
from ufm.report import Report
from ufm.solver import STATUS_MESSAGES, SolverOptions, best_element, minimise, peak_bytes
from ufm.theory import mixup_joint as joint_theory
from ufm.theory.mixup_joint import reduced_multiplier

__all__ = ["best_element", "graded_restarts", "reduced_multiplier", "run", "solve", "start_kinds"]
NAME = "mixup-joint"
DESCRIPTION = "mixup cross-entropy, classifier AND features learned jointly: does the simplex ETF stay optimal?"
FLAGS = {"n_nodes": "--nodes"}
# Nonconvex (rotation symmetry: the Hessian is indefinite away from the optimum and singular at it): L-BFGS first,
# then saddle-free Newton: dense eigh while the Hessian is small, matrix-free Newton-CG with a Lanczos curvature
# test beyond (the solver's choice, ufm.solver.linear_algebra).
SOLVER = SolverOptions(
    rtol=checks.GRAD_TOL / 10,
    damping=1.0,
    quasi_newton_steps=300,
    quasi_newton_rtol=1e-6,
    max_steps=300,
    linear_solver="eigh",
    label="mixup-joint",
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup-joint")
    group.add_argument("--C", type=int, default=10, help="number of classes (>= 2)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    group.add_argument(
        "--alpha", type=float, default=1.0, help="lam ~ Beta(alpha, alpha) (in [1e-6, 1e6]); 0 means ERM (no mixup)"
    )
    group.add_argument(
        "--lam-W",
        type=float,
        default=5e-2,
        dest="lam_W",
        help="classifier weight decay (> 0; lam_W lam_H >= 1e-10, lam_W / lam_H in [1e-4, 1e4])",
    )
    group.add_argument(
        "--lam-H", type=float, default=5e-2, dest="lam_H", help="feature weight decay (> 0; see --lam-W)"
    )
    group.add_argument(
        "--nodes",
        type=int,
        default=None,
        dest="n_nodes",
        help=f"Gauss-Jacobi nodes for the Beta(alpha, alpha) average (1 .. {MAX_NODES}; default "
        f"{MixupJointProblem.n_nodes}; not with --alpha 0)",
    )
    group.add_argument("--restarts", type=int, default=3, help="seeded random starts, solved as one batch (>= 1)")
    group.add_argument(
        "--samples-per-target",
        type=int,
        default=1,
        dest="samples_per_target",
        help="feature variables per ordered (c, c', node); > 1 checks the collapse (default 1)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the random starts")


# One variant; --nodes does not apply to ERM (--alpha 0), which problem_from_args refuses.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def problem_from_args(ns) -> MixupJointProblem:
    if ns.n_nodes is not None and ns.alpha == 0:
        raise InputError("n_nodes", "does not apply to --alpha 0 (ERM: lam is 0 or 1, no quadrature)")
    n_nodes = MixupJointProblem.n_nodes if ns.n_nodes is None else ns.n_nodes
    return MixupJointProblem(
        C=ns.C,
        d=ns.d,
        alpha=ns.alpha,
        lam_W=ns.lam_W,
        lam_H=ns.lam_H,
        n_nodes=n_nodes,
        restarts=ns.restarts,
        samples_per_target=ns.samples_per_target,
        seed=ns.seed,
    )


def solver_options(problem: MixupJointProblem, n_targets: int | None = None) -> SolverOptions:
    return SOLVER


def start_kinds(problem: MixupJointProblem) -> tuple[str, ...]:
    """``problem.restarts`` seeded Gaussian starts, plus W = H = 0 where it is the global minimum (``lambda_W
    lambda_H >=`` the trivial threshold ``E||P y||^2 / (C-1)``, ``ufm.theory.mixup_joint.trivial_threshold``)."""
    zero = problem.lam_W * problem.lam_H >= joint_theory.trivial_threshold(problem.C, *problem.quadrature())
    return ("random",) * problem.restarts + (("zero",) if zero else ())


class JointSolve(NamedTuple):
    """The solve's context: every start's W (R x C x d) and features H (R x T x d), the targets (c, c', lam,
    weight, soft targets Y) and the kind of every start."""

    W: np.ndarray
    H: np.ndarray
    c: np.ndarray
    c_prime: np.ndarray
    lam: np.ndarray
    weight: np.ndarray
    Y: np.ndarray
    starts: tuple[str, ...]


def solve(problem: MixupJointProblem, options: SolverOptions):
    """Minimise the joint objective from :func:`start_kinds`'s starts as one batch (nothing of the ETF, of the
    theorem or of the collapse is imposed beyond one variable per target). Returns (Solution, JointSolve)."""
    c, c_prime, lam, weight = problem.targets()
    eye = np.eye(problem.C)
    Y = lam[:, None] * eye[c] + (1 - lam)[:, None] * eye[c_prime]
    data = JointData(jnp.asarray(Y), jnp.asarray(weight), jnp.asarray(problem.lam_W), jnp.asarray(problem.lam_H))
    rng = np.random.default_rng(problem.seed)
    starts = start_kinds(problem)
    R, T, d = problem.restarts, weight.size, problem.d
    W0 = rng.standard_normal((R, problem.C, d)) / np.sqrt(d)
    G0 = rng.standard_normal((R, T, d)) * np.sqrt(weight)[None, :, None] / np.sqrt(d)
    params0 = with_zero_start(JointParams(jnp.asarray(W0), jnp.asarray(G0)), "zero" in starts)
    sol = minimise(joint_mixup_loss, params0, data, options=options)
    H = np.stack(
        [np.asarray(features(JointParams(sol.params.W[r], sol.params.G[r]), data.weight)) for r in range(len(starts))]
    )
    return sol, JointSolve(np.asarray(sol.params.W), H, c, c_prime, lam, weight, Y, starts)


def memory_estimate(problem: MixupJointProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of :func:`run`, from the sizes only: the batched solve of every start
    (``ufm.solver.peak_bytes`` plus one evaluation's intermediates and one tangent of them per variable), the
    targets' construction (C^2 n ordered entries, several int arrays and np.unique) and the report's arrays."""

    def estimate(sz):
        C, d, n, R = sz["C"], sz["d"], sz["n"], sz["restarts"] + 1  # + the zero start
        T = count_targets(C, n, sz["samples_per_target"], problem.erm)
        solve = peak_bytes((C + T) * d, R, SOLVER, 8 * (3 * T * C + 2 * T * d), 8 * 2 * (4 * T * C + 2 * T * d))
        return solve + 8 * (12 * C * C * n + R * T * d + 8 * T * d + 6 * T * C + R * C * d)

    sizes = {
        "C": problem.C,
        "d": problem.d,
        "n": 2 if problem.erm else problem.n_nodes,
        "restarts": problem.restarts,
        "samples_per_target": problem.samples_per_target,
    }
    reference = {"C": 10, "d": sizes["C"], "restarts": 3, "samples_per_target": 1, **({} if problem.erm else {"n": 16})}
    field = driving_field(estimate, sizes, reference)
    return estimate(sizes), {"n": "n_nodes"}.get(field, field)


def assess(problem: MixupJointProblem, sol, best: int, js: JointSolve, options: SolverOptions) -> Assessment:
    C = problem.C
    gram = np.array([etf_gram_error(W) for W in js.W])
    etf_errors, m_restarts = gram[:, 0], gram[:, 1]
    graded = graded_restarts(sol, best)
    W, H, m, loss = js.W[best], js.H[best], float(m_restarts[best]), float(sol.loss[best])
    m_1d, kappa_1d, F_min = reduced_multiplier(problem)
    m_2n = reduced_multiplier(problem, 2 * problem.n_nodes)[0] if not problem.erm else m_1d
    m_erm = reduced_multiplier(problem, alpha=0.0)[0]
    optimum, at = checks.optimum_checks(
        problem, W, H, m, loss, etf_errors, graded, js[2:7], m_1d, F_min, STATUS_MESSAGES.get(int(sol.status[best]))
    )
    result = [checks.converged(sol, best, js.starts), checks.restart_spread(sol.loss[graded], js.starts), *optimum]
    quadrature = None if problem.erm else checks.quadrature_doubling(m_1d, m_2n, problem.n_nodes)
    result += [quadrature] if quadrature is not None else []
    result += [checks.collapse(H, js.Y)] if problem.samples_per_target > 1 else []
    nodes, qw = problem.quadrature()
    threshold = joint_theory.trivial_threshold(C, nodes, qw)
    mixing = "ERM (alpha = 0, no mixup)" if problem.erm else f"alpha={problem.alpha:g}, {nodes.size} Gauss-Jacobi nodes"
    headline = [
        f"ufm mixup-joint: C={C} d={problem.d} {mixing} lambda_W={problem.lam_W:g} lambda_H={problem.lam_H:g}  "
        f"{js.weight.size} feature variables, {problem.restarts} restarts"
        f"{' + W = H = 0' if 'zero' in js.starts else ''}; best: start {best} ({js.starts[best]})",
        (
            f"W = 0 optimal: ETF error undefined (W W^T ~ 0); m joint {m:.3g}, "
            if m_1d == 0.0
            else f"ETF error of W W^T {float(np.max(etf_errors[graded])):.2e} (worst graded restart); "
            f"m joint {m:.12g}, "
        )
        + f"1-D reduction {m_1d:.12g}"
        + ("" if problem.erm else f" ({2 * problem.n_nodes} nodes: {m_2n:.12g})")
        + f"; ERM m {m_erm:.12g}",
        f"kappa {at['kappa']:.10g}  clean-point confidence {at['conf']:.12g}  loss {loss:.15g}  min F {F_min:.15g}  "
        f"W = 0 optimal iff lambda_W lambda_H >= {threshold:.6g}",
    ]
    if quadrature is not None and quadrature.value > checks.QUADRATURE_TOL:
        headline.append(
            f"note: {problem.n_nodes} nodes do not resolve the Beta({problem.alpha:g}, "
            f"{problem.alpha:g}) average (m moves by {quadrature.value:.1e} relative with "
            f"{2 * problem.n_nodes}); the checks above are of the {problem.n_nodes}-node problem; "
            "more --nodes for the Beta law itself"
        )
    numbers = {
        "etf_error": float(np.max(etf_errors[graded])) if m_1d > 0 else float("nan"),
        "etf_error_restarts": etf_errors,
        "m": m,
        "m_restarts": m_restarts,
        "m_1d": m_1d,
        "m_1d_2n": m_2n,
        "m_erm_1d": m_erm,
        "kappa": at["kappa"],
        "kappa_1d": kappa_1d,
        "loss": loss,
        "F_min": F_min,
        "losses": sol.loss,
        "best": best,
        "graded_restarts": graded,
        "starts": list(js.starts),
        "clean_confidence": at["conf"],
        "max_feature_rel_error": float(np.max(at["rel_err"])),
        "trivial_threshold": threshold,
        "nodes": nodes,
        "node_weights": qw,
    }
    arrays = {
        "W": W,
        "H": H,
        "h_theory": at["h_theory"],
        "rel_error": at["rel_err"],
        "c": js.c,
        "c_prime": js.c_prime,
        "lam": js.lam,
        "weight": js.weight,
        "W_restarts": js.W,
        "loss": sol.loss,
        "grad_norm": sol.grad_norm,
        "steps": sol.steps,
        "status": sol.status,
        "min_eigenvalue": sol.min_eigenvalue,
    }
    return Assessment(headline, result, numbers, arrays, convergence={"starts": list(js.starts)})


FAMILY = Family(name=lambda problem: NAME, solver_options=solver_options, solve=solve, assess=assess)


def run(problem: MixupJointProblem, *, progress: bool = True) -> Report:
    return driver.run(FAMILY, problem, progress=progress)
