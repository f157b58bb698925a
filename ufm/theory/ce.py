"""Cross-entropy UFM with weight decay: the global optimum in closed form (numpy / scipy only).

Reference: Zhu, Ding, Zhou, Li, You, Sulam, Qu, "A Geometric Analysis of Neural Collapse with Unconstrained
Features", NeurIPS 2021, Theorem 3.1. Statement, origins (the paper's or derived here) and the hyper-parameter
map: docs/theory/ce.md.

Objective (samples x features layout): K classes, n samples per class, N = n K, feature dimension d >= K - 1,

    f(W, H, b) = (1/N) sum_{k,i} CE(W h_{k,i} + b, y_k) + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2
                 + (lambda_b/2) ||b||^2,

W in R^{K x d} (rows w_k), H in R^{N x d} (rows h_{k,i}, ordered by class), b in R^K, ``CE(z, y) = log sum_j
exp(z_j) - z_y``. Variants: a decayed bias (lambda_b > 0) or none (b = 0).

Theorem 3.1 (Zhu et al.): every global minimiser has h_{k,i} = h_k (NC1); the h_k and the w_k form a simplex ETF
(NC2) with ``w_k = sqrt(n lambda_H / lambda_W) h_k`` (NC3); b = b* 1, and with lambda_b > 0, b = 0 (CE is invariant
under adding a constant to every logit, so a constant bias only pays its decay).

Reduction to one scalar. Take ||w_k|| = a, ||h_k|| = c, h_k = (c / a) w_k, the w_k a simplex ETF
(``<w_j, w_k> = -a^2/(K-1)`` for j != k). A class-k sample has logits ``w_k.h_k = a c`` and ``w_j.h_k = -a c/(K-1)``:
margin ``K a c/(K-1)``, and CE ``log(1 + (K-1) exp(-K t/(K-1)))`` with t = a c. The penalties are
``(lambda_W/2) K a^2 + (lambda_H/2) N c^2`` (||W||_F^2 = K a^2, ||H||_F^2 = N c^2 = K n c^2; the objective averages
the CE only). At fixed t = a c, AM-GM: ``(lambda_W/2) K a^2 + (lambda_H/2) K n t^2/a^2 >= K sqrt(n lambda_W
lambda_H) t``, with equality iff ``lambda_W a^2 = n lambda_H c^2``, i.e. ``a / c = sqrt(n lambda_H / lambda_W)``
(the NC3 ratio). So, with ``rho = K sqrt(n lambda_W lambda_H)``,

    f* = min_{t >= 0} g(t),   g(t) = log(1 + (K-1) exp(-K t/(K-1))) + rho t,

g convex (a log-sum-exp of affine functions of t plus a linear term). Its derivative is

    g'(t) = rho - K q(t),   q(t) = exp(-s) / (1 + (K-1) exp(-s)),   s = K t/(K-1) (the margin),

where q(t) is the softmax probability of each wrong class, decreasing from q(0) = 1/K. Threshold:
``g'(0) = rho - 1``, so for rho >= 1 (``K^2 n lambda_W lambda_H >= 1``) the optimum is t* = 0, the trivial
W = H = 0 (b = 0) with f* = log K. For rho < 1 the root of g' is explicit: ``q = p := rho/K = sqrt(n lambda_W
lambda_H)`` gives ``exp(-s*) = p/(1 - (K-1) p)``, i.e.

    s* = log((1 - (K-1) p)/p) = log1p((1 - rho)/p),   t* = (K-1) s*/K,
    f* = -log(1 - (K-1) p) + (K-1) p s*

(the true-class probability is 1 - (K-1) p). :func:`optimal_product` also solves g'(t) = 0 by Brent's method
(``method="brentq"``) as a check of the explicit root. At t*:
``||W||_F^2 = K t* sqrt(n lambda_H/lambda_W)``, ``||H||_F^2 = K t* sqrt(n lambda_W/lambda_H)`` (so
``lambda_W ||W||_F^2 = lambda_H ||H||_F^2 = rho t*``), ``W W^T = (K a^2/(K-1)) (I - 11^T/K)``, class means
``M = sqrt(lambda_W/(n lambda_H)) W``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

from ufm.etf import simplex_etf


def rho(K: int, n: int, lambda_W: float, lambda_H: float) -> float:
    """``rho = K sqrt(n lambda_W lambda_H)``: the optimum is W = H = 0 iff rho >= 1."""
    return K * math.sqrt(n * lambda_W * lambda_H)


def scalar_objective(t, K: int, rho_: float):
    """``g(t) = log(1 + (K-1) exp(-K t/(K-1))) + rho t``: f at the balanced simplex-ETF point with product t = a c.

    Args: t (scalar or array, >= 0), K classes, rho_ = K sqrt(n lambda_W lambda_H). Returns g(t)."""
    t = np.asarray(t, dtype=float)
    return np.log1p((K - 1) * np.exp(-K * t / (K - 1))) + rho_ * t


def scalar_derivative(t, K: int, rho_: float):
    """``g'(t) = rho - K exp(-s)/(1 + (K-1) exp(-s))`` with s = K t/(K-1). Args as :func:`scalar_objective`."""
    e = np.exp(-K * np.asarray(t, dtype=float) / (K - 1))
    return rho_ - K * e / (1.0 + (K - 1) * e)


def scalar_second_derivative(t, K: int, rho_: float = 0.0):
    """``g''(t) = K^2/(K-1) exp(-s)/(1 + (K-1) exp(-s))^2 > 0`` (g is strictly convex; rho does not enter)."""
    e = np.exp(-K * np.asarray(t, dtype=float) / (K - 1))
    return K * K / (K - 1) * e / (1.0 + (K - 1) * e) ** 2


def optimal_product(K: int, rho_: float, method: str = "explicit") -> float:
    """``t* = argmin_{t >= 0} g(t)``: 0 if rho >= 1, else ``(K-1)/K log1p((1 - rho)/p)`` with p = rho/K.

    Args: K classes, rho_ = K sqrt(n lambda_W lambda_H) > 0, method ``"explicit"`` (the formula) or ``"brentq"``
    (scipy's Brent root of g' on a bracket [0, t_hi] with g'(t_hi) > 0). Returns t* = a c >= 0."""
    if rho_ >= 1.0:
        return 0.0
    p = rho_ / K
    if method == "explicit":
        return (K - 1) / K * math.log1p((1.0 - rho_) / p)
    t_hi = 1.0
    while scalar_derivative(t_hi, K, rho_) <= 0:
        t_hi *= 2.0
    return optimize.brentq(
        lambda t: float(scalar_derivative(t, K, rho_)), 0.0, t_hi, xtol=1e-300, rtol=4 * np.finfo(float).eps
    )


def optimum(K: int, n: int, lambda_W: float, lambda_H: float) -> dict:
    """The closed-form optimum of the CE UFM (with a decayed bias or none: b* = 0 in both).

    Args: K classes, n samples per class, weight decays lambda_W, lambda_H > 0.
    Returns a dict: ``rho``, ``p`` (= rho/K, the wrong-class probability when rho < 1, else 1/K), ``t`` (t* = a c),
    ``objective`` (f*), ``margin`` (s* = K t*/(K-1)), ``a`` = ||w_k||, ``c`` = ||h_k||, ``ratio`` = a/c =
    sqrt(n lambda_H/lambda_W), ``W_norm`` = ||W||_F, ``H_norm`` = ||H||_F, ``WWt`` (K x K), ``MMt`` (the class
    means' Gram, K x K), ``zero`` (t* = 0: W = H = 0)."""
    r = rho(K, n, lambda_W, lambda_H)
    t = optimal_product(K, r)
    zero = t == 0.0
    p = 1.0 / K if zero else r / K
    objective = math.log(K) if zero else -math.log1p(-(K - 1) * p) + (K - 1) * p * (K * t / (K - 1))
    ratio = math.sqrt(n * lambda_H / lambda_W)
    a, c = math.sqrt(t * ratio), math.sqrt(t / ratio)
    P = np.eye(K) - np.ones((K, K)) / K
    return {
        "rho": r,
        "p": p,
        "t": t,
        "objective": objective,
        "margin": K * t / (K - 1),
        "a": a,
        "c": c,
        "ratio": ratio,
        "W_norm": math.sqrt(K) * a,
        "H_norm": math.sqrt(K * n) * c,
        "WWt": K * a * a / (K - 1) * P,
        "MMt": K * c * c / (K - 1) * P,
        "zero": zero,
    }


def optimal_point(K: int, n: int, d: int, lambda_W: float, lambda_H: float, seed: int = 0) -> tuple:
    """A global minimiser ``(W, H, b)``: W (K x d) a simplex ETF with ||w_k|| = a (:func:`ufm.etf.simplex_etf`),
    H (N x d) with rows ``h_{k,i} = w_k / ratio`` (samples ordered by class), b = 0 (K,).

    Args: K, n, d >= K - 1, the decays, the seed of the ETF's random embedding in R^d. Returns (W, H, b)."""
    t = optimum(K, n, lambda_W, lambda_H)
    W = simplex_etf(K, d, t["a"], seed)
    H = np.repeat(W / t["ratio"], n, axis=0)
    return W, H, np.zeros(K)


def full_objective(W, H, b, labels, lambda_W: float, lambda_H: float, lambda_b: float = 0.0) -> float:
    """The objective f(W, H, b) in numpy (independent of the JAX one): mean CE (log-sum-exp shifted by the row max)
    plus the decays. Args: W (K x d), H (N x d), b (K,), labels (N,), decays. Returns f."""
    Z = H @ W.T + b
    m = Z.max(axis=1, keepdims=True)
    ce = np.log(np.exp(Z - m).sum(axis=1)) + m[:, 0] - Z[np.arange(Z.shape[0]), labels]
    return float(
        ce.mean() + 0.5 * lambda_W * np.sum(W * W) + 0.5 * lambda_H * np.sum(H * H) + 0.5 * lambda_b * np.sum(b * b)
    )
