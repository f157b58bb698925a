"""Cross-entropy UFM with weight decay (``ce``; Zhu, Ding, Zhou, Li, You, Sulam, Qu, NeurIPS 2021, Theorem 3.1).

The joint nonconvex problem over (W, H, b) from ``--restarts`` seeded Gaussian starts, one batch, saddle-free Newton
(dense eigh; an L-BFGS phase first above LBFGS_ABOVE variables), in balanced coordinates ``W sqrt(lambda_W /
Lambda)``, ``H sqrt(lambda_H / Lambda)`` (Lambda = sqrt(lambda_W lambda_H): the logits are unchanged and both
decays become Lambda). The best restart (``ufm.solver.best_element``) is checked against ``ufm.theory.ce``; the
closed-form point itself is evaluated (objective, gradient), and the critical point W = H = 0 (f = log K) is
compared with, not solved from: below the threshold it is a saddle that costs ~30 Newton steps to leave.
"""

from __future__ import annotations

import dataclasses
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from ufm.checks import ce as checks
from ufm.objectives.ce import CEData, ce_loss
from ufm.problems.ce import CEProblem
from ufm.report import Report
from ufm.solver import (
    STATUS_MESSAGES,
    SolverOptions,
    best_element,
    minimise,
    peak_bytes,
)
from ufm.theory import ce as theory

NAME = "ce"
DESCRIPTION = "cross-entropy UFM with weight decay: simplex ETF, NC1-NC3, trivial past K^2 n lambda_W lambda_H = 1"
FLAGS = {"lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}
SOLVER = SolverOptions(rtol=1e-12, linear_solver="eigh", damping=1.0, max_steps=200, quasi_newton_rtol=1e-9,
                       label="ce")
# Newton alone from random starts takes ~20-25 steps, each a dense Hessian and eigh per restart; L-BFGS first
# leaves 2-3: C = 4, n = 5 (96 variables) Newton alone 0.8 s + 4 s compilation, with L-BFGS 2 s + 7.5 s; C = 10,
# n = 2 (300 variables) Newton alone 12.6 s, with L-BFGS 2.9 s + 7 s.
LBFGS_ABOVE, LBFGS_STEPS = 200, 3000


def add_arguments(parser) -> None:
    group = parser.add_argument_group("cross-entropy UFM (ce)")
    group.add_argument("--C", type=int, default=4, dest="C", help="classes K (>= 2)")
    group.add_argument("--n", type=int, default=5, help="samples per class (>= 1)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    for flag, what in (("W", "classifier"), ("H", "feature")):
        group.add_argument(f"--lambda-{flag}", type=float, default=5e-3, dest=f"lambda_{flag}",
                           help=f"{what} weight decay (in [1e-9, 1e6])")
    group.add_argument("--bias", default="none", help="none, or a bias weight decay lambda_b in [1e-9, 1e3]")
    group.add_argument("--restarts", type=int, default=4, help="seeded random restarts (>= 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the restarts")


def problem_from_args(ns) -> CEProblem:
    return CEProblem(C=ns.C, n=ns.n, d=ns.d, lambda_W=ns.lambda_W, lambda_H=ns.lambda_H, bias=ns.bias,
                     restarts=ns.restarts, seed=ns.seed)


def objective_data(problem: CEProblem, balanced: bool = False) -> CEData:
    Lam = math.sqrt(problem.lambda_W * problem.lambda_H)
    lam_W, lam_H = (Lam, Lam) if balanced else (problem.lambda_W, problem.lambda_H)
    return CEData(*(jnp.asarray(a) for a in (problem.targets(), lam_W, lam_H, problem.lambda_b)))


def starts(problem: CEProblem) -> dict:
    """Balanced Gaussian starts: rows of W ~ n^(1/4), of H ~ n^(-1/4) (the optimum's ratio sqrt(n)), logits O(1)."""
    rng = np.random.default_rng(problem.seed)
    R, K, N, d = problem.restarts, problem.C, problem.N, problem.d
    params = {"W": rng.standard_normal((R, K, d)) * problem.n**0.25 / math.sqrt(d),
              "H": rng.standard_normal((R, N, d)) * problem.n**-0.25 / math.sqrt(d)}
    if problem.bias != "none":
        params["b"] = np.zeros((R, K))
    return jax.tree.map(jnp.asarray, params)


def memory_estimate(problem: CEProblem) -> tuple[int, str]:
    """Peak bytes (dense Hessians and their autodiff tangents per restart, the data) and the driving field."""
    def estimate(C, n, d, restarts):
        v, N = (C + C * n) * d + C, C * n
        return peak_bytes(v, restarts, SOLVER, 8 * 4 * N * (C + d)) + restarts * 8 * 2 * v * 2 * N * (C + d)
    sizes = {"C": problem.C, "n": problem.n, "d": problem.d, "restarts": problem.restarts}
    reduced = {f: estimate(**{**sizes, f: low, **({"d": low} if f == "C" else {})})
               for f, low in (("C", 2), ("n", 1), ("d", problem.C - 1), ("restarts", 1))}
    return estimate(**sizes), min(reduced, key=reduced.get)


@jax.jit
def _evaluate(found: dict, point: dict, data: CEData):
    """f at the solver's point; f, its gradient and the gradient of the CE part alone at the closed-form point."""
    fit = data._replace(lambda_W=jnp.zeros(()), lambda_H=jnp.zeros(()), lambda_b=jnp.zeros(()))
    return (ce_loss(found, data), *jax.value_and_grad(ce_loss)(point, data), jax.grad(ce_loss)(point, fit))


def run(problem: CEProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    options = dataclasses.replace(SOLVER, progress=progress,
                                  quasi_newton_steps=LBFGS_STEPS if problem.n_vars > LBFGS_ABOVE else 0)
    sol = minimise(ce_loss, starts(problem), objective_data(problem, balanced=True), options=options)
    best = best_element(sol)
    Lam = math.sqrt(problem.lambda_W * problem.lambda_H)  # balanced -> original coordinates
    W = np.asarray(sol.params["W"][best]) * math.sqrt(Lam / problem.lambda_W)
    H = np.asarray(sol.params["H"][best]) * math.sqrt(Lam / problem.lambda_H)
    b = np.asarray(sol.params["b"][best]) if "b" in sol.params else np.zeros(problem.C)
    t = theory.optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H)
    data = objective_data(problem)
    params = lambda W, H, b: jax.tree.map(jnp.asarray, {"W": W, "H": H, **({"b": b} if "b" in sol.params else {})})
    W0, H0, b0 = theory.optimal_point(problem.C, problem.n, problem.d, problem.lambda_W, problem.lambda_H,
                                      problem.seed)
    f, f_point, grad, grad_fit = _evaluate(params(W, H, b), params(W0, H0, b0), data)
    result, numbers = checks.solution_checks(problem, W, H, b, float(f), t, float(sol.grad_norm[best]))
    status = STATUS_MESSAGES[int(sol.status[best])]
    result.insert(0, checks.convergence_check(bool(sol.converged[best]), best, status, sol.rel_grad_norm[best],
                                              options.rtol))
    flat = lambda tree: np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(tree)])
    result += checks.closed_form_point_checks(float(f_point), flat(grad), flat(grad_fit), t, problem.N)
    result += checks.restart_checks(sol.loss, t, problem.C)
    numbers.update({"closed_form": {k: v for k, v in t.items() if k not in ("WWt", "MMt")},
                    "restart_losses": sol.loss, "restart_status": sol.status, "seconds": time.perf_counter() - t0})
    headline = [(f"ufm cross-entropy: C={problem.C} n={problem.n} d={problem.d} lambda_W={problem.lambda_W:g} "
                 f"lambda_H={problem.lambda_H:g} bias={problem.bias}"),
                (f"closed form: objective {t['objective']:.15g}  rho {t['rho']:.6g} (W = H = 0 iff >= 1)  t* "
                 f"{t['t']:.12g}  margin {t['margin']:.12g}" + ("  (W = H = 0)" if t["zero"] else "")),
                f"best restart {best}: objective {numbers['objective']:.15g}"]
    arrays = {"W": W, "H": H, "b": b, "logits": H @ W.T + b, "labels": problem.labels, "restart_losses": sol.loss,
              "W_theory": W0, "H_theory": H0}
    config = {"loss": NAME, **dataclasses.asdict(problem), "solver": dataclasses.asdict(options)}
    return Report(NAME, config, headline, result, sol.report(), numbers, arrays, "solution.npz")
