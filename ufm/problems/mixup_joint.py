"""Mixup with the classifier learned jointly: sizes, weight decays, Beta(alpha, alpha) quadrature, targets."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ufm.problems import parameter, require, require_int, require_positive
from ufm.theory.mixup_joint import beta_quadrature

# Gauss-Jacobi nodes: the rule converges exponentially in n for the smooth integrands of the 1-D reduction, and
# scipy's roots_jacobi costs O(n^2) time (1.9 s at n = 1e4, 220 s at 1e5); the run also builds the 2n-node rule.
MAX_NODES = 1000
# Where the run's fixed tolerances (ufm.checks.mixup_joint) hold. The optimal kappa grows as lambda_W mu
# falls (kappa* ~ 6e5 at 1e-10, 7e6 at 1e-12) and the gradient tolerance 1e-10 then leaves errors far above 1e-7:
# at 1e-12 converged restarts had ETF errors 1e-5 (C = 3, 4; 100x the tolerance); at 1e-11 the worst was 2% of it.
# The test is not scale-free either: at lambda_W / mu = 1e-10 (product 1e-10) every check failed by 1e2..1e6,
# while at 1e-4 .. 1e4 (products >= 1e-10, alpha 1e-3 .. 1e3, C = 2 .. 4) every check held with margin >= 7.
DECAY_PRODUCT_MIN = 1e-10
DECAY_RATIO_MAX = 1e4
# Gauss-Jacobi needs alpha - 1 > -1 in floating point (alpha >= 1.2e-16) and overflows near 1e300; tested 1e-6 .. 1e12.
ALPHA_RANGE = (1e-6, 1e6)


def count_targets(C: int, n_nodes: int, samples_per_target: int, erm: bool) -> int:
    """Rows of ``MixupJointProblem.targets()``: ``s C^2 n`` with s > 1 samples per ordered (c, c', node); else the
    distinct soft targets, ``C + C(C-1)/2 n`` (mirrored nodes merged; ERM: the C pure ones)."""
    n = 2 if erm else n_nodes
    if samples_per_target > 1:
        return samples_per_target * C * C * n
    return C if erm else C + C * (C - 1) // 2 * n


@dataclasses.dataclass(frozen=True)
class MixupJointProblem:
    """C classes, features in R^d, mixing lam ~ Beta(alpha, alpha) (alpha = 0: ERM, no mixup) integrated by an
    ``n_nodes``-point Gauss-Jacobi rule, weight decays lambda_W (classifier) and mu (features), ``restarts``
    seeded random starts of the nonconvex joint problem (plus the critical point W = H = 0 where it can be the
    optimum, ``zero_start``). With ``alpha = 0`` the quadrature is not used and ``n_nodes`` is ignored.

    ``samples_per_target`` > 1 gives every ordered (c, c', lam-node) that many separate feature variables (weights
    split evenly) instead of one per distinct soft target: used once to check that the optimum is collapsed.
    """

    C: int = parameter(10, "number of classes (>= 2)")
    d: int | None = parameter(None, "feature dimension (>= C-1)", default_doc="C")
    alpha: float = parameter(1.0, "mixing concentration: lam ~ Beta(alpha, alpha) (in [1e-6, 1e6]; 0 means ERM)")
    lambda_W: float = parameter(
        5e-2,
        "classifier weight decay (lambda_W/2)||W||_F^2 (> 0; lambda_W mu >= 1e-10, lambda_W / mu in [1e-4, 1e4])",
        aliases=("--lam-W",),
    )
    mu: float = parameter(
        5e-2, "feature weight decay (mu/2)||h||^2, per sample (> 0; see --lambda-W)", aliases=("--lam-H",)
    )
    n_nodes: int = parameter(
        16, f"Gauss-Jacobi nodes for the Beta(alpha, alpha) average (1 .. {MAX_NODES}; not with --alpha 0)"
    )
    restarts: int = parameter(3, "seeded random starts, solved as one batch (>= 1)")
    samples_per_target: int = parameter(1, "feature variables per ordered (c, c', node); > 1 checks the collapse")
    seed: int = parameter(0, "seed of the random starts")

    def __post_init__(self):
        require_int(self.C, "C", 2)
        if self.d is None:
            object.__setattr__(self, "d", self.C)
        require_int(self.d, "d", self.C - 1)
        require(
            isinstance(self.alpha, (int, float))
            and math.isfinite(self.alpha)
            and (self.alpha == 0 or ALPHA_RANGE[0] <= self.alpha <= ALPHA_RANGE[1]),
            "alpha",
            f"must be 0 (ERM, no mixup) or in [{ALPHA_RANGE[0]:g}, {ALPHA_RANGE[1]:g}], got {self.alpha!r}",
        )
        require_positive(self.lambda_W, "lambda_W")
        require_positive(self.mu, "mu")
        require(
            self.lambda_W * self.mu >= DECAY_PRODUCT_MIN,
            "mu",
            f"lambda_W mu must be >= {DECAY_PRODUCT_MIN:g} (below, the optimum's kappa exceeds ~6e5 and the "
            f"gradient tolerance no longer delivers the checks' 1e-7), got {self.lambda_W * self.mu:.3g}",
        )
        require(
            1 / DECAY_RATIO_MAX <= self.lambda_W / self.mu <= DECAY_RATIO_MAX,
            "mu",
            f"lambda_W / mu must lie in [{1 / DECAY_RATIO_MAX:g}, {DECAY_RATIO_MAX:g}] (the gradient "
            f"tolerance is not scale-free), got {self.lambda_W / self.mu:.3g}",
        )
        require_int(self.n_nodes, "n_nodes", 1)
        require(
            self.n_nodes <= MAX_NODES,
            "n_nodes",
            f"must be at most {MAX_NODES} (the quadrature converges "
            f"exponentially; scipy's Gauss-Jacobi nodes cost O(n^2) time), got {self.n_nodes!r}",
        )
        require_int(self.restarts, "restarts", 1)
        require_int(self.samples_per_target, "samples_per_target", 1)
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")

    @property
    def erm(self) -> bool:
        return self.alpha == 0

    @property
    def n_targets(self) -> int:
        """Number of feature variables (rows of :meth:`targets`), from the sizes alone (python ints)."""
        return count_targets(self.C, self.n_nodes, self.samples_per_target, self.erm)

    def quadrature(self) -> tuple[np.ndarray, np.ndarray]:
        return beta_quadrature(self.alpha, self.n_nodes)

    def ordered_targets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(c, c', node index, weight) for every ordered pair and node: weight ``w_k / C^2`` (sums to 1)."""
        nodes, w = self.quadrature()
        c, cp, k = (
            a.ravel() for a in np.meshgrid(np.arange(self.C), np.arange(self.C), np.arange(nodes.size), indexing="ij")
        )
        return c, cp, k, w[k] / self.C**2

    def targets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The feature variables: (c, c', lam, weight) per variable, weights summing to 1.

        With ``samples_per_target == 1`` one variable per distinct soft target ``lam e_c + (1-lam) e_c'``: for a
        fixed W each feature solves its own strictly convex problem, which depends on the target only, so at any
        stationary point features with equal targets are equal (the collapse). Equal targets: (c, c, any lam) and
        (c, c', lam = 1) are all e_c; (c, c', lam_k) and (c', c, lam_{n-1-k}) coincide (symmetric nodes). The
        merged variable carries the summed weight. Distinct targets are listed as (c, c, 1) for pure ones and
        with c < c' for mixed ones. Otherwise every ordered (c, c', node) has ``samples_per_target`` variables.
        """
        nodes, _ = self.quadrature()
        c, cp, k, weight = self.ordered_targets()
        if self.samples_per_target > 1:
            s = self.samples_per_target
            return (np.repeat(c, s), np.repeat(cp, s), np.repeat(nodes[k], s), np.repeat(weight / s, s))
        n = nodes.size
        pure_class = np.where(nodes[k] == 1.0, c, cp)  # meaningful where the target is pure
        pure = (c == cp) | (nodes[k] == 0.0) | (nodes[k] == 1.0)
        lo, hi = np.minimum(c, cp), np.maximum(c, cp)
        k_lo = np.where(c < cp, k, n - 1 - k)  # node index seen from the smaller class
        key = np.where(pure, pure_class, self.C + (lo * self.C + hi) * n + k_lo)
        keys, inverse = np.unique(key, return_inverse=True)
        total = np.bincount(inverse, weights=weight)
        is_pure = keys < self.C
        mixed = keys[~is_pure] - self.C
        pair, k_u = np.divmod(mixed, n)
        c_out = np.concatenate([keys[is_pure], pair // self.C])
        cp_out = np.concatenate([keys[is_pure], pair % self.C])
        lam_out = np.concatenate([np.ones(int(is_pure.sum())), nodes[k_u]])
        w_out = np.concatenate([total[is_pure], total[~is_pure]])
        return c_out.astype(int), cp_out.astype(int), lam_out, w_out
