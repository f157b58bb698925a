"""The R-B symmetric quasi-interpolation hypothesis is impossible at every bias-free critical point with weight decay.

Stationarity in the last layer, ``lambda_L W_L = R h^T / N``, gives for the residual sums ``u = 1^T R`` the exact
formula ``u = lambda_L 1^T (lambda_L I + G/N)^{-1}`` with ``G = h^T h`` (docs/theory/square_loss.md): u is never
zero, so the outputs of the samples cannot all sum to 1 as the hypothesis (outputs 1 - eps and eps/(K-1)) requires.
The expected values are that formula and the closed-form eps (ufm.theory.square_loss), never stored solver output.
"""

import numpy as np
import pytest

import ufm
from ufm.theory import square_loss as theory


def residual_sums_at_stationarity(lam: float, h: np.ndarray) -> np.ndarray:
    """``u = lam 1^T (lam I + h^T h / N)^{-1}``: the residual sums that stationarity in W_L forces."""
    N = h.shape[1]
    return np.linalg.solve(lam * np.eye(N) + h.T @ h / N, lam * np.ones(N))


@pytest.mark.parametrize("K, n, d, lam", [(2, 3, 2, 1e-3), (3, 2, 5, 5e-3), (10, 1, 4, 0.3)])
def test_ridge_stationary_last_layer_never_quasi_interpolates(K, n, d, lam):
    # Any features h (what earlier layers produce) with W_L stationary for them: the ridge solution.
    rng = np.random.default_rng(K * 100 + d)
    N = K * n
    Y = np.repeat(np.eye(K), n, axis=1)
    h = rng.normal(size=(d, N))
    W = Y @ h.T @ np.linalg.inv(h @ h.T + N * lam * np.eye(d))
    F = W @ h
    u = (Y - F).sum(axis=0)
    # tolerance: a d x d and an N x N solve of condition <= 1 + ||G||/(N lam) ~ 1e4 here, in float64
    np.testing.assert_allclose(u, residual_sums_at_stationarity(lam, h), rtol=1e-9, atol=1e-12)
    G_norm = np.linalg.norm(h.T @ h, 2)
    assert u.mean() >= lam / (lam + G_norm / N) * (1 - 1e-12) > 0
    # the distance to every symmetrically quasi-interpolating output matrix is at least ||u|| / sqrt(K)
    for eps in (0.0, 0.01, 0.5):
        sqi = (1 - eps) * Y + eps / (K - 1) * (1 - Y)
        assert np.linalg.norm(F - sqi) >= np.linalg.norm(u) / np.sqrt(K) * (1 - 1e-12)


def test_free_bias_optimum_does_quasi_interpolate():
    # Contrast (so that the test above can tell): with an unregularised bias the closed-form outputs sum to 1.
    t = theory.ufm_optimum(3, 2, 5e-3, 5e-3, "free")
    np.testing.assert_allclose(t["outputs"].sum(axis=0), 1.0, rtol=0, atol=1e-15)
    t = theory.ufm_optimum(3, 2, 5e-3, 5e-3, "none")
    np.testing.assert_allclose(t["outputs"].sum(axis=0), 1.0 - t["eps"], rtol=0, atol=1e-15)


def test_solver_critical_point_of_a_bias_free_relu_model():
    # A bias-free two-layer ReLU UFM, no closed form: at the solver's converged point the residual sums follow the
    # stationarity formula (tolerance 1e-8: the point is critical to a relative gradient <= 1e-12, and the N x N
    # solve is well conditioned), and they are positive: no output column sums to 1.
    report = ufm.run(ufm.SquareLossProblem(C=3, n=2, layers=2, activation="relu", d=6, bias="none", restarts=2))
    assert report.passed
    F, h, labels = report.arrays["F"], report.arrays["features"], report.arrays["labels"]
    Y = np.eye(3)[:, labels]
    u = (Y - F).sum(axis=0)
    np.testing.assert_allclose(u, residual_sums_at_stationarity(5e-3, h), rtol=1e-8, atol=1e-12)
    assert u.min() > 1e-3
