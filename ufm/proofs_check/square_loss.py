"""Certificates for the square loss with weight decay (Rangamani & Banburski, ICASSP 2022).

Objective (the paper's normalisation, :func:`ufm.objectives.square_loss.square_loss`):
``1/(2N) ||F - Y||_F^2 + sum over factors (lambda/2)||theta||_F^2 (+ (lambda_b/2)||b||^2)`` with K = C classes, n
samples per class, ``F = W_L ... W_1 H (+ b 1^T)`` (one-layer UFM: L = 1; deep linear UFM: m = L + 1 factors).

The closed forms are :mod:`ufm.theory.square_loss` ((A1) no bias, (A2) free bias, (A3) decayed bias; deep linear
``x* = argmin phi``), turned into a POINT (balanced factors of the optimal product) by
:func:`ufm.theory.square_loss.closed_form` and :func:`ufm.objectives.square_loss.closed_form_point`. Every
certificate evaluates the objective's JAX gradient and Hessian AT that point, in float64, with no solver.

Second order, and the symmetry: the joint problem is invariant under ``theta_j -> Q theta_j``,
``theta_{j+1} -> theta_{j+1} Q^T`` (Q orthogonal, one per junction of consecutive factors), so its minimisers
are never isolated and the Hessian at the closed form is singular along the orbit. The certificate builds the
orbit's tangent space at the point (``A theta_j``, ``-theta_{j+1} A`` for every skew A and junction), takes its
dimension (numerical rank), and reports (a) the full Hessian's smallest eigenvalue (PSD up to rounding), (b) the
number of near-zero eigenvalues, which must EQUAL the orbit dimension, and (c) the smallest eigenvalue of the
Hessian restricted to the orthogonal complement of the tangent space, which must be > 0. (b) and (c) together say
the critical set is a non-degenerate orbit (Morse-Bott): a strict local minimum up to the symmetry. The table's
"min Hess eig" is (c).

Every certificate takes its inputs (grid, closed-form function, formulas) as keyword arguments with defaults, so a
test can plant a wrong closed form through the same path and see the certificate fail.
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy import optimize

from ufm import metrics
from ufm.objectives import square_loss as objective
from ufm.objectives.square_loss import SquareLossData, forward, square_loss
from ufm.precision import float64
from ufm.problems.square_loss import SquareLossProblem
from ufm.proofs_check.certificate import EPS, Certificate, worst
from ufm.proofs_check.orbit import STRICT_TOL, orbit_checks, second_order
from ufm.solver import CONVERGED, SolverOptions, minimise
from ufm.theory import square_loss as theory

FAMILY = "square_loss"
DESCRIPTION = "square loss with weight decay: one-layer UFM (A1)-(A3), deep linear UFM, R-B relations (R-B 2022)"
SOURCE = "Rangamani, Banburski, ICASSP 2022; stated in ufm/theory/square_loss.py"

# Tolerances, and why.
GRAD_TOL = 64 * EPS  # ||grad f|| / (||grad of the fit term|| + ||grad of the decay term||): the two cancel at the
#                      optimum, so this is the cancellation error relative to the terms (a wrong closed form: >= 1e-3)
OBJECTIVE_TOL = 64 * EPS  # |f(point) - closed-form objective| / max(1, |f|): a sum of O(K n) rounded terms
ROUNDING = 64 * EPS  # restarts: (f(closed form) - f(end)) / max(1, |f|) <= this (no restart below the closed form)
RB_TOL = 1e-12  # relations evaluated at the closed-form point: rounding of sums over N samples (observed <= 1e-14)
RB_FAILS = 1e-2  # the paper's free-bias formula must MISS bias-free by at least this (relative); observed >= 0.29

RATIO = 4.0  # lambda_H / lambda_W: unbalanced decays exercise the balancing of the factors
SIZES = ((2, 3), (3, 2), (10, 1))  # (C, n): n = 1 (one sample per class) for C = 10
ONE_LAYER_RHOS = (0.02, 0.5, 0.95, 1.6)  # rho = K sqrt(n lambda_W lambda_H); threshold rho = 1 (W = H = 0 past it)
BIASES = ("none", "free", 0.5, 5.0)  # (A1), (A2), (A3) with g > 0 (lambda_b = 5) or g = 0 (lambda_b = 0.5) mostly
DEEP_BETA_RATIOS = (0.3, 0.9, 0.99, 1.1, 2.0)  # beta / beta_c(m); 1.1 lies where a nonzero LOCAL minimum still exists


def one_layer_problem(C: int, n: int, d: int, bias, rho: float, ratio: float = RATIO) -> SquareLossProblem:
    """One-layer UFM with ``K sqrt(n lambda_W lambda_H) = rho`` and ``lambda_H / lambda_W = ratio``."""
    s = rho / (C * math.sqrt(n))
    return SquareLossProblem(
        C=C, n=n, d=d, layers=1, bias=bias, lambda_W=s / math.sqrt(ratio), lambda_H=s * math.sqrt(ratio), restarts=1
    )


def deep_problem(C: int, n: int, d: int, layers: int, bias, beta_ratio: float) -> SquareLossProblem:
    """Deep linear UFM (m = layers + 1 factors) with ``beta = beta_ratio * beta_c(m)``; lambda_H = 2 Lambda and
    lambda_W = Lambda 2^{-1/L}, so the geometric mean of the decays is Lambda but the factors are unbalanced."""
    m = layers + 1
    Lam = beta_ratio * theory.deep_threshold(m) / (C * n ** (1.0 / m))
    return SquareLossProblem(
        C=C, n=n, d=d, layers=layers, bias=bias, lambda_W=Lam * 2.0 ** (-1.0 / layers), lambda_H=2 * Lam, restarts=1
    )


ONE_LAYER_GRID = tuple(
    one_layer_problem(C, n, d, bias, rho)
    for C, n in SIZES
    for d in (C, C + 2)
    for bias in BIASES
    for rho in ONE_LAYER_RHOS
)
DEEP_GRID = tuple(
    deep_problem(C, n, C + 1, layers, bias, r)
    for C, n in SIZES
    for layers in (2, 3)
    for bias in ("none", "free")
    for r in DEEP_BETA_RATIOS
)


# --------------------------------------------------------------------------------------------------------------
# Evaluation at a point: JAX derivatives, the symmetry orbit's tangent space, the spectrum
# --------------------------------------------------------------------------------------------------------------


@jax.jit
def _derivatives(params, data: SquareLossData):
    """Objective, gradient, gradient of the fit term alone, and Hessian, in the flattened parameters."""
    x, unravel = ravel_pytree(params)
    loss = lambda x, data: square_loss(unravel(x), data)
    fit_only = data._replace(
        lambda_layers=jnp.zeros_like(data.lambda_layers),
        lambda_H=jnp.zeros_like(data.lambda_H),
        lambda_b=jnp.zeros_like(data.lambda_b),
    )
    f, g = jax.value_and_grad(loss)(x, data)
    return f, g, jax.grad(loss)(x, fit_only), jax.hessian(loss)(x, data)


def _relative_gradient(g: np.ndarray, g_fit: np.ndarray, N: int) -> float:
    """``||g|| / (||g_fit|| + ||g - g_fit|| + ||Y||_F / N)``: the gradient against the sizes of the two terms that
    cancel at the optimum; ``||Y||_F / N = 1/sqrt(N)`` (the fit gradient in b at F = 0) is a floor for the zero
    solution, where both terms vanish and the bias gradient is a mean of O(1) residuals."""
    scale = float(np.linalg.norm(g_fit) + np.linalg.norm(g - g_fit)) + 1.0 / math.sqrt(N)
    return float(np.linalg.norm(g)) / scale


def symmetry_tangents(params: dict) -> np.ndarray:
    """Rows: tangent vectors at ``params`` of the orthogonal symmetry, in ``ravel_pytree(params)`` order.

    Factors in product order ``theta_1 = H, theta_2 = W_1, ..., theta_m = W_L``; at junction j the curve
    ``theta_j -> exp(tA) theta_j``, ``theta_{j+1} -> theta_{j+1} exp(-tA)`` leaves the product and every
    ``||theta||_F`` unchanged; its tangent is ``(A theta_j, -theta_{j+1} A)`` for every basis skew matrix A.
    """
    factors = [np.asarray(params["H"])] + [np.asarray(W) for W in params["layers"]]
    zeros = [np.zeros_like(f) for f in factors]
    rows = []
    for j in range(len(factors) - 1):
        d = factors[j].shape[0]
        for a in range(d):
            for b in range(a + 1, d):
                A = np.zeros((d, d))
                A[a, b], A[b, a] = 1.0, -1.0
                deltas = list(zeros)
                deltas[j] = A @ factors[j]
                deltas[j + 1] = -factors[j + 1] @ A
                tree = {"H": deltas[0], "layers": deltas[1:]}
                if "b" in params:
                    tree["b"] = np.zeros_like(np.asarray(params["b"]))
                rows.append(np.asarray(ravel_pytree(tree)[0]))
    return np.array(rows)


def zero_point(params: dict, data: SquareLossData) -> dict:
    """W = H = 0 with the bias that is optimal for zero factors: ``b = 1/(K (1 + lambda_b))`` (1/K when free)."""
    zero = jax.tree.map(jnp.zeros_like, params)
    if "b" in params:
        K = data.Y.shape[0]
        zero["b"] = jnp.full(K, 1.0 / (K * (1.0 + float(data.lambda_b))))
    return zero


def _bias_name(problem: SquareLossProblem) -> str:
    return problem.bias if problem.bias in ("none", "free") else f"decayed {problem.bias:g}"


def _instance(problem: SquareLossProblem, t: dict) -> dict:
    K, n, d = problem.C, problem.n, problem.d
    m = problem.layers + 1
    record: dict[str, object] = {
        "C": K,
        "n": n,
        "d": d,
        "m": m,
        "bias": _bias_name(problem),
        "lambda_W": problem.lambda_W,
        "lambda_H": problem.lambda_H,
    }
    exercises = []
    if m == 2:
        rho, _ = theory.ufm_shrinkage(K, n, problem.lambda_W, problem.lambda_H)
        record["rho"] = rho
        exercises.append(
            "rho < 1: nonzero soft-thresholded optimum" if rho < 1 else "rho >= 1: past the threshold, W = H = 0"
        )
        if problem.bias not in ("none", "free"):
            g, _ = theory.ufm_decayed_bias(K, n, problem.lambda_W, problem.lambda_H, float(problem.bias))
            record["g"] = g
            exercises.append(
                "(A3) decayed bias, g > 0: the all-ones mode is fitted"
                if g > 0
                else "(A3) decayed bias, g = 0: the bias alone carries the all-ones mode"
            )
    else:
        record.update(
            {"beta": t["beta"], "beta_c": t["beta_c"], "beta_over_beta_c": t["beta"] / t["beta_c"], "x_star": t["x"]}
        )
        exercises.append(
            "beta < beta_c: nonzero optimum x* > (m-2)/(m-1)"
            if t["x"] > 0
            else "beta >= beta_c: past the first-order jump, x* = 0"
        )
    exercises.append(
        "d = K: factors of full rank"
        if d == K
        else "d > K: rank-deficient factors (the orbit has a nontrivial stabiliser)"
    )
    if n == 1:
        exercises.append("n = 1: one sample per class")
    if K == 2:
        exercises.append("C = 2")
    record["exercises"] = exercises
    return record


def _hypotheses(problem: SquareLossProblem) -> dict:
    decays = list(problem.factor_decays) + ([float(problem.bias)] if problem.bias not in ("none", "free") else [])
    assert problem.d is not None  # the problem sets d = C when it is not given
    return {
        "d_minus_K": problem.d - problem.C,
        "min_weight_decay": float(min(decays)),
        "linear": problem.activation == "linear",
        "free_features": problem.model == "ufm",
    }


def _point(problem: SquareLossProblem, closed_form):
    t = closed_form(problem)
    return t, objective.closed_form_point(problem, t["Z"], t["b"]), objective.objective_data(problem)


def _optimality(problems, closed_form, theorem: str, statement: str, zero_is_saddle_below: bool) -> Certificate:
    t0 = time.perf_counter()
    instances, ids = [], []
    rel_grad, obj_err, tangent, hyp_d, hyp_decay = [], [], [], [], []
    spectra: list[dict] = []
    zero_min_rel, below_saddle = [], []
    min_eigs = []
    for problem in problems:
        t, point, data = _point(problem, closed_form)
        f, g, g_fit, hess = (np.asarray(a) for a in _derivatives(point, data))
        so = second_order(hess, symmetry_tangents(point))
        f_zero, _, _, hess_zero = (np.asarray(a) for a in _derivatives(zero_point(point, data), data))
        eig_zero = np.linalg.eigvalsh((hess_zero + hess_zero.T) / 2)
        record = _instance(problem, t)
        record["hypotheses"] = _hypotheses(problem)
        nonzero = bool(np.max(np.abs(np.asarray(t["Z"]))) > 0)
        record["numbers"] = {
            "objective_point": float(f),
            "objective_closed_form": float(t["objective"]),
            "rel_grad": _relative_gradient(g, g_fit, problem.N),
            "grad_norm": float(np.linalg.norm(g)),
            **so,
            "zero_point_objective": float(f_zero),
            "zero_point_min_hessian_eig": float(eig_zero[0]),
            "nonzero_optimum": nonzero,
        }
        instances.append(record)
        ids.append({k: record[k] for k in ("C", "n", "d", "m", "bias", "lambda_W", "lambda_H")})
        rel_grad.append(record["numbers"]["rel_grad"])
        obj_err.append(abs(float(f) - t["objective"]) / max(1.0, abs(float(f))))
        spectra.append(so)
        tangent.append(so["tangent_residual"])
        min_eigs.append(so["min_eig_complement"])
        hyp_d.append(record["hypotheses"]["d_minus_K"])
        hyp_decay.append(record["hypotheses"]["min_weight_decay"])
        zero_min_rel.append(eig_zero[0] / max(float(np.max(np.abs(eig_zero))), 1e-300))
        # which side of rho = 1 the INSTANCE is on (a hypothesis, independent of the closed form under test)
        below_saddle.append(
            problem.layers == 1
            and theory.ufm_shrinkage(problem.C, problem.n, problem.lambda_W, problem.lambda_H)[0] < 1
        )
    measurements = [
        worst(
            rel_grad,
            ids,
            "first order: ||grad f|| / (||grad fit|| + ||grad decay|| + 1/sqrt(N)) at the point",
            GRAD_TOL,
            note="JAX gradient of ufm.objectives.square_loss.square_loss, float64, no solver",
        ),
        worst(obj_err, ids, "objective at the point = closed-form objective, |diff| / max(1, |f|)", OBJECTIVE_TOL),
        *orbit_checks(spectra, ids, orbit="symmetry orbit", symmetry="the orthogonal symmetry"),
        worst(tangent, ids, "orbit tangents are null: max ||Hess t|| / largest eigenvalue (t orthonormal)", 1e-12),
        worst(hyp_d, ids, "hypothesis: d - K >= 0", 0, sense=">="),
        worst(hyp_decay, ids, "hypothesis: every weight decay > 0 (smallest)", 0.0, sense=">="),
    ]
    if zero_is_saddle_below:
        sad = [z for z, nz in zip(zero_min_rel, below_saddle) if nz]
        sad_ids = [i for i, nz in zip(ids, below_saddle) if nz]
        past = [z for z, nz in zip(zero_min_rel, below_saddle) if not nz]
        past_ids = [i for i, nz in zip(ids, below_saddle) if not nz]
        if sad:
            measurements.append(
                worst(
                    sad,
                    sad_ids,
                    "rho < 1: zero point is a saddle: largest (min eig / max |eig|) there",
                    -STRICT_TOL,
                    note="below the threshold W = H = 0 is not a minimum",
                )
            )
        if past:
            measurements.append(
                worst(past, past_ids, "rho >= 1: zero point, smallest (min eig / max |eig|)", STRICT_TOL, sense=">=")
            )
    else:
        measurements.append(
            worst(
                zero_min_rel,
                ids,
                "m >= 3: zero point is a strict local minimum for every beta "
                "(min eig / max |eig| there; the Hessian is the decays)",
                STRICT_TOL,
                sense=">=",
                note="so rank-deficient local minima always exist: the threshold is a jump",
            )
        )
    return Certificate(
        FAMILY,
        theorem,
        SOURCE,
        statement,
        "closed-form point (ufm.objectives.square_loss.closed_form_point) evaluated, no solver: JAX "
        "gradient and Hessian in float64; symmetry tangent space built at the point; eigenvalues "
        "of the Hessian on its orthogonal complement ('min Hess eig' in the table)",
        measurements,
        instances,
        min_hessian_eig=float(np.min(min_eigs)),
        seconds=time.perf_counter() - t0,
    )


@float64
def one_layer_optimality(*, problems=ONE_LAYER_GRID, closed_form=theory.closed_form) -> Certificate:
    """(A1)-(A3): the soft-thresholded closed form is a critical point, a strict local minimum up to the orthogonal
    symmetry, with the closed-form objective; below rho = 1 the zero point is a saddle, past it the optimum."""
    return _optimality(
        problems,
        closed_form,
        "(A1)-(A3) one-layer UFM optimum",
        "W H = a Y (none), a (Y - 11^T/K) with b = 1/K (free), a (Y - 11^T/K) + (g/K) 11^T with "
        "b = beta 1 (decayed), a = max(0, 1 - rho), balanced factors, is a nondegenerate minimum "
        "up to rotations, with objective (1-a)^2/2 + rho a (x (K-1)/K with a free bias)",
        True,
    )


@float64
def deep_optimality(*, problems=DEEP_GRID, closed_form=theory.closed_form) -> Certificate:
    """Deep linear UFM (m = 3, 4 factors): balanced factors of x* Y (or x* (Y - 11^T/K) with b = 1/K)."""
    return _optimality(
        problems,
        closed_form,
        "deep linear UFM optimum (m = 3, 4)",
        "balanced factors of x* Y (no bias) or x* (Y - 11^T/K), b = 1/K (free bias), x* = argmin "
        "(1-x)^2 + m beta x^{2/m} (0 past beta_c(m)), are a nondegenerate minimum up to rotations "
        "with objective r/(2K) phi(x*)",
        False,
    )


# --------------------------------------------------------------------------------------------------------------
# Global evidence: seeded restarts of the shared solver
# --------------------------------------------------------------------------------------------------------------

RESTART_GRID = (
    one_layer_problem(3, 2, 4, "none", 0.5),
    one_layer_problem(3, 2, 4, "none", 1.6),
    one_layer_problem(3, 2, 4, "free", 0.5),
    one_layer_problem(3, 2, 4, 0.5, 0.95),
    one_layer_problem(3, 2, 4, 5.0, 0.5),
    deep_problem(3, 2, 4, 2, "none", 0.9),
    deep_problem(3, 2, 4, 2, "none", 1.1),
    deep_problem(3, 2, 4, 3, "free", 0.3),
    deep_problem(3, 2, 4, 3, "free", 2.0),
)
RESTARTS = (
    4  # per instance: half from ufm.objectives.square_loss.random_params, half from the closed form + Gaussian noise
)
RESTART_OPTIONS = SolverOptions(
    rtol=1e-12,
    linear_solver="eigh",
    damping=1.0,
    quasi_newton_steps=0,
    max_steps=400,
    steps_per_report=20,
    progress=False,
    label="restarts",
)


def _restart_group(problems, closed_form, restarts: int, seed: int):
    """One batched :func:`minimise` call for problems of one shape; returns per problem (f_closed, losses, status,
    steps)."""
    datas, starts, f_cf = [], [], []
    for i, problem in enumerate(problems):
        t, point, data = _point(problem, closed_form)
        f_cf.append(float(square_loss(point, data)))
        n_random = restarts // 2
        random = objective.random_params(problem, n_random, seed + 17 * i)
        noise = objective.gaussian_params(problem, restarts - n_random, seed + 17 * i + 1)
        near = jax.tree.map(lambda p, z: p[None] + 0.5 * z, point, noise)
        if "b" in near:
            near["b"] = near["b"] + 0.1 * jnp.asarray(np.random.default_rng(seed + i).standard_normal(near["b"].shape))
        starts.append(jax.tree.map(lambda a, b: jnp.concatenate([a, b]), random, near))
        datas.append(data)
    data = jax.tree.map(lambda *a: jnp.repeat(jnp.stack(a), restarts, axis=0), *datas)
    sol = minimise(
        square_loss,
        jax.tree.map(lambda *a: jnp.concatenate(a), *starts),
        data,
        args_axes=SquareLossData(*([0] * len(SquareLossData._fields))),  # type: ignore[arg-type]  # vmap axes
        options=RESTART_OPTIONS,
    )
    out = []
    for i in range(len(problems)):
        sl = slice(i * restarts, (i + 1) * restarts)
        out.append((f_cf[i], sol.loss[sl], sol.status[sl], sol.steps[sl]))
    return out


@float64
def restarts_never_below(
    *, problems=RESTART_GRID, closed_form=theory.closed_form, restarts: int = RESTARTS, seed: int = 0
) -> Certificate:
    """Global evidence for the nonconvex joint problems: seeded restarts of :func:`ufm.solver.minimise` (saddle-free
    damped Newton from random starts, and from the closed form plus noise) never end below the closed form by more
    than rounding. Restarts ending ABOVE it (rank-deficient local minima of the deep model, saddles) are counted and
    reported: they are no evidence against the theorem."""
    t0 = time.perf_counter()
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(problems):
        groups.setdefault((p.C, p.n, p.d, p.layers, p.bias == "none"), []).append(i)
    results: dict[int, tuple] = {}  # problem index -> (closed-form objective, losses, status, steps)
    for idx in groups.values():
        results.update(zip(idx, _restart_group([problems[i] for i in idx], closed_form, restarts, seed)))
    instances, ids, below, unconverged = [], [], [], []
    n_runs = n_conv = 0
    for i, problem in enumerate(problems):
        f_cf, loss, status, steps = results[i]
        rel = (f_cf - loss) / max(1.0, abs(f_cf))
        at = np.abs(rel) <= 1e-10
        t = closed_form(problem)
        record = _instance(problem, t)
        record["numbers"] = {
            "closed_form_objective": f_cf,
            "restart_objectives": loss.tolist(),
            "restart_status": status.tolist(),
            "restart_steps": steps.tolist(),
            "at_closed_form": int(np.sum(at)),
            "above_closed_form": int(np.sum(rel < -1e-10)),
            "max_below_rel": float(np.max(rel)),
        }
        instances.append(record)
        ids.append({k: record[k] for k in ("C", "n", "d", "m", "bias", "lambda_W", "lambda_H")})
        below.append(float(np.max(rel)))
        unconverged.append(int(np.sum(status != CONVERGED)))
        n_runs += loss.size
        n_conv += int(np.sum(status == CONVERGED))
    at_total = sum(r["numbers"]["at_closed_form"] for r in instances)
    measurements = [
        worst(
            below,
            ids,
            "restarts: (f(closed form) - f(end)) / max(1, |f|) (> 0: a restart beat the closed form)",
            ROUNDING,
            note=f"{restarts} restarts per instance: {restarts // 2} from random_params, the rest from "
            "the closed form + noise; graded over every restart, converged or not",
        ),
        worst(
            [r["numbers"]["above_closed_form"] for r in instances],
            ids,
            "restarts ending above the closed form (local minima / saddles; reported)",
            None,
            note=f"{at_total} of {n_runs} restarts ended at the closed form to 1e-10",
        ),
        worst(unconverged, ids, "restarts not converged (reported)", None),
    ]
    return Certificate(
        FAMILY,
        "global evidence: restarts",
        SOURCE,
        "no point reached by the solver from random or perturbed starts has a lower objective than the closed form",
        "seeded restarts of ufm.solver.minimise (eigh, damped Newton), batched per shape",
        measurements,
        instances,
        restarts=n_runs,
        restarts_converged=n_conv,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------------------------
# Scalar facts: the deep threshold beta_c(m) and the first-order jump
# --------------------------------------------------------------------------------------------------------------

DEPTHS = (3, 4, 5, 6, 8)


def _phi_slope(x, m, beta):
    return -2 * (1 - x) + 2 * beta * x ** (2.0 / m - 1)


def _local_min_value(m: int, beta: float) -> float:
    """Value of phi's nonzero local minimum: bounded minimisation on [x_peak, 1] (x_peak = (m-2)/(2m-2) is where
    phi's interior stationary points are born), independent of the package's root formula."""
    x_peak = (m - 2) / (2 * m - 2)
    res = optimize.minimize_scalar(
        lambda x: float(theory.deep_phi(x, m, beta)), bounds=(x_peak, 1.0), method="bounded", options={"xatol": 1e-12}
    )
    return float(res.fun)


@float64
def deep_threshold_jump(
    *, depths=DEPTHS, threshold=theory.deep_threshold, fit=theory.deep_fit, n_grid: int = 200_001
) -> Certificate:
    """``beta_c(m)`` is where phi's nonzero local minimum value equals phi(0) = 1, and x* jumps there.

    Checked: (i) an independent beta_c, the root in beta of ``min_{x >= x_peak} phi - 1`` (Brent on an inner
    bounded minimisation), equals ``threshold(m)``; (ii) at beta_c, x_c = (m-2)/(m-1) is stationary with
    ``phi(x_c) = 1``; (iii) ``fit`` jumps from x_c to 0 across beta_c (relative offsets 1e-9); (iv) ``fit`` agrees
    with a global grid minimisation of phi on [0, 1] for beta/beta_c in 0.1 .. 3; (v) the nonzero root is unique:
    ``x^{(m-2)/m}(1-x)`` is strictly decreasing on [x_peak, 1]; (vi) x = 0 is a local minimum of phi for every
    beta > 0 (phi(x) > 1 for 0 < x < (m beta/2)^{m/(m-2)}); (vii) m = 2 has no jump: threshold 1, x* = 1 - beta
    continuous.
    """
    t0 = time.perf_counter()
    instances, ids = [], []
    root_err, value_at_c, slope_at_c, below_jump, above_jump, grid_value, grid_arg, mono, zero_min = (
        [] for _ in range(9)
    )
    x = np.linspace(0.0, 1.0, n_grid)
    for m in depths:
        bc = float(threshold(m))
        x_peak = (m - 2) / (2 * m - 2)
        beta_peak = x_peak ** ((m - 2) / m) * (1 - x_peak)
        independent = optimize.brentq(
            lambda b: _local_min_value(m, b) - 1.0, 1e-3 * beta_peak, beta_peak * (1 - 1e-9), xtol=1e-15, rtol=4 * EPS
        )
        xc = (m - 2) / (m - 1)
        below = float(fit(m, bc * (1 - 1e-9)))
        above = float(fit(m, bc * (1 + 1e-9)))
        gv, ga = [], []
        for r in (0.1, 0.5, 0.9, 0.99, 1.01, 1.1, 1.5, 3.0):
            beta = independent * r
            phi = theory.deep_phi(x, m, beta)
            k = int(np.argmin(phi))
            xs = float(fit(m, beta))
            gv.append(max(0.0, float(theory.deep_phi(xs, m, beta)) - float(phi[k])))
            ga.append(abs(xs - x[k]))
        xr = x[x >= x_peak]
        g = xr ** ((m - 2) / m) * (1 - xr)
        zm = np.inf
        for b in (0.01 * bc, bc, 10 * bc):  # phi(x) > 1 for 0 < x < x0 = (m b/2)^{m/(m-2)}: relative margin
            xs_small = (m * b / 2) ** (m / (m - 2)) * np.logspace(-6, -0.3, 12)
            zm = min(zm, float(np.min((theory.deep_phi(xs_small, m, b) - 1.0) / (m * b * xs_small ** (2.0 / m)))))
        record = {
            "m": m,
            "beta_c": bc,
            "beta_c_independent": independent,
            "beta_peak": beta_peak,
            "x_c": xc,
            "x_below": below,
            "x_above": above,
            "jump": below - above,
            "phi_at_x_c": float(theory.deep_phi(xc, m, bc)),
            "phi_slope_at_x_c": float(_phi_slope(xc, m, bc)),
            "grid_points": n_grid,
        }
        instances.append(record)
        ids.append({"m": m})
        root_err.append(abs(bc - independent) / independent)
        value_at_c.append(abs(record["phi_at_x_c"] - 1.0))
        slope_at_c.append(abs(record["phi_slope_at_x_c"]))
        below_jump.append(abs(below - xc) / xc)
        above_jump.append(above)
        grid_value.append(max(gv))
        grid_arg.append(max(ga))
        mono.append(float(np.max(np.diff(g))))
        zero_min.append(zm)
    two = {"threshold": float(threshold(2)), "x_below": float(fit(2, 1 - 1e-9)), "x_above": float(fit(2, 1 + 1e-9))}
    instances.append({"m": 2, **two})
    measurements = [
        worst(
            root_err,
            ids,
            "beta_c(m) = independent root of (min_{x>=x_peak} phi) - 1 (rel)",
            1e-10,
            note="Brent in beta over a bounded inner minimisation; ~1e-12 reachable",
        ),
        worst(value_at_c, ids, "phi(x_c; beta_c) = phi(0) = 1 at x_c = (m-2)/(m-1) (abs)", 64 * EPS),
        worst(slope_at_c, ids, "phi'(x_c; beta_c) = 0 (abs)", 64 * EPS),
        worst(below_jump, ids, "x*(beta_c (1 - 1e-9)) = (m-2)/(m-1) (rel)", 1e-6),
        worst(above_jump, ids, "x*(beta_c (1 + 1e-9)) = 0", 0.0),
        worst(grid_value, ids, "phi(x*) - min over a grid of [0, 1] (beta/beta_c in 0.1..3)", 64 * EPS),
        worst(grid_arg, ids, "|x* - grid argmin|", 1e-4, note=f"grid spacing {1 / (n_grid - 1):.0e}"),
        worst(mono, ids, "nonzero root unique: max diff of x^{(m-2)/m}(1-x) on [x_peak, 1] (< 0)", 0.0),
        worst(
            zero_min,
            ids,
            "x = 0 is a local minimum: min (phi(x) - 1)/(m beta x^{2/m}), 0 < x < (m beta/2)^{m/(m-2)}",
            0.0,
            sense=">=",
            note="beta/beta_c in {0.01, 1, 10}; analytically >= 1 - (x/x0)^{1-2/m} > 0",
        ),
        worst(
            [abs(two["threshold"] - 1.0) + abs(two["x_below"] - 1e-9) + two["x_above"]],
            [{"m": 2}],
            "m = 2: threshold 1, no jump (x* = 1 - beta continuous)",
            1e-15,
        ),
    ]
    return Certificate(
        FAMILY,
        "deep threshold beta_c(m), jump",
        SOURCE,
        "beta_c(m) = ((m-2)/(m-1))^{(m-2)/m}/(m-1) is where phi's nonzero local minimum value equals "
        "phi(0) = 1; x* jumps from (m-2)/(m-1) to 0 there (first order) for m >= 3, not for m = 2",
        "independent root in beta; stationarity and value at x_c; x* across beta_c; grid minimisation; monotonicity",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


# --------------------------------------------------------------------------------------------------------------
# The paper's R-B relations (free bias) and their bias-free failure and correction
# --------------------------------------------------------------------------------------------------------------

RB_GRID = tuple(
    one_layer_problem(C, n, C + 2, bias, rho)
    for C, n in SIZES
    for bias in ("none", "free")
    for rho in (0.02, 0.5, 0.95)
) + tuple(
    deep_problem(C, n, C + 1, layers, bias, r)
    for C, n in SIZES
    for layers in (2, 3)
    for bias in ("none", "free")
    for r in (0.3, 0.9)
)


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))


@float64
def rb_relations(
    *,
    problems=RB_GRID,
    closed_form=theory.closed_form,
    classifier=theory.rb_classifier,
    norm_sq=theory.rb_classifier_norm_sq,
    cosine=theory.rb_cosine,
    nc3_limit=theory.nc3_limit,
) -> Certificate:
    """The R-B theorem at the closed-form optimum: with a FREE bias the optimum symmetrically quasi-interpolates
    and ``W_L^c = eps/(lam (K-1)) (mu_c - mu_G)``, ``||W_L^c||^2 = (eps - K eps^2/(K-1))/(K lam)``,
    ``cos = -1/(K-1)``, ``lam_k ||theta_k||^2 = eps (1 - K eps/(K-1))`` for every factor. BIAS-FREE the hypothesis
    is impossible (outputs sum to 1 - eps, not 1), the paper's W_L formula misses, and the correction
    ``W_L^c = eps mu_c/(K lam)``, ``||W_L^c||^2 = eps(1-eps)/(K lam)``, ``cos = 0``, ``lam_k ||theta_k||^2 =
    eps (1 - eps)``, NC3 -> 2 - 2 sqrt((K-1)/K) holds. The identities (I1)-(I3) hold at the point in both cases."""
    t0 = time.perf_counter()
    instances = []
    free: dict[str, list] = {}
    none: dict[str, list] = {}
    for problem in problems:
        t, point, data = _point(problem, closed_form)
        F, h = (np.asarray(a) for a in forward(point, data))
        K, lam, Y = problem.C, problem.lambda_W, problem.targets()
        labels = problem.labels
        R = Y - F
        b = np.asarray(point["b"]) if "b" in point else np.zeros(K)
        W_L = np.asarray(point["layers"][-1])
        factors = [np.asarray(W) for W in point["layers"]] + [np.asarray(point["H"])]
        decays = [problem.lambda_W] * problem.layers + [problem.lambda_H]
        energies = [dk * float(np.sum(th**2)) for dk, th in zip(decays, factors)]
        eps = 1.0 - float(np.mean(F[labels, np.arange(problem.N)]))
        means = metrics.class_means(h.T, labels, K)
        norms = np.sum(W_L**2, axis=1)
        geometry = metrics.frame_geometry(W_L)
        N = problem.N
        i1 = _rel(lam * W_L, R @ h.T / N)
        common = float(np.sum(R * (F - b[:, None])) / N)
        i2 = max(abs(e - common) for e in energies) / abs(common)
        i3 = (
            float(np.linalg.norm(float(data.lambda_b) * b - R.mean(axis=1)) / (np.linalg.norm(R) / np.sqrt(N)))
            if "b" in point
            else 0.0
        )  # (I3) concerns the bias only
        ident = max(i1, i2, i3)
        record = _instance(problem, t)
        record["numbers"] = {
            "eps": eps,
            "eps_closed_form": t["eps"],
            "factor_energies": energies,
            "identities_I1_I2_I3": [i1, i2, i3],
            "mean_cosine": geometry["mean_cosine"],
        }
        key = {k: record[k] for k in ("C", "n", "d", "m", "bias", "lambda_W", "lambda_H")}
        out = free if problem.bias == "free" else none
        out.setdefault("ids", []).append(key)
        out.setdefault("identities", []).append(ident)
        out.setdefault("eps", []).append(abs(eps - t["eps"]) / t["eps"])
        if problem.bias == "free":
            sqi = (1 - eps) * Y + eps / (K - 1) * (1 - Y)
            out.setdefault("hypothesis", []).append(float(np.max(np.abs(F - sqi))))
            out.setdefault("W", []).append(_rel(W_L, classifier(K, eps, lam, means, "free")))
            target = norm_sq(K, eps, lam, "free")
            out.setdefault("norm", []).append(float(np.max(np.abs(norms - target))) / abs(target))
            out.setdefault("cos", []).append(abs(geometry["mean_cosine"] - cosine(K, "free")) + geometry["equiangular"])
            energy = eps * (1 - K * eps / (K - 1))
            out.setdefault("energy", []).append(max(abs(e - energy) for e in energies) / energy)
            out.setdefault("nc3", []).append(abs(metrics.nc3(W_L, h.T, labels, K) - nc3_limit(K, "free")))
        else:
            out.setdefault("sums", []).append(float(np.max(np.abs(F.sum(axis=0) - (1 - eps)))))
            out.setdefault("eps_positive", []).append(eps)
            seed_err = _rel(W_L, classifier(K, eps, lam, means, "free"))
            record["numbers"]["seed_formula_rel_error"] = seed_err
            out.setdefault("seed", []).append(seed_err)
            out.setdefault("seed_exact", []).append(abs(seed_err - 1 / math.sqrt(K)) * math.sqrt(K))
            out.setdefault("W", []).append(_rel(W_L, classifier(K, eps, lam, means, "none")))
            target = norm_sq(K, eps, lam, "none")
            out.setdefault("norm", []).append(float(np.max(np.abs(norms - target))) / abs(target))
            out.setdefault("cos", []).append(abs(geometry["mean_cosine"] - cosine(K, "none")) + geometry["equiangular"])
            energy = eps * (1 - eps)
            out.setdefault("energy", []).append(max(abs(e - energy) for e in energies) / energy)
            out.setdefault("nc3", []).append(abs(metrics.nc3(W_L, h.T, labels, K) - nc3_limit(K, "none")))
        instances.append(record)
    fi, ni = free.get("ids", []), none.get("ids", [])
    measurements = []
    if fi:
        measurements += [
            worst(free["W"], fi, "free bias: W_L^c = eps (mu_c - mu_G)/(lam (K-1)) (rel)", RB_TOL),
            worst(free["hypothesis"], fi, "free bias: hypothesis, outputs 1-eps / eps/(K-1) (max abs dev)", RB_TOL),
            worst(free["norm"], fi, "free bias: ||W_L^c||^2 = (eps - K eps^2/(K-1))/(K lam) (rel)", RB_TOL),
            worst(free["cos"], fi, "free bias: cos(W^c, W^c') = -1/(K-1) (abs + std)", RB_TOL),
            worst(free["energy"], fi, "free bias: every factor lam ||theta||^2 = eps (1 - K eps/(K-1)) (rel)", RB_TOL),
            worst(free["nc3"], fi, "free bias: NC3 = 0 (abs)", RB_TOL),
        ]
    if ni:
        measurements += [
            worst(
                none["sums"],
                ni,
                "bias-free: outputs sum to 1 - eps (so the paper's hypothesis, sum 1, is impossible)",
                RB_TOL,
            ),
            worst(none["eps_positive"], ni, "bias-free: eps > 0 (smallest)", 0.0, sense=">="),
            worst(
                none["seed"],
                ni,
                "bias-free: the paper's W_L formula MISSES (rel error, smallest)",
                RB_FAILS,
                sense=">=",
            ),
            worst(
                none["seed_exact"],
                ni,
                "bias-free: ... by exactly 1/sqrt(K) (|err sqrt(K) - 1|)",
                RB_TOL,
                note="orthogonal-frame means: ||eps mu_c/(K lam) - eps (mu_c - mu_G)/(lam (K-1))|| / ||seed|| "
                "= 1/sqrt(K)",
            ),
            worst(none["W"], ni, "bias-free correction: W_L^c = eps mu_c/(K lam) (rel)", RB_TOL),
            worst(none["norm"], ni, "bias-free correction: ||W_L^c||^2 = eps(1-eps)/(K lam) (rel)", RB_TOL),
            worst(none["cos"], ni, "bias-free correction: cos = 0, orthogonal frame (abs + std)", RB_TOL),
            worst(
                none["energy"], ni, "bias-free correction: every factor lam ||theta||^2 = eps (1 - eps) (rel)", RB_TOL
            ),
            worst(none["nc3"], ni, "bias-free correction: NC3 = 2 - 2 sqrt((K-1)/K) (abs)", RB_TOL),
        ]
    measurements += [
        worst(
            free.get("identities", []) + none.get("identities", []),
            fi + ni,
            "(I1)-(I3) at the point (worst rel)",
            RB_TOL,
        ),
        worst(free.get("eps", []) + none.get("eps", []), fi + ni, "eps at the point = closed-form eps (rel)", RB_TOL),
    ]
    return Certificate(
        FAMILY,
        "R-B relations / bias-free fix",
        SOURCE,
        "free bias: the R-B W_L, ||W_L||^2, cosine and per-layer norm relations hold at the optimum; "
        "bias-free: the paper's hypothesis is impossible and its W_L formula fails, the corrected "
        "relations hold",
        "evaluation at the closed-form points (one-layer and deep, m = 2, 3, 4)",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


CERTIFICATES = [one_layer_optimality, deep_optimality, restarts_never_below, deep_threshold_jump, rb_relations]
