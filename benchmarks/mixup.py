"""Mixup CE with a fixed simplex ETF (Fisher, Meng, Papyan, ICLR 2024): three ways to solve the same
subproblems, side by side.

Every subproblem is ``min_h logsumexp(W h) - y^T W h + (mu/2)||h||^2`` (``ufm.objectives.mixup``) with
``y = lam e_c + (1-lam) e_c'``; the accuracy is the max over subproblems of ``||h - h*|| / ||h*||`` against
Theorem 3.1's closed form (``ufm.theory.mixup``), exactly as the package's mixup check computes it.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import common
from ufm.checks.mixup import relative_errors
from ufm.etf import simplex_etf
from ufm.objectives.mixup import MixupData, mixup_feature_loss, mixup_newton_system, soft_target
from ufm.solver import SolverOptions, minimise
from ufm.theory import mixup as theory


def instance(C: int, n_lambdas: int | None = None, lambdas=None, pairs="all", *, m=1.0, mu=1e-2, seed=0) -> dict:
    """The subproblems: ``pairs="all"`` (every ordered (c, c'), C^2) or an int k (all C same-class pairs plus k
    seeded different-class ordered pairs), times the lambda grid (``n_lambdas`` uniform on [0, 1] or ``lambdas``).
    d = C. The starting features are seeded N(0, 1/d), the same for every method."""
    lam_grid = np.linspace(0.0, 1.0, n_lambdas) if lambdas is None else np.asarray(lambdas, dtype=float)
    if pairs == "all":
        c, cp = np.meshgrid(np.arange(C), np.arange(C), indexing="ij")
        c, cp = c.ravel(), cp.ravel()
    else:
        rng = np.random.default_rng(seed + 1)
        codes = rng.choice(C * (C - 1), size=int(pairs), replace=False)  # different-class ordered pairs
        a, b = codes // (C - 1), codes % (C - 1)
        c = np.concatenate([np.arange(C), a])
        cp = np.concatenate([np.arange(C), np.where(b >= a, b + 1, b)])
    c, cp, lam = np.repeat(c, lam_grid.size), np.repeat(cp, lam_grid.size), np.tile(lam_grid, c.size)
    W = simplex_etf(C, C, m, seed)
    h_star = theory.optimal_features(W, m, mu, c, cp, lam)
    scale = (C - 1) * abs(theory.same_class_root(C, theory.kappa(C, m, mu))) / m
    h0 = np.random.default_rng(seed).standard_normal((c.size, C)) / np.sqrt(C)
    y = np.asarray(soft_target(C, c, cp, lam))
    return {
        "C": C,
        "d": C,
        "m": m,
        "mu": mu,
        "W": W,
        "c": c,
        "c_prime": cp,
        "lam": lam,
        "y": y,
        "h0": h0,
        "h_star": h_star,
        "scale": scale,
        "n": int(c.size),
        "n_lambdas": int(lam_grid.size),
        "n_pairs": int(c.size // lam_grid.size),
    }


def describe(inst: dict) -> dict:
    return {k: inst[k] for k in ("C", "d", "m", "mu", "n", "n_lambdas", "n_pairs")}


def solver_options(W: np.ndarray) -> tuple[SolverOptions, str]:
    """Dense Cholesky Newton for small d; beyond, the structured solve ``mixup_newton_system`` (Woodbury through
    the C x C Gram matrix of W, batched matrix products over subproblems; no d x d Hessian is ever formed)."""
    d = W.shape[1]
    if d <= 32:
        return SolverOptions(rtol=1e-12, max_steps=200, linear_solver="cholesky", progress=False), "cholesky Newton"
    return (
        SolverOptions(rtol=1e-12, max_steps=200, newton_system=mixup_newton_system(W), progress=False),
        "structured Newton: Woodbury via W W^T",
    )


def run_ufm(inst: dict) -> dict:
    data = MixupData(jnp.asarray(inst["W"]), jnp.asarray(inst["y"]), jnp.asarray(inst["mu"]))
    options, how = solver_options(inst["W"])
    sol = minimise(
        mixup_feature_loss, jnp.asarray(inst["h0"]), data, args_axes=MixupData(None, 0, None), options=options
    )
    err = float(np.max(relative_errors(np.asarray(sol.params), inst["h_star"], inst["scale"])))
    rep = sol.report()
    return {
        "method": f"ufm.solver ({how})",
        "compile_s": rep["compile_seconds"],
        "solve_s": rep["solve_seconds"],
        "iterations_max": rep["max_steps_taken"],
        "iterations_mean": rep["mean_steps_taken"],
        "final_error": err,
        "all_converged": rep["all_converged"],
        "time_to_tol": {f"{t:g}": rep["solve_seconds"] if err <= t else None for t in common.TOLERANCES},
    }


def run_scipy(inst: dict, max_subproblems: int | None, seed: int = 0) -> dict:
    """scipy L-BFGS-B per subproblem, numpy float64, analytic gradient ``W^T (softmax(Wh) - y) + mu h``.
    With ``max_subproblems`` below n, a seeded sample is solved and the times scaled by n / sample."""
    W, y, mu = inst["W"], inst["y"], inst["mu"]
    idx = np.arange(inst["n"])
    if max_subproblems is not None and max_subproblems < inst["n"]:
        idx = np.sort(np.random.default_rng(seed + 2).choice(inst["n"], max_subproblems, replace=False))

    def fun_and_grad(h, i):
        z = W @ h
        top = z.max()
        e = np.exp(z - top)
        s = e.sum()
        yi = y[idx[i]]
        return top + np.log(s) - yi @ z + 0.5 * mu * h @ h, W.T @ (e / s - yi) + mu * h

    def error_of(i, X):
        return relative_errors(X, inst["h_star"][idx[i]][None, :], inst["scale"])

    out = common.scipy_lbfgsb_loop(fun_and_grad, inst["h0"][idx], error_of)
    factor = inst["n"] / idx.size
    out["solve_s"] *= factor
    out["time_to_tol"] = {k: (v * factor if v is not None else None) for k, v in out["time_to_tol"].items()}
    out.update(method="scipy L-BFGS-B loop", subproblems_solved=int(idx.size), extrapolated=bool(idx.size < inst["n"]))
    return out


def run_optax(inst: dict, optimizer_name: str, budget: int, check_every: int) -> dict:
    """Full batch: the sum of all subproblems' losses (so each subproblem sees its own gradient), fixed lr."""
    optimizer = {"sgd-momentum": optax.sgd(0.1, momentum=0.9), "adam": optax.adam(1e-3)}[optimizer_name]
    data = MixupData(jnp.asarray(inst["W"]), jnp.asarray(inst["y"]), jnp.asarray(inst["mu"]))
    per_example = jax.vmap(mixup_feature_loss, in_axes=(0, MixupData(None, 0, None)))
    loss = lambda h, data: jnp.sum(per_example(h, data))
    error_of = lambda h: np.max(relative_errors(np.asarray(h), inst["h_star"], inst["scale"]))
    out = common.optax_full_batch(
        loss, jnp.asarray(inst["h0"]), data, error_of, optimizer=optimizer, budget=budget, check_every=check_every
    )
    lr = "lr 0.1, momentum 0.9" if optimizer_name == "sgd-momentum" else "lr 1e-3"
    out.update(method=f"optax {optimizer_name} ({lr}), full batch")
    return out


def optax_time_estimate(inst: dict, optimizer_name: str, budget: int, probe: int = 20) -> dict:
    """For instances where the full budget is out of reach: time ``probe`` steps, report the extrapolation."""
    out = run_optax(inst, optimizer_name, probe, probe)
    per_step = out["solve_s"] / probe
    return {
        "method": out["method"],
        "compile_s": out["compile_s"],
        "iterations_total": probe,
        "solve_s": None,
        "estimated_budget_s": per_step * budget,
        "final_error": out["final_error"],
        "time_to_tol": {f"{t:g}": None for t in common.TOLERANCES},
        "note": f"not run to its budget: {probe} steps took {out['solve_s']:.3g} s, so {budget} would take "
        f"~{per_step * budget:.3g} s",
    }


def case(spec: dict) -> dict:
    t0 = time.perf_counter()
    inst = instance(spec["C"], spec.get("n_lambdas"), spec.get("lambdas"), spec.get("pairs", "all"))
    setup_s = time.perf_counter() - t0
    results = [run_ufm(inst)]
    if spec.get("scipy", True):
        results.append(run_scipy(inst, spec.get("scipy_max")))
    for name in spec.get("optax", ["sgd-momentum"]):
        if spec.get("optax_estimate_only"):
            results.append(optax_time_estimate(inst, name, spec["budget"]))
        else:
            results.append(run_optax(inst, name, spec["budget"], spec["check_every"]))
    return {
        "family": "mixup",
        "instance": describe(inst),
        "setup_s": setup_s,
        "accuracy": "max_i ||h_i - h*_i|| / ||h*_i|| (Theorem 3.1)",
        "results": results,
    }
