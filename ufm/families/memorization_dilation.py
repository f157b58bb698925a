"""Model 3, memorization-dilation (after Nguyen et al., ICLR 2023; our formalisation): ``md``.

Model 2 (nonnegative UFM with weight decay) on noisy labels with the hard coupling ``c_k = M_k - r D_k <= 0``
(limited expressivity). The constraints are handled by an augmented-Lagrangian outer loop around the shared solver:
each inner problem is solved to the rounding floor, the multipliers are updated ``nu <- max(0, nu + rho c)``, and
the loop stops when every restart's inner solve converged and its constraint residual

    V_k = max(c_k, -nu_k / rho)        (nu the multipliers the inner problem used)

is below ``tol`` relative to ``r D_k``. ``|V_k|`` is zero exactly when ``c_k <= 0``, ``nu_k >= 0`` and ``nu_k c_k = 0``
(feasibility and complementarity), and ``rho V = nu_new - nu`` (the multipliers have stopped moving). Without the
absolute value any strictly feasible ``c_k < 0`` passes however large ``nu_k`` is: the loop stopped with slack
coupling and a positive multiplier.

The end point is certified in (W, H): stationarity of ``f + sum_k nu_k c_k`` with H >= 0, feasibility,
complementarity (per class, the slack or the multiplier's share of the stationarity must vanish), nu >= 0. Where
the theory proves W = H = 0 optimal (``ufm.theory.nonnegative.zero_solution_optimal``), that known critical point
is the candidate: the coupling is not differentiable at H = 0 (D and M are norms), so it is evaluated, not a
solver start, and the restarts must not end below it.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ufm import metrics
from ufm.checks import Check
from ufm.checks import nonnegative as checks
from ufm.checks.convergence import status_counts
from ufm.families.nonnegative import accept_rounding_floor
from ufm.objectives.nonnegative import (DilationData, coupling, cross_entropy, dilation_memorization,
                                        model2_loss_squared, smoothed_targets)
from ufm.problems import InputError
from ufm.problems.nonnegative import MemorizationDilationProblem
from ufm.report import Report
from ufm.solver import CONVERGED, MAX_STEPS, SolverOptions, best_element, minimise, peak_bytes
from ufm.theory import nonnegative as theory

NAME = "md"
DESCRIPTION = "memorization-dilation: nonnegative UFM, label noise, coupling M_k <= r D_k (Model 3)"
FLAGS = {"alpha": "--ls-alpha", "lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
UNUSED_FLAGS: dict[str, set[str]] = {"md": set()}  # --r and --ls-alpha with --sweep r: refused in problem_from_args
# rtol 1e-11: the augmented terms carry gradients of size rho r |grad D|, which lifts the rounding floor of the
# relative gradient just above 1e-12 for r ~ 30 (measured 1.3e-12); the KKT check below is the certificate.
SOLVER = SolverOptions(rtol=1e-11, linear_solver="eigh", damping=1.0, quasi_newton_steps=2000,
                       quasi_newton_rtol=1e-9, max_steps=200, label="md")
SWEEP_R = (0.25, 0.5, 1.0, 2.0, 4.0)
SWEEP_ALPHAS = (0.0, 0.1, 0.3)
OUTER_STEPS = 40
AL_TOL = 1e-11          # constraint residual |V_k| / (r D_k) at which the outer loop stops
RHO_START, RHO_MAX = 10.0, 1e6  # beyond 1e6 the inner problems' conditioning ~ rho r^2 costs them their digits
PATIENCE = 5            # outer steps without progress (see solve) before the loop gives up
CERT_TOL = 1e-8         # feasibility, complementarity and KKT of the end point (relative)
OBJECTIVE_TOL = 1e-12   # the zero solution's value log K (exact) and the restarts' values against it


def add_arguments(parser) -> None:
    group = parser.add_argument_group("memorization-dilation (md)")
    group.add_argument("--C", type=int, default=3, help="classes K (>= 2)")
    group.add_argument("--n", type=int, default=10, help="samples per class (>= 3)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= K; default 2K)")
    group.add_argument("--noise", type=float, default=0.2, help="share of noisy labels per class, in [0, 1)")
    group.add_argument("--r", type=float, default=None, help="expressivity: M_k <= r D_k (> 0; default 1)")
    group.add_argument("--ls-alpha", type=float, default=None, dest="alpha",
                       help="label smoothing alpha in [0, 1) (default 0: CE)")
    group.add_argument("--lambda-W", type=float, default=5e-3, dest="lambda_W", help="weight decay of W (> 0)")
    group.add_argument("--lambda-H", type=float, default=5e-3, dest="lambda_H", help="weight decay of H (> 0)")
    group.add_argument("--restarts", type=int, default=3, help="seeded random restarts (>= 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the noisy labels and the restarts")
    group.add_argument("--sweep", choices=["r"], default=None,
                       help=f"sweep r over {SWEEP_R} for CE and LS alphas {SWEEP_ALPHAS[1:]} on the same data")


def problem_from_args(ns) -> MemorizationDilationProblem:
    if ns.sweep == "r":
        for field, value in (("r", ns.r), ("alpha", ns.alpha)):
            if value is not None:
                raise InputError(field, f"not used with --sweep r (the sweep sets r to {list(SWEEP_R)} and alpha to "
                                        f"{list(SWEEP_ALPHAS)})")
    return MemorizationDilationProblem(C=ns.C, n=ns.n, d=ns.d, noise=ns.noise, r=1.0 if ns.r is None else ns.r,
                                       alpha=0.0 if ns.alpha is None else ns.alpha, lambda_W=ns.lambda_W,
                                       lambda_H=ns.lambda_H, restarts=ns.restarts, seed=ns.seed)


def run_options(ns) -> dict:
    return {"sweep_r": ns.sweep == "r"}


def _peak_bytes(K: int, n: int, d: int, batch: int) -> int:
    """Peak bytes of one inner solve (the outer steps and sweep points run one after another), from sizes only.

    Variables per restart ``K d + d N``; the dense Hessian (``ufm.solver.peak_bytes``) and the forward-mode
    intermediates of forming it, one set per variable (matrix-free: a few sets): the d x N x K differences of every feature to every clean
    mean and their squares and roots (4 such arrays), the cross-entropy's ~8 K x N arrays, H = G*G and products."""
    N = K * n
    n_vars = K * d + d * N
    per_variable = 4 * d * N * K + 8 * K * N + 3 * d * N
    data = (3 * K * N + d * N * K) * 8
    report = 2 * batch * n_vars * 8
    return peak_bytes(n_vars, batch, SOLVER, data, per_variable * 8) + report


def memory_estimate(problem: MemorizationDilationProblem) -> tuple[int, str]:
    """Estimated peak bytes of ``run(problem)`` (one point or the r sweep) and the size field (C, n, d, restarts)
    whose reduction to its minimum (2, 3, C, 1) would shrink it most. Allocates nothing."""
    K, n, d, R = problem.C, problem.n, problem.d, problem.restarts
    at_minimum = {"C": _peak_bytes(2, n, d, R), "n": _peak_bytes(K, 3, d, R), "d": _peak_bytes(K, n, K, R),
                  "restarts": _peak_bytes(K, n, d, 1)}
    return _peak_bytes(K, n, d, R), min(at_minimum, key=at_minimum.get)


def _progress(name: str, total: int, quiet: bool):
    """A one-line text progress bar on stderr (``name [#####.....] 5/10  12.3 s``); returns its step function."""
    t0, done = time.perf_counter(), [0]
    total = max(total, 1)

    def draw() -> None:
        if quiet:
            return
        filled = int(20 * done[0] / total)
        print(f"\r{name:<24} [{'#' * filled}{'.' * (20 - filled)}] {done[0]}/{total} "
              f"{time.perf_counter() - t0:6.1f} s", end="\n" if done[0] >= total else "", file=sys.stderr, flush=True)

    def step() -> None:
        done[0] = min(done[0] + 1, total)
        draw()

    draw()
    return step


def _memberships(problem):
    onehot = np.eye(problem.C)[problem.true_labels]
    noisy = problem.noisy_mask[:, None]
    return jnp.asarray(onehot * ~noisy), jnp.asarray(onehot * noisy)


def zero_regime(problem: MemorizationDilationProblem) -> dict:
    """Whether the theory proves W = H = 0 optimal here (sufficient condition on the observed labels)."""
    counts = np.bincount(problem.labels, minlength=problem.C)
    return theory.zero_solution_optimal(counts, problem.N, problem.lambda_W, problem.lambda_H, problem.alpha)


def balance(problem: MemorizationDilationProblem) -> float:
    """``t = (lambda_H/lambda_W)^(1/4)``: ``(W, H) = (t W', H'/t)`` maps the problem with both weight decays
    ``sqrt(lambda_W lambda_H)`` onto the given one value for value (W H = W' H', and the coupling M_k <= r D_k is
    homogeneous in H, so feasibility and the multipliers are unchanged). The solve works on the balanced problem."""
    return (problem.lambda_H / problem.lambda_W) ** 0.25


@jax.jit
def _dilation_memorization(G, clean, noisy):
    """Per restart (leading axis of G): D_k and M_k of H = G*G."""
    return jax.vmap(lambda g: dilation_memorization(g**2, clean, noisy)[1:])(G)


_losses = jax.jit(jax.vmap(model2_loss_squared, in_axes=(0, None)))  # every restart's objective


def constraint_residual(c: np.ndarray, nu: np.ndarray, rho: float, scale: np.ndarray) -> np.ndarray:
    """Per restart ``max_k |max(c_k, -nu_k/rho)| / scale``: the augmented Lagrangian's KKT residual of ``c <= 0``
    (``nu`` the multipliers the inner problem used; ``scale`` = r max_k D_k, the constraint's own size).

    ``|max(c, -nu/rho)| = |min(-c, nu/rho)|`` vanishes iff c <= 0, nu >= 0 and nu c = 0, and ``rho max(c, -nu/rho)
    = max(0, nu + rho c) - nu`` is the change of the multipliers. Without the absolute value a slack constraint
    (c < 0) passes at any multiplier: ``max(-0.1, -nu/rho) = -0.1 <= tol`` even at nu = 1."""
    return np.max(np.abs(np.maximum(c, -nu / rho)), axis=-1) / scale


def next_penalty(rho: float, worst: float, previous: float, tol: float) -> float:
    """The penalty for the next outer step: x10 (at most RHO_MAX) while the constraint residual of the unfinished
    restarts (``worst``) is above ``tol`` and did not drop below a quarter of the previous one; else unchanged.
    Raising it where only the inner solves are unfinished worsens their conditioning (K = 2, n = 4, r = 0.01, weight
    decays 1e-15: rho reached 1e6 at a residual of 2e-14, and every inner solve stalled at 8e-8)."""
    return min(rho * 10.0, RHO_MAX) if tol < worst > 0.25 * previous else rho


def scaled_lagrangian(params: dict, args) -> jax.Array:
    """``f / s + (1/(2 rho)) sum_k [max(0, nu_k + rho c_k)^2 - nu_k^2]`` for ``args = (DilationData, s)``: Model 3's
    augmented Lagrangian (``ufm.objectives.nonnegative.model3_lagrangian``) with the objective in units of its
    own size s (multipliers and penalty in those units; the true multipliers are ``s nu``). Unscaled, a tiny
    objective (7.5e-6 at weight decays 1e-7) meets penalties rho (r D)^2 ~ 1e7 times its size and the solver's
    test ``||grad|| / max(1, |value|)`` against 1: every inner solve stalled at relative gradient ~4e-6."""
    data, scale = args
    shifted = jnp.maximum(0.0, data.multipliers + data.rho * coupling(params["G"] ** 2, data))
    return model2_loss_squared(params, data) / scale + jnp.sum(shifted**2 - data.multipliers**2) / (2 * data.rho)


def solve(problem: MemorizationDilationProblem, *, outer_steps: int = OUTER_STEPS, tol: float = AL_TOL,
          progress: bool = False) -> dict:
    """Augmented-Lagrangian solve of every restart; returns the best point's (W, H), multipliers and constraint
    values, and per restart: objective, status (CONVERGED only where the inner solve converged AND the constraint
    residual met ``tol``; else the inner status, or MAX_STEPS where the outer loop ran out) and residual. The best
    point is ``ufm.solver.best_element`` over the feasible restarts (an infeasible point may lie below the
    constrained optimum), or W = H = 0 where the theory proves it optimal and no restart ends below it."""
    clean, noisy = _memberships(problem)
    R, K, d, N = problem.restarts, problem.C, problem.d, problem.N
    rng = np.random.default_rng(problem.seed)
    params = {"W": jnp.asarray(rng.standard_normal((R, K, d))), "G": jnp.asarray(rng.uniform(0.5, 1.5, (R, d, N)))}
    t = balance(problem)
    both = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    nu = np.zeros((R, K))
    rho = RHO_START
    data = DilationData(smoothed_targets(jnp.asarray(problem.labels), K, problem.alpha), jnp.asarray(both),
                        jnp.asarray(both), clean, noisy, jnp.asarray(problem.r), jnp.asarray(nu), jnp.asarray(rho))
    axes = (DilationData(None, None, None, None, None, None, 0, None), None)
    measure = functools.partial(_dilation_memorization, clean=clean, noisy=noisy)
    loss = _losses
    previous, stale, done, units = np.inf, 0, np.zeros(R, bool), 1.0
    best_worst, best_grad, best_done = np.inf, np.inf, 0
    inner_steps = np.zeros(R, int)
    for step in range(outer_steps):
        inner = (data._replace(multipliers=jnp.asarray(nu), rho=jnp.asarray(rho)), jnp.asarray(units))
        sol = minimise(scaled_lagrangian, params, inner, args_axes=axes,
                       options=dataclasses.replace(SOLVER, progress=False))
        # inner solves stalled at the rounding floor of the augmented Lagrangian (as in ufm.families.nonnegative:
        # K = 2, n = 4, r = 0.01, weight decays 1e-15: relative gradients 1.2e-11 .. 6.6e-11 at rho = 1e3, no
        # negative curvature, every outer step) are accepted as converged and reported
        sol, floor = accept_rounding_floor(
            sol, scaled_lagrangian, None,
            lambda i, nu=nu, rho=rho: (data._replace(multipliers=jnp.asarray(nu[i]), rho=jnp.asarray(rho)),
                                       jnp.asarray(units)))
        params = sol.params
        inner_steps = inner_steps + sol.steps
        D, M = (np.asarray(a) for a in measure(params["G"]))
        c = M - problem.r * D
        scale = np.maximum(problem.r * D.max(axis=1), 1e-300)
        residual = constraint_residual(c, nu, rho, scale)
        nu = np.maximum(0.0, nu + rho * c)
        done = sol.converged & (residual <= tol)
        worst = float(np.max(np.where(done, 0.0, residual)))
        if progress:
            print(f"[md] outer {step:2d}  rho {rho:8.2e}  max residual {float(residual.max()):.3e}  finished "
                  f"{int(done.sum())}/{R}  inner rel grad {np.max(sol.rel_grad_norm):.2e}", file=sys.stderr, flush=True)
        if done.all():
            break
        if step == 0:
            # from here on the objective in units of its size after the first (penalised) solve: rescale the
            # multipliers to those units and restart the penalty (see scaled_lagrangian)
            f = np.asarray(loss(params, data))
            new_units = float(min(1.0, np.min(f[np.isfinite(f)], initial=1.0)))
            if new_units < 0.5:
                nu, units, rho, previous = nu * units / new_units, new_units, RHO_START, np.inf
                best_worst, best_grad = np.inf, np.inf
                continue
        # give up after PATIENCE outer steps in which no restart finished, the worst residual did not halve and the
        # inner solves' worst relative gradient did not halve (stuck: e.g. on a kink of the coupling)
        grad = float(np.max(np.where(done, 0.0, sol.rel_grad_norm)))
        moved = int(done.sum()) > best_done or worst < 0.5 * best_worst or grad < 0.5 * best_grad
        stale = 0 if moved else stale + 1
        best_worst, best_grad, best_done = min(best_worst, worst), min(best_grad, grad), max(best_done, int(done.sum()))
        if stale >= PATIENCE:
            break
        rho = next_penalty(rho, worst, previous, tol)
        previous = worst
    f = np.asarray(loss(params, data))
    nu = nu * units  # the multipliers of f itself
    status = np.where(done, CONVERGED, np.where(sol.converged, MAX_STEPS, sol.status))
    feasible = np.max(np.maximum(c, 0.0), axis=1) / scale <= CERT_TOL
    ranked = dataclasses.replace(sol, loss=np.where(feasible, f, np.inf) if feasible.any() else f, status=status)
    best = best_element(ranked)
    zero = zero_regime(problem)
    best_is_zero = bool(zero["zero"]) and not np.any(np.isfinite(f) & (f < zero["objective"] * (1 - OBJECTIVE_TOL)))
    # Model 3 is nonconvex with many KKT points close in value: the dilation of every converged restart shows how
    # far "the" answer depends on which of them the best restart found.
    restart_dilation = D.mean(axis=1)[done]
    if best_is_zero:
        W, H, multipliers, c_best = np.zeros((K, d)), np.zeros((d, N)), np.zeros(K), np.zeros(K)
        objective = float(model2_loss_squared({"W": jnp.zeros((K, d)), "G": jnp.zeros((d, N))}, data))
    else:
        W, H = t * np.asarray(params["W"][best]), np.asarray(params["G"][best]) ** 2 / t
        # back to (W, H): c is homogeneous of degree 1 in H, so c = c'/t and nu = t nu' (same nu c)
        multipliers, c_best, objective = t * nu[best], c[best] / t, float(f[best])
    return {"W": W, "H": H, "objective": objective, "multipliers": multipliers, "coupling": c_best,
            "solution": sol, "best": best, "best_is_zero": best_is_zero, "zero": zero, "status": status,
            "residual": residual, "outer_steps": step + 1, "rho": rho, "inner_steps": inner_steps,
            "violation": float(residual[best]), "rounding_floor": floor, "clean": np.asarray(clean), "noisy": np.asarray(noisy),
            "Q": np.asarray(data.Q), "restart_objectives": f, "restart_dilation": restart_dilation}


def measures(problem: MemorizationDilationProblem, W: np.ndarray, H: np.ndarray) -> dict:
    """Dilation and memorization raw and relative to the mean distance between clean class means; share of noisy
    labels fitted; NC1 of the clean features (float64, Sigma_B truncated to rank K-1, clamped at 0)."""
    clean, noisy = (np.asarray(a) for a in _memberships(problem))
    mu, D, M = (np.asarray(a) for a in dilation_memorization(jnp.asarray(H), jnp.asarray(clean), jnp.asarray(noisy)))
    K = problem.C
    dists = [np.linalg.norm(mu[:, k] - mu[:, l]) for k in range(K) for l in range(K) if k < l]
    spacing = float(np.mean(dists))
    mask = problem.noisy_mask
    fitted = float(np.mean(np.argmax(W @ H[:, mask], axis=0) == problem.labels[mask]))
    clean_idx = ~mask
    with np.errstate(divide="ignore", invalid="ignore"):  # spacing 0 at a collapsed point: reported as VOID
        D_rel, M_rel = D / spacing, M / spacing
    return {"D": D, "M": M, "mean_distance": spacing, "D_rel": D_rel, "M_rel": M_rel,
            "noisy_fitted": fitted, "NC1_clean": metrics.nc1(H[:, clean_idx].T, problem.true_labels[clean_idx], K)}


def _lagrangian_gradients(problem, out, with_coupling: bool):
    """Gradients in (W, H) of f and of each c_k (K x d x N) at the best point (f alone where ``with_coupling`` is
    False: the coupling is not differentiable where a D_k or a noisy distance vanishes)."""
    W, H = jnp.asarray(out["W"]), jnp.asarray(out["H"])
    clean, noisy, Q = jnp.asarray(out["clean"]), jnp.asarray(out["noisy"]), jnp.asarray(out["Q"])

    def f(W, H):
        return cross_entropy(W @ H, Q) + 0.5 * problem.lambda_W * jnp.sum(W**2) + 0.5 * problem.lambda_H * jnp.sum(H**2)

    gW, gH = (np.asarray(a) for a in jax.grad(f, argnums=(0, 1))(W, H))
    if not with_coupling:
        return gW, gH, np.zeros((problem.C,) + H.shape)

    def c(H):
        _, D, M = dilation_memorization(H, clean, noisy)
        return M - problem.r * D

    return gW, gH, np.asarray(jax.jacrev(c)(H))


def kkt(problem, out, with_coupling: bool = True) -> dict:
    """KKT residual of ``f + sum_k nu_k c_k`` with H >= 0 (``ufm.checks.nonnegative.kkt_residual``), and per class
    the complementarity ``min(|c_k| / (r D_k), nu_k ||grad c_k|| / g)`` (g the loss gradient's size, floored at its
    natural size (1 + max|W|)/N): zero where the constraint is active or its multiplier carries no share of the
    stationarity."""
    gW, gH, gc = _lagrangian_gradients(problem, out, with_coupling)
    nu = np.asarray(out["multipliers"]) if with_coupling else np.zeros(problem.C)
    W, H = np.asarray(out["W"]), np.asarray(out["H"])
    result = checks.kkt_residual(gW, W, gH + np.tensordot(nu, gc, axes=1), H, budgets=False)
    g = max(np.sqrt(np.sum(gW**2) + np.sum(gH**2)), (1.0 + np.abs(W).max()) / H.shape[1])
    share = nu * np.sqrt(np.sum(gc**2, axis=(1, 2))) / g
    result["share"] = share
    return result


def _undefined_at_zero(names, why):
    return [Check.undefined(name, why) for name in names]


FEASIBLE = "feasible: max_k (M_k - r D_k)_+ / (r D_k)"
COMPLEMENTARY = "complementarity: max_k min(|c_k| / (r D_k), nu_k share of stationarity)"
KKT = "KKT residual of f + sum nu_k c_k, H >= 0"
CONVERGED_NAME = "augmented Lagrangian converged at the best restart"
RESTARTS = f"restarts (converged: inner solve converged and constraint residual <= {AL_TOL:g})"


def solution_checks(problem, out) -> tuple[list[Check], dict]:
    sol, status, best = out["solution"], out["status"], out["best"]
    restarts = f"{RESTARTS}: {status_counts(status)}"
    objectives = np.sort(out["restart_objectives"])
    if out["best_is_zero"]:
        zero = out["zero"]
        why = (f"undefined at the optimum W = H = 0 (proved optimal: sqrt(lambda_W lambda_H) = {zero['sqrt_lambda']:.6g}"
               f" >= {zero['bound']:.6g}): D_k = M_k = 0, no class-mean distance, the coupling not differentiable")
        k = kkt(problem, out, with_coupling=False)
        finite = out["restart_objectives"][np.isfinite(out["restart_objectives"])]
        below = float(max(0.0, (zero["objective"] - finite.min()) / zero["objective"])) if finite.size else 0.0
        result = [
            Check("zero solution optimal: sqrt(lambda_W lambda_H) >= bound (sufficient condition)",
                  zero["bound"] / zero["sqrt_lambda"], None, "ufm.theory.nonnegative.zero_solution_optimal"),
            checks.relative("objective = log K at W = H = 0 (rel)", out["objective"], zero["objective"], OBJECTIVE_TOL),
            Check("no restart ends below the zero solution (rel)", below, OBJECTIVE_TOL,
                  f"{restarts}; objectives {np.array2string(objectives, precision=12)}"),
            Check("KKT residual of f at W = H = 0 (nu = 0), H >= 0", k["residual"], CERT_TOL,
                  "the constraints hold with M = D = 0; their multipliers are 0"),
            *_undefined_at_zero((FEASIBLE, COMPLEMENTARY, "dilation D (mean over classes)",
                                 "memorization M (mean over classes)", "restarts: spread of D over the converged ones",
                                 "share of noisy labels fitted", "NC1 of clean features"), why),
        ]
        return result, {"D": np.zeros(problem.C), "M": np.zeros(problem.C), "mean_distance": 0.0,
                        "D_rel": np.full(problem.C, np.nan), "M_rel": np.full(problem.C, np.nan), "noisy_fitted": np.nan,
                        "NC1_clean": np.nan, "kkt": k, "multipliers": out["multipliers"], "coupling": out["coupling"],
                        "outer_steps": out["outer_steps"]}
    meas = measures(problem, out["W"], out["H"])
    D, M, nu, c = meas["D"], meas["M"], out["multipliers"], out["coupling"]
    H = out["H"]
    collapsed = bool(np.any(D <= 1e-10 * max(1.0, float(np.abs(H).max()))))
    k = kkt(problem, out, with_coupling=not collapsed)
    why = ("undefined where a class's clean features have collapsed (D_k = 0 at the best point: M_k <= r D_k forces "
           "M_k = 0, and D, M are not differentiable there)")
    feasible = Check(FEASIBLE, float(np.max(np.maximum(c, 0) / (problem.r * D))) if not collapsed else np.nan, CERT_TOL)
    slack = np.abs(c) / (problem.r * D) if not collapsed else np.zeros_like(c)
    comp = np.minimum(slack, k["share"])
    complementary = Check(COMPLEMENTARY, float(comp.max()) if not collapsed else np.nan, CERT_TOL,
                          f"{int(np.sum(nu > 0))} of {problem.C} multipliers > 0, nu = {np.array2string(nu, precision=4)}"
                          f", slack {np.array2string(slack, precision=3)}")
    stationary = Check(KKT, k["residual"], CERT_TOL, f"support {k['support']} of {H.size} entries")
    spacing_ok = meas["mean_distance"] > 1e-10 * max(1.0, float(np.abs(H).max()))
    spread = out["restart_dilation"]
    result = [
        checks.converged(CONVERGED_NAME, status, sol.rel_grad_norm, best, SOLVER.rtol, RESTARTS,
                         f"; best constraint residual {float(out['residual'][best]):.2e}; outer steps "
                         f"{out['outer_steps']}, final rho {out['rho']:.0e}" + (
                             f"; {len(out['rounding_floor'])} last inner solve(s) stalled at the rounding floor of a "
                             "degenerate minimum, accepted (grad norm, f-resolvable gradient): " + ", ".join(
                                 f"restart {i} ({g:.1e}, {fl:.1e})" for i, (g, fl) in out["rounding_floor"].items())
                             if out["rounding_floor"] else "")),
        dataclasses.replace(feasible, void=why, detail=why) if collapsed else feasible,
        dataclasses.replace(complementary, void=why, detail=why) if collapsed else complementary,
        dataclasses.replace(stationary, void=why, detail=why) if collapsed else stationary,
        Check("multipliers nu_k >= 0 (min)", float(max(0.0, -nu.min())), 0.0),
        Check("dilation D (mean over classes)", float(D.mean()), None,
              f"relative {np.mean(meas['D_rel']):.6g}" if spacing_ok else "class means coincide: no relative value"),
        (Check("restarts: spread of D over the converged ones", float(np.ptp(spread)), None,
               f"{spread.size} converged; objectives " + np.array2string(objectives, precision=9)) if spread.size else
         Check.undefined("restarts: spread of D over the converged ones", "no restart converged")),
        Check("memorization M (mean over classes)", float(M.mean()), None,
              f"relative {np.mean(meas['M_rel']):.6g}" if spacing_ok else "class means coincide: no relative value"),
        Check("share of noisy labels fitted", meas["noisy_fitted"], None),
        Check("NC1 of clean features", meas["NC1_clean"], None) if spacing_ok else
        Check.undefined("NC1 of clean features", "the clean class means coincide (Sigma_B = 0)"),
    ]
    return result, {**meas, "kkt": k, "multipliers": nu, "coupling": c, "outer_steps": out["outer_steps"]}


def sweep(problem: MemorizationDilationProblem, *, r_values=SWEEP_R, alphas=SWEEP_ALPHAS, progress: bool = True):
    """Dilation vs memorization over r for CE (alpha = 0) and LS alphas, on identical data (same seed)."""
    step = _progress("md sweep", len(r_values) * len(alphas), quiet=not progress)
    rows, failures = [], []
    for alpha in alphas:
        for r in r_values:
            p = dataclasses.replace(problem, r=float(r), alpha=float(alpha))
            out = solve(p)
            result, meas = solution_checks(p, out)
            failures += [f"alpha={alpha:g} r={r:g}: {c.name} ({c.detail})" for c in result if not c.passed]
            sol, best = out["solution"], out["best"]
            spread = float(np.ptp(out["restart_dilation"])) if out["restart_dilation"].size else np.nan
            rows.append([alpha, r, meas["D"].mean(), meas["M"].mean(), np.mean(meas["D_rel"]), np.mean(meas["M_rel"]),
                         meas["noisy_fitted"], meas["NC1_clean"], out["objective"], sol.rel_grad_norm[best],
                         sol.grad_norm[best], out["inner_steps"][best], meas["kkt"]["residual"], out["outer_steps"],
                         spread, float(out["status"][best] == CONVERGED)])
            step()
    arr = np.array(rows, dtype=float)
    names = ("alpha", "r", "D", "M", "D_rel", "M_rel", "noisy_fitted", "NC1_clean", "objective", "rel_grad_norm",
             "grad_norm", "inner_steps", "kkt_residual", "outer_steps", "D_restart_spread", "converged")
    return {name: arr[:, i] for i, name in enumerate(names)}, failures


def run(problem: MemorizationDilationProblem, *, progress: bool = True, sweep_r: bool = False) -> Report:
    t0 = time.perf_counter()
    head = (f"ufm memorization-dilation (Model 3): K={problem.C} n={problem.n} ({problem.n_noisy} noisy per class) "
            f"d={problem.d} noise={problem.noise:g} lambda_W={problem.lambda_W:g} lambda_H={problem.lambda_H:g}")
    config = {"loss": NAME, **dataclasses.asdict(problem), "solver": dataclasses.asdict(SOLVER),
              "noisy_labels": "last round(noise n) samples of each class relabelled uniformly among the other classes "
                              "(seeded)",
              "constraint": f"augmented Lagrangian, nu <- max(0, nu + rho c), stop at max_k |max(c_k, -nu_k/rho)| / "
                            f"(r D_k) <= {AL_TOL:g}; rho from {RHO_START:g}, x10 while stalling, <= {RHO_MAX:g}",
              "balanced": "solved with both weight decays sqrt(lambda_W lambda_H), (W, H) = (t W', H'/t)"}
    if sweep_r:
        curve, failures = sweep(problem, progress=progress)
        config["sweep"] = {"r": list(SWEEP_R), "alphas": list(SWEEP_ALPHAS)}
        ce = curve["alpha"] == 0
        verdict = {}
        for key in ("D", "D_rel"):
            smaller = [bool(np.all(curve[key][curve["alpha"] == a] < curve[key][ce])) for a in SWEEP_ALPHAS[1:]]
            verdict[key] = smaller
        result = [Check("every sweep point feasible, coupled and KKT", float(len(failures)), 0.0,
                        "; ".join(failures[:5]) or "all points certified"),
                  Check("LS dilation < CE dilation at every r (raw), per alpha", float(all(verdict["D"])), None,
                        str(dict(zip(SWEEP_ALPHAS[1:], verdict["D"])))),
                  Check("LS dilation < CE dilation at every r (relative to class-mean distance)",
                        float(all(verdict["D_rel"])), None, str(dict(zip(SWEEP_ALPHAS[1:], verdict["D_rel"]))))]
        lines = [head, f"sweep over r = {list(SWEEP_R)}, alphas = {list(SWEEP_ALPHAS)} (0 = CE), identical data",
                 f"{'alpha':>6} {'r':>6} {'D':>10} {'M':>10} {'D/dist':>10} {'M/dist':>10} {'fitted':>7} "
                 f"{'objective':>17} {'KKT':>8} {'D spread':>9}"]
        lines += [f"{a:6g} {r:6g} {D:10.6f} {M:10.6f} {Dr:10.6f} {Mr:10.6f} {fit:7.2f} {obj:17.15f} {kkt_:8.1e} "
                  f"{spread:9.2e}"
                  for a, r, D, M, Dr, Mr, fit, obj, kkt_, spread in zip(*(curve[k] for k in (
                      "alpha", "r", "D", "M", "D_rel", "M_rel", "noisy_fitted", "objective", "kkt_residual",
                      "D_restart_spread")))]
        lines.append("(best of the converged restarts by objective; D spread = max - min of D over them: Model 3 "
                     "has many KKT points of nearly equal value)")
        # one line per sweep point: its best restart (inner solve and constraint residual both converged)
        converged = int(np.sum(curve["converged"]))
        conv = {"subproblems": len(curve["r"]), "converged": converged,
                "all_converged": converged == len(curve["r"]), "rtol": SOLVER.rtol,
                "max_rel_grad_norm": float(np.max(curve["rel_grad_norm"])),
                "max_grad_norm": float(np.max(curve["grad_norm"])),
                "max_steps_taken": int(np.max(curve["inner_steps"])),
                "mean_steps_taken": float(np.mean(curve["inner_steps"])),
                "failures": {} if not failures else {"sweep points failing a check": len(set(
                    f.split(":")[0] for f in failures))},
                "compile_seconds": 0.0, "solve_seconds": time.perf_counter() - t0}
        return Report(NAME, config, lines, result, conv, {"verdict": verdict, "seconds": time.perf_counter() - t0},
                      curve, "curve.npz")
    out = solve(problem, progress=progress)
    result, meas = solution_checks(problem, out)
    lines = [head, f"r = {problem.r:g}, alpha = {problem.alpha:g}; augmented Lagrangian: {out['outer_steps']} outer steps, "
                   f"final rho {out['rho']:.1e}" + ("; optimum W = H = 0 (proved)" if out["best_is_zero"] else ""),
             f"D_k = {np.array2string(meas['D'], precision=6)}  M_k = {np.array2string(meas['M'], precision=6)}  "
             f"mean class-mean distance {meas['mean_distance']:.6f}"]
    arrays = {"W": out["W"], "H": out["H"], "labels": problem.labels, "true_labels": problem.true_labels,
              "noisy_mask": problem.noisy_mask, "D": meas["D"], "M": meas["M"], "multipliers": out["multipliers"],
              "restart_objectives": out["restart_objectives"], "restart_status": out["status"]}
    numbers = {k: v for k, v in meas.items()}
    numbers.update({"objective": out["objective"], "best": out["best"], "best_is_zero": out["best_is_zero"],
                    "restart_status": out["status"], "restart_residual": out["residual"],
                    "seconds": time.perf_counter() - t0})
    conv = out["solution"].report()
    conv["failures"] = {**conv["failures"], **({"outer loop: constraint residual above tolerance": int(np.sum(
        (out["status"] == MAX_STEPS) & out["solution"].converged))} if np.any(
        (out["status"] == MAX_STEPS) & out["solution"].converged) else {})}
    if out["rounding_floor"]:
        conv["failures"]["stalled at f's rounding floor of a degenerate minimum (accepted as converged)"] = len(
            out["rounding_floor"])
    conv["converged"] = int(np.sum(out["status"] == CONVERGED))
    conv["all_converged"] = bool(np.all(out["status"] == CONVERGED))
    return Report(NAME, config, lines, result, conv, numbers, arrays, "solution.npz")
