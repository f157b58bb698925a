"""Joint problem: Model 2 of the nonnegative-features UFM (Nguyen et al., ICLR 2023), three ways to solve one instance.

    L(W, H) = (1/N) sum_i CE(W h_i, y_i) + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2,   H >= 0,  no bias,

K classes, n samples per class, N = K n, features of dimension d (the family's default 2K, or ``spec["d"]``),
one-hot targets (CE, label smoothing alpha = 0). Problem, data, start and closed form come from the family
(``ufm.families.nonnegative``: ``objective_data``, ``random_params`` scaled, ``theory_for``). Our solver runs exactly
what ``python -m ufm.solve --loss nonneg-ufm`` runs per restart (the first of the family's passes: the later ones
run only where a loss falls below 1, and L* > 1 here): the family's objective ``_scaled_model2_loss`` on the
balanced data (here lambda_W = lambda_H: the problem itself) at scale 1, with the family's
``solver_options(problem)`` (Model 2: saddle-free projected Newton without an L-BFGS phase, dense ``eigh`` up to
``dense_max_vars`` variables, matrix-free CG with a Lanczos curvature test above) and the family's feasibility:
``H >= 0`` as a bound of the solver on (W, H)
(``minimise(..., nonnegative=family.BOUNDS["ufm"])``, projected Newton), or, in a family without ``BOUNDS``, the
reparametrisation ``H = G * G``. The closed form ``ufm.theory.nonnegative.model2_optimum`` is recorded with every
case: with ``gamma = sqrt(lambda_W lambda_H n K (K-1))`` below the threshold (K-1)/K, ``L* = log(1 + (K-1)
e^{-m*}) + gamma m*`` at the margin ``m* = log((K-1)(1 - gamma)/gamma)``.

The three ways: ours as above; scipy L-BFGS-B with bounds ``H >= 0`` on (W, H) (its own numpy objective and
gradient: box constraints are what L-BFGS-B is for); optax on the package's objective in (W, G) with ``H = G * G``
(an unconstrained first-order loop needs the reparametrisation).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import Bounds

from ufm.families import nonnegative as family
from ufm.objectives import nonnegative as objectives
from ufm.problems.nonnegative import NonnegProblem

BOUNDS = getattr(family, "BOUNDS", {}).get("ufm")  # the family's H >= 0 bound (None: H = G * G in the family)
# (W, G) -> L with H = G * G, for the first-order loop
SQUARED_LOSS = getattr(objectives, "model2_loss_squared", None) if BOUNDS is not None else objectives.model2_loss

FAMILY = "nonnegative_ufm"
ACCURACY = "relative objective gap to the best objective any method reached (model2_optimum recorded)"
START_SCALE = 0.3  # G0 = 0.3 x the family's start (see instance)


def instance(spec: dict, *, ratio: float = 0.5, seed: int = 0) -> dict:
    """lambda_W = lambda_H = gamma / sqrt(n K (K-1)) with ``gamma = ratio (K-1)/K``: every size sits at the same
    fraction ``ratio`` of the zero-solution threshold gamma = (K-1)/K (true-class probability 1 - gamma at the
    optimum), below it (nonzero optimum).

    Start: the family's seeded ``random_params`` (one restart) with its features scaled by ``START_SCALE**2`` =
    0.09 (G = sqrt(H) by 0.3), the same point for every method. (Chosen with the family's earlier H = G * G
    parametrisation: unscaled, entries of H ~ 1, about 100 x the optimal ||h||^2 at n = 100, 3 of 4 seeds at
    K = 10, n = 100 took our solver to a spurious KKT point with dead classes; scaled, 8 of 8 seeds reached L*.)
    """
    K, n = int(spec["K"]), int(spec["n"])
    gamma = ratio * (K - 1) / K
    lam = gamma / np.sqrt(n * K * (K - 1))
    problem = NonnegProblem(
        C=K, n=n, d=spec.get("d"), model="ufm", alpha=0.0, lambda_W=lam, lambda_H=lam, restarts=1, seed=seed
    )
    raw = jax.tree.map(lambda a: np.asarray(a[0]), family.random_params(problem, "ufm"))
    G0 = START_SCALE * (raw["G"] if "G" in raw else np.sqrt(raw["H"]))
    W0 = raw["W"]
    t = family.theory_for(problem)
    K, d, N = problem.C, problem.d, problem.N
    return {
        "K": K,
        "n": n,
        "d": d,
        "N": N,
        "lam_W": lam,
        "lam_H": lam,
        "ratio": ratio,
        "gamma": t["gamma"],
        "margin": t["margin"],
        "f_star": t["objective"],
        "n_vars": K * d + d * N,
        "problem": problem,
        "W0": W0,
        "G0": G0,
    }


def describe(inst: dict) -> dict:
    return {k: inst[k] for k in ("K", "n", "d", "N", "lam_W", "lam_H", "ratio", "gamma", "margin", "f_star", "n_vars")}


def ufm_problem(inst: dict):
    """The family's objective, data, solver options and bounds, as ``ufm.families.nonnegative.solve_with_floor``'s
    first pass sets them up."""
    problem = inst["problem"]
    assert problem.lambda_W == problem.lambda_H  # the seeded start alone: a batch of one, no zero start
    options = family.solver_options(problem)
    data = family.objective_data(problem)
    both = jnp.sqrt(data.lambda_W * data.lambda_H)
    args = (data._replace(lambda_W=both, lambda_H=both), jnp.asarray(1.0))
    if BOUNDS is None:
        return family._scaled_model2_loss, _squared_start(inst), args, options
    start = {"W": jnp.asarray(inst["W0"]), "H": jnp.asarray(inst["G0"] ** 2)}
    return family._scaled_model2_loss, start, args, options, {"nonnegative": BOUNDS}


def _squared_start(inst: dict) -> dict:
    return {"W": jnp.asarray(inst["W0"]), "G": jnp.asarray(inst["G0"])}


def memory_estimate(inst: dict) -> int:
    """The family's own estimate of a run's peak bytes for this problem (one restart), which ``python -m ufm.solve``
    refuses beyond the memory budget (half the machine's memory)."""
    return int(family.memory_estimate(inst["problem"])[0])


def scipy_problem(inst: dict):
    """scipy L-BFGS-B on the flattened (W, H) with bounds H >= 0 (W free), numpy float64, its own objective and
    analytic gradient: with ``P = softmax(W H)`` (columns) and ``R = (P - Q)/N``, ``grad_W = R H^T + lambda_W W``
    and ``grad_H = W^T R + lambda_H H``. Starts at ``H0 = G0 * G0``."""
    Q = np.asarray(family.objective_data(inst["problem"]).Q)
    lw, lh, K, d, N = inst["lam_W"], inst["lam_H"], inst["K"], inst["d"], inst["N"]

    def fun_and_grad(x):
        W, H = x[: K * d].reshape(K, d), x[K * d :].reshape(d, N)
        Z = W @ H
        Z = Z - Z.max(axis=0)
        E = np.exp(Z)
        S = E.sum(axis=0)
        f = -np.sum(Q * (Z - np.log(S))) / N + 0.5 * lw * np.sum(W * W) + 0.5 * lh * np.sum(H * H)
        R = (E / S - Q) / N
        return f, np.concatenate([(R @ H.T + lw * W).ravel(), (W.T @ R + lh * H).ravel()])

    W0, G0 = inst["W0"], inst["G0"]
    lower = np.concatenate([np.full(K * d, -np.inf), np.zeros(d * N)])
    return fun_and_grad, np.concatenate([W0.ravel(), (G0 * G0).ravel()]), Bounds(lower, np.inf)


def sgd_lr(inst: dict) -> float:
    """SGD (momentum 0.9) at lr = 0.1 K sqrt(n), the scale of the inverse curvature at the minimiser (lambda ~
    1/(K sqrt(n)), as for the square loss); 0.1 was the fastest to a 1e-10 gap on K = n = 10 (d = 2K) among 0.1,
    0.3, 1, 3 times K sqrt(n) (0.3 also converged, more slowly; 1 and 3 diverged): a favourable choice for the
    baseline there; not re-tuned per size. Adam runs at its default-in-papers lr 1e-3."""
    return 0.1 * inst["K"] * np.sqrt(inst["n"])


def optax_problem(inst: dict):
    return SQUARED_LOSS, _squared_start(inst), family.objective_data(inst["problem"]), sgd_lr(inst)
