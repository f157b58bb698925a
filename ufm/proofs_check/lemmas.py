"""Lemmas stated in the source papers that are plain identities, checked by evaluation and by minimisation.

Lemma 1 of Rangamani, Banburski, "Neural Collapse in Deep Homogeneous Classifiers and the Role of Weight Decay",
ICASSP 2022 (slide "Neural Collapse Solutions Cannot Interpolate"; stated here): with the
unregularised square loss ``L = ||W H - Y||_F^2 / (2 N C)`` (N samples per class, one-hot Y), features that are
collapsed (NC1: ``H = M Y``, global mean 0) onto a classifier with ``W M = alpha C/(C-1) (I - 11^T/C)`` (NC2/NC3)
have ``L = 1/2 ((1-alpha)^2 + alpha^2/(C-1))``, whose minimum over alpha is ``1/(2C) > 0`` at ``alpha = (C-1)/C``:
an NC solution never interpolates.

The formula is ``ufm.theory.square_loss.lemma1_loss``; it is checked against the matrix loss, never against itself.
"""

from __future__ import annotations

import functools
import time

import numpy as np
from scipy import optimize

from ufm.etf import random_isometry
from ufm.precision import float64
from ufm.proofs_check.certificate import EPS, Certificate, worst
from ufm.theory import square_loss as square_loss_theory

FAMILY = "lemmas"
DESCRIPTION = "identities stated as lemmas in the papers (Rangamani & Banburski 2022, Lemma 1: NC cannot interpolate)"
SOURCE = "Rangamani, Banburski, ICASSP 2022, Lemma 1; stated in proofs_check/lemmas.py"

CLASSES = (2, 3, 10, 100)
IDENTITY_TOL = 1e-13  # |L_matrix - formula| / formula; W M = G is realised in floating point with cond(W) <= 4
ALPHA_TOL = 1e-7  # scalar minimisation (Brent) locates a minimiser only to ~ sqrt(eps) relative
VALUE_TOL = 64 * EPS  # the value at the minimum is second order in the alpha error: rounding level


def nc_square_loss(alpha, C: int):
    """Lemma 1 (R-B): ``L = 1/2 ((1 - alpha)^2 + alpha^2 / (C - 1))`` (``ufm.theory.square_loss.lemma1_loss``)."""
    return square_loss_theory.lemma1_loss(C, alpha)


@functools.cache
def _frame(C: int, p: int, seed: int):
    """Row directions Q (p x C, orthonormal columns) and row scales s of W (cached: QR dominates the cost)."""
    return random_isometry(p, C, seed), np.random.default_rng(seed).uniform(0.5, 2.0, C)


def nc_instance(C: int, N: int, p: int, alpha: float, seed: int):
    """A random NC configuration: ``W = diag(s) Q^T`` (C x p, p >= C; Q a random isometry, row scales s in
    [1/2, 2], so cond(W) <= 4), class means ``M = pinv(W) G = Q diag(1/s) G`` with
    ``G = alpha C/(C-1) (I - 11^T/C)``, one-hot Y (C x NC), collapsed features H = M Y. Returns (W, M, H, Y, G)."""
    Q, s = _frame(C, p, seed)
    W = s[:, None] * Q.T
    G = alpha * C / (C - 1) * (np.eye(C) - np.ones((C, C)) / C)
    M = Q @ (G / s[:, None])
    Y = np.repeat(np.eye(C), N, axis=1)
    return W, M, M @ Y, Y, G


def square_loss(W, H, Y) -> float:
    """The matrix loss ``||W H - Y||_F^2 / (2 N C)`` (N C = number of columns of Y)."""
    R = W @ H - Y
    return float(np.sum(R * R) / (2 * Y.shape[1]))


def _identity_instances():
    """(C, N, p, alpha, seed): the seed (hence W) is shared by the instances of one (C, p)."""
    for C in CLASSES:
        for p in (C, 2 * C + 1):
            for N in (1, 4):
                for alpha in np.random.default_rng(1000 + C + N + p).uniform(-1.0, 2.0, 3):
                    yield C, N, p, float(alpha), C * 1000 + p


@float64
def nc_loss_identity(*, formula=nc_square_loss) -> Certificate:
    """``||W M Y - Y||^2/(2NC) = formula(alpha, C)`` on random NC instances (alpha in [-1, 2]); the instances'
    NC hypotheses (W M = G, global mean 0) are measured too."""
    t0 = time.perf_counter()
    instances, ids, err, nc23, mean = [], [], [], [], []
    for C, N, p, alpha, seed in _identity_instances():
        W, M, H, Y, G = nc_instance(C, N, p, alpha, seed)
        direct = square_loss(W, H, Y)
        claimed = float(formula(alpha, C))
        e = abs(direct - claimed) / abs(direct)
        hyp = {
            "WM_minus_G_rel": float(np.linalg.norm(W @ M - G) / np.linalg.norm(G)),
            "global_mean_rel": float(np.linalg.norm(H.mean(axis=1)) / np.max(np.linalg.norm(H, axis=0))),
        }
        instances.append(
            {
                "C": C,
                "N": N,
                "p": p,
                "alpha": alpha,
                "seed": seed,
                "loss_matrix": direct,
                "loss_formula": claimed,
                "rel_error": e,
                "hypotheses": hyp,
                "exercises": [
                    "p = C: W square" if p == C else "p > C: W wide",
                    "alpha outside [0, 1]" if not 0 <= alpha <= 1 else "alpha in [0, 1]",
                ],
            }
        )
        ids.append({"C": C, "N": N, "p": p, "alpha": alpha})
        err.append(e)
        nc23.append(hyp["WM_minus_G_rel"])
        mean.append(hyp["global_mean_rel"])
    measurements = [
        worst(err, ids, "|L(W, M Y) - 1/2((1-a)^2 + a^2/(C-1))| / L", IDENTITY_TOL),
        worst(nc23, ids, "hypothesis NC2/NC3: ||W M - a C/(C-1) (I - 11^T/C)|| / ||.|| ", IDENTITY_TOL),
        worst(mean, ids, "hypothesis: global feature mean 0 (rel)", IDENTITY_TOL),
    ]
    return Certificate(
        FAMILY,
        "Lemma 1 (R-B 2022): NC square loss",
        SOURCE,
        "an NC solution of scale alpha has square loss 1/2((1-alpha)^2 + alpha^2/(C-1))",
        "the matrix loss evaluated on random NC configurations (C, samples per class N, width p, "
        "alpha) against the formula",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


@float64
def nc_cannot_interpolate(*, formula=nc_square_loss) -> Certificate:
    """min over alpha of the NC loss is 1/(2C) > 0, at alpha = (C-1)/C: by scalar minimisation of the formula,
    by exact least squares on the matrix loss (independent of the formula), and by a grid on [-10, 10]
    (the loss is a convex quadratic in alpha, so the minimum is global). Reported beside it: an orthogonal
    frame W M = I (not NC) interpolates, loss 0, so the obstruction is the centring of the ETF."""
    t0 = time.perf_counter()
    instances, ids, alpha_err, value_err, ls_err, grid_err, positive, frame = [], [], [], [], [], [], [], []
    for C in CLASSES:
        res = optimize.minimize_scalar(lambda a: float(formula(a, C)), bracket=(-1.0, 2.0))
        a_star, L_star = float(res.x), float(res.fun)
        # independent route: the matrix loss is ||a A - Y||^2/(2NC) with A = W M_1 Y; exact least squares in a
        W, M1, H1, Y, _ = nc_instance(C, 3, C + 2, 1.0, seed=C)
        A = W @ H1
        a_ls = float(np.sum(A * Y) / np.sum(A * A))
        L_ls = square_loss(W, a_ls * H1, Y)
        grid = np.linspace(-10.0, 10.0, 200_001)
        L_grid = float(np.min(formula(grid, C)))
        target = 1.0 / (2 * C)
        frame_loss = square_loss(np.eye(C), np.repeat(np.eye(C), 3, axis=1), np.repeat(np.eye(C), 3, axis=1))
        instances.append(
            {
                "C": C,
                "alpha_star_formula": a_star,
                "loss_min_formula": L_star,
                "alpha_star_matrix_least_squares": a_ls,
                "loss_min_matrix": L_ls,
                "loss_min_grid": L_grid,
                "expected_alpha": (C - 1) / C,
                "expected_min": target,
                "orthogonal_frame_loss": frame_loss,
            }
        )
        ids.append({"C": C})
        alpha_err.append(abs(a_star - (C - 1) / C) / ((C - 1) / C))
        value_err.append(abs(L_star - target) / target)
        ls_err.append(max(abs(a_ls - (C - 1) / C) / ((C - 1) / C), abs(L_ls - target) / target))
        grid_err.append((target - L_grid) / target)
        positive.append(min(L_star, L_ls, L_grid))
        frame.append(frame_loss)
    measurements = [
        worst(value_err, ids, "min_a formula = 1/(2C) (rel error)", VALUE_TOL),
        worst(alpha_err, ids, "argmin_a formula = (C-1)/C (rel error, Brent)", ALPHA_TOL),
        worst(
            ls_err,
            ids,
            "matrix loss, exact least squares in a: argmin and min (rel error)",
            1e-13,
            note="independent of the formula",
        ),
        worst(grid_err, ids, "grid a in [-10, 10]: (1/(2C) - min) / (1/(2C)) (> 0: something lower)", VALUE_TOL),
        worst(
            positive,
            ids,
            "cannot be zero: smallest minimum found",
            0.0,
            sense=">=",
            note="must be > 0; graded >= 0 with the exact value checked above",
        ),
        worst(frame, ids, "contrast (not NC): orthogonal frame W M = I interpolates, loss", None),
    ]
    return Certificate(
        FAMILY,
        "Lemma 1 (R-B 2022): cannot be zero",
        SOURCE,
        "min over alpha of 1/2((1-alpha)^2 + alpha^2/(C-1)) is 1/(2C) > 0, at alpha = (C-1)/C",
        "Brent minimisation of the formula; exact least squares on the matrix loss; fine grid",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


CERTIFICATES = [nc_loss_identity, nc_cannot_interpolate]
