"""Mixup cross-entropy with classifier and features learned jointly (issue 9; Fisher et al.'s objective, W free)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ufm.algorithms import batched
from ufm.algorithms.batched import SolveRequest
from ufm.algorithms.restarts import with_zero_start
from ufm.estimate import driving_field
from ufm.problems import filled
from ufm.problems.mixup_joint import MixupJointProblem, count_targets
from ufm.solver import Solution, SolverOptions, peak_bytes
from ufm.theory import mixup_joint as joint_theory


class JointParams(NamedTuple):
    """Classifier W (C x d) and weight-scaled features G (T x d), ``g_t = sqrt(pi_t) h_t`` (see the loss)."""

    W: jax.Array
    G: jax.Array


class JointData(NamedTuple):
    """Soft targets Y (T x C), their probabilities pi (T,), summing to 1, and the two weight decays."""

    Y: jax.Array
    weight: jax.Array
    lambda_W: jax.Array
    mu: jax.Array


def features(params: JointParams, weight: jax.Array) -> jax.Array:
    """The features ``h_t = g_t / sqrt(pi_t)`` (T x d)."""
    return params.G / jnp.sqrt(weight)[:, None]


def joint_mixup_loss(params: JointParams, data: JointData) -> jax.Array:
    """``sum_t pi_t [logsumexp(W h_t) - y_t^T W h_t + (mu/2) ||h_t||^2] + (lambda_W/2) ||W||_F^2``.

    The mixup UFM objective ``E_pairs E_lam [CE_soft(W h, y) + (mu/2)||h||^2] + (lambda_W/2)||W||_F^2``
    (``ufm.theory.mixup_joint``) with the expectations as the finite sum over targets t with probabilities pi_t.
    The variables are ``g_t = sqrt(pi_t) h_t``: the same problem after a diagonal change of variables, so that the
    feature block of the Hessian is ``mu I + ...`` instead of ``pi_t mu I + ...`` whatever the number of
    targets, which keeps one gradient tolerance meaningful for every feature and CG's conditioning independent of
    T. (The gradient in h is ``sqrt(pi_t)`` times the gradient in g: a tolerance on the latter bounds the former.)
    """
    H = features(params, data.weight)
    Z = H @ params.W.T
    ce = jax.nn.logsumexp(Z, axis=-1) - jnp.sum(data.Y * Z, axis=-1)
    return (
        data.weight @ ce
        + 0.5 * data.mu * jnp.sum(params.G * params.G)
        + 0.5 * data.lambda_W * jnp.sum(params.W * params.W)
    )


GRAD_TOL = 1e-10  # the solver's target: absolute gradient norm (ufm.checks.mixup_joint)
# Nonconvex (rotation symmetry: the Hessian is indefinite away from the optimum and singular at it): L-BFGS first,
# then saddle-free Newton: dense eigh while the Hessian is small, matrix-free Newton-CG with a Lanczos curvature
# test beyond (the solver's choice, ufm.solver.linear_algebra).
SOLVER = SolverOptions(
    rtol=GRAD_TOL / 10,
    damping=1.0,
    quasi_newton_steps=300,
    quasi_newton_rtol=1e-6,
    max_steps=300,
    linear_solver="eigh",
    label="mixup-joint",
)


def start_kinds(problem: MixupJointProblem) -> tuple[str, ...]:
    """``problem.restarts`` seeded Gaussian starts, plus W = H = 0 where it is the global minimum (``lambda_W
    mu >=`` the trivial threshold ``E||P y||^2 / (C-1)``, ``ufm.theory.mixup_joint.trivial_threshold``)."""
    zero = problem.lambda_W * problem.mu >= joint_theory.trivial_threshold(problem.C, *problem.quadrature())
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


def _soft_targets(problem: MixupJointProblem):
    """``(c, c', lam, weight, Y)``: the problem's targets and their soft labels ``lam e_c + (1 - lam) e_c'``."""
    c, c_prime, lam, weight = problem.targets()
    eye = np.eye(problem.C)
    return c, c_prime, lam, weight, lam[:, None] * eye[c] + (1 - lam)[:, None] * eye[c_prime]


def solve_request(problem: MixupJointProblem, options: SolverOptions) -> SolveRequest:
    """The joint objective from :func:`start_kinds`'s starts as one batch (nothing of the ETF, of the theorem or of
    the collapse is imposed beyond one variable per target)."""
    _, _, _, weight, Y = _soft_targets(problem)
    data = JointData(jnp.asarray(Y), jnp.asarray(weight), jnp.asarray(problem.lambda_W), jnp.asarray(problem.mu))
    rng = np.random.default_rng(problem.seed)
    R, T, d = problem.restarts, weight.size, filled(problem.d, "d")
    W0 = rng.standard_normal((R, problem.C, d)) / np.sqrt(d)
    G0 = rng.standard_normal((R, T, d)) * np.sqrt(weight)[None, :, None] / np.sqrt(d)
    params0 = with_zero_start(JointParams(jnp.asarray(W0), jnp.asarray(G0)), "zero" in start_kinds(problem))
    return SolveRequest(joint_mixup_loss, params0, data, options)


def solve_result(problem: MixupJointProblem, _options: SolverOptions, sol: Solution) -> tuple[Solution, JointSolve]:
    """``(sol, JointSolve)``: every start's W and features H, and the targets, from the solver's solution of
    :func:`solve_request`."""
    c, c_prime, lam, weight, Y = _soft_targets(problem)
    starts = start_kinds(problem)
    weight_j = jnp.asarray(weight)
    H = np.stack(
        [np.asarray(features(JointParams(sol.params.W[r], sol.params.G[r]), weight_j)) for r in range(len(starts))]
    )
    return sol, JointSolve(np.asarray(sol.params.W), H, c, c_prime, lam, weight, Y, starts)


def solve(problem: MixupJointProblem, options: SolverOptions) -> tuple[Solution, JointSolve]:
    """Minimise the joint objective (:func:`solve_request`) and read the result back (:func:`solve_result`).
    Returns (Solution, JointSolve)."""
    return solve_result(problem, options, batched.solve(solve_request(problem, options)))


def memory_estimate(problem: MixupJointProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of the family's run (``ufm.families.mixup_joint``), from the sizes only: the
    batched solve of every start (``ufm.solver.peak_bytes`` plus one evaluation's intermediates and one tangent of
    them per variable), the targets' construction (C^2 n ordered entries, several int arrays and np.unique) and the
    report's arrays."""

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
