"""Neural-collapse metrics (Papyan, Han, Donoho, PNAS 2020), numpy float64, one function each."""

from __future__ import annotations

import numpy as np


def class_means(H: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class means (num_classes x d) of features H (N x d)."""
    return np.stack([H[labels == k].mean(axis=0) for k in range(num_classes)])


def nc1(H: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """NC1 = tr(Sigma_W Sigma_B^+)/K (Papyan et al. 2020), features H (N x d) as rows.

    Computed in float64 with Sigma_B's pseudo-inverse from a symmetric eigendecomposition truncated to its top
    K-1 eigenvalues (its rank), and clamped at 0: float32 pseudo-inverses of the rank-deficient Sigma_B are what
    gives other libraries negative NC1 values.
    """
    H = np.asarray(H, dtype=np.float64)
    means = class_means(H, labels, num_classes)
    centred_means = means - H.mean(axis=0)
    sigma_b = centred_means.T @ centred_means / num_classes
    within = H - means[labels]
    sigma_w = within.T @ within / H.shape[0]
    w, V = np.linalg.eigh(sigma_b)
    keep = np.argsort(w)[::-1][: num_classes - 1]
    keep = keep[w[keep] > np.finfo(np.float64).eps * max(w.max(), 0.0) * sigma_b.shape[0]]
    pinv = (V[:, keep] / w[keep]) @ V[:, keep].T
    return max(float(np.trace(sigma_w @ pinv)) / num_classes, 0.0)
