"""Joint problem: mixup cross-entropy with the classifier learned jointly (``mixup-joint``), three ways to solve
one instance.

    L(W, G) = sum_t pi_t [logsumexp(W h_t) - y_t^T W h_t] + (mu/2) ||G||_F^2 + (lambda_W/2) ||W||_F^2,

``h_t = g_t / sqrt(pi_t)``, one feature variable per distinct soft target ``y_t = lam e_c + (1-lam) e_c'`` with its
probability pi_t (the family's ``MixupJointProblem.targets()``: C + C(C-1)/2 n_nodes targets, Gauss-Jacobi nodes
for lam ~ Beta(alpha, alpha)); ``ufm.objectives.mixup_joint.joint_mixup_loss``. Our solver runs exactly what
``python -m ufm.solve --loss mixup-joint`` runs per restart: that objective with the family's ``SOLVER``
(``solver_options``). No closed form is assumed (whether the simplex ETF stays optimal is what the family
asks); the reference is the best objective any method reached.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ufm.families import mixup_joint as family
from ufm.objectives.mixup_joint import JointData, JointParams, joint_mixup_loss
from ufm.problems.mixup_joint import MixupJointProblem

FAMILY = "mixup_joint"
ACCURACY = "relative objective gap to the best objective any method reached"


def instance(spec: dict, *, seed: int = 0) -> dict:
    """The family's defaults (alpha = 1, lambda_W = mu = 0.05, 16 nodes, d = C) at ``spec["C"]``; one seeded
    start as the family draws its first restart (W with N(0, 1/d) entries, g_t with N(0, pi_t / d))."""
    problem = MixupJointProblem(C=int(spec["C"]), d=spec.get("d"), restarts=1, seed=seed)
    c, c_prime, lam, weight = problem.targets()
    eye = np.eye(problem.C)
    Y = lam[:, None] * eye[c] + (1 - lam)[:, None] * eye[c_prime]
    rng = np.random.default_rng(seed)
    C, d, T = problem.C, problem.d, weight.size
    W0 = rng.standard_normal((1, C, d))[0] / np.sqrt(d)
    G0 = rng.standard_normal((1, T, d))[0] * np.sqrt(weight)[:, None] / np.sqrt(d)
    return {
        "C": C,
        "d": d,
        "T": T,
        "alpha": problem.alpha,
        "lambda_W": problem.lambda_W,
        "mu": problem.mu,
        "n_nodes": problem.n_nodes,
        "problem": problem,
        "Y": Y,
        "weight": weight,
        "W0": W0,
        "G0": G0,
        "f_star": None,
        "n_vars": (C + T) * d,
    }


def describe(inst: dict) -> dict:
    return {k: inst[k] for k in ("C", "d", "T", "alpha", "lambda_W", "mu", "n_nodes", "n_vars")}


def _data(inst: dict) -> JointData:
    return JointData(
        jnp.asarray(inst["Y"]), jnp.asarray(inst["weight"]), jnp.asarray(inst["lambda_W"]), jnp.asarray(inst["mu"])
    )


def _start(inst: dict) -> JointParams:
    return JointParams(jnp.asarray(inst["W0"]), jnp.asarray(inst["G0"]))


def ufm_problem(inst: dict):
    return joint_mixup_loss, _start(inst), _data(inst), family.solver_options(inst["problem"], inst["T"])


def memory_estimate(inst: dict) -> int:
    """The family's own estimate of a run's peak bytes for this problem (one restart), which ``python -m ufm.solve``
    refuses beyond the memory budget (half the machine's memory)."""
    return int(family.memory_estimate(inst["problem"])[0])


def scipy_problem(inst: dict):
    """scipy L-BFGS-B on the flattened (W, G), numpy float64, its own objective and analytic gradient: with
    ``H = G / sqrt(pi)``, ``Z = H W^T``, ``P = softmax(Z)`` (rows) and ``R = pi (P - Y)``: ``grad_W = R^T H +
    lambda_W W``, ``grad_G = (R W) / sqrt(pi) + mu G``."""
    Y, w, lw, lh = inst["Y"], inst["weight"], inst["lambda_W"], inst["mu"]
    C, d, T = inst["C"], inst["d"], inst["T"]
    root = np.sqrt(w)[:, None]

    def fun_and_grad(x):
        W, G = x[: C * d].reshape(C, d), x[C * d :].reshape(T, d)
        H = G / root
        Z = H @ W.T
        top = Z.max(axis=1, keepdims=True)
        E = np.exp(Z - top)
        S = E.sum(axis=1, keepdims=True)
        ce = top[:, 0] + np.log(S[:, 0]) - np.sum(Y * Z, axis=1)
        f = w @ ce + 0.5 * lh * np.sum(G * G) + 0.5 * lw * np.sum(W * W)
        R = w[:, None] * (E / S - Y)
        return f, np.concatenate([(R.T @ H + lw * W).ravel(), ((R @ W) / root + lh * G).ravel()])

    return fun_and_grad, np.concatenate([inst["W0"].ravel(), inst["G0"].ravel()]), None


def sgd_lr(inst: dict) -> float:
    """SGD (momentum 0.9) at lr 1, whatever C: in the g variables the feature block of the Hessian is
    ``mu I + ...`` whatever the number of targets. Tuned once on C = 10 among 0.1, 0.3, 1, 3, 10 (checked every
    50 steps): 1 was the fastest to a 1e-10 gap (3 about as fast, 10 diverged): a favourable choice for the
    baseline there; Adam runs at its default-in-papers lr 1e-3."""
    return 1.0


def optax_problem(inst: dict):
    return joint_mixup_loss, _start(inst), _data(inst), sgd_lr(inst)
