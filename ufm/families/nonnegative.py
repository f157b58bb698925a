"""Nonnegative features, CE and label smoothing (seed 002): ``nonneg-lpm`` (Model 1) and ``nonneg-ufm`` (Model 2).

W and H are optimised jointly (nothing of the closed form is assumed) from seeded restarts batched on the solver's
leading axis; H >= 0 and Model 1's budgets hold exactly at every iterate by reparametrisation (see
``ufm.objectives.nonnegative``). Restarts that end at spurious points (e.g. a dead class with h = 0) are counted
and reported with their loss.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from ufm.checks import Check
from ufm.checks import nonnegative as checks
from ufm.objectives.nonnegative import (NonnegData, cross_entropy, model1_factors, model1_loss, model2_factors,
                                        model2_loss, smoothed_targets)
from ufm.problems.nonnegative import NonnegProblem
from ufm.report import Report
from ufm.solver import SolverOptions, minimise
from ufm.theory import nonnegative as theory

NAME = "nonneg"
DESCRIPTION = "nonnegative features with CE / label smoothing: Model 1 (budgets), Model 2 (weight decay) (seed 002)"
VARIANTS = {"nonneg-lpm": "lpm", "nonneg-ufm": "ufm"}
FLAGS = {"alpha": "--ls-alpha", "E_W": "--E-W", "E_H": "--E-H", "lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
SOLVER = SolverOptions(rtol=1e-12, linear_solver="eigh", damping=1.0, quasi_newton_steps=3000,
                       quasi_newton_rtol=1e-9, max_steps=300, label="nonneg")
LOSSES = {"lpm": (model1_loss, model1_factors), "ufm": (model2_loss, model2_factors)}


def add_arguments(parser) -> None:
    group = parser.add_argument_group("nonnegative features (nonneg-lpm, nonneg-ufm)")
    group.add_argument("--C", type=int, default=10, help="classes K (>= 2)")
    group.add_argument("--n", type=int, default=4, help="samples per class (>= 1)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= K; default 2K)")
    group.add_argument("--ls-alpha", type=float, default=0.0, dest="alpha", help="label smoothing alpha in [0, 1)")
    group.add_argument("--E-W", type=float, default=1.0, dest="E_W", help="Model 1 classifier budget (> 0)")
    group.add_argument("--E-H", type=float, default=1.0, dest="E_H", help="Model 1 feature budget (> 0)")
    group.add_argument("--lambda-W", type=float, default=5e-3, dest="lambda_W", help="Model 2 weight decay of W (> 0)")
    group.add_argument("--lambda-H", type=float, default=5e-3, dest="lambda_H", help="Model 2 weight decay of H (> 0)")
    group.add_argument("--restarts", type=int, default=6, help="seeded random restarts (>= 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the restarts")


def problem_from_args(ns) -> NonnegProblem:
    return NonnegProblem(C=ns.C, n=ns.n, d=ns.d, model=VARIANTS[ns.loss], alpha=ns.alpha, E_W=ns.E_W, E_H=ns.E_H,
                         lambda_W=ns.lambda_W, lambda_H=ns.lambda_H, restarts=ns.restarts, seed=ns.seed)


def objective_data(problem, labels=None) -> NonnegData:
    labels = problem.labels if labels is None else labels
    return NonnegData(smoothed_targets(jnp.asarray(labels), problem.C, problem.alpha), jnp.asarray(problem.E_W),
                      jnp.asarray(problem.E_H), jnp.asarray(problem.lambda_W), jnp.asarray(problem.lambda_H))


def random_params(problem, model: str) -> dict:
    """Seeded starts: Gaussian W (or V), and G with |entries| ~ 1 so that H = G*G starts well inside the orthant."""
    rng = np.random.default_rng(problem.seed)
    R, K, d, N = problem.restarts, problem.C, problem.d, problem.N
    first = "V" if model == "lpm" else "W"
    return {first: jnp.asarray(rng.standard_normal((R, K, d))), "G": jnp.asarray(rng.uniform(0.5, 1.5, (R, d, N)))}


def theory_for(problem: NonnegProblem) -> dict:
    if problem.model == "lpm":
        return theory.model1_optimum(problem.C, problem.E_W, problem.E_H, problem.alpha)
    return theory.model2_optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H, problem.alpha)


def solve(problem: NonnegProblem, *, progress: bool = False):
    loss, factors = LOSSES[problem.model]
    data = objective_data(problem)
    sol = minimise(loss, random_params(problem, problem.model), data,
                   options=dataclasses.replace(SOLVER, progress=progress))
    WH = [tuple(np.asarray(a) for a in factors(jax.tree.map(lambda x, i=i: x[i], sol.params), data))
          for i in range(problem.restarts)]
    return sol, WH, data


def kkt(problem: NonnegProblem, W: np.ndarray, H: np.ndarray, data: NonnegData) -> dict:
    """KKT residual in the (W, H) variables (not the reparametrised ones)."""
    def f(W, H):
        base = cross_entropy(W @ H, data.Q)
        if problem.model == "ufm":
            base += 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)
        return base

    gW, gH = jax.grad(f, argnums=(0, 1))(jnp.asarray(W), jnp.asarray(H))
    return checks.kkt_residual(np.asarray(gW), W, np.asarray(gH), H, budgets=problem.model == "lpm")


def run(problem: NonnegProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    sol, WH, data = solve(problem, progress=progress)
    t = theory_for(problem)
    K, labels = problem.C, problem.labels
    losses = np.where(sol.converged, sol.loss, np.inf)
    best = int(np.argmin(losses)) if np.isfinite(losses).any() else int(np.argmin(sol.loss))
    W, H = WH[best]
    geo = [checks.geometry(w, h, labels, K) for w, h in WH]
    g = geo[best]
    k = kkt(problem, W, H, data)
    at_optimum = np.abs(sol.loss - t["objective"]) <= 1e-10 * abs(t["objective"])
    spurious = [(i, float(sol.loss[i]), geo[i]["dead_classes"]) for i in range(problem.restarts) if not at_optimum[i]]
    unique = t.get("unique", True)
    zero = t.get("zero", False)
    graded = checks.GEOMETRY_TOL if unique and not zero else None

    result = [
        Check("solver converged at the best restart (rel grad)",
              float(sol.rel_grad_norm[best]) if sol.converged[best] else float("inf"), SOLVER.rtol),
        checks.relative("objective = closed form (rel)", sol.loss[best], t["objective"], checks.OBJECTIVE_TOL,
                        f"solver {sol.loss[best]:.15g}, closed form {t['objective']:.15g}"),
        Check("KKT residual (W, H >= 0" + (", budgets)" if problem.model == "lpm" else ")"), k["residual"], checks.KKT_TOL,
              f"support {k['support']} of {H.size} entries" + (f", nu_W {k['nu_W']:.6g}, nu_H {k['nu_H']:.6g}"
                                                                  if problem.model == "lpm" else "")),
        Check("H >= 0 exactly (min entry)", float(max(0.0, -H.min())), 0.0),
    ]
    if zero:
        result.append(Check("zero solution: ||W|| + ||H||", float(np.linalg.norm(W) + np.linalg.norm(H)),
                            checks.GEOMETRY_TOL, f"gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K"))
    else:
        means = g["means"]
        result += [
            Check("collapse: max ||h_i - mu_k|| / max ||mu_k||", g["within_class_spread"], graded),
            Check("class means orthogonal: max |cos|", g["max_abs_cos"], graded),
            checks.relative("||mu_k||^2 = closed form", g["mean_norm_sq"], t["mean_norm_sq"], graded),
            checks.relative("every margin = closed form", g["margins"], t["margin"], graded,
                            f"margins in [{g['margins'].min():.10g}, {g['margins'].max():.10g}]"),
        ]
        if problem.model == "lpm":
            expected_W = t["classifier_scale"] * (means - means.mean(axis=0))
        else:
            v = means / np.linalg.norm(means, axis=1, keepdims=True)
            expected_W = t["classifier_scale"] * (v - v.mean(axis=0))
        err = float(np.linalg.norm(W - expected_W) / np.linalg.norm(expected_W))
        result.append(Check("classifier = simplex ETF of the centred means (rel)", err, graded))
        if K == 2:  # two orthogonal axes; the boundary (w_0 - w_1).h = 0 contains the diagonal mu_0/|mu_0| + mu_1/|mu_1|
            v = means / np.linalg.norm(means, axis=1, keepdims=True)
            diff, diag = W[0] - W[1], v[0] + v[1]
            result.append(Check("K = 2: decision boundary on the diagonal (|cos|)",
                                float(abs(diff @ diag) / (np.linalg.norm(diff) * np.linalg.norm(diag))), graded))
    if not unique:
        optimal = [i for i in range(problem.restarts) if at_optimum[i]]
        signatures = [np.sort(geo[i]["mean_norm_sq"]) for i in optimal]
        spreads = [geo[i]["within_class_spread"] for i in optimal]
        differ = len(optimal) >= 2 and (np.ptp(spreads) > 1e-6 or
                                        max(np.max(np.abs(s - signatures[0])) for s in signatures) > 1e-6)
        result.append(Check("LS with M_max > m*: minimisers not unique (restarts at the optimum with different "
                            "geometry)", float(differ), None,
                            f"{len(optimal)} restarts at the optimal value within 1e-10; "
                            + ("their geometry differs (collapse spreads "
                               f"{np.array2string(np.array(spreads), precision=3)})" if differ else
                               "geometry did not differ with these restarts")))
    result.append(Check("restarts at spurious points", float(len(spurious)), None,
                        "; ".join(f"restart {i}: loss {l:.10g}, {dc} dead class(es)" for i, l, dc in spurious)
                        or "none"))

    head = (f"ufm nonnegative {'Model 1 (budgets)' if problem.model == 'lpm' else 'Model 2 (weight decay)'}: "
            f"K={K} n={problem.n} d={problem.d} alpha={problem.alpha:g} "
            + (f"E_W={problem.E_W:g} E_H={problem.E_H:g}" if problem.model == "lpm" else
               f"lambda_W={problem.lambda_W:g} lambda_H={problem.lambda_H:g}"))
    if problem.model == "lpm":
        second = (f"closed form: L* = {t['objective']:.15g}, M_max = {t['M_max']:.12g}, m*_alpha = {t['m_star']:.6g}"
                  + ("" if unique else "  (M_max > m*: value = entropy of q, minimisers not unique)"))
    else:
        second = (f"closed form: objective = {t['objective']:.15g}, margin = {t['margin']:.12g}, "
                  f"gamma = {t['gamma']:.6g}, gamma_alpha = {t['gamma_alpha']:.6g}" + ("  (zero solution)" if zero else ""))
    numbers = {"theory": t, "objective": float(sol.loss[best]), "restart_losses": sol.loss,
               "dead_classes": [x["dead_classes"] for x in geo], "kkt": k, "seconds": time.perf_counter() - t0}
    config = {"loss": {"lpm": "nonneg-lpm", "ufm": "nonneg-ufm"}[problem.model], **dataclasses.asdict(problem),
              "solver": dataclasses.asdict(SOLVER),
              "feasibility": "H = G*G elementwise" + ("; W, H scaled onto the budget spheres" if problem.model == "lpm" else "")}
    arrays = {"W": W, "H": H, "labels": labels, "restart_losses": sol.loss,
              "restart_W": np.stack([w for w, _ in WH]), "restart_H": np.stack([h for _, h in WH])}
    return Report(config["loss"], config, [head, second], result, sol.report(), numbers, arrays, "solution.npz")
