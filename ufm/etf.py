"""Simplex equiangular tight frames (numpy only; used by problems, theory and checks alike)."""

from __future__ import annotations

import numpy as np


def centring_basis(C: int) -> np.ndarray:
    """Orthonormal basis (C x (C-1)) of the complement of the all-ones vector in R^C.

    Columns are Helmert contrasts, so ``B @ B.T = I - 11^T / C`` exactly in exact arithmetic.
    """
    B = np.zeros((C, C - 1))
    for j in range(1, C):
        B[:j, j - 1] = 1.0
        B[j, j - 1] = -float(j)
        B[:, j - 1] /= np.sqrt(j * (j + 1))
    return B


def random_isometry(d: int, k: int, seed: int) -> np.ndarray:
    """A seeded d x k matrix with orthonormal columns (k <= d), Haar-distributed."""
    rng = np.random.default_rng(seed)
    Q, R = np.linalg.qr(rng.standard_normal((d, k)))
    return Q * np.sign(np.diag(R))


def simplex_etf(C: int, d: int, m: float = 1.0, seed: int = 0) -> np.ndarray:
    """Simplex ETF classifier W (C x d) with multiplier m, randomly embedded in R^d (d >= C-1).

    Defining Gram matrix (Fisher et al. 2024, Sec. 3): ``||w_c|| = m``, ``<w_c, w_c'> = -m^2/(C-1)`` for c != c', i.e.
    ``W W^T = gamma (I - 11^T/C)`` with ``gamma = C m^2 / (C-1)``; the rows sum to zero.
    """
    if C < 2:
        raise ValueError(f"C must be >= 2, got {C}")
    if d < C - 1:
        raise ValueError(f"d must be >= C-1 = {C - 1}, got {d}")
    scale = m * np.sqrt(C / (C - 1))
    return scale * centring_basis(C) @ random_isometry(d, C - 1, seed).T


def etf_gram(C: int, m: float = 1.0) -> np.ndarray:
    """The Gram matrix W W^T of a simplex ETF with multiplier m: ``C m^2/(C-1) (I - 11^T/C)``."""
    return C * m**2 / (C - 1) * (np.eye(C) - np.ones((C, C)) / C)


def etf_gram_error(W: np.ndarray) -> tuple[float, float]:
    """Distance of W W^T to the nearest simplex-ETF Gram matrix, and that ETF's multiplier m.

    The nearest ``g (I - 11^T/C)`` in Frobenius norm has ``g = <G, P>/(C-1)``; returns
    (||G - g P||_F / ||G||_F, m) with ``m = sqrt(g (C-1)/C)``.
    """
    W = np.asarray(W)
    C = W.shape[0]
    G = W @ W.T
    P = np.eye(C) - np.ones((C, C)) / C
    g = max(float(np.sum(G * P)) / (C - 1), 0.0)
    rel = float(np.linalg.norm(G - g * P) / max(np.linalg.norm(G), np.finfo(float).tiny))
    return rel, float(np.sqrt(g * (C - 1) / C))
