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


def nc2(H: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """NC2 of the centred class means (Papyan et al. 2020): equinorm (std/mean of ``||mu_c - mu_G||``),
    equiangularity (std of pairwise cosines) and max-angle (mean ``|cos + 1/(K-1)|``)."""
    means = class_means(np.asarray(H, dtype=np.float64), labels, num_classes)
    centred = means - np.asarray(H, dtype=np.float64).mean(axis=0)
    return frame_geometry(centred)


def frame_geometry(vectors: np.ndarray) -> dict:
    """Equinorm, equiangularity and max-angle of K vectors (rows), as in NC2; applied to classifier rows too."""
    norms = np.linalg.norm(vectors, axis=1)
    K = vectors.shape[0]
    cos = (vectors @ vectors.T) / np.outer(norms, norms)
    off = cos[~np.eye(K, dtype=bool)]
    return {"equinorm": float(np.std(norms) / np.mean(norms)), "equiangular": float(np.std(off)),
            "max_angle": float(np.mean(np.abs(off + 1.0 / (K - 1)))), "mean_cosine": float(np.mean(off))}


def nc3(W: np.ndarray, H: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """NC3 self-duality ``|| W^T/||W||_F - M~/||M~||_F ||_F^2`` with M~ (d x K) the centred class means."""
    means = class_means(np.asarray(H, dtype=np.float64), labels, num_classes)
    M = (means - np.asarray(H, dtype=np.float64).mean(axis=0)).T
    return float(np.sum((W.T / np.linalg.norm(W) - M / np.linalg.norm(M)) ** 2))


def nc4(W: np.ndarray, b: np.ndarray, H: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """NC4: share of samples whose classifier decision ``argmax_c w_c.h + b_c`` differs from the nearest class mean."""
    H = np.asarray(H, dtype=np.float64)
    means = class_means(H, labels, num_classes)
    decision = np.argmax(H @ W.T + b, axis=1)
    nearest = np.argmin(((H[:, None, :] - means[None]) ** 2).sum(axis=-1), axis=1)
    return float(np.mean(decision != nearest))


def nonlinearity(h_mix: np.ndarray, h_points: np.ndarray, lam: np.ndarray, *, normalise: bool = True) -> np.ndarray:
    """Per-mix non-linearity of a representation (Chaudhry et al. 2022, eq. 3), float64.

    ``|| f^(Mix_lam(x_1..x_k)) - sum_j lam_j f^(x_j) ||`` with ``f^ = f/||f||`` when ``normalise`` (the paper's
    definition: every representation scaled to unit norm "for a fair comparison across layers") or ``f^ = f``
    otherwise. ``h_mix`` (n, d): representations of the mixed inputs; ``h_points`` (n, k, d): of the k inputs that
    were mixed; ``lam`` (n, k): the weights. Returns (n,); the paper's NonLin is their mean (its sum, up to n).

    Note: normalising each output makes the measure positive even for an exactly linear map (the mix of unit
    vectors is shorter than a unit vector), see ``ufm.theory.mixup.linear_map_nonlinearity``.
    """
    h_mix = np.asarray(h_mix, dtype=np.float64)
    h_points = np.asarray(h_points, dtype=np.float64)
    if normalise:
        h_mix = h_mix / np.linalg.norm(h_mix, axis=-1, keepdims=True)
        h_points = h_points / np.linalg.norm(h_points, axis=-1, keepdims=True)
    mixed = np.einsum("nk,nkd->nd", np.asarray(lam, dtype=np.float64), h_points)
    return np.linalg.norm(h_mix - mixed, axis=-1)


def nonlinearity_floor(h_points: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Lower bound of the normalised :func:`nonlinearity` for ANY map with these outputs at the mixed points:
    ``1 - ||sum_j lam_j f^(x_j)||`` (the distance of the mix of unit vectors to the unit sphere). An exactly linear
    map attains it when the ``f(x_j)`` have equal norms; ``NonLin - floor`` is the part eq. (3) owes to the map."""
    h_points = np.asarray(h_points, dtype=np.float64)
    unit = h_points / np.linalg.norm(h_points, axis=-1, keepdims=True)
    return 1.0 - np.linalg.norm(np.einsum("nk,nkd->nd", np.asarray(lam, dtype=np.float64), unit), axis=-1)
