"""Joint problem: the square-loss UFM with weight decay (seed 003), three ways to solve one instance.

    L(W, H) = 1/(2N) ||W H - Y||_F^2 + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2,   no bias,

K classes, n samples per class, N = K n, features of dimension d = K, one-hot Y (K x N). The accuracy measure is
the relative objective gap ``(L - L*) / L*`` against the closed form (A1) of shared/theory/square_loss_wd.md:
``rho = K sqrt(n lambda_W lambda_H)``, ``a = max(0, 1 - rho)``, ``L* = (1 - a)^2/2 + rho a``.

TEMPORARY HOME. The square-loss objective and its closed form are being added to the package on another branch
(issue 4). Until they land on main they are defined here, in exactly the package's shape (a pure
``loss(params, data)`` and a numpy-only closed form), so that switching is two imports:
``square_loss_ufm`` -> ``ufm.objectives.<square loss module>`` and ``optimal_objective`` -> ``ufm.theory...``.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from ufm.solver import SolverOptions, minimise

GAP_TOLERANCES = (1e-6, 1e-8, 1e-10)


class SquareLossData(NamedTuple):
    Y: jax.Array
    lam_W: jax.Array
    lam_H: jax.Array


def square_loss_ufm(params, data: SquareLossData) -> jax.Array:
    """``1/(2N)||W H - Y||^2 + (lam_W/2)||W||^2 + (lam_H/2)||H||^2`` (square_loss_wd.md, "Objective", no bias)."""
    W, H = params
    R = W @ H - data.Y
    return 0.5 * jnp.sum(R * R) / data.Y.shape[1] + 0.5 * data.lam_W * jnp.sum(W * W) + 0.5 * data.lam_H * jnp.sum(H * H)


def optimal_objective(K: int, n: int, lam_W: float, lam_H: float) -> float:
    """(A1): ``L* = (1-a)^2/2 + rho a``, ``rho = K sqrt(n lam_W lam_H)``, ``a = max(0, 1 - rho)`` (d >= K)."""
    rho = K * np.sqrt(n * lam_W * lam_H)
    a = max(0.0, 1.0 - rho)
    return (1 - a) ** 2 / 2 + rho * a


def instance(K: int, n: int, *, rho: float = 0.5, seed: int = 0) -> dict:
    """lambda_W = lambda_H = rho / (K sqrt(n)) (so every size sits at the same point, rho, of the phase diagram);
    starting point W, H with i.i.d. N(0, 1/d) entries, the same for every method."""
    d = K
    lam = rho / (K * np.sqrt(n))
    Y = np.repeat(np.eye(K), n, axis=1)
    rng = np.random.default_rng(seed)
    W0, H0 = rng.standard_normal((K, d)) / np.sqrt(d), rng.standard_normal((d, K * n)) / np.sqrt(d)
    return {"K": K, "n": n, "d": d, "N": K * n, "lam_W": lam, "lam_H": lam, "rho": rho, "Y": Y, "W0": W0, "H0": H0,
            "f_star": optimal_objective(K, n, lam, lam), "n_vars": K * d + d * K * n}


def describe(inst: dict) -> dict:
    return {k: inst[k] for k in ("K", "n", "d", "N", "lam_W", "lam_H", "rho", "f_star", "n_vars")}


def _data(inst):
    return SquareLossData(jnp.asarray(inst["Y"]), jnp.asarray(inst["lam_W"]), jnp.asarray(inst["lam_H"]))


def _gap(inst, f):
    return (float(f) - inst["f_star"]) / inst["f_star"]


def _hits(gap_total_s, gap):
    return {f"{t:g}": (gap_total_s if gap <= t else None) for t in GAP_TOLERANCES}


def solver_options(n_vars: int) -> SolverOptions:
    """L-BFGS phase to a relative gradient of 1e-6, then damped matrix-free CG Newton (saddle-aware: CG stops at
    negative curvature, damping 1.0 as for the package's joint problems). The dense saddle-free ``eigh`` polish
    is not used: on this machine one 1100 x 1100 eigendecomposition per step already costs more than the whole
    CG polish."""
    return SolverOptions(rtol=1e-11, linear_solver="cg", damping=1.0, max_steps=500, quasi_newton_steps=2000,
                         quasi_newton_rtol=1e-6, cg_max_steps=100, progress=False)


def run_ufm(inst: dict) -> dict:
    options = solver_options(inst["n_vars"])
    params0 = (jnp.asarray(inst["W0"])[None], jnp.asarray(inst["H0"])[None])
    sol = minimise(square_loss_ufm, params0, _data(inst), args_axes=None, options=options)
    rep = sol.report()
    W, H = (np.asarray(a[0]) for a in sol.params)
    gap = _gap(inst, square_loss_ufm((W, H), _data(inst)))
    qn = f" after <= {options.quasi_newton_steps} L-BFGS steps" if options.quasi_newton_steps else ""
    return {"method": f"ufm.solver ({options.linear_solver} Newton{qn})", "compile_s": rep["compile_seconds"],
            "solve_s": rep["solve_seconds"], "iterations_max": rep["max_steps_taken"], "final_error": gap,
            "all_converged": rep["all_converged"], "time_to_tol": _hits(rep["solve_seconds"], gap)}


def run_scipy(inst: dict, maxiter: int) -> dict:
    """scipy L-BFGS-B on the flattened (W, H), numpy float64, analytic gradient; the gap of every iterate is
    evaluated in the callback, outside the timed region."""
    from scipy.optimize import minimize

    Y, lw, lh, K, d, N = inst["Y"], inst["lam_W"], inst["lam_H"], inst["K"], inst["d"], inst["N"]

    def split(x):
        return x[: K * d].reshape(K, d), x[K * d:].reshape(d, N)

    def objective(W, H):
        R = W @ H - Y
        return 0.5 * np.sum(R * R) / N + 0.5 * lw * np.sum(W * W) + 0.5 * lh * np.sum(H * H), R

    def fun_and_grad(x):
        W, H = split(x)
        f, R = objective(W, H)
        return f, np.concatenate([(R @ H.T / N + lw * W).ravel(), (W.T @ R / N + lh * H).ravel()])

    stamps, gaps, overhead = [], [], [0.0]

    def record(xk):
        t_in = time.perf_counter()
        stamps.append(t_in - overhead[0])
        gaps.append(_gap(inst, objective(*split(xk))[0]))
        overhead[0] += time.perf_counter() - t_in

    x0 = np.concatenate([inst["W0"].ravel(), inst["H0"].ravel()])
    t0 = time.perf_counter()
    res = minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B", callback=record,
                   options={"ftol": 0.0, "gtol": 0.0, "maxiter": maxiter, "maxfun": 2 * maxiter})
    total = time.perf_counter() - overhead[0] - t0
    times = [s - t0 for s in stamps]
    final = _gap(inst, res.fun)
    return {"method": "scipy L-BFGS-B", "compile_s": 0.0, "solve_s": total, "iterations_total": int(res.nit),
            "final_error": final, "best_error": float(min(gaps + [final])), "stop": str(res.message),
            "time_to_tol": common.first_time_below(times + [total], gaps + [final], GAP_TOLERANCES)}


def optimizer_for(name: str, inst: dict):
    """SGD with momentum 0.9 at lr = 0.3 K sqrt(n): the curvature of L at its minimiser scales as 1/(K sqrt(n))
    (tuned once on K = 10, n = 10 among 0.1, 0.3, 1, 3 times K sqrt(n), the largest that did not diverge:
    a favourable choice for the baseline);
    Adam at its default-in-papers lr 1e-3."""
    if name == "sgd-momentum":
        lr = 0.3 * inst["K"] * np.sqrt(inst["n"])
        return optax.sgd(lr, momentum=0.9), f"lr {lr:.3g}, momentum 0.9"
    return optax.adam(1e-3), "lr 1e-3"


def run_optax(inst: dict, name: str, budget: int, check_every: int) -> dict:
    optimizer, desc = optimizer_for(name, inst)
    data = _data(inst)
    error_of = lambda p: _gap(inst, square_loss_ufm(p, data))
    out = common.optax_full_batch(square_loss_ufm, (jnp.asarray(inst["W0"]), jnp.asarray(inst["H0"])), data,
                                  error_of, optimizer=optimizer, budget=budget, check_every=check_every,
                                  tols=GAP_TOLERANCES)
    out.update(method=f"optax {name} ({desc}), full batch")
    return out


def case(spec: dict) -> dict:
    inst = instance(spec["K"], spec["n"])
    results = [run_ufm(inst)]
    if spec.get("scipy", True):
        results.append(run_scipy(inst, spec.get("scipy_maxiter", 20000)))
    for name in spec.get("optax", ["sgd-momentum", "adam"]):
        results.append(run_optax(inst, name, spec["budget"], spec["check_every"]))
    return {"family": "square_loss_ufm", "instance": describe(inst), "accuracy": "relative objective gap vs (A1)",
            "results": results}
