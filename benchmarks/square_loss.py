"""Joint problem: the square-loss UFM with weight decay (seed 003), three ways to solve one instance.

    L(W, H) = 1/(2N) ||W H - Y||_F^2 + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2,   no bias,

K classes, n samples per class, N = K n, features of dimension d = K, one-hot Y (K x N): the package's
``ufm.objectives.square_loss.square_loss`` with one layer ``params = {"layers": [W], "H": H}`` and the family's
data (``ufm.families.square_loss.objective_data``). The accuracy measure is the relative objective gap
``(L - L*) / L*`` against the closed form (A1) of shared/theory/square_loss_wd.md,
``ufm.theory.square_loss.ufm_optimum(K, n, lambda_W, lambda_H, "none")``: ``rho = K sqrt(n lambda_W lambda_H)``,
``a = max(0, 1 - rho)``, ``L* = (1 - a)^2/2 + rho a``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from benchmarks import common
from ufm.families.square_loss import objective_data
from ufm.objectives.square_loss import square_loss
from ufm.problems.square_loss import SquareLossProblem
from ufm.solver import SolverOptions
from ufm.theory.square_loss import ufm_optimum


def instance(K: int, n: int, *, rho: float = 0.5, seed: int = 0) -> dict:
    """lambda_W = lambda_H = rho / (K sqrt(n)) (so every size sits at the same point, rho, of the phase diagram);
    starting point W, H with i.i.d. N(0, 1/d) entries, the same for every method."""
    d = K
    lam = rho / (K * np.sqrt(n))
    problem = SquareLossProblem(C=K, n=n, layers=1, model="ufm", act="linear", bias="none", lambda_W=lam,
                                lambda_H=lam, d=d, restarts=1, seed=seed)
    rng = np.random.default_rng(seed)
    W0, H0 = rng.standard_normal((K, d)) / np.sqrt(d), rng.standard_normal((d, K * n)) / np.sqrt(d)
    return {"K": K, "n": n, "d": d, "N": K * n, "lam_W": lam, "lam_H": lam, "rho": rho, "problem": problem,
            "Y": problem.targets(), "W0": W0, "H0": H0,
            "f_star": ufm_optimum(K, n, lam, lam, "none")["objective"], "n_vars": K * d + d * K * n}


def describe(inst: dict) -> dict:
    return {k: inst[k] for k in ("K", "n", "d", "N", "lam_W", "lam_H", "rho", "f_star", "n_vars")}


def start(inst: dict) -> dict:
    """The package's parameter pytree for the one-layer UFM at the seeded start."""
    return {"layers": [jnp.asarray(inst["W0"])], "H": jnp.asarray(inst["H0"])}


def solver_options(n_vars: int) -> SolverOptions:
    """L-BFGS phase to a relative gradient of 1e-6, then damped matrix-free CG Newton (saddle-aware: CG stops at
    negative curvature, damping 1.0 as for the package's joint problems). The dense saddle-free ``eigh`` polish
    is not used: on this machine one 1100 x 1100 eigendecomposition per step already costs more than the whole
    CG polish."""
    return SolverOptions(rtol=1e-11, linear_solver="cg", damping=1.0, max_steps=500, quasi_newton_steps=2000,
                         quasi_newton_rtol=1e-6, cg_max_steps=100, progress=False)


def run_ufm(inst: dict) -> dict:
    return common.ufm_gap(square_loss, start(inst), objective_data(inst["problem"]), inst["f_star"],
                          solver_options(inst["n_vars"]))


def run_scipy(inst: dict, maxiter: int) -> dict:
    """scipy L-BFGS-B on the flattened (W, H), numpy float64, its own objective and analytic gradient
    ``(R H^T / N + lambda_W W, W^T R / N + lambda_H H)`` with ``R = W H - Y``."""
    Y, lw, lh, K, d, N = inst["Y"], inst["lam_W"], inst["lam_H"], inst["K"], inst["d"], inst["N"]

    def fun_and_grad(x):
        W, H = x[: K * d].reshape(K, d), x[K * d:].reshape(d, N)
        R = W @ H - Y
        f = 0.5 * np.sum(R * R) / N + 0.5 * lw * np.sum(W * W) + 0.5 * lh * np.sum(H * H)
        return f, np.concatenate([(R @ H.T / N + lw * W).ravel(), (W.T @ R / N + lh * H).ravel()])

    x0 = np.concatenate([inst["W0"].ravel(), inst["H0"].ravel()])
    return common.scipy_lbfgsb_gap(fun_and_grad, x0, inst["f_star"], maxiter=maxiter)


def sgd_lr(inst: dict) -> float:
    """SGD (momentum 0.9) at lr = 0.3 K sqrt(n): the curvature of L at its minimiser scales as 1/(K sqrt(n))
    (tuned once on K = 10, n = 10 among 0.1, 0.3, 1, 3 times K sqrt(n), the largest that did not diverge:
    a favourable choice for the baseline); Adam runs at its default-in-papers lr 1e-3."""
    return 0.3 * inst["K"] * np.sqrt(inst["n"])


def run_optax(inst: dict, name: str, budget: int, check_every: int) -> dict:
    return common.optax_gap(square_loss, start(inst), objective_data(inst["problem"]), inst["f_star"], name,
                            sgd_lr(inst), budget, check_every)


def case(spec: dict) -> dict:
    inst = instance(spec["K"], spec["n"])
    results = common.joint_results(spec, lambda: run_ufm(inst), lambda maxiter: run_scipy(inst, maxiter),
                                   lambda name, budget, every: run_optax(inst, name, budget, every))
    return {"family": "square_loss_ufm", "instance": describe(inst), "accuracy": "relative objective gap vs (A1)",
            "results": results}
