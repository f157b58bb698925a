"""The two-layer unconstrained-features model of the per-layer question (Chaudhry et al.): sizes, rules, quadrature."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from ufm.etf import simplex_etf
from ufm.problems import filled, parameter, require, require_int, require_nonnegative, require_positive

RULES = ("erm", "mixup", "consistency")
ACTIVATIONS = ("relu", "softplus", "linear")
CLASSIFIERS = ("fixed", "learned")
# Gauss-Jacobi nodes: scipy's roots_jacobi costs O(n^2) time (220 s at n = 1e5); the quadrature of a smooth
# integrand converges exponentially, far before this.
MAX_NODES = 1000
# Gauss-Jacobi needs alpha - 1 > -1 in floating point (alpha >= 1.2e-16) and overflows near 1e300.
ALPHA_RANGE = (1e-6, 1e6)
# Where the solver reaches its tolerance, from runs at the extremes (C = 2 .. 3, both classifiers): mu = 1e-8 and
# m = 1e4 ran out of steps, softplus sharpness 1e-6 (outputs ~ log 2 / s = 7e5) stalled, and 1e-3 with a fixed
# m = 0.1 (or 0.01) and mu = 1e-6 ran out of 1000 steps at loss 9.4 (s = 0.1: 466 steps, found by the property
# test); a consistency weight of
# 1e4 .. 1e6 with decays 1e-6 .. 1e-4 made the consistency rule so stiff that 1000 Newton steps ended at relative
# gradients 1e-4 .. 30, and 100 left one of two C = 3 restarts unconverged; mu, lambda_W in 1e-6 .. 1e6, s in
# 1e-1 .. 1e6 and consistency up to 10 converged at every corner tried. The fixed classifier's m: as in the
# fixed-ETF family (ufm.problems.mixup.M_RANGE), the CE gradient W^T (p - y) scales with m, so the relative-gradient
# test bounds p - y only by rtol / m; [1e-2, 1e2] as there.
DECAY_RANGE = (1e-6, 1e6)
# mu / lambda_W: the scales of the free features and of the layer balance as (lambda_W / mu)^(1/4), and the
# gradient test is not scale-free (as in the joint family): mu = 1e-6 with lambda_W = 1e6 ran out of 1000 steps
# (rel grad 9e-4; found by the property test).
DECAY_RATIO_MAX = 1e4
M_RANGE = (1e-2, 1e2)
SHARPNESS_RANGE = (1e-1, 1e6)
CONSISTENCY_MAX = 10.0


@dataclasses.dataclass(frozen=True)
class MixupDeepProblem:
    """C classes, one free first-layer feature per class in R^d0, a learned layer R^d0 -> R^d1 with ``activation``,
    a classifier (``fixed`` simplex ETF with multiplier m, or ``learned``); weight decays mu (features, per sample)
    and lambda_W (layer weights, and the classifier when learned).

    Mixup and the consistency loss average over all ordered class pairs and lam ~ Beta(alpha, alpha), integrated by
    ``n_nodes``-node Gauss-Jacobi quadrature (exact for polynomials of degree 2 n_nodes - 1 in lam).
    ``consistency`` is the weight of the consistency (ICT) term. NonLin is evaluated on every ordered pair of
    distinct classes at ``eval_lambdas`` equally spaced interior lam, weighted by the Beta(alpha, alpha) density.
    ``restarts`` seeded random starts per training rule (the problem is nonconvex).
    """

    C: int = parameter(4, "number of classes (>= 2)")
    d0: int | None = parameter(None, "first-layer feature dimension (>= 1)", default_doc="C")
    d1: int | None = parameter(None, "hidden width (>= C-1 with a fixed ETF)", default_doc="2C")
    activation: str = parameter("relu", "relu (reached by softplus continuation), softplus (smooth) or linear")
    sharpness: float = parameter(
        10.0, "softplus sharpness s: softplus(s x)/s (in [0.1, 1e6]; only with --activation softplus)"
    )
    classifier: str = parameter("learned", "learned or fixed (a simplex ETF, randomly embedded in R^d1 by --seed)")
    m: float = parameter(1.0, "ETF multiplier of the fixed classifier (in [1e-2, 1e2]; only with --classifier fixed)")
    mu: float = parameter(1e-2, "feature weight decay (mu/2)||g||^2, per sample (in [1e-6, 1e6])")
    lambda_W: float = parameter(
        1e-2,
        "weight decay (lambda_W/2)||.||_F^2 of the layer and of a learned classifier (in [1e-6, 1e6]; mu / lambda_W "
        "in [1e-4, 1e4])",
        aliases=("--mu-v",),
    )
    alpha: float = parameter(1.0, "mixing concentration: lam ~ Beta(alpha, alpha) (in [1e-6, 1e6])")
    n_nodes: int = parameter(
        6, f"Gauss-Jacobi nodes for the expectation over lam (1 .. {MAX_NODES})", aliases=("--lambdas",)
    )
    consistency: float = parameter(1.0, "weight of the consistency loss (in [0, 10])")
    restarts: int = parameter(8, "seeded random starts per rule (>= 1)")
    eval_lambdas: int = parameter(99, "lam values per class pair at which NonLin is evaluated (>= 1)")
    seed: int = parameter(0, "seed of the ETF embedding and of the random starts")

    def __post_init__(self):
        require_int(self.C, "C", 2)
        if self.d0 is None:
            object.__setattr__(self, "d0", self.C)
        if self.d1 is None:
            object.__setattr__(self, "d1", 2 * self.C)
        require_int(self.d0, "d0", 1)
        require_int(self.d1, "d1", self.C - 1 if self.classifier == "fixed" else 1)
        require(
            self.activation in ACTIVATIONS,
            "activation",
            f"must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}",
        )
        require(
            self.classifier in CLASSIFIERS,
            "classifier",
            f"must be one of {', '.join(CLASSIFIERS)}, got {self.classifier!r}",
        )
        for field, (low, high) in (
            ("sharpness", SHARPNESS_RANGE),
            ("m", M_RANGE),
            ("mu", DECAY_RANGE),
            ("lambda_W", DECAY_RANGE),
        ):
            value = getattr(self, field)
            require_positive(value, field)
            require(
                low <= value <= high,
                field,
                f"must lie in [{low:g}, {high:g}] (where the solver's gradient tolerance is reached), got {value!r}",
            )
        require_positive(self.alpha, "alpha")
        require(
            ALPHA_RANGE[0] <= self.alpha <= ALPHA_RANGE[1],
            "alpha",
            f"must lie in [{ALPHA_RANGE[0]:g}, {ALPHA_RANGE[1]:g}] (Beta quadrature), got {self.alpha!r}",
        )
        require_int(self.n_nodes, "n_nodes", 1)
        require(
            self.n_nodes <= MAX_NODES,
            "n_nodes",
            f"must be at most {MAX_NODES} (Gauss-Jacobi nodes cost "
            f"O(n^2) time; the quadrature converges exponentially), got {self.n_nodes!r}",
        )
        require(
            1 / DECAY_RATIO_MAX <= self.mu / self.lambda_W <= DECAY_RATIO_MAX,
            "lambda_W",
            f"mu / lambda_W must lie in [{1 / DECAY_RATIO_MAX:g}, {DECAY_RATIO_MAX:g}] (the gradient tolerance is not "
            f"scale-free), got {self.mu / self.lambda_W:.3g}",
        )
        require_nonnegative(self.consistency, "consistency")
        require(
            self.consistency <= CONSISTENCY_MAX,
            "consistency",
            f"must be at most {CONSISTENCY_MAX:g}, got {self.consistency!r}",
        )
        require_int(self.restarts, "restarts", 1)
        require_int(self.eval_lambdas, "eval_lambdas", 1)
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")

    def classifier_matrix(self) -> np.ndarray:
        """The fixed ETF (C x d1) (also used, scaled, as part of the learned classifier's random start)."""
        return simplex_etf(self.C, filled(self.d1, "d1"), self.m, self.seed)

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        """Gauss-Jacobi nodes lam in (0, 1) and weights (sum 1) for E_{lam ~ Beta(alpha, alpha)}."""
        x, w = special.roots_jacobi(self.n_nodes, self.alpha - 1, self.alpha - 1)
        return (x + 1) / 2, w / np.sum(w)

    def pairs(self, distinct: bool = False) -> np.ndarray:
        """Ordered class pairs (c, c') (P x 2); all C^2 of them, or the C (C-1) with c != c'."""
        c, cp = np.meshgrid(np.arange(self.C), np.arange(self.C), indexing="ij")
        keep = (c != cp) if distinct else np.ones_like(c, dtype=bool)
        return np.stack([c[keep], cp[keep]], axis=-1)

    def training_mixes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mixing rows M (n x C) = soft targets, their weights (sum 1) for every ordered pair x quadrature node."""
        lam, w = self.quadrature()
        pairs = self.pairs()
        eye = np.eye(self.C)
        M = (
            lam[None, :, None] * eye[pairs[:, 0]][:, None, :] + (1 - lam[None, :, None]) * eye[pairs[:, 1]][:, None, :]
        ).reshape(-1, self.C)
        weights = np.tile(w, len(pairs)) / len(pairs)
        return M, weights, np.repeat(pairs, len(lam), axis=0)

    def training_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The distinct rows of :meth:`training_mixes`: (rows R, shares of the vertices (C,), shares of the mixes);
        R (C + C (C-1)/2 n_nodes x C) is the C vertices e_c, then lam e_c + (1-lam) e_c' for every unordered
        pair c < c' and node lam. The shares are the mixup expectation's weights (sum 1), on fewer than half the
        rows: a class mixed with itself is its vertex at every lam (share sum_i w_i / C^2 = 1 / C^2), and the pair
        (c', c) at node lam is (c, c') at 1 - lam, itself a node of the same weight (Beta(alpha, alpha) is
        symmetric, and so are its Gauss-Jacobi nodes), so each unordered pair counts twice."""
        lam, w = self.quadrature()
        pairs = self.pairs(distinct=True)
        pairs = pairs[pairs[:, 0] < pairs[:, 1]]
        eye = np.eye(self.C)
        mixes = (
            lam[None, :, None] * eye[pairs[:, 0]][:, None, :] + (1 - lam[None, :, None]) * eye[pairs[:, 1]][:, None, :]
        ).reshape(-1, self.C)
        vertex = np.full(self.C, 1.0 / self.C**2)
        return np.vstack([eye, mixes]), vertex, np.tile(2 * w, len(pairs)) / self.C**2

    def evaluation_mixes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs (n x 2) of distinct classes, weights lam (n x 2) and density weights (n,) (sum 1) for NonLin."""
        lam = (np.arange(self.eval_lambdas) + 0.5) / self.eval_lambdas  # midpoints: never 0 or 1
        log_dens = (self.alpha - 1) * (np.log(lam) + np.log1p(-lam))
        dens = np.exp(log_dens - np.max(log_dens))  # scaled: alpha = 1e6 would underflow to 0 / 0
        pairs = self.pairs(distinct=True)
        n = len(pairs)
        weights = np.tile(dens / dens.sum(), n) / n
        lam_all = np.tile(lam, n)
        return np.repeat(pairs, len(lam), axis=0), np.stack([lam_all, 1 - lam_all], axis=-1), weights
