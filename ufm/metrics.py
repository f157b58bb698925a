"""Neural-collapse metrics (Papyan, Han, Donoho, "Prevalence of neural collapse during the terminal phase of deep
learning training", PNAS 2020), numpy float64, one function each.

Conventions (ufm's follow Papyan et al.; the peers' are in :func:`peer_conventions` and docs/measure.md):

- features H (N x d) as rows, labels in 0..K-1, class means mu_k, global mean mu_G = the mean of all N samples
  (rhubarbwu/neural-collapse centres at the unweighted mean of the class means instead; the two agree for
  balanced classes);
- NC1 = tr(Sigma_W Sigma_B^+)/K with Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T and
  Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T;
- NC2: equinorm, equiangularity and max-angle of the centred class means (and of the classifier rows);
- NC3 = || W^T/||W||_F - M~/||M~||_F ||_F^2, SQUARED as Papyan et al. plot it (felixsh/nc-toolbox reports the
  norm itself, the square root of ufm's);
- NC4 = the share of samples whose classifier decision disagrees with the nearest class mean (the peers report
  the agreement, 1 - NC4; rhubarbwu's decision drops the bias).
"""

from __future__ import annotations

import numpy as np

CENTRES = ("samples", "class_means")


def class_means(H: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Class means (num_classes x d) of features H (N x d)."""
    return np.stack([H[labels == k].mean(axis=0) for k in range(num_classes)])


def global_mean(H: np.ndarray, means: np.ndarray, centre: str = "samples") -> np.ndarray:
    """mu_G: the mean of all samples (``centre="samples"``, Papyan et al. and nc-toolbox) or the unweighted mean of
    the class means (``"class_means"``, rhubarbwu/neural-collapse's default). Both make the centred class means
    linearly dependent (sum_k n_k (mu_k - mu_G) = 0, resp. sum_k (mu_k - mu_G) = 0), so Sigma_B has rank <= K-1."""
    if centre == "samples":
        return H.mean(axis=0)
    if centre == "class_means":
        return means.mean(axis=0)
    raise ValueError(f"centre must be one of {CENTRES}, got {centre!r}")


def nc1(H: np.ndarray, labels: np.ndarray, num_classes: int, *, centre: str = "samples") -> float:
    """NC1 = tr(Sigma_W Sigma_B^+)/K (Papyan et al. 2020), features H (N x d) as rows.

    Formula: ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``, ``Sigma_B = (1/K) sum_k (mu_k - mu_G)
    (mu_k - mu_G)^T`` with mu_G from :func:`global_mean` (``centre``).

    Computed in float64 with Sigma_B's pseudo-inverse from a symmetric eigendecomposition truncated to its top
    K-1 eigenvalues (its rank is at most K-1, see :func:`global_mean`) and to those above ``d eps`` times the
    largest, so that rounding noise in the null directions of a rank-deficient Sigma_B is never inverted; clamped
    at 0. A pseudo-inverse that keeps such noise INFLATES NC1, it does not make it negative: with float32 features
    (random, K = 10, 50 per class, d = 64) ``np.linalg.pinv`` gives 9.9e9 where the float64 value is 8.68, and
    rhubarbwu's ``svd`` variant (top K-1 singular pairs, whatever their size) inverts a rounding-level singular
    value as soon as the class means span fewer than K-1 dimensions.

    Args:
        H: features (N x d), any real dtype (cast to float64).
        labels: (N,) integers in 0..num_classes-1, every class present.
        num_classes: K.
        centre: ``"samples"`` (default, Papyan et al., nc-toolbox) or ``"class_means"`` (rhubarbwu).

    Returns:
        NC1 >= 0; 0 exactly when every sample sits at its class mean.
    """
    H = np.asarray(H, dtype=np.float64)
    means = class_means(H, labels, num_classes)
    centred_means = means - global_mean(H, means, centre)
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
    return {
        "equinorm": float(np.std(norms) / np.mean(norms)),
        "equiangular": float(np.std(off)),
        "max_angle": float(np.mean(np.abs(off + 1.0 / (K - 1)))),
        "mean_cosine": float(np.mean(off)),
    }


def nc3(W: np.ndarray, H: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """NC3 self-duality ``|| W^T/||W||_F - M~/||M~||_F ||_F^2`` with M~ (d x K) the centred class means (centred at
    the mean of all samples); squared, as in Papyan et al. (nc-toolbox's ``nc3_self_duality`` is its square root)."""
    means = class_means(np.asarray(H, dtype=np.float64), labels, num_classes)
    M = (means - np.asarray(H, dtype=np.float64).mean(axis=0)).T
    W = np.asarray(W, dtype=np.float64)
    return float(np.sum((W.T / np.linalg.norm(W) - M / np.linalg.norm(M)) ** 2))


def nearest_class_mean(H: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Index of the nearest class mean (Euclidean; the first on ties) of each row of H, one class at a time so
    that memory stays N x d (a N x K x d difference would not fit for large networks)."""
    dist = np.stack([np.sum((H - mean) ** 2, axis=1) for mean in means], axis=1)
    return np.argmin(dist, axis=1)


def nc4(W: np.ndarray, b: np.ndarray | float, H: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """NC4: share of samples whose classifier decision ``argmax_c w_c.h + b_c`` differs from the nearest class mean
    (Papyan et al.'s "NCC mismatch"; the peers report the agreement, ``1 - NC4``). ``b``: the bias (C,) or 0."""
    H = np.asarray(H, dtype=np.float64)
    means = class_means(H, labels, num_classes)
    decision = np.argmax(H @ np.asarray(W, dtype=np.float64).T + b, axis=1)
    return float(np.mean(decision != nearest_class_mean(H, means)))


def gram_etf_error(A: np.ndarray, B: np.ndarray) -> float:
    """``|| B A^T/||B A^T||_F - (I - 11^T/K)/sqrt(K-1) ||_F`` for two sets of K vectors (rows of A and B).

    The distance of their normalised cross-Gram matrix to the normalised simplex-ETF Gram matrix (Kothapalli,
    "Neural Collapse: A Review on Modelling Principles and Generalization", TMLR 2023), as rhubarbwu/neural-collapse
    computes it: ``A = B`` = centred class means is its NC2 (``simplex_etf_error``), ``A`` = centred class means
    and ``B = W`` its NC3 (``self_duality_error``). 0 exactly for a simplex ETF (resp. W proportional to it); at
    most 2 (both matrices have unit norm)."""
    A, B = np.asarray(A, dtype=np.float64), np.asarray(B, dtype=np.float64)
    K = A.shape[0]
    gram = B @ A.T
    ideal = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)
    return float(np.linalg.norm(gram / np.linalg.norm(gram) - ideal))


def peer_conventions(W: np.ndarray, b, H: np.ndarray, labels: np.ndarray, num_classes: int) -> dict:
    """NC1-NC4 in the conventions of two widely used libraries, computed in float64 with ufm's numerics.

    rhubarbwu/neural-collapse (``neural_collapse.measure``): everything centred at the unweighted mean of the
    class means; ``nc1`` = ``covariance_ratio(..., "pinv")`` = tr(Sigma_W Sigma_B^+)/K; ``nc2_gram_error`` =
    ``simplex_etf_error``; ``nc3_gram_error`` = ``self_duality_error`` (:func:`gram_etf_error`, a Gram-matrix error,
    not Papyan's NC3); ``nc4_agreement`` = ``clf_ncc_agreement`` with its sample weighting: the share of samples
    on which ``argmax W h`` (NO bias) and the nearest class mean agree.

    felixsh/nc-toolbox (``nc_toolbox.metrics``): centred at the mean of all samples; ``nc1`` = ``nc1_strong`` (ufm's
    NC1); ``nc2_equinormness`` = mean over pairs i < j of ``log||mu_i - mu_G|| - log||mu_j - mu_G||`` and
    ``nc2_equiangularity`` = mean over pairs of ``cos(mu_i - mu_G, mu_j - mu_G) + 1/(K-1)`` (its default
    ``reduction='mean'``; both signed); ``nc3`` = ``nc3_self_duality`` = ``|| W/||W||_F - M~/||M~||_F ||_F``, NOT
    squared; ``nc4_agreement`` = ``nc4_classifier_agreement``: agreement of ``argmax (W h + b)`` with the nearest
    class mean.

    Args:
        W: classifier (K x d); b: its bias (K,) or 0; H: features (N x d); labels: (N,) in 0..K-1.

    Returns:
        ``{"rhubarbwu": {...}, "nc_toolbox": {...}}`` of floats.
    """
    H = np.asarray(H, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    K = num_classes
    means = class_means(H, labels, K)
    centred_rw = means - global_mean(H, means, "class_means")
    centred_nt = means - global_mean(H, means, "samples")
    i, j = np.triu_indices(K, k=1)
    norms = np.linalg.norm(centred_nt, axis=1)
    cos = (centred_nt @ centred_nt.T) / np.outer(norms, norms)
    rhubarbwu = {
        "nc1": nc1(H, labels, K, centre="class_means"),
        "nc2_gram_error": gram_etf_error(centred_rw, centred_rw),
        "nc3_gram_error": gram_etf_error(centred_rw, W),
        "nc4_agreement": 1.0 - nc4(W, 0.0, H, labels, K),
    }
    nc_toolbox = {
        "nc1": nc1(H, labels, K, centre="samples"),
        "nc2_equinormness": float(np.mean(np.log(norms[i]) - np.log(norms[j]))),
        "nc2_equiangularity": float(np.mean(cos[i, j] + 1.0 / (K - 1))),
        "nc3": float(np.linalg.norm(W / np.linalg.norm(W) - centred_nt / np.linalg.norm(centred_nt))),
        "nc4_agreement": 1.0 - nc4(W, b, H, labels, K),
    }
    return {"rhubarbwu": rhubarbwu, "nc_toolbox": nc_toolbox}


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
