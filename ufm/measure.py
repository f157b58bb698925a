"""Measure a trained network's last-layer features against the unconstrained-features model: ``ufm measure``.

    python -m ufm.measure FEATURES.npz [--out DIR] [--quiet]        # the same: ufm measure FEATURES.npz ...

``FEATURES.npz`` (``numpy.savez``; float arrays of any precision are read as float64) holds

    features        (N, d)  last-layer features, one row per sample                      required
    labels          (N,)    the integer labels the network was trained with, 0..C-1      required
    W               (C, d)  the last layer's weights: logits W h + bias                  required
    bias            (C,)    its bias (absent: 0)                                         optional
    mixed_features  (M, d)  features of mixed inputs                                     optional, all three
    mixed_labels    (M, 2)  the two classes (c, c') each input mixes                     or none
    mixed_lambda    (M,)    the weight lambda of c: target lambda e_c + (1-lambda) e_c'
    noisy_mask      (N,)    bool, true where a sample was trained with a wrong label     optional
    true_labels     (N,)    the true classes (with noisy_mask; inferred for C = 2)       optional

and :func:`measure` takes the same arrays as keyword arguments. Three sections, each computed only where its data
is present, all in float64:

1. Neural collapse NC1-NC4 (:func:`neural_collapse`): ufm's conventions (Papyan, Han, Donoho, PNAS 2020) and
   those of rhubarbwu/neural-collapse and felixsh/nc-toolbox (``ufm.metrics.peer_conventions``).
2. The mixup geometry of Theorem 3.1 of Fisher, Meng, Papyan, "Pushing Boundaries: Mixup's Influence on Neural
   Collapse", ICLR 2024 (:func:`mixup_geometry`, :func:`fit_theorem31`).
3. Memorization and dilation under label noise (Nguyen, Levie, Lienen, Huellermeier, Kutyniok,
   "Memorization-Dilation: Modeling Neural Collapse Under Noise", ICLR 2023; :func:`label_noise`), in ufm's
   Model 3 definitions and in those of the paper's code.

Nothing is graded: every row is reported (``info``) or undefined with its reason (``VOID``). The command line
writes ``summary.json`` (every number, the input's shapes, versions), ``measures.npz`` (the per-sample and
per-class arrays) and ``table.txt`` into ``--out`` (default ``runs/measure-<time>``) by the rules of
``python -m ufm.solve``: a link, a non-folder or a non-empty folder is never touched, and the files appear in one
rename of a staging folder. Exit codes: 0 measured and written; 2 bad input (one line naming the argument, or the
NPZ key, and its valid range: nothing computed, nothing written); 3 the results could not be written; 130 SIGINT,
143 SIGTERM (nothing left behind).
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import stat
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from ufm import metrics
from ufm.checks import Check
from ufm.etf import etf_gram_error
from ufm.problems import InputError
from ufm.problems.mixup import KAPPA_RANGE
from ufm.theory import mixup as theory

PROG = "python -m ufm.measure"
REQUIRED = ("features", "labels", "W")
MIXED = ("mixed_features", "mixed_labels", "mixed_lambda")
OPTIONAL = ("bias", *MIXED, "noisy_mask", "true_labels")
KEYS = REQUIRED + OPTIONAL
# Mixed samples whose lambda lies within this distance of 1/2 enter the bulge ratio (real mixup draws lambda from
# a continuous Beta law, so exactly 1/2 is rare); the theory's ratio is evaluated on the same samples.
HALF_WINDOW = 0.05
# Theorem 3.1's kappa is fitted on a log grid over the range where float64 resolves the optimum (ufm.problems.
# mixup), 4 points per decade, then refined by Gauss-Newton in log kappa from the best grid point.
GRID_PER_DECADE = 4
EXIT_CODES_HELP = (
    "exit codes: 0 measured and written; 2 bad input (one line, nothing written); 3 results could "
    "not be written; 130 SIGINT, 143 SIGTERM (nothing left behind)"
)


# ---------------------------------------------------------------------------------------------------------------
# Input: the arrays, validated before anything is computed.
# ---------------------------------------------------------------------------------------------------------------


def _real(name: str, value, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu" or array.ndim != ndim:
        raise InputError(name, f"must be a real {ndim}-D array, got dtype {array.dtype} with shape {array.shape}")
    array = array.astype(np.float64)
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise InputError(name, f"must be finite, got {bad} NaN or infinite entr{'y' if bad == 1 else 'ies'}")
    return array


def _integers(name: str, value, shape: tuple, num_classes: int) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iu" or array.shape != shape:
        raise InputError(
            name, f"must be an integer array of shape {shape}, got dtype {array.dtype} with shape {array.shape}"
        )
    outside = (array < 0) | (array >= num_classes)
    if outside.any():
        raise InputError(
            name, f"must lie in [0, {num_classes - 1}] (C = {num_classes} rows of W), got {int(array[outside][0])}"
        )
    return array.astype(np.int64)


def validate(
    features,
    labels,
    W,
    *,
    bias=None,
    mixed_features=None,
    mixed_labels=None,
    mixed_lambda=None,
    noisy_mask=None,
    true_labels=None,
) -> dict:
    """The arrays of a features file, checked and converted (float64, int64, bool; ``bias`` None when absent);
    see the module docstring.

    Raises:
        InputError: naming the first offending array (its ``field``) and its valid range.
    """
    H = _real("features", features, 2)
    N, d = H.shape
    if N < 2 or d < 1:
        raise InputError("features", f"must have N >= 2 rows and d >= 1 columns, got shape {H.shape}")
    Wm = _real("W", W, 2)
    C = Wm.shape[0]
    if C < 2 or Wm.shape[1] != d:
        raise InputError(
            "W", f"must have shape (C, d) with C >= 2 classes and d = {d} (features' columns), got {Wm.shape}"
        )
    y = _integers("labels", labels, (N,), C)
    missing = np.setdiff1d(np.arange(C), y)
    if missing.size:
        raise InputError(
            "labels", f"every class 0..{C - 1} (C = rows of W) needs a sample; class {missing[0]} has none"
        )
    out = {"features": H, "labels": y, "W": Wm, "bias": None}
    if bias is not None:
        b = _real("bias", bias, 1)
        if b.shape != (C,):
            raise InputError("bias", f"must have shape ({C},) (one per row of W), got {b.shape}")
        out["bias"] = b
    given = [name for name, value in zip(MIXED, (mixed_features, mixed_labels, mixed_lambda)) if value is not None]
    if given and len(given) < 3:
        absent = next(name for name in MIXED if name not in given)
        raise InputError(absent, f"required with {given[0]}: mixed inputs need {', '.join(MIXED)} together")
    if given:
        Hm = _real("mixed_features", mixed_features, 2)
        if Hm.shape[1] != d or Hm.shape[0] < 1:
            raise InputError("mixed_features", f"must have shape (M, {d}) with M >= 1, got {Hm.shape}")
        M = Hm.shape[0]
        pairs = _integers("mixed_labels", mixed_labels, (M, 2), C)
        lam = _real("mixed_lambda", mixed_lambda, 1)
        if lam.shape != (M,) or np.any((lam < 0) | (lam > 1)):
            raise InputError(
                "mixed_lambda",
                f"must be {M} values in [0, 1] (one per mixed input), got shape "
                f"{lam.shape}, range [{lam.min():g}, {lam.max():g}]",
            )
        out.update(mixed_features=Hm, mixed_labels=pairs, mixed_lambda=lam)
    if true_labels is not None and noisy_mask is None:
        raise InputError("true_labels", "only used with noisy_mask (the samples trained with a wrong label)")
    if noisy_mask is not None:
        mask = np.asarray(noisy_mask)
        if mask.shape != (N,) or mask.dtype.kind not in "biu" or not np.isin(mask, (0, 1)).all():
            raise InputError(
                "noisy_mask",
                f"must be a boolean (or 0/1) array of shape ({N},), got dtype {mask.dtype} with shape {mask.shape}",
            )
        mask = mask.astype(bool)
        clean_classes = np.unique(y[~mask])
        if clean_classes.size < C:
            lacking = np.setdiff1d(np.arange(C), clean_classes)[0]
            raise InputError("noisy_mask", f"every class needs a clean sample (its centroid); class {lacking} has none")
        out["noisy_mask"] = mask
        if true_labels is not None:
            true = _integers("true_labels", true_labels, (N,), C)
            if np.any(true[~mask] != y[~mask]) or np.any(true[mask] == y[mask]):
                raise InputError(
                    "true_labels",
                    "must equal labels exactly where noisy_mask is false (clean "
                    "samples) and differ from them where it is true",
                )
            out["true_labels"] = true
        elif C == 2:
            out["true_labels"] = np.where(mask, 1 - y, y)
    return out


def load(path) -> dict:
    """The arrays of a features file ``path`` (an NPZ written by ``numpy.savez``), validated by :func:`validate`.

    Raises:
        InputError: field ``FEATURES`` for a file that is missing, not a regular file or not an NPZ, or holds an
            unknown key, lacks a required one or holds an object array; else the field of the offending key.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except OSError as err:
        raise InputError("FEATURES", f"cannot read {str(path)!r}: {err.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise InputError("FEATURES", f"{str(path)!r} is not a regular file (an NPZ written by numpy.savez)")
    if not zipfile.is_zipfile(path):
        raise InputError("FEATURES", f"{str(path)!r} is not an NPZ archive (numpy.savez / savez_compressed)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            names = list(archive.files)
            unknown = sorted(set(names) - set(KEYS))
            if unknown:
                raise InputError(
                    "FEATURES", f"unknown key {unknown[0]!r} in {str(path)!r}; valid keys: {', '.join(KEYS)}"
                )
            absent = [name for name in REQUIRED if name not in names]
            if absent:
                raise InputError(
                    "FEATURES",
                    f"key {absent[0]!r} missing in {str(path)!r}; required: features (N, d), labels (N,), W (C, d)",
                )
            arrays = {name: archive[name] for name in names}
    except InputError:
        raise
    except ValueError as err:  # object arrays (allow_pickle=False) and malformed members
        raise InputError("FEATURES", f"{str(path)!r} cannot be read as plain arrays ({err})") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise InputError("FEATURES", f"{str(path)!r} is not a readable NPZ archive ({err})") from None
    return validate(**arrays)


# ---------------------------------------------------------------------------------------------------------------
# 1. Neural collapse in three conventions.
# ---------------------------------------------------------------------------------------------------------------


def neural_collapse(features: np.ndarray, labels: np.ndarray, W: np.ndarray, bias) -> dict:
    """NC1-NC4 of the features in ufm's conventions and the peers' (``ufm.metrics``; docs/measure.md's table).

    ufm (Papyan, Han, Donoho, PNAS 2020): ``nc1`` = tr(Sigma_W Sigma_B^+)/C centred at the mean of all samples;
    ``nc2_means`` / ``nc2_classifier``: equinorm (std/mean of the norms), equiangularity (std of the pairwise
    cosines) and max-angle (mean ``|cos + 1/(C-1)|``) of the centred class means / of the rows of W; ``nc3`` =
    ``|| W^T/||W||_F - M~/||M~||_F ||_F^2`` (squared); ``nc4`` = share of samples whose decision ``argmax(W h + b)``
    DISAGREES with the nearest class mean. ``rhubarbwu`` and ``nc_toolbox``: ``ufm.metrics.peer_conventions``.

    Returns:
        ``{"ufm": {...}, "rhubarbwu": {...}, "nc_toolbox": {...}}``.
    """
    C = W.shape[0]
    ufm = {
        "nc1": metrics.nc1(features, labels, C),
        "nc2_means": metrics.nc2(features, labels, C),
        "nc2_classifier": metrics.frame_geometry(W),
        "nc3": metrics.nc3(W, features, labels, C),
        "nc4": metrics.nc4(W, bias, features, labels, C),
    }
    return {"ufm": ufm, **metrics.peer_conventions(W, bias, features, labels, C)}


# ---------------------------------------------------------------------------------------------------------------
# 2. Mixup: the geometry of Theorem 3.1 and the distance to its optimum at the network's own classifier.
# ---------------------------------------------------------------------------------------------------------------


def theorem31_features(W: np.ndarray, m: float, kappa: float, c, c_prime, lam) -> np.ndarray:
    """Theorem 3.1's optimum h*(c, c', lam) (n, d) at the classifier W with multiplier m and ``kappa = C m^2 /
    ((C-1) mu)``: ``-((C-1) K/m^2) w_c`` for c = c', ``(C-1)/(C m^2) (a w_c + b w_c')`` otherwise
    (``ufm.theory.mixup.optimal_features``, whose statement assumes W a simplex ETF with ``||w_c|| = m``)."""
    C = W.shape[0]
    return theory.optimal_features(W, m, C * m**2 / ((C - 1) * kappa), c, c_prime, lam)


def fit_theorem31(W: np.ndarray, h: np.ndarray, c, c_prime, lam) -> dict:
    """Theorem 3.1's optimum nearest to the mixed features h (M, d) at the network's own classifier W.

    Fitted, in this order:

    - the multiplier m from W alone: ``W W^T`` is compared with its nearest simplex-ETF Gram matrix
      ``g (I - 11^T/C)`` in the Frobenius norm, ``g = <W W^T, I - 11^T/C>/(C-1)``, ``m = sqrt(g (C-1)/C)``
      (``ufm.etf.etf_gram_error``; its relative error says how far W is from an ETF, where the theorem holds);
    - kappa (equivalently the effective feature weight decay ``mu = C m^2/((C-1) kappa)``) by least squares,
      ``min_kappa sum_i ||h_i - h*_i(kappa)||^2`` over ``log kappa`` in ``KAPPA_RANGE``: a log grid
      (``GRID_PER_DECADE`` points per decade), then Gauss-Newton in ``log kappa`` from the best grid point (its
      Jacobian by central differences, step 1e-6; steps halved until the sum of squares does not increase). At
      features that are the optimum for some kappa, the residual vanishes at that kappa, so the fit finds it to
      rounding, whatever the Jacobian's truncation error.

    Returns:
        dict with ``m``, ``etf_gram_error``, ``kappa`` (``kappa_at_bound``: the fit ended at an end of
        ``KAPPA_RANGE``, so no kappa in it fits), ``mu``, ``h_theory`` (M, d), the distances
        ``distance_rms = sqrt(mean_i ||h_i - h*_i||^2)`` and ``distance_relative = ||H - H*||_F / ||H*||_F`` (also
        over the same-class and different-class samples alone), ``gauss_newton_steps``; or ``{"void": reason}``
        where W W^T has no ETF component (m = 0).
    """
    C = W.shape[0]
    gram_error, m = etf_gram_error(W)
    if not m > 0:
        return {"void": "W W^T has no simplex-ETF component (fitted m = 0)", "etf_gram_error": gram_error}
    lo, hi = np.log(KAPPA_RANGE[0]), np.log(KAPPA_RANGE[1])

    def model(t):
        return theorem31_features(W, m, float(np.exp(t)), c, c_prime, lam)

    def sum_sq(t):
        return float(np.sum((h - model(t)) ** 2))

    grid = np.linspace(lo, hi, round((hi - lo) / np.log(10) * GRID_PER_DECADE) + 1)
    values = np.array([sum_sq(t) for t in grid])
    t = float(grid[np.argmin(values)])
    f = float(values.min())
    step_fd, steps = 1e-6, 0
    for steps in range(1, 61):  # noqa: B007 (the count is reported after the loop)
        residual = h - model(t)
        t_plus, t_minus = min(t + step_fd, hi), max(t - step_fd, lo)
        jac = (model(t_plus) - model(t_minus)) / (t_plus - t_minus)
        jj = float(np.sum(jac * jac))
        if jj == 0.0:
            break
        delta = float(np.clip(np.sum(residual * jac) / jj, -1.0, 1.0))  # at most a factor e in kappa per step
        accepted = False
        for _ in range(40):
            t_new = float(np.clip(t + delta, lo, hi))
            f_new = sum_sq(t_new)
            if f_new <= f:
                accepted = True
                break
            delta /= 2
        if not accepted:
            break
        moved = abs(t_new - t)
        t, f = t_new, f_new
        if moved <= 1e-15 * max(1.0, abs(t)):
            break
    kappa = float(np.exp(t))
    h_theory = model(t)
    same = np.asarray(c) == np.asarray(c_prime)

    def relative(rows):
        scale = np.linalg.norm(h_theory[rows])
        if not scale > 0:  # no such input, or the optimum is 0 there (C = 2 at lambda = 1/2)
            return float("nan")
        return float(np.linalg.norm(h[rows] - h_theory[rows]) / scale)

    everything = np.ones(len(h), dtype=bool)  # distance_rms is defined even where ||H*|| = 0
    at_bound = bool(min(t - lo, hi - t) <= 1e-9 * max(1.0, abs(t)))  # least squares want kappa beyond the range
    return {
        "m": m,
        "etf_gram_error": gram_error,
        "kappa": kappa,
        "kappa_at_bound": at_bound,
        "mu": C * m**2 / ((C - 1) * kappa),
        "h_theory": h_theory,
        "distance_rms": float(np.sqrt(np.mean(np.sum((h - h_theory) ** 2, axis=1)))),
        "distance_relative": relative(everything),
        "distance_relative_same_class": relative(same),
        "distance_relative_different_class": relative(~same),
        "gauss_newton_steps": steps,
    }


def span_residual(W: np.ndarray, h: np.ndarray, c, c_prime) -> np.ndarray:
    """``||h - P h|| / ||h||`` per row, P the orthogonal projector onto span{w_c, w_c'} (NaN where h = 0)."""
    B = np.stack([W[c], W[c_prime]], axis=-1)  # (n, d, 2)
    coef = np.einsum("nij,nj->ni", np.linalg.pinv(np.einsum("ndi,ndj->nij", B, B)), np.einsum("ndi,nd->ni", B, h))
    rest = np.linalg.norm(h - np.einsum("ndi,ni->nd", B, coef), axis=1)
    norm = np.linalg.norm(h, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 0, rest / norm, np.nan)


def lambda_bins(lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, bin index of each lambda): the distinct values when there are at most 21 of them (a grid),
    else 11 equal bins on [0, 1] centred at 0, 0.1, ..., 1."""
    values = np.unique(lam)
    if values.size <= 21:
        return values, np.searchsorted(values, lam)
    centres = np.linspace(0.0, 1.0, 11)
    return centres, np.clip(np.rint(lam * 10).astype(int), 0, 10)


def mixup_geometry(
    W: np.ndarray, h: np.ndarray, pairs: np.ndarray, lam: np.ndarray, features: np.ndarray, labels: np.ndarray
) -> dict:
    """The measured geometry of Theorem 3.1 (Fisher, Meng, Papyan, ICLR 2024) beside its prediction at the
    network's own classifier (:func:`fit_theorem31`).

    Mixed input i mixes classes (c_i, c'_i) with weight lambda_i on c_i (target ``lambda e_c + (1-lambda) e_c'``).

    - same class (c = c'): ``alignment`` = ``cos(h_i, w_c)`` (Theorem 3.1: 1, h*_cc is a positive multiple of w_c);
      ``lambda_spread`` = ``sqrt(sum_i ||h_i - hbar_{c_i}||^2 / sum_i ||hbar_{c_i}||^2)``, hbar_c the mean of class
      c's same-class mixed features (Theorem 3.1: 0, h*_cc does not depend on lambda);
    - different classes: ``span_residual`` = ``||h - P h||/||h||``, P the projector onto span{w_c, w_c'} (theory 0);
      the signed distance ``(w_c - w_c')^T h / ||w_c - w_c'||`` to the c/c' decision boundary, per lambda bin
      (:func:`lambda_bins`), measured and at the fitted optimum (which is positive exactly for lambda > 1/2), and
      the share of samples with lambda != 1/2 on the side of the class of larger weight;
    - the lambda = 1/2 bulge: ``||h_i|| / ||(v_c + v_c')/2||`` over the different-class samples with
      ``|lambda - 1/2| <= HALF_WINDOW``, v_c the mean same-class mixed feature of class c (the class mean of the
      unmixed features where class c has no same-class mix), beside the same ratio of the fitted optimum on the
      same samples and Theorem 3.1's exact ratio at lambda = 1/2 (``half_mix_bulge_ratio``, C >= 3).

    Returns:
        dict of numbers (``void`` entries name what is undefined) and per-sample arrays.
    """
    C = W.shape[0]
    c, cp = pairs[:, 0], pairs[:, 1]
    same = c == cp
    out: dict = {"samples": len(h), "same_class": int(same.sum()), "different_class": int((~same).sum())}
    fit = fit_theorem31(W, h, c, cp, lam)
    out["fit"] = {k: v for k, v in fit.items() if k != "h_theory"}
    h_theory = fit.get("h_theory")
    arrays = {}
    if h_theory is not None:
        arrays["mixed_theory_features"] = h_theory
    if same.any():
        hs, cs = h[same], c[same]
        norms = np.linalg.norm(hs, axis=1) * np.linalg.norm(W[cs], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            alignment = np.where(norms > 0, np.sum(hs * W[cs], axis=1) / norms, np.nan)
        hbar = np.zeros((C, W.shape[1]))
        for k in np.unique(cs):
            hbar[k] = hs[cs == k].mean(axis=0)
        spread_den = np.sum(hbar[cs] ** 2)
        out["alignment_mean"] = float(np.nanmean(alignment)) if np.isfinite(alignment).any() else float("nan")
        out["alignment_min"] = float(np.nanmin(alignment)) if np.isfinite(alignment).any() else float("nan")
        out["lambda_spread"] = (
            float(np.sqrt(np.sum((hs - hbar[cs]) ** 2) / spread_den)) if spread_den > 0 else float("nan")
        )
        arrays["alignment"] = np.full(len(h), np.nan)
        arrays["alignment"][same] = alignment
    else:
        out["void_same_class"] = "no same-class mixed input (mixed_labels with c = c')"
    if (~same).any():
        hd, cd, cpd, ld = h[~same], c[~same], cp[~same], lam[~same]
        residual = span_residual(W, hd, cd, cpd)
        out["span_residual_mean"] = float(np.nanmean(residual)) if np.isfinite(residual).any() else float("nan")
        out["span_residual_max"] = float(np.nanmax(residual)) if np.isfinite(residual).any() else float("nan")
        distance = theory.boundary_distance(W, cd, cpd, hd)
        off_half = ld != 0.5
        if off_half.any():
            out["boundary_side_share"] = float(np.mean(np.sign(distance[off_half]) == np.sign(ld[off_half] - 0.5)))
        else:
            out["void_boundary_side"] = "every different-class input has lambda = 1/2 (no side is favoured)"
        centres, index = lambda_bins(ld)
        distance_theory = theory.boundary_distance(W, cd, cpd, h_theory[~same]) if h_theory is not None else None
        rows = []
        for k, centre in enumerate(centres):
            sel = index == k
            if sel.any():
                rows.append(
                    {
                        "lambda": float(centre),
                        "samples": int(sel.sum()),
                        "measured": float(np.mean(distance[sel])),
                        "theory": float(np.mean(distance_theory[sel])) if distance_theory is not None else None,
                    }
                )
        out["boundary_distance_by_lambda"] = rows
        arrays["span_residual"] = np.full(len(h), np.nan)
        arrays["span_residual"][~same] = residual
        arrays["boundary_distance"] = np.full(len(h), np.nan)
        arrays["boundary_distance"][~same] = distance
        if distance_theory is not None:
            arrays["boundary_distance_theory"] = np.full(len(h), np.nan)
            arrays["boundary_distance_theory"][~same] = distance_theory
        out.update(_bulge(W, h, c, cp, lam, same, features, labels, fit))
    else:
        out["void_different_class"] = "no different-class mixed input (mixed_labels with c != c')"
    return {"numbers": out, "arrays": arrays}


def _bulge(W, h, c, cp, lam, same, features, labels, fit) -> dict:
    """The lambda = 1/2 bulge ratio, measured and at the fitted optimum (see :func:`mixup_geometry`)."""
    C = W.shape[0]
    near = ~same & (np.abs(lam - 0.5) <= HALF_WINDOW)
    if C < 3:
        return {"void_bulge": "C = 2: the vertices' mean (v_c + v_c')/2 vanishes at the optimum (no bulge ratio)"}
    if not near.any():
        return {"void_bulge": f"no different-class mixed input with |lambda - 1/2| <= {HALF_WINDOW}"}
    vertex = metrics.class_means(features, labels, C)
    for k in np.unique(c[same]):
        vertex[k] = h[same & (c == k)].mean(axis=0)
    mid = np.linalg.norm((vertex[c[near]] + vertex[cp[near]]) / 2, axis=1)
    out = {"bulge_samples": int(near.sum()), "bulge_window": HALF_WINDOW}
    out["bulge_ratio"] = float(np.mean(np.linalg.norm(h[near], axis=1) / mid)) if np.all(mid > 0) else float("nan")
    if "h_theory" in fit:
        star = fit["h_theory"]
        m, kappa = fit["m"], fit["kappa"]
        same_star = theorem31_features(W, m, kappa, np.arange(C), np.arange(C), np.ones(C))
        mid_star = np.linalg.norm((same_star[c[near]] + same_star[cp[near]]) / 2, axis=1)
        out["bulge_ratio_theory"] = float(np.mean(np.linalg.norm(star[near], axis=1) / mid_star))
        out["bulge_ratio_theorem31"] = theory.half_mix_bulge_ratio(C, kappa)
    return out


# ---------------------------------------------------------------------------------------------------------------
# 3. Label noise: memorization and dilation.
# ---------------------------------------------------------------------------------------------------------------


def label_noise(
    features: np.ndarray,
    labels: np.ndarray,
    W: np.ndarray,
    bias,
    noisy_mask: np.ndarray,
    true_labels: np.ndarray | None,
) -> dict:
    """Memorization and dilation (Nguyen et al., ICLR 2023) in two sets of definitions, raw and relative.

    ufm's Model 3 (``ufm.objectives.nonnegative.dilation_memorization``), per true class k, with mu_k the mean of
    its clean samples: dilation ``D_k`` = RMS distance of the clean samples to mu_k; memorization ``M_k`` = mean
    distance of the noisy samples OF TRUE CLASS k to mu_k (needs their true class: ``true_labels``, inferred for
    C = 2).

    The paper's code (``metrics.py`` of its repository): dilation = the standard deviation (ddof 0) over the clean
    samples of class k of their distance to mu_k; memorization, for each class k it was TRAINED as and each other
    class l: ``(mean of the noisy samples labelled k - m_k) . (m_l - m_k)/||m_l - m_k||``, m_k the mean of ALL
    samples labelled k (noisy included): how far the noisy samples sit from the class they were fitted into,
    towards another class (0 when they are fully absorbed; for C = 2 one number per class). Reported per class and
    as the mean over the defined (k, l).

    Relative values divide by the mean distance between the clean class means (``||mu_k - mu_l||`` over pairs
    k < l), so that a configuration scaled as a whole keeps them. Also: the share of noisy samples the classifier
    fits (``argmax(W h + b)`` = the wrong label they were trained with) and NC1 of the clean samples.
    """
    C = W.shape[0]
    clean = ~noisy_mask
    mu = metrics.class_means(features[clean], labels[clean], C)
    dist_clean = np.linalg.norm(features[clean] - mu[labels[clean]], axis=1)
    yc = labels[clean]
    D = np.array([np.sqrt(np.mean(dist_clean[yc == k] ** 2)) for k in range(C)])
    D_std = np.array([np.std(dist_clean[yc == k]) for k in range(C)])
    i, j = np.triu_indices(C, k=1)
    spacing = float(np.mean(np.linalg.norm(mu[i] - mu[j], axis=1)))
    out: dict = {
        "noisy": int(noisy_mask.sum()),
        "clean": int(clean.sum()),
        "class_mean_distance": spacing,
        "dilation": float(D.mean()),
        "dilation_std": float(D_std.mean()),
    }
    arrays = {"dilation": D, "dilation_std": D_std}
    fitted = np.argmax(features[noisy_mask] @ W.T + bias, axis=1) == labels[noisy_mask]
    out["noisy_fitted"] = float(np.mean(fitted)) if noisy_mask.any() else float("nan")
    out["nc1_clean"] = metrics.nc1(features[clean], labels[clean], C)
    if true_labels is not None and noisy_mask.any():
        t = true_labels[noisy_mask]
        dist_noisy = np.linalg.norm(features[noisy_mask] - mu[t], axis=1)
        M = np.array([np.mean(dist_noisy[t == k]) if np.any(t == k) else np.nan for k in range(C)])
        out["memorization"] = float(np.nanmean(M))
        arrays["memorization"] = M
    else:
        out["void_memorization"] = (
            "no noisy sample"
            if not noisy_mask.any()
            else "needs true_labels for C > 2 (the true class of each noisy sample)"
        )
    if noisy_mask.any():
        m_all = metrics.class_means(features, labels, C)
        P = np.full((C, C), np.nan)
        for k in range(C):
            rows = noisy_mask & (labels == k)
            if not rows.any():
                continue
            offset = features[rows].mean(axis=0) - m_all[k]
            for l in range(C):
                direction = m_all[l] - m_all[k]
                norm = np.linalg.norm(direction)
                if l != k and norm > 0:
                    P[k, l] = offset @ direction / norm
        out["memorization_projection"] = float(np.nanmean(P)) if np.isfinite(P).any() else float("nan")
        arrays["memorization_projection"] = P
    with np.errstate(divide="ignore", invalid="ignore"):
        for name in ("dilation", "dilation_std", "memorization", "memorization_projection"):
            if name in out:
                out[f"{name}_relative"] = out[name] / spacing if spacing > 0 else float("nan")
    return {"numbers": out, "arrays": arrays}


# ---------------------------------------------------------------------------------------------------------------
# The measurement: numbers, table rows, arrays.
# ---------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What :func:`measure` found: ``config`` (sizes, which sections), ``numbers`` (nested by section),
    ``sections`` (table rows: ``Check`` with no tolerance, ``info`` or ``VOID``) and per-sample ``arrays``."""

    config: dict
    numbers: dict
    sections: list
    arrays: dict

    def table(self) -> str:
        """The human-readable report."""
        cfg = self.config
        noisy = "-" if cfg["noisy"] is None else cfg["noisy"]
        lines = [
            (
                f"ufm measure: N={cfg['N']} d={cfg['d']} C={cfg['C']}, bias {'yes' if cfg['bias'] else 'no'}, "
                f"mixed inputs {cfg['mixed'] or '-'}, noisy samples {noisy}"
            )
        ]
        rows = [row for _, section in self.sections for row in section]
        width = max(len(row.name) for row in rows)
        for title, section in self.sections:
            lines.append("")
            lines.append(title)
            for row in section:
                value = "-" if not np.isfinite(row.value) else f"{row.value:10.4g}"
                lines.append(
                    f"  {row.name:<{width}}  {value:>10}  {row.verdict}" + (f"  ({row.detail})" if row.detail else "")
                )
        bins = self.numbers.get("mixup", {}).get("boundary_distance_by_lambda")
        if bins:
            lines.append("")
            lines.append("signed boundary distance by lambda (different classes; theory: the fitted optimum)")
            lines.append(f"  {'lambda':>7}  {'samples':>7}  {'measured':>11}  {'theory':>11}")
            for b in bins:
                theory_value = "-" if b["theory"] is None else f"{b['theory']:11.4g}"
                lines.append(f"  {b['lambda']:7.3f}  {b['samples']:7d}  {b['measured']:11.4g}  {theory_value:>11}")
        return "\n".join(lines)

    def summary(self, wall_seconds: float, source: str | None = None) -> dict:
        from ufm.report import versions

        return {
            "command": "measure",
            "input": source,
            "config": self.config,
            "numbers": self.numbers,
            "rows": [dict(row.to_dict(), section=title) for title, section in self.sections for row in section],
            "wall_seconds": wall_seconds,
            "versions": versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }

    def save(self, folder, *, wall_seconds: float = float("nan"), source: str | None = None) -> Path:
        """Write summary.json, measures.npz and table.txt into ``folder`` (new or empty; atomically, as the
        command line does). Returns the folder."""
        from ufm.report import OutputDir

        return write(OutputDir(folder), self, wall_seconds, source)


def write(out, measurement: Measurement, wall_seconds: float, source: str | None) -> Path:
    """Fill the ``ufm.report.OutputDir`` ``out`` and move it into place."""
    from ufm.report import to_json

    out.write_text("summary.json", to_json(measurement.summary(wall_seconds, source)) + "\n")
    out.write_npz("measures.npz", measurement.arrays)
    out.write_text("table.txt", measurement.table() + "\n")
    return out.commit()


def _info(name: str, value, detail: str = "") -> Check:
    return Check(name, float(value), None, detail)


def _rows_collapse(nc: dict) -> list:
    u, r, t = nc["ufm"], nc["rhubarbwu"], nc["nc_toolbox"]
    return [
        _info("NC1 tr(Sigma_W Sigma_B^+)/C", u["nc1"], "ufm = nc-toolbox nc1_strong; centred at the sample mean"),
        _info("NC2 equinorm, class means", u["nc2_means"]["equinorm"], "std/mean of ||mu_c - mu_G||"),
        _info("NC2 equiangularity, class means", u["nc2_means"]["equiangular"], "std of the pairwise cosines"),
        _info("NC2 max-angle, class means", u["nc2_means"]["max_angle"], "mean |cos + 1/(C-1)|"),
        _info("NC2 equinorm, classifier", u["nc2_classifier"]["equinorm"], "rows of W"),
        _info("NC2 max-angle, classifier", u["nc2_classifier"]["max_angle"], "rows of W"),
        _info("NC3 ||W^T/||W|| - M/||M|| ||_F^2", u["nc3"], "squared; nc-toolbox's nc3 is its square root"),
        _info("NC4 disagreement with nearest mean", u["nc4"], "argmax(W h + b); peers report 1 - NC4"),
        _info("rhubarbwu NC1 (pinv)", r["nc1"], "centred at the mean of the class means"),
        _info("rhubarbwu NC2 simplex_etf_error", r["nc2_gram_error"], "Gram-matrix error"),
        _info("rhubarbwu NC3 self_duality_error", r["nc3_gram_error"], "|| W M^T/||W M^T|| - ETF Gram ||_F"),
        _info("rhubarbwu NC4 clf_ncc_agreement", r["nc4_agreement"], "argmax(W h), no bias"),
        _info("nc-toolbox NC1 nc1_strong", t["nc1"], "= ufm NC1"),
        _info("nc-toolbox NC2 equinormness", t["nc2_equinormness"], "mean over pairs of log-norm differences"),
        _info("nc-toolbox NC2 equiangularity", t["nc2_equiangularity"], "mean over pairs of cos + 1/(C-1)"),
        _info("nc-toolbox NC3 nc3_self_duality", t["nc3"], "not squared: sqrt(ufm NC3)"),
        _info("nc-toolbox NC4 classifier_agreement", t["nc4_agreement"], "argmax(W h + b); = 1 - ufm NC4"),
    ]


def _row(numbers: dict, key: str, name: str, detail: str, void_key: str) -> Check:
    if key in numbers and np.isfinite(numbers[key]):
        return _info(name, numbers[key], detail)
    reason = numbers.get(void_key, f"{key} undefined here")
    return Check.undefined(name, reason)


def _rows_mixup(mix: dict) -> list:
    fit = mix["fit"]
    rows = []
    if "void" in fit:
        rows.append(Check.undefined("Theorem 3.1 fit", fit["void"]))
    else:
        rows += [
            _info("fitted multiplier m", fit["m"], "from the nearest simplex-ETF Gram matrix to W W^T"),
            _info("W W^T: relative distance to that ETF Gram", fit["etf_gram_error"], "Theorem 3.1 assumes 0"),
            _info(
                "fitted kappa = C m^2/((C-1) mu)",
                fit["kappa"],
                "AT THE END of the range: no kappa in it fits"
                if fit["kappa_at_bound"]
                else "least squares over log kappa",
            ),
            _info("effective mu (feature weight decay)", fit["mu"], "mu = C m^2/((C-1) kappa)"),
            _info("distance to the optimum, RMS per sample", fit["distance_rms"], "sqrt(mean ||h - h*||^2)"),
            _info("distance to the optimum, relative", fit["distance_relative"], "||H - H*||_F/||H*||_F"),
        ]
        for part in ("same_class", "different_class"):
            value, name = fit[f"distance_relative_{part}"], f"  relative, {part.replace('_', ' ')}"
            why = f"no {part.replace('_', '-')} mix" if not mix[part] else "the optimum's features are 0 there"
            rows.append(_info(name, value) if np.isfinite(value) else Check.undefined(name, why))
    rows += [
        _row(mix, "alignment_mean", "same class: cos(h, w_c), mean", "theory 1", "void_same_class"),
        _row(mix, "alignment_min", "same class: cos(h, w_c), min", "theory 1", "void_same_class"),
        _row(
            mix,
            "lambda_spread",
            "same class: lambda-spread",
            "RMS ||h - hbar_c||/||hbar_c||; theory 0",
            "void_same_class",
        ),
        _row(
            mix,
            "span_residual_mean",
            "different: residual off span{w_c,w_c'}, mean",
            "||h - Ph||/||h||; theory 0",
            "void_different_class",
        ),
        _row(
            mix, "span_residual_max", "different: residual off span{w_c,w_c'}, max", "theory 0", "void_different_class"
        ),
        _row(
            mix,
            "boundary_side_share",
            "different: on the side of the larger weight",
            "share; theory 1",
            "void_boundary_side" if "void_boundary_side" in mix else "void_different_class",
        ),
        _row(
            mix,
            "bulge_ratio",
            "lambda = 1/2 bulge ratio, measured",
            f"||h|| / ||(v_c + v_c')/2||, |lambda - 1/2| <= {HALF_WINDOW}",
            "void_bulge",
        ),
        _row(mix, "bulge_ratio_theory", "lambda = 1/2 bulge ratio, fitted optimum", "same samples", "void_bulge"),
        _row(
            mix,
            "bulge_ratio_theorem31",
            "lambda = 1/2 bulge ratio, Theorem 3.1",
            "exactly at 1/2, fitted kappa",
            "void_bulge",
        ),
    ]
    return rows


def _rows_noise(noise: dict) -> list:
    rows = [
        _info("noisy samples fitted", noise["noisy_fitted"], "argmax(W h + b) = the wrong label trained")
        if np.isfinite(noise["noisy_fitted"])
        else Check.undefined("noisy samples fitted", "no noisy sample"),
        _info("NC1 of the clean samples", noise["nc1_clean"]),
        _info("class-mean distance", noise["class_mean_distance"], "mean ||mu_k - mu_l||, clean means"),
    ]
    void = noise.get("void_memorization", "no noisy sample")
    for key, name, detail in (
        ("dilation", "dilation D (Model 3)", "RMS distance of clean samples to their mean"),
        ("memorization", "memorization M (Model 3)", "mean distance of noisy samples to their true mean"),
        ("dilation_std", "dilation (paper's code)", "std of the clean samples' distances to their mean"),
        ("memorization_projection", "memorization (paper's code)", "noisy mean - class mean, onto other mean"),
    ):
        for suffix, label in (("", "raw"), ("_relative", "relative")):
            row_name = f"{name}, {label}"
            value = noise.get(key + suffix)
            if value is not None and np.isfinite(value):
                rows.append(_info(row_name, value, detail if not suffix else "/ class-mean distance"))
            else:
                rows.append(Check.undefined(row_name, void))
    return rows


def measure(
    features,
    labels,
    W,
    *,
    bias=None,
    mixed_features=None,
    mixed_labels=None,
    mixed_lambda=None,
    noisy_mask=None,
    true_labels=None,
    progress=None,
) -> Measurement:
    """Measure last-layer features against the unconstrained-features model (the module docstring's sections).

    Args:
        features: (N, d) features of the training samples; labels: (N,) the labels trained with, 0..C-1;
        W: (C, d) the classifier; bias: (C,) or None.
        mixed_features, mixed_labels, mixed_lambda: (M, d), (M, 2), (M,): mixed inputs (all or none).
        noisy_mask: (N,) bool, samples trained with a wrong label; true_labels: (N,) their true classes.
        progress: a callable taking one line of progress (None: silent).

    Returns:
        A :class:`Measurement` (``table()``, ``summary()``, ``save(folder)``).

    Raises:
        ufm.problems.InputError: (a ValueError) naming the offending array and its valid range.
    """
    data = validate(
        features,
        labels,
        W,
        bias=bias,
        mixed_features=mixed_features,
        mixed_labels=mixed_labels,
        mixed_lambda=mixed_lambda,
        noisy_mask=noisy_mask,
        true_labels=true_labels,
    )
    say = progress or (lambda line: None)
    H, y, Wm = data["features"], data["labels"], data["W"]
    N, d = H.shape
    C = Wm.shape[0]
    b = np.zeros(C) if data["bias"] is None else data["bias"]
    config = {
        "N": N,
        "d": d,
        "C": C,
        "bias": data["bias"] is not None,
        "mixed": len(data.get("mixed_features", ())),
        "noisy": int(data["noisy_mask"].sum()) if "noisy_mask" in data else None,
        "true_labels": "true_labels" in data,
        "half_window": HALF_WINDOW,
        "kappa_range": list(KAPPA_RANGE),
        "grid_per_decade": GRID_PER_DECADE,
    }
    say("neural collapse NC1-NC4")
    nc = neural_collapse(H, y, Wm, b)
    numbers: dict = {"neural_collapse": nc}
    title = (
        "neural collapse (ufm: Papyan, Han, Donoho, PNAS 2020; peers: rhubarbwu/neural-collapse, felixsh/nc-toolbox)"
    )
    sections = [(title, _rows_collapse(nc))]
    arrays: dict = {}
    if "mixed_features" in data:
        say("mixup geometry and the fit of Theorem 3.1")
        mix = mixup_geometry(Wm, data["mixed_features"], data["mixed_labels"], data["mixed_lambda"], H, y)
        numbers["mixup"] = mix["numbers"]
        arrays.update(mix["arrays"])
        sections.append(
            (
                "mixup: Theorem 3.1 of Fisher, Meng, Papyan (ICLR 2024) at the network's classifier",
                _rows_mixup(mix["numbers"]),
            )
        )
    if "noisy_mask" in data:
        say("memorization and dilation")
        noise = label_noise(H, y, Wm, b, data["noisy_mask"], data.get("true_labels"))
        numbers["label_noise"] = noise["numbers"]
        arrays.update(noise["arrays"])
        sections.append(
            ("label noise: memorization-dilation (Nguyen et al., ICLR 2023)", _rows_noise(noise["numbers"]))
        )
    return Measurement(config, numbers, sections, arrays)


def measure_file(path, *, progress=None) -> Measurement:
    """:func:`measure` on the arrays of an NPZ features file (:func:`load`)."""
    return measure(**load(path), progress=progress)


# ---------------------------------------------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------------------------------------------


def _parser():
    import argparse

    from ufm.cli import Parser

    parser = Parser(
        prog=PROG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Measure a trained network's last-layer features against the unconstrained-features "
        "model: NC1-NC4 (ufm's and the peers' conventions), Theorem 3.1's mixup geometry, "
        "memorization and dilation.",
        epilog="FEATURES.npz keys: features (N, d), labels (N,), W (C, d); optional bias (C,), "
        "mixed_features (M, d) + mixed_labels (M, 2) + mixed_lambda (M,), noisy_mask (N,), "
        "true_labels (N,).\n" + EXIT_CODES_HELP,
    )
    parser.add_argument("features", type=Path, metavar="FEATURES", help="the NPZ file of features (see below)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (must not exist or be an empty folder, not a link; default "
        "runs/measure-<time>); created only when the results are written",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from ufm.cli import Interrupted, interruptible, warn

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with interruptible():
            return _main(argv)
    except (Interrupted, KeyboardInterrupt) as err:
        sig = err if isinstance(err, Interrupted) else Interrupted(2)
        warn(f"ufm.measure: interrupted ({sig.name}); nothing written")
        return sig.exit_code


def _main(argv: list[str]) -> int:
    from ufm.cli import EXIT_BAD_INPUT, EXIT_NOT_WRITTEN, EXIT_OK, Interrupted, UsageError, os_problem, say, warn
    from ufm.report import OutputDir
    from ufm.solve import default_out

    try:
        ns = _parser().parse_args(argv)
        out_path = ns.out if ns.out is not None else default_out("measure")
        try:
            out = OutputDir(out_path)  # validates only: nothing is created before the results are written
        except OSError as err:
            raise UsageError(f"argument --out: {os_problem(err, out_path)}") from None
        try:
            data = load(ns.features)
        except InputError as err:
            where = "argument FEATURES" if err.field == "FEATURES" else f"FEATURES key {err.field!r}"
            raise UsageError(f"{where}: {err.message}") from None
    except UsageError as err:
        warn(f"ufm.measure: error: {err}")
        return EXIT_BAD_INPUT
    progress = None if ns.quiet else (lambda line: warn(f"ufm.measure: {line}"))
    t0 = time.perf_counter()
    measurement = measure(**data, progress=progress)
    wall = time.perf_counter() - t0
    printed = say(measurement.table())
    try:
        target = write(out, measurement, wall, str(ns.features))
    except OSError as err:
        out.discard()
        warn(
            f"ufm.measure: error: argument --out: results not written ({os_problem(err, out.target)}; was it "
            "taken during the run?); nothing left behind"
        )
        return EXIT_NOT_WRITTEN
    except BaseException:
        out.discard()
        raise
    try:
        if not (say(f"results: {target}") and printed):
            warn(f"ufm.measure: stdout was closed before everything was printed; results: {target}")
    except Interrupted as sig:
        warn(f"ufm.measure: interrupted ({sig.name}) after the results were written: {target}")
        return sig.exit_code
    return EXIT_OK


if __name__ == "__main__":
    from ufm.cli import exit_main

    exit_main(functools.partial(main))
