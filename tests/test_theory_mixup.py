"""Closed forms of Theorem 3.1 (ufm.theory.mixup) against independent computations, no solver involved."""

import numpy as np
import pytest

from ufm.etf import simplex_etf
from ufm.theory import mixup as theory

KAPPAS = [1e-6, 1e-3, 0.1, 1.0, 15.0, 1e3, 1e6]


def bisect_root(C, kappa):
    """Independent: plain bisection on F(K) = K(C-1+e^{-CK}) + kappa, bracket [-kappa/(C-1), 0] (F(-kappa/(C-1)) <
    0)."""
    lo, hi = -kappa / (C - 1), 0.0
    with np.errstate(over="ignore"):
        for _ in range(2000):
            mid = 0.5 * (lo + hi)
            if mid in (lo, hi):
                break
            if mid * (C - 1 + np.exp(-C * mid)) + kappa > 0:
                hi = mid
            else:
                lo = mid
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("C", [2, 3, 10, 100])
@pytest.mark.parametrize("kappa", KAPPAS)
def test_root_matches_bisection(C, kappa):
    K = theory.same_class_root(C, kappa)
    assert K < 0
    # Bisection to adjacent floats: the two agree to a few ulps of K (F is well conditioned: F' >= C-1 on K < 0).
    assert abs(K - bisect_root(C, kappa)) <= 1e-13 * abs(K)


@pytest.mark.parametrize("C", [3, 10])
@pytest.mark.parametrize("kappa", [0.1, 15.0, 1e3])
def test_gaps_solve_the_printed_system(C, kappa):
    lam = np.linspace(0, 1, 41)
    a, b = theory.different_class_gaps(C, kappa, lam)
    # The system a = kappa(lam - p_c + p_o) carries kappa * (rounding of probabilities): tolerance 1e-13 * kappa.
    assert np.max(theory.gap_residual(C, kappa, lam, a, b)) <= 1e-13 * max(kappa, 1.0)
    # Symmetry b(lam) = a(1 - lam), and the lam = 1 endpoint is the same-class optimum (a = -C K, b = 0).
    np.testing.assert_allclose(b, a[::-1], rtol=1e-13, atol=1e-13)
    K = theory.same_class_root(C, kappa)
    assert abs(a[-1] + C * K) <= 1e-12 * abs(C * K) and abs(b[-1]) <= 1e-12 * abs(C * K)


@pytest.mark.parametrize("C", [3, 10])
@pytest.mark.parametrize("kappa", [0.1, 15.0, 1e3])
def test_half_mix_scalar_equation(C, kappa):
    a, b = theory.different_class_gaps(C, kappa, np.array([0.5]))
    s = a[0]
    assert abs(a[0] - b[0]) <= 1e-14 * abs(s)
    assert abs(s * (2 * np.exp(s) + C - 2) - C * kappa / 2) <= 1e-12 * C * kappa


def test_bulge_ratio_examples_of_the_note():
    # Fisher et al. (2024): about 1.31x for C=3, kappa=15 and 1.67x for C=10, kappa=1000 (quoted to 2-3 digits).
    assert abs(theory.half_mix_bulge_ratio(3, 15.0) - 1.31) < 0.01
    assert abs(theory.half_mix_bulge_ratio(10, 1000.0) - 1.67) < 0.01


def test_two_classes_scalar_equation():
    kappa, lam = 7.0, np.linspace(0, 1, 11)
    a, b = theory.different_class_gaps(2, kappa, lam)
    np.testing.assert_allclose(a, kappa * (lam - 1 / (1 + np.exp(-2 * a))), atol=1e-13 * kappa)
    np.testing.assert_array_equal(b, -a)


def test_feature_first_order_condition():
    """h* = (1/mu) W^T (y - softmax(W h*)) holds at the closed form (checked with numpy, no JAX)."""
    C, d, m, mu = 5, 8, 1.3, 0.02
    W = simplex_etf(C, d, m, seed=2)
    c, cp, lam = np.repeat(np.arange(C), C * 3), np.tile(np.repeat(np.arange(C), 3), C), np.tile([0.0, 0.3, 1.0], C * C)
    h = theory.optimal_features(W, m, mu, c, cp, lam)
    z = h @ W.T
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    y = lam[:, None] * np.eye(C)[c] + (1 - lam[:, None]) * np.eye(C)[cp]
    residual = h - (y - p) @ W / mu
    assert np.max(np.linalg.norm(residual, axis=1) / np.linalg.norm(h, axis=1)) < 1e-12


def test_confidence_tends_to_target_as_kappa_grows():
    lam = np.array([0.2, 0.4, 0.5, 0.7])
    gaps = [np.max(np.abs(theory.confidence(10, k, lam) - np.maximum(lam, 1 - lam))) for k in (1e1, 1e3, 1e5, 1e7)]
    assert all(g2 < g1 for g1, g2 in zip(gaps, gaps[1:])) and gaps[-1] < 1e-4
