"""Joint problem: the square-loss UFM with weight decay (Rangamani & Banburski, ICASSP 2022), three ways to solve one
instance.

    L(W, H) = 1/(2N) ||W H - Y||_F^2 + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2,   no bias,

K classes, n samples per class, N = K n, features of dimension d = K, one-hot Y (K x N): the family ``mse``
(``ufm.families.square_loss``) with one layer, ``params = {"layers": [W], "H": H}``. Our solver runs exactly what
``python -m ufm.solve --loss mse`` runs per restart: the family's objective (``scaled_square_loss`` on the family's
data; at these decays its scale s is 1 and the balanced coordinates are the original ones, so it is L itself) and
the family's ``solver_options(problem)`` (``SOLVER``: L-BFGS phase, then saddle-free Newton, dense ``eigh`` up to
``dense_max_vars`` variables, matrix-free CG with a Lanczos curvature test above: ``ufm.solver.linear_algebra``).
The closed form (A1), ``ufm.theory.square_loss.ufm_optimum(K, n, lambda_W, lambda_H, "none")``: ``rho = K
sqrt(n lambda_W lambda_H)``, ``a = max(0, 1 - rho)``, ``L* = (1 - a)^2/2 + rho a``, is recorded with every case.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ufm.families import square_loss as family
from ufm.objectives import square_loss as objective
from ufm.objectives.square_loss import scaled_square_loss, square_loss
from ufm.problems.square_loss import SquareLossProblem
from ufm.theory.square_loss import ufm_optimum

FAMILY = "square_loss_ufm"
ACCURACY = "relative objective gap to the best objective any method reached (closed form (A1) recorded)"


def instance(spec: dict, *, rho: float = 0.5, seed: int = 0) -> dict:
    """lambda_W = lambda_H = rho / (K sqrt(n)) (so every size sits at the same point, rho, of the phase diagram);
    starting point W, H with i.i.d. N(0, 1/d) entries, the same for every method."""
    K, n = int(spec["K"]), int(spec["n"])
    d = K
    lam = rho / (K * np.sqrt(n))
    problem = SquareLossProblem(
        C=K,
        n=n,
        layers=1,
        model="ufm",
        activation="linear",
        bias="none",
        lambda_W=lam,
        lambda_H=lam,
        d=d,
        restarts=1,
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    W0, H0 = rng.standard_normal((K, d)) / np.sqrt(d), rng.standard_normal((d, K * n)) / np.sqrt(d)
    return {
        "K": K,
        "n": n,
        "d": d,
        "N": K * n,
        "lam_W": lam,
        "lam_H": lam,
        "rho": rho,
        "problem": problem,
        "Y": problem.targets(),
        "W0": W0,
        "H0": H0,
        "f_star": ufm_optimum(K, n, lam, lam, "none")["objective"],
        "n_vars": K * d + d * K * n,
    }


def describe(inst: dict) -> dict:
    return {k: inst[k] for k in ("K", "n", "d", "N", "lam_W", "lam_H", "rho", "f_star", "n_vars")}


def start(inst: dict) -> dict:
    """The package's parameter pytree for the one-layer UFM at the seeded start."""
    return {"layers": [jnp.asarray(inst["W0"])], "H": jnp.asarray(inst["H0"])}


def ufm_problem(inst: dict):
    """The family's objective, data and solver options, as ``ufm.objectives.square_loss.solve`` sets them up."""
    problem = inst["problem"]
    scale, bias = objective.objective_scale(problem), objective.bias_scale(problem)
    # at lambda_W = lambda_H, s = 1 and no bias the family's coordinates and objective are the original ones
    assert scale == 1.0 and bias == 1.0 and problem.lambda_W == problem.lambda_H
    args = (objective.objective_data(problem, balanced=True), jnp.asarray(scale), jnp.asarray(bias))
    return scaled_square_loss, objective.to_balanced(problem, start(inst)), args, objective.solver_options(problem)


def memory_estimate(inst: dict) -> int:
    """The family's own estimate of a run's peak bytes for this problem (one restart), which ``python -m ufm.solve``
    refuses beyond the memory budget (half the machine's memory)."""
    return int(family.memory_estimate(inst["problem"])[0])


def scipy_problem(inst: dict):
    """scipy L-BFGS-B on the flattened (W, H), numpy float64, its own objective and analytic gradient
    ``(R H^T / N + lambda_W W, W^T R / N + lambda_H H)`` with ``R = W H - Y``."""
    Y, lw, lh, K, d, N = inst["Y"], inst["lam_W"], inst["lam_H"], inst["K"], inst["d"], inst["N"]

    def fun_and_grad(x):
        W, H = x[: K * d].reshape(K, d), x[K * d :].reshape(d, N)
        R = W @ H - Y
        f = 0.5 * np.sum(R * R) / N + 0.5 * lw * np.sum(W * W) + 0.5 * lh * np.sum(H * H)
        return f, np.concatenate([(R @ H.T / N + lw * W).ravel(), (W.T @ R / N + lh * H).ravel()])

    return fun_and_grad, np.concatenate([inst["W0"].ravel(), inst["H0"].ravel()]), None


def sgd_lr(inst: dict) -> float:
    """SGD (momentum 0.9) at lr = 0.3 K sqrt(n): the curvature of L at its minimiser scales as 1/(K sqrt(n))
    (tuned once on K = 10, n = 10 among 0.1, 0.3, 1, 3 times K sqrt(n), the largest that did not diverge:
    a favourable choice for the baseline there; not re-tuned per size); Adam runs at its default-in-papers lr 1e-3."""
    return 0.3 * inst["K"] * np.sqrt(inst["n"])


def optax_problem(inst: dict):
    return square_loss, start(inst), objective.objective_data(inst["problem"]), sgd_lr(inst)
