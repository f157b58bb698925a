"""Nonnegative features, CE and label smoothing (Nguyen et al., ICLR 2023): ``nonneg-lpm`` (Model 1) and
``nonneg-ufm`` (Model 2).

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
from ufm.objectives.nonnegative import (MODEL2_BOUNDS, NonnegData, cross_entropy, model1_factors, model1_loss,
                                        model2_factors, model2_loss, smoothed_targets)
from ufm.problems.nonnegative import NonnegProblem
from ufm.report import Report
from ufm.solver import (CONVERGED, NEGATIVE_CURVATURE, STALLED, SolverOptions, best_element, extreme_eigenvalues,
                        minimise, peak_bytes)
from ufm.theory import nonnegative as theory

NAME = "nonneg"
DESCRIPTION = ("nonnegative features with CE / label smoothing: Model 1 (budgets), Model 2 (weight decay) "
               "(Nguyen et al.)")
VARIANTS = {"nonneg-lpm": "lpm", "nonneg-ufm": "ufm"}
FLAGS = {"alpha": "--ls-alpha", "E_W": "--E-W", "E_H": "--E-H", "lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
SOLVER = SolverOptions(rtol=1e-12, linear_solver="eigh", damping=1.0, quasi_newton_steps=3000,
                       quasi_newton_rtol=1e-9, max_steps=300, label="nonneg")
MAX_PASSES = 8
PASS_MARGIN = 8.0  # a pass divides by (smallest loss so far) / PASS_MARGIN: its test stays relative unless the loss
                   # falls PASS_MARGIN-fold within it
LOSSES = {"lpm": (model1_loss, model1_factors), "ufm": (model2_loss, model2_factors)}
# Model 2 keeps H >= 0 as a bound (projected Newton); Model 1 reparametrises H = G*G (its budgets normalise P).
BOUNDS = {"lpm": None, "ufm": MODEL2_BOUNDS}


# Flags of this family that a variant does not read (the CLI refuses them when given explicitly).
UNUSED_FLAGS = {"nonneg-lpm": {"lambda_W", "lambda_H"}, "nonneg-ufm": {"E_W", "E_H"}}


def _peak_bytes(K: int, n: int, d: int, batch: int) -> int:
    """Peak bytes of one solve (the passes run one after another) and the report's arrays, from sizes only.

    Variables per start ``K d + d N`` (N = K n); the dense Hessian (``ufm.solver.peak_bytes``) and the forward-mode
    intermediates of forming it, one set per variable (matrix-free: a few sets): the K x N logits and their ~7 elementwise companions in the
    cross-entropy, and H = G*G with its products (3 d x N). Measured: the default nonneg-ufm run (K = 10, n = 4,
    d = 20, 6 restarts) peaks at 465 MB resident above the interpreter with jax loaded; this gives 463 MB."""
    N = K * n
    n_vars = K * d + d * N
    tangent = (8 * K * N + 3 * d * N) * 8
    data = (2 * K * N + d * N) * 8
    report = 2 * batch * n_vars * 8  # restart_W, restart_H and the per-start (W, H) copies
    return peak_bytes(n_vars, batch, SOLVER, data, tangent) + report


def memory_estimate(problem: NonnegProblem) -> tuple[int, str]:
    """Estimated peak bytes of ``run(problem)`` and the field that drives it: the size field (C, n, d, restarts)
    whose reduction to its minimum (2, 1, C, 1) would shrink the estimate most. Allocates nothing."""
    K, n, d, R = problem.C, problem.n, problem.d, problem.restarts
    zero = int(zero_start(problem))
    total = _peak_bytes(K, n, d, R + zero)
    at_minimum = {"C": _peak_bytes(2, n, d, R + zero), "n": _peak_bytes(K, 1, d, R + zero),
                  "d": _peak_bytes(K, n, K, R + zero), "restarts": _peak_bytes(K, n, d, 1 + zero)}
    return total, min(at_minimum, key=at_minimum.get)


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
    """Seeded starts: Gaussian W (or V), and features well inside the orthant: G with entries in [0.5, 1.5]
    (Model 1, H = G*G), or H = G*G itself (Model 2: the same starting features)."""
    rng = np.random.default_rng(problem.seed)
    R, K, d, N = problem.restarts, problem.C, problem.d, problem.N
    first = "V" if model == "lpm" else "W"
    G = rng.uniform(0.5, 1.5, (R, d, N))
    return {first: jnp.asarray(rng.standard_normal((R, K, d))), **({"G": jnp.asarray(G)} if model == "lpm" else
                                                                  {"H": jnp.asarray(G * G)})}


def zero_start(problem: NonnegProblem) -> bool:
    """Whether the known critical point W = 0, H = 0 is added to the starts: where the theory says the zero
    solution is the optimum (Model 2 with gamma_alpha >= (K-1)/K), which random starts may approach only slowly
    (the loss is flat to second order along the directions that kill a class); the start itself is exact.
    Elsewhere it is a saddle, and random restarts suffice."""
    return problem.model == "ufm" and bool(theory_for(problem)["zero"])


def start_params(problem: NonnegProblem) -> dict:
    """The seeded random restarts, plus W = 0, H = 0 last where :func:`zero_start` holds."""
    params = random_params(problem, problem.model)
    if zero_start(problem):
        params = jax.tree.map(lambda a: jnp.concatenate([a, jnp.zeros_like(a[:1])]), params)
    return params


def batch_size(problem: NonnegProblem) -> int:
    """Starts solved: the restarts, plus the zero start where it applies."""
    return problem.restarts + int(zero_start(problem))


def theory_for(problem: NonnegProblem) -> dict:
    if problem.model == "lpm":
        return theory.model1_optimum(problem.C, problem.E_W, problem.E_H, problem.alpha)
    return theory.model2_optimum(problem.C, problem.n, problem.lambda_W, problem.lambda_H, problem.alpha)


def _scaled_model1_loss(params: dict, args) -> jax.Array:
    """``L / s`` plus the gauge ``(log ||V||^2)^2 / 2 + (log ||G*G||^2)^2 / 2``. Model 1's loss depends on V and P = G*G
    only through V/||V|| and P/||P||: their norms are two exact null directions of its Hessian, along which a damped
    Newton step divides the gradient's rounding noise by the shift (see FLOOR_RTOL); the gauge fixes them. It
    vanishes with its gradient at unit norms and leaves (W, H), the minimisers and the loss unchanged."""
    data, scale = args
    gauge = jnp.log(jnp.sum(params["V"] ** 2)) ** 2 + jnp.log(jnp.sum(params["G"] ** 4)) ** 2
    return model1_loss(params, data) / scale + 0.5 * gauge


def _scaled_model2_loss(params: dict, args) -> jax.Array:
    data, scale = args
    return model2_loss(params, data) / scale


SCALED = {"lpm": _scaled_model1_loss, "ufm": _scaled_model2_loss}
# every start's loss, compiled once per model and shape
EVALUATE = {model: jax.jit(jax.vmap(loss, in_axes=(0, None))) for model, (loss, _) in LOSSES.items()}


# Stalls at a degenerate minimum's rounding floor. H = G*G makes every off-support entry of G with a zero multiplier
# (an unused feature coordinate, d > K) a null direction of the Hessian, and the solver's Levenberg-Marquardt shift
# ~ ||g|| shrinks with the gradient while the rounding noise of g along those directions does not: near the floor a
# Newton step divides that noise by the shift (Model 1, K = 3, n = 1, d = 5, M_max = 50: components 1.8e-14 on
# eigenvalues 4e-11, shift 4.8e-10, a step of 3.6e-5 that raised the gradient 1e5-fold), f is flat to rounding, the
# "halve the gradient" rule fails and the restart ends STALLED at a relative gradient of ~1e-11 with its geometry
# right to 2e-14. As in ``ufm.families.mixup_deep``: a restart that STALLED without clearly negative curvature, with a
# gradient below the f-resolvable level ``sqrt(2 lambda_max delta_f)`` (delta_f = the solver's flat window
# ``FLAT_WINDOW eps max(1, |f|) sqrt(#vars)``) and a relative gradient <= FLOOR_RTOL is accepted as converged at the
# rounding floor, and reported as such. The closed-form checks grade it like any other point. (Model 1 with LS far
# beyond the budget condition, K = 4, alpha = 0.996, M_max = 50 = 3200 m*: its one restart stalled at 3.1e-9, the
# objective right to 1e-12 and the KKT residual within 1e-8.)
FLAT_WINDOW = 64
FLOOR_RTOL = 1e-8


def accept_rounding_floor(sol, fun, args, args_of=None) -> tuple:
    """``sol`` with every element that STALLED at its rounding floor (see FLOOR_RTOL) marked CONVERGED, and
    ``{element: (grad norm, f-resolvable gradient)}`` of those. ``args``: the objective's arguments, shared by the
    batch; or ``args_of(i)``: element i's (where some are batched)."""
    accepted = {}
    for i in np.flatnonzero((sol.status == STALLED) & (sol.rel_grad_norm <= FLOOR_RTOL)):
        params = jax.tree.map(lambda a, i=i: a[i], sol.params)
        lam_min, lam_max = extreme_eigenvalues(fun, params, args if args_of is None else args_of(int(i)), SOLVER)
        if lam_min < -NEGATIVE_CURVATURE * max(1.0, lam_max):
            continue
        n_vars = sum(np.size(a) for a in jax.tree.leaves(params))
        delta_f = FLAT_WINDOW * np.finfo(float).eps * max(1.0, abs(float(sol.loss[i]))) * np.sqrt(n_vars)
        floor = float(np.sqrt(2.0 * lam_max * delta_f))
        if sol.grad_norm[i] <= floor:
            accepted[int(i)] = (float(sol.grad_norm[i]), floor)
    status = sol.status.copy()
    status[list(accepted)] = CONVERGED
    return dataclasses.replace(sol, status=status), accepted


def solve(problem: NonnegProblem, *, progress: bool = False):
    """``(solution, [(W, H) per start], objective data)``: see :func:`solve_with_floor`."""
    return solve_with_floor(problem, progress=progress)[:3]


def solve_with_floor(problem: NonnegProblem, *, progress: bool = False):
    """Solve from :func:`start_params`; returns the solver's Solution (one element per start; ``loss`` is the
    model's objective, ``steps`` summed over the passes, the statuses after :func:`accept_rounding_floor`), each
    start's (W, H), the objective data and the accepted rounding-floor stalls.

    Passes of the same compiled solve on ``L / s``, each from the previous one's end points: the first with s = 1,
    the next with s = (smallest loss found) / PASS_MARGIN, repeated while a pass ends with a loss below its s (at
    most ``MAX_PASSES``). The solver's test ``||grad|| / max(1, |objective|) <= rtol`` is then ``||grad L|| /
    max(s, L) <= rtol``, i.e. ``||grad L|| / L <= rtol`` in the last pass: relative to the loss itself where it is tiny (CE at a large margin is ~ (K-1) e^{-M}: 5e-11 at
    M_max = 24.5, 1e-53 at M_max = 122), where a test against 1 passes at any point (at M_max = 122 every restart
    "converged" 70 % off the optimal margins; one rescaling from a start 1e19 times above the optimum is not
    enough at M_max = 367, hence the repeat). ``rel_grad_norm`` and the statuses are the last pass's."""
    _, factors = LOSSES[problem.model]
    fun = SCALED[problem.model]
    data = objective_data(problem)
    t = balance(problem)
    solved = data
    if problem.model == "ufm":  # the balanced problem: both weight decays sqrt(lambda_W lambda_H) (see balance)
        both = jnp.sqrt(data.lambda_W * data.lambda_H)
        solved = data._replace(lambda_W=both, lambda_H=both)
    options = dataclasses.replace(SOLVER, progress=progress)
    scale = 1.0
    bounds = BOUNDS[problem.model]
    sol = minimise(fun, start_params(problem), (solved, jnp.asarray(scale)), options=options, nonnegative=bounds)
    steps, compile_s, solve_s = sol.steps, sol.compile_seconds, sol.solve_seconds
    evaluate = EVALUATE[problem.model]
    for _ in range(MAX_PASSES - 1):
        values = np.asarray(evaluate(sol.params, solved))
        finite = values[np.isfinite(values)]
        lowest = float(finite.min()) if finite.size else 0.0
        if not 0.0 < lowest < scale:  # every loss >= s: the pass's test was relative to the loss already
            break
        scale = lowest / PASS_MARGIN
        sol = minimise(fun, sol.params, (solved, jnp.asarray(scale)), options=options, nonnegative=bounds)
        steps, compile_s, solve_s = steps + sol.steps, compile_s + sol.compile_seconds, solve_s + sol.solve_seconds
    sol, floor = accept_rounding_floor(sol, fun, (solved, jnp.asarray(scale)))
    loss = np.asarray(evaluate(sol.params, solved))
    sol = dataclasses.replace(sol, loss=loss, steps=steps, compile_seconds=compile_s, solve_seconds=solve_s)
    WH = []
    for i in range(sol.loss.size):
        W, H = (np.asarray(a) for a in factors(jax.tree.map(lambda x, i=i: x[i], sol.params), solved))
        WH.append((t * W, H / t))
    return sol, WH, data, floor


def balance(problem: NonnegProblem) -> float:
    """Model 2's exact rescaling symmetry: with ``t = (lambda_H/lambda_W)^(1/4)``, ``(W, H) = (t W', H'/t)`` maps
    the problem with both weight decays ``sqrt(lambda_W lambda_H)`` onto the given one, value for value (``W H =
    W' H'``, ``lambda_W t^2 = lambda_H / t^2 = sqrt(lambda_W lambda_H)``). The solve works on the balanced problem,
    whose factors are of one scale: at lambda_W/lambda_H = 1e15 the unbalanced one ran out of steps, 1.6 % above
    its optimum. Model 1: 1 (its budgets enter through normalisation only)."""
    return (problem.lambda_H / problem.lambda_W) ** 0.25 if problem.model == "ufm" else 1.0


def kkt(problem: NonnegProblem, W: np.ndarray, H: np.ndarray, data: NonnegData) -> dict:
    """KKT residual in the (W, H) variables (not the reparametrised ones)."""
    def f(W, H):
        base = cross_entropy(W @ H, data.Q)
        if problem.model == "ufm":
            base += 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)
        return base

    gW, gH = jax.grad(f, argnums=(0, 1))(jnp.asarray(W), jnp.asarray(H))
    return checks.kkt_residual(np.asarray(gW), W, np.asarray(gH), H, budgets=problem.model == "lpm")


def _geometry_checks(problem: NonnegProblem, W, H, g: dict, t: dict, graded) -> list[Check]:
    """Collapse, orthogonal means, their norms, margins, the classifier; K = 2: the decision boundary."""
    K, means = problem.C, g["means"]
    result = [
        Check("collapse: max ||h_i - mu_k|| / max ||mu_k||", g["within_class_spread"], graded),
        Check("class means orthogonal: max |cos|", g["max_abs_cos"], graded),
        checks.relative("||mu_k||^2 = closed form", g["mean_norm_sq"], t["mean_norm_sq"], graded),
        checks.relative("every margin = closed form", g["margins"], t["margin"], graded,
                        f"margins in [{g['margins'].min():.10g}, {g['margins'].max():.10g}]"),
    ]
    # a dead class (mu_k = 0) has no direction: floor the norms so that the check fails with a number, not NaN
    v = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-300)
    expected_W = t["classifier_scale"] * ((means - means.mean(axis=0)) if problem.model == "lpm" else (v - v.mean(axis=0)))
    err = float(np.linalg.norm(W - expected_W) / np.linalg.norm(expected_W))
    result.append(Check("classifier = simplex ETF of the centred means (rel)", err, graded))
    if K == 2:  # two orthogonal axes; the boundary (w_0 - w_1).h = 0 contains the diagonal mu_0/|mu_0| + mu_1/|mu_1|
        diff, diag = W[0] - W[1], v[0] + v[1]
        result.append(Check("K = 2: decision boundary on the diagonal (|cos|)",
                            float(abs(diff @ diag) / max(np.linalg.norm(diff) * np.linalg.norm(diag), 1e-300)), graded))
    return result


GEOMETRY_NAMES = ("collapse: max ||h_i - mu_k|| / max ||mu_k||", "class means orthogonal: max |cos|",
                  "||mu_k||^2 = closed form", "every margin = closed form",
                  "classifier = simplex ETF of the centred means (rel)")


def run(problem: NonnegProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    sol, WH, data, floor = solve_with_floor(problem, progress=progress)
    t = theory_for(problem)
    K, labels, R = problem.C, problem.labels, problem.restarts
    best = best_element(sol)
    W, H = WH[best]
    geo = [checks.geometry(w, h, labels, K) for w, h in WH]
    g = geo[best]
    k = kkt(problem, W, H, data)
    at_optimum = np.abs(sol.loss - t["objective"]) <= 1e-10 * abs(t["objective"])
    names = [f"restart {i}" if i < R else "zero start" for i in range(sol.loss.size)]
    spurious = [(names[i], float(sol.loss[i]), geo[i]["dead_classes"]) for i in range(sol.loss.size) if not at_optimum[i]]
    unique = t.get("unique", True)
    zero = t.get("zero", False)
    graded = checks.GEOMETRY_TOL if unique else None

    result = [
        checks.converged("solver converged at the best restart", sol.status, sol.rel_grad_norm, best, SOLVER.rtol,
                         f"{R} restarts" + (" + the zero start" if zero_start(problem) else ""),
                         "; last pass on L/s, s the smallest loss: ||grad L||/max(s, L) <= rtol"
                         + (f"; {len(floor)} stalled at the rounding floor of a degenerate minimum, accepted "
                            "(grad norm, f-resolvable gradient): " + ", ".join(
                                f"{names[i]} ({g:.1e}, {fl:.1e})" for i, (g, fl) in floor.items()) if floor else "")),
        checks.relative("objective = closed form (rel)", sol.loss[best], t["objective"], checks.OBJECTIVE_TOL,
                        f"solver {sol.loss[best]:.15g}, closed form {t['objective']:.15g} ({names[best]})"),
        Check("KKT residual (W, H >= 0" + (", budgets)" if problem.model == "lpm" else ")"), k["residual"], checks.KKT_TOL,
              f"support {k['support']} of {H.size} entries" + (f", nu_W {k['nu_W']:.6g}, nu_H {k['nu_H']:.6g}"
                                                                  if problem.model == "lpm" else "")),
        Check("H >= 0 exactly (min entry)", float(max(0.0, -H.min())), 0.0),
    ]
    if zero:
        why = (f"undefined at the optimum W = H = 0 (gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K): directions, "
               "cosines and ratios of zero vectors")
        result.append(Check("zero solution: ||W|| + ||H||", float(np.linalg.norm(W) + np.linalg.norm(H)),
                            checks.GEOMETRY_TOL, f"gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K"))
        result += [Check.undefined(name, why) for name in GEOMETRY_NAMES
                   + (("K = 2: decision boundary on the diagonal (|cos|)",) if K == 2 else ())]
    else:
        result += _geometry_checks(problem, W, H, g, t, graded)
    if not unique:
        optimal = [i for i in range(sol.loss.size) if at_optimum[i]]
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
                        "; ".join(f"{name}: loss {l:.10g}, {dc} dead class(es)" for name, l, dc in spurious)
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
    numbers = {"theory": t, "objective": float(sol.loss[best]), "best": best, "restart_losses": sol.loss,
               "restart_status": sol.status, "rounding_floor": floor, "dead_classes": [x["dead_classes"] for x in geo], "kkt": k,
               "seconds": time.perf_counter() - t0}
    config = {"loss": {"lpm": "nonneg-lpm", "ufm": "nonneg-ufm"}[problem.model], **dataclasses.asdict(problem),
              "solver": dataclasses.asdict(SOLVER), "zero_start": zero_start(problem),
              "feasibility": ("H = G*G elementwise; W, H scaled onto the budget spheres" if problem.model == "lpm"
                              else "H >= 0 as a bound (projected Newton)")}
    convergence = sol.report()
    if floor:  # reported beside the failures: converged, but only to f's rounding floor
        convergence["failures"]["stalled at f's rounding floor of a degenerate minimum (accepted as converged)"] = len(floor)
    arrays = {"W": W, "H": H, "labels": labels, "restart_losses": sol.loss,
              "restart_W": np.stack([w for w, _ in WH]), "restart_H": np.stack([h for _, h in WH])}
    return Report(config["loss"], config, [head, second], result, convergence, numbers, arrays, "solution.npz")
