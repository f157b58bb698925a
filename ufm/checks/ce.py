"""Checks for the cross-entropy UFM with weight decay against Theorem 3.1 of Zhu, Ding, Zhou, Li, You, Sulam, Qu,
"A Geometric Analysis of Neural Collapse with Unconstrained Features", NeurIPS 2021 (``ufm.theory.ce``).

Tolerances, and why they are float64-reachable:

- objective vs closed form, OBJECTIVE_TOL = 1e-10 relative: at a converged point (relative gradient <= 1e-12) the
  objective's error is second order in the distance to the optimal set (``<= ||grad||^2 / (2 mu)``, mu the
  smallest curvature off the rotation orbit), and the mean of N CE terms, each formed by ``log1p`` without
  cancellation, carries ~N eps relative rounding; both are <= 1e-14 on the tested grid (measured <= 4e-16), while
  dropping a constant of the reduction moves f* by 26% (the margin's K/(K-1)) or 49% (the n in the decay balance)
  at the default K = 4, n = 5, decays 5e-3;
- the closed-form POINT (``ufm.theory.ce.optimal_point``) evaluated by the JAX objective: its objective equals the
  formula to POINT_TOL = 1e-12 (rounding of the N-term mean), and it is critical: ``||grad f||`` relative to the
  two terms that cancel there (the CE part and the decays) <= CRITICAL_TOL = 1e-10;
- geometry (NC1 spread, Gram matrices, NC3 ratio, norms, margin, bias), GEOMETRY_TOL = 1e-8: a point within
  relative gradient g of a minimiser lies within ~g/mu of the optimal set; mu ~ min(Lambda, p) with p = rho/K the
  wrong-class probability, so at decays 1e-9 an absolute gradient of 1e-20 (measured 3e-20) still places the
  factors to ~1e-11; near the threshold rho = 1 the common scale of W and H is weakly determined (curvature
  ~(1 - rho)^2), and the scale-dependent checks are floored by the bound of :func:`scale_error`; the bias's
  constant direction b ~ 1 has curvature lambda_b alone (CE is shift-invariant), so b = 0 is floored by
  2 ||grad|| / lambda_b;
- the trivial optimum W = H = 0 (rho >= 1): balanced norms ``||W|| sqrt(lambda_W/Lambda)``, ``||H||
  sqrt(lambda_H/Lambda)`` (Lambda = sqrt(lambda_W lambda_H); the scale-free size of a factor whatever the ratio of
  the decays) below ZERO_TOL = 1e-6, or below twice the bound of :func:`zero_radius` from the gradient where
  rho is within ~1e-6 of 1 (at rho = 1 the minimum is degenerate, f - f* ~ |W|^4); a nonzero optimum with
  rho <= 1 - 1e-6 has balanced norms >= ~1e-3. There the geometry (ETF, NC1, NC3, margin) is undefined and
  reported VOID.
"""

from __future__ import annotations

import math

import numpy as np

from ufm import metrics
from ufm.checks import Check
from ufm.theory import ce as theory

OBJECTIVE_TOL = 1e-10
POINT_TOL = 1e-12
CRITICAL_TOL = 1e-10
GEOMETRY_TOL = 1e-8
ZERO_TOL = 1e-6

GEOMETRY = (
    "NC1 within-class spread max ||h_ki - h_k|| / max ||h_k|| (rel)",
    "NC2 W W^T = closed-form simplex ETF Gram (rel)",
    "NC2 class-mean Gram = closed-form simplex ETF Gram (rel)",
    "NC3 W = sqrt(n lambda_H/lambda_W) M (rel)",
    "margin z_y - max_j z_j = K t*/(K-1), every sample (rel)",
    "||W||_F = closed form (rel)",
    "||H||_F = closed form (rel)",
)
SCALE_FREE = (0, 3)  # NC1 spread and the NC3 ratio do not change when W and H are rescaled together


def rel(a, b) -> float:
    """``||a - b|| / ||b||`` (Frobenius; ``||a||`` where b = 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    nb = float(np.linalg.norm(b))
    return float(np.linalg.norm(a - b)) / nb if nb > 0 else float(np.linalg.norm(a))


def balanced_norms(W, H, lambda_W: float, lambda_H: float) -> tuple[float, float]:
    """``(||W||_F (lambda_W/Lambda)^(1/2), ||H||_F (lambda_H/Lambda)^(1/2))``, Lambda = sqrt(lambda_W lambda_H):
    both equal sqrt(K t* sqrt(n)) at the optimum."""
    Lam = math.sqrt(lambda_W * lambda_H)
    return float(np.linalg.norm(W)) * math.sqrt(lambda_W / Lam), float(np.linalg.norm(H)) * math.sqrt(lambda_H / Lam)


def margins(Z: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per sample ``z_y - max_{j != y} z_j`` of the logits Z (N x K)."""
    true = Z[np.arange(Z.shape[0]), labels]
    other = np.where(np.eye(Z.shape[1], dtype=bool)[labels], -np.inf, Z)
    return true - other.max(axis=1)


def scale_error(t: dict, K: int, n: int, grad_norm: float) -> float:
    """Bound on the relative error of the scale-dependent quantities (Grams, norms, margin: ``(1+s)^2 - 1 ~ 2 s``)
    at a point of gradient norm ``grad_norm`` (absolute, balanced coordinates) near the optimum. Along the common
    scale ``x -> (1+s) x`` of the balanced factors (``||x||^2 = 2 K t* sqrt(n)``) the objective is
    ``g(t* (1+s)^2)``, of curvature ``mu = 4 t*^2 g''(t*)`` in s, so to first order ``|s| <= grad_norm ||x|| / mu``;
    returned: twice the first-order ``2|s|`` (the factor 2 covers the terms of order s^2 and the gradient's
    components off the scale, whose curvatures are larger). It exceeds GEOMETRY_TOL only near the threshold, where
    t* ~ (1 - rho) and mu vanishes like (1 - rho)^2: C = 4, n = 5, rho = 1 - 1e-9: Gram error 1.87e-4, first-order
    2|s| = 1.9e-4 at gradient 4.8e-18 (the gradient is then almost all along the scale). Zero at W = H = 0."""
    if t["zero"]:
        return 0.0
    mu = 4 * t["t"] ** 2 * float(theory.scalar_second_derivative(t["t"], K))
    return 2 * (2 * grad_norm * math.sqrt(2 * K * t["t"] * math.sqrt(n)) / mu)


def zero_radius(t: dict, K: int, n: int, grad_norm: float) -> float:
    """Where the optimum is W = H = 0 (rho >= 1): an upper bound on the size ``r = ||x||`` (x = the balanced factors
    W, H together) of a point of gradient norm ``grad_norm`` near it. Along the ETF direction f - log K = (rho - 1) t
    + t^2/(2(K-1)) + ... with t = r^2/(2 K sqrt(n)) (g''(0) = 1/(K-1)), so its radial derivative is
    ``A r + B r^3``, A = (rho - 1)/(K sqrt(n)), B = 1/(2 K^2 n (K-1)), and r <= min(grad/A, (grad/B)^(1/3)); the ETF
    has the smallest quartic term of the degenerate directions at rho = 1 (it minimises f at a given norm), so
    others are bounded by the same r. At rho = 1 the minimum is degenerate and r ~ grad^(1/3): K = 10, n = 2,
    d = 12, lambda_b = 0.01 ended at balanced norm 4.1e-5 (converged, gradient ~1e-17). Returns 0 for rho < 1."""
    if t["rho"] < 1:
        return 0.0
    A, B = (t["rho"] - 1) / (K * math.sqrt(n)), 1.0 / (2 * K * K * n * (K - 1))
    return min(grad_norm / A if A > 0 else math.inf, (grad_norm / B) ** (1.0 / 3.0))


def solution_checks(
    problem, W: np.ndarray, H: np.ndarray, b: np.ndarray, objective: float, t: dict, grad_norm: float = 0.0
):
    """Checks of a solution ``(W, H, b)`` with objective value ``objective`` against the closed form ``t``
    (``ufm.theory.ce.optimum``); ``grad_norm``: the solver's gradient norm there (balanced coordinates), whose
    :func:`scale_error` floors the tolerance of the scale-dependent checks. Returns (checks, numbers)."""
    K, labels = problem.C, problem.labels
    Z = H @ W.T + b
    means = metrics.class_means(H, labels, K)
    size = max(balanced_norms(W, H, problem.lambda_W, problem.lambda_H))
    zero_tol = max(ZERO_TOL, 2 * zero_radius(t, K, problem.n, grad_norm))  # twice the first-order bound
    solver_zero = size <= zero_tol
    zero = solver_zero or t["zero"]
    out = [
        Check(
            "objective = closed form (rel)",
            rel(objective, t["objective"]),
            OBJECTIVE_TOL,
            f"solver {objective:.15g}, closed form {t['objective']:.15g}"
            + (" = log K (W = H = 0)" if t["zero"] else ""),
        )
    ]
    if zero:
        out.append(
            Check(
                "zero solution: solver and closed form agree (0 = yes)",
                float(solver_zero != t["zero"]),
                0.0,
                f"largest balanced norm {size:.3g} (zero below {zero_tol:.2g}); closed form "
                f"{'W = H = 0' if t['zero'] else 'nonzero'} (rho = {t['rho']:.6g})",
            )
        )
        out.append(
            Check(
                "W = H = 0: largest balanced norm (abs)",
                size,
                zero_tol,
                "tol: 2 x bound from the gradient (degenerate at rho = 1)" if zero_tol > ZERO_TOL else "",
            )
        )
    m = margins(Z, labels)
    spread = float(
        np.max(np.linalg.norm(H - means[labels], axis=1)) / max(np.max(np.linalg.norm(means, axis=1)), 1e-300)
    )
    void = f"W = H = 0 ({'closed form' if t['zero'] else 'solver'}): the geometry of a zero point is undefined"
    if zero:
        out += [Check.undefined(name, void) for name in GEOMETRY]
    else:
        values = [
            spread,
            rel(W @ W.T, t["WWt"]),
            rel(means @ means.T, t["MMt"]),
            rel(W, t["ratio"] * means),
            float(np.max(np.abs(m - t["margin"]))) / t["margin"],
            rel(np.linalg.norm(W), t["W_norm"]),
            rel(np.linalg.norm(H), t["H_norm"]),
        ]
        details = [
            f"Papyan NC1 {metrics.nc1(H, labels, K):.3g}",
            "",
            "",
            f"ratio {t['ratio']:.6g}",
            f"closed form {t['margin']:.12g}; wrong-class probability {t['p']:.6g}",
            f"{t['W_norm']:.12g}",
            f"{t['H_norm']:.12g}",
        ]
        floor = scale_error(t, K, problem.n, grad_norm)
        tols = [GEOMETRY_TOL if i in SCALE_FREE else max(GEOMETRY_TOL, floor) for i in range(len(GEOMETRY))]
        details = [
            dt if tol == GEOMETRY_TOL else "; ".join(filter(None, [dt, f"tol: scale error bound {floor:.2g}"]))
            for dt, tol in zip(details, tols)
        ]
        out += [Check(name, v, tol, dt) for name, v, tol, dt in zip(GEOMETRY, values, tols, details)]
    if problem.bias != "none":
        # b ~ 1 is an exact Hessian eigenvector of eigenvalue lambda_b (CE is shift-invariant), so a point of
        # gradient norm g has its constant bias within ~g / lambda_b; twice that first-order bound floors the
        # tolerance (K = 5, n = 3, d = 4, decays 0.3, lambda_b = 1e-9: max |b_k| = 1.4e-8 at g ~ 1e-17)
        tol = max(GEOMETRY_TOL, 2 * grad_norm / problem.lambda_b)
        out.append(
            Check(
                "bias b = 0 (abs, max |b_k|)",
                float(np.max(np.abs(b))),
                tol,
                f"lambda_b = {problem.lambda_b:g}"
                + (f"; tol: 2 ||grad|| / lambda_b = {tol:.2g}" if tol > GEOMETRY_TOL else ""),
            )
        )
    numbers = {
        "objective": objective,
        "zero_solution": bool(zero),
        "balanced_norm": size,
        "W_norm": float(np.linalg.norm(W)),
        "H_norm": float(np.linalg.norm(H)),
        "margin_min": float(m.min()),
        "margin_max": float(m.max()),
        "nc1_spread": spread,
    }
    return out, numbers


def closed_form_point_checks(f_point: float, grad: np.ndarray, grad_fit: np.ndarray, t: dict, N: int) -> list[Check]:
    """The closed-form point: objective = formula (rel) and critical: ``||grad|| / (||grad_fit|| + ||grad -
    grad_fit|| + 1/sqrt(N))``, against the CE and decay parts that cancel; ``1/sqrt(N)`` (the size of the bias
    gradient of the CE, a mean of N residuals of size ~1, when they do not cancel) is the floor at W = H = 0, where
    both parts vanish and the bias gradient is the rounding of that mean (without it: ratio 1 at lambda_b = 0.1)."""
    scale = float(np.linalg.norm(grad_fit) + np.linalg.norm(grad - grad_fit)) + 1.0 / math.sqrt(N)
    g = float(np.linalg.norm(grad)) / scale
    return [
        Check(
            "closed-form point's objective = formula (rel)",
            rel(f_point, t["objective"]),
            POINT_TOL,
            f"point {f_point:.15g}",
        ),
        Check("closed-form point is critical (||grad|| / its cancelling parts)", g, CRITICAL_TOL),
    ]


def restart_checks(losses: np.ndarray, t: dict, K: int) -> list[Check]:
    """No restart ends below the closed form (beyond OBJECTIVE_TOL, relative); the best is not above the known
    critical point W = H = 0 (objective log K; beyond rounding)."""
    lowest = float(np.min(losses))
    return [
        Check(
            "no restart below the closed form (rel)",
            max(0.0, (t["objective"] - lowest) / t["objective"]),
            OBJECTIVE_TOL,
            f"end objectives {np.array2string(losses, precision=12)}",
        ),
        Check(
            "best restart not above the critical point W = H = 0, f = log K (rel)",
            max(0.0, (lowest - math.log(K)) / math.log(K)),
            OBJECTIVE_TOL,
        ),
    ]
