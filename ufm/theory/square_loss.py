"""Square loss with weight decay: UFM optima, deep-linear optima, the R-B quasi-interpolation theorem, Lemma 1.

Source: Rangamani, Banburski, "Neural Collapse in Deep Homogeneous Classifiers and the Role of Weight Decay",
ICASSP 2022 (and its slides). The statements are in the docstrings below: (A1)-(A3) in :func:`ufm_optimum`, the
deep linear optimum in :func:`deep_optimum`, the R-B relations in :func:`rb_classifier` and
:func:`rb_classifier_norm_sq`, Lemma 1 in :func:`lemma1_loss` and :func:`lemma1_minimum`. Which parts are the paper's,
why the relations' hypothesis fails at every bias-free critical point, and the hyper-parameter map:
docs/theory/square_loss.md.
Normalisation (the paper's): ``L = 1/(2 N) ||F - Y||_F^2 + sum_theta (lambda_theta / 2) ||theta||_F^2`` with
K = C classes, n samples per class, N = K n, Y one-hot (K x N). (PyTorch ``MSELoss(mean)`` with SGD weight decay
``wd`` corresponds to ``lambda = C wd / 2``.)

Bias modes: ``"none"`` (no bias), ``"free"`` (unregularised bias), or a float ``lambda_b > 0`` (decayed bias).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import optimize

if TYPE_CHECKING:  # the problem's fields only; nothing of ufm.problems runs here
    from ufm.problems.square_loss import SquareLossProblem

# --------------------------------------------------------------------------------------------------------------
# One-layer UFM, F = W H (+ b 1^T): singular-value soft-thresholding ((A1)-(A3): ufm_optimum)
# --------------------------------------------------------------------------------------------------------------


def ufm_shrinkage(K: int, n: int, lambda_W: float, lambda_H: float) -> tuple[float, float]:
    """``(rho, a)`` with ``rho = K sqrt(n lambda_W lambda_H)`` and ``a = max(0, 1 - rho)``.

    Key lemma: ``min (lambda_W/2)||W||^2 + (lambda_H/2)||H||^2 s.t. W H = Z`` equals ``sqrt(lambda_W lambda_H)
    ||Z||_*``, so each target singular value sqrt(n) is soft-thresholded to ``sqrt(n) a``; rho >= 1 gives W = H = 0.
    """
    rho = K * math.sqrt(n * lambda_W * lambda_H)
    return rho, max(0.0, 1.0 - rho)


def ufm_decayed_bias(K: int, n: int, lambda_W: float, lambda_H: float, lambda_b: float) -> tuple[float, float]:
    """(A3): with bias weight decay lambda_b > 0, ``W H = a (Y - 11^T/K) + (g/K) 11^T``, ``b = beta 1`` with
    ``g = max(0, 1 - (1-a)(1+lambda_b)/lambda_b)`` and ``beta = (1-g)/(K (1+lambda_b))``; returns (g, beta)."""
    _, a = ufm_shrinkage(K, n, lambda_W, lambda_H)
    g = max(0.0, 1.0 - (1.0 - a) * (1.0 + lambda_b) / lambda_b)
    return g, (1.0 - g) / (K * (1.0 + lambda_b))


def ufm_optimum(K: int, n: int, lambda_W: float, lambda_H: float, bias) -> dict:
    """Closed-form optimum of the one-layer UFM: objective, outputs, eps, norms and Gram matrices.

    Returns a dict with ``objective``, ``outputs`` (K x K: column k is the output of a class-k sample),
    ``eps`` (1 - true-class output), ``W_norm_sq`` (||W||_F^2), ``WWt`` (W W^T), ``bias`` (b), ``a``, ``rho``.
    (A1) no bias: ``W H = a Y``, orthogonal frame ``W W^T = sqrt(n lambda_H/lambda_W) a I``, objective
    ``(1-a)^2/2 + rho a``. (A2) free bias: ``b = 1/K``, ``W H = a (Y - 11^T/K)``, simplex ETF, objective
    ``(K-1)/K [(1-a)^2/2 + rho a]``. (A3) decayed bias: see :func:`ufm_decayed_bias`.
    """
    rho, a = ufm_shrinkage(K, n, lambda_W, lambda_H)
    I, J = np.eye(K), np.ones((K, K)) / K
    scale = math.sqrt(n * lambda_H / lambda_W) * a
    if bias == "none":
        outputs, b, WWt = a * I, np.zeros(K), scale * I
        objective = (1 - a) ** 2 / 2 + rho * a
    elif bias == "free":
        outputs, b, WWt = a * (I - J) + J, np.full(K, 1.0 / K), scale * (I - J)
        objective = (K - 1) / K * ((1 - a) ** 2 / 2 + rho * a)
    else:
        lambda_b = float(bias)
        g, beta = ufm_decayed_bias(K, n, lambda_W, lambda_H, lambda_b)
        # W H has singular values sqrt(n) a on the K-1 centred modes and g sqrt(n) on the all-ones mode; the
        # all-ones mode costs rho g like any other (soft-thresholded by rho), the bias carries the rest.
        outputs = a * (I - J) + g * J + beta * K * J
        b = np.full(K, beta)
        WWt = scale * (I - J) + math.sqrt(n * lambda_H / lambda_W) * g * J
        residual = outputs - I
        objective = (
            float(np.sum(residual**2)) * n / (2 * K * n) + rho * ((K - 1) * a + g) / K + lambda_b / 2 * K * beta**2
        )
    return {
        "objective": objective,
        "outputs": outputs,
        "eps": 1.0 - outputs[0, 0],
        "W_norm_sq": float(np.trace(WWt)),
        "WWt": WWt,
        "bias": b,
        "a": a,
        "rho": rho,
    }


# --------------------------------------------------------------------------------------------------------------
# Deep linear UFM: m = L + 1 factors (L weight layers on free features), or an L-layer net on orthonormal inputs
# --------------------------------------------------------------------------------------------------------------


def deep_beta(K: int, n: int, lambdas) -> float:
    """``beta = K n^{1/m} Lambda`` with ``Lambda = (prod lambda_i)^{1/m}``, m = len(lambdas) factors."""
    lambdas = np.asarray(lambdas, dtype=float)
    m = lambdas.size
    return K * n ** (1.0 / m) * float(np.exp(np.mean(np.log(lambdas))))


def deep_phi(x, m: int, beta: float):
    """``phi(x) = (1 - x)^2 + m beta x^{2/m}``: cost per target mode, fitted to x sqrt(n)."""
    return (1 - x) ** 2 + m * beta * np.abs(x) ** (2.0 / m)


def deep_threshold(m: int) -> float:
    """``beta_c(m) = ((m-2)/(m-1))^{(m-2)/m} / (m-1)`` for m >= 3 (1 for m = 2: the one-layer threshold rho = 1)."""
    if m <= 2:
        return 1.0 if m == 2 else float("inf")
    return ((m - 2) / (m - 1)) ** ((m - 2) / m) / (m - 1)


def deep_fit(m: int, beta: float) -> float:
    """``x* = argmin_{x in [0,1]} phi(x)``: m = 1, ``1/(1 + beta)``; m = 2, ``max(0, 1 - beta)``; m >= 3, the largest
    root of
    ``x^{(m-2)/m} (1 - x) = beta`` when beta < beta_c(m) and phi(root) < phi(0) = 1, else 0 (first-order jump)."""
    if m == 1:  # ridge regression: phi = (1-x)^2 + beta x^2
        return 1.0 / (1.0 + beta)
    if m == 2:
        return max(0.0, 1.0 - beta)
    if beta >= deep_threshold(m):
        return 0.0
    x_peak = (m - 2) / (2 * m - 2)  # maximiser of x^{(m-2)/m}(1-x)
    root = optimize.brentq(
        lambda x: x ** ((m - 2) / m) * (1 - x) - beta, x_peak, 1.0, xtol=1e-300, rtol=4 * np.finfo(float).eps
    )
    return root if deep_phi(root, m, beta) < 1.0 else 0.0


def deep_optimum(K: int, n: int, lambdas, bias: str) -> dict:
    """Deep linear optimum (bias ``"none"`` or ``"free"``): x*, eps, objective, per-factor ``lambda ||theta||^2``.

    eps = 1 - x* (no bias) or (K-1)(1-x*)/K (free bias); objective ``r/(2K) phi(x*)`` with r = K (no bias) or K-1
    (free bias); every factor carries ``lambda_i ||theta_i||_F^2 = r Lambda n^{1/m} x*^{2/m}`` (balanced factors;
    for m = 2 this is eps(1-eps) without bias and eps x* with a free bias).
    """
    lambdas = np.asarray(lambdas, dtype=float)
    m = lambdas.size
    beta = deep_beta(K, n, lambdas)
    x = deep_fit(m, beta)
    r = K if bias == "none" else K - 1
    eps = 1 - x if bias == "none" else (K - 1) * (1 - x) / K
    per_factor = r * x ** (2.0 / m) * n ** (1.0 / m) * float(np.exp(np.mean(np.log(lambdas))))
    return {
        "x": x,
        "beta": beta,
        "beta_c": deep_threshold(m),
        "eps": eps,
        "objective": r / (2 * K) * float(deep_phi(x, m, beta)),
        "factor_energy": per_factor,
        "m": m,
    }


# --------------------------------------------------------------------------------------------------------------
# The theorem of Rangamani & Banburski (R-B relations) and its bias-free correction
# --------------------------------------------------------------------------------------------------------------


def rb_classifier_norm_sq(K: int, eps: float, lam: float, bias: str) -> float:
    """Per-class ``||W_L^c||^2``: R-B (free bias) ``(eps - K eps^2/(K-1))/(K lam)``; bias-free correction
    ``eps (1 - eps)/(K lam)``."""
    if bias == "free":
        return (eps - K * eps**2 / (K - 1)) / (K * lam)
    return eps * (1 - eps) / (K * lam)


def rb_classifier(K: int, eps: float, lam: float, means: np.ndarray, bias: str) -> np.ndarray:
    """R-B: ``W_L^c = eps/(lam (K-1)) (mu_c - mu_G)`` (free bias); bias-free correction ``eps mu_c/(K lam)``
    (docs/theory/square_loss.md).

    ``means`` is K x d (class means of the last-layer features)."""
    if bias == "free":
        return eps / (lam * (K - 1)) * (means - means.mean(axis=0))
    return eps * means / (K * lam)


def rb_cosine(K: int, bias: str) -> float:
    """Classifier cosines: -1/(K-1) (simplex ETF, free bias) or 0 (orthogonal frame, bias-free)."""
    return -1.0 / (K - 1) if bias == "free" else 0.0


def nc3_limit(K: int, bias: str) -> float:
    """Papyan NC3 at the optimum: 0 with a free bias; ``2 - 2 sqrt((K-1)/K)`` bias-free (orthogonal frame vs
    centred means)."""
    return 0.0 if bias == "free" else 2.0 - 2.0 * math.sqrt((K - 1) / K)


# --------------------------------------------------------------------------------------------------------------
# Lemma 1 (Rangamani & Banburski): NC solutions cannot interpolate under the unregularised, bias-free square loss
# --------------------------------------------------------------------------------------------------------------


def lemma1_loss(K: int, alpha) -> np.ndarray:
    """``1/2 ((1 - alpha)^2 + alpha^2/(K-1))``: loss when W M = alpha K/(K-1) (I - 11^T/K) (collapsed features)."""
    alpha = np.asarray(alpha, dtype=float)
    return 0.5 * ((1 - alpha) ** 2 + alpha**2 / (K - 1))


def lemma1_minimum(K: int) -> tuple[float, float]:
    """``(alpha*, value) = ((K-1)/K, 1/(2K))``: the loss is bounded below by 1/(2K) > 0."""
    return (K - 1) / K, 1.0 / (2 * K)


# --------------------------------------------------------------------------------------------------------------
# A problem's closed form, with the product and bias of its optimum
# --------------------------------------------------------------------------------------------------------------


def closed_form(problem: SquareLossProblem) -> dict | None:
    """Theory for this problem, with the target product Z (K x N) and bias b of the optimum; None if none is known.

    Known: linear models with bias none or free (:func:`deep_optimum`; m = 1 and 2 are (A1)/(A2)), bias-free ReLU
    models (the linear optimum, whose factors are nonnegative so that ReLU is inactive there: a critical point,
    compared, not asserted: ``asserted`` False), and the one-layer linear UFM with a decayed bias ((A3),
    :func:`ufm_optimum`); networks only on orthonormal inputs. ``zero``: the optimum has W = H = 0 (Z exactly 0).
    """
    linear = problem.activation == "linear"
    K, n = problem.C, problem.n
    Y = problem.targets()
    centred = Y - 1.0 / K
    if problem.model == "net" and problem.inputs != "orthonormal":
        return None
    if problem.bias in ("none", "free") and (linear or problem.bias == "none"):
        t = deep_optimum(K, n, problem.factor_decays, str(problem.bias))
        Z = t["x"] * (Y if problem.bias == "none" else centred)
        b = np.zeros(K) if problem.bias == "none" else np.full(K, 1.0 / K)
        # bias-free ReLU: the linear optimum has nonnegative factors, so ReLU is inactive there (a critical point,
        # the optimum only for small depth / C: for ReLU it is compared, not asserted)
        return {**t, "Z": Z, "b": b, "asserted": linear, "zero": t["x"] == 0.0}
    if problem.layers == 1 and problem.model == "ufm" and linear:
        t = ufm_optimum(K, n, problem.lambda_W, problem.lambda_H, problem.bias)
        g, _ = ufm_decayed_bias(K, n, problem.lambda_W, problem.lambda_H, float(problem.bias))
        Z = t["a"] * centred + g / K * np.ones_like(Y)
        return {
            **t,
            "Z": Z,
            "b": t["bias"],
            "factor_energy": None,
            "asserted": True,
            "zero": t["a"] == 0.0 and g == 0.0,
        }
    return None
