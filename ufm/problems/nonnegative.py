"""Nonnegative-feature problems (Nguyen et al., ICLR 2023): Model 1 (budgets), Model 2 (weight decay), Model 3
(label noise)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ufm.problems import parameter, require, require_in_unit_interval, require_int, require_positive

# The ranges float64 certifies (see NonnegProblem). Model 1 depends on the budgets only through the largest margin
# M_max = sqrt(K E_W E_H / (K-1)) (the solve normalises W and H onto the budget spheres).
M_MAX_RANGE = (0.05, 50.0)
# Model 1 with label smoothing beyond the budget condition: the optimal margins are m*_alpha, a part m*/M_max of
# logits of size M_max, and the loss is flat to rounding on a set whose extent grows with M_max/m* (K = 4,
# alpha = 0.999: M_max = 1000 m* certified; 10^4 m*: stalled, KKT residual 1.7e-8).
MAX_LS_RATIO = 1000.0
# Model 2: each weight decay (the solve balances the two exactly, so only their product shapes the problem).
LAMBDA_RANGE = (1e-15, 1e5)
# Model 2 just below the threshold gamma_alpha = (K-1)/K: the optimum's margin m* -> 0 (it bifurcates from
# W = H = 0); below this margin its geometry is not resolved (measured: 3e-7 fails, 3e-5 passes).
MIN_MODEL2_MARGIN = 1e-3
# Model 2 with label smoothing: the LS loss has a finite minimiser in the margins (m*_alpha), so at tiny weight decay
# the loss sits near H(q) and only the weight-decay term gamma m* (its value at the optimum) decides the geometry
# (orthogonal, equal-norm means). Measured, as a share of the optimal loss (K = 2, n = 1): alpha = 0.5, gamma = 1e-8
# (share 2e-8): restarts stall 1.6e-3 off; alpha = 0.984, gamma = 1.4e-6, m* = 0.031 (6e-8): converged 1.3e-5 off;
# alpha = 0.5, gamma = 1e-6 (2e-6): right to 1e-15; alpha = 0.01, gamma = 1e-8 (1.7e-6): right to 2e-16. For CE the
# share is m*/(1 + m*) (the CE part of the optimal loss is ~gamma): never binding.
MIN_DECAY_SHARE = 1e-6
# Model 3's expressivity r: at r = 100 the augmented terms (size rho r |grad D|) lift the inner solves' rounding floor
# above their tolerance 1e-11 (2 of 2 restarts stalled, KKT 3.7e-8); at r = 1e6 (D -> M/r ~ 1e-6) and r = 1e-6
# (noisy features within 1e-6 D of the clean means) the coupling's curvature ~ 1/D or 1/M stalls every restart;
# at r = 1e-3 (K = 2, n = 3, d = 2) the inner solves ended at relative gradient 2e-4 with rho at its cap, at r = 0.01
# with weight decays 1e-8 (K = 3, n = 4, d = 3, 3 restarts) every restart stalled at 1.3e-6; r = 0.05 certified.
R_RANGE = (0.05, 20.0)
# Model 3's weight decays: small ones let the memorising features grow against the coupling. At 1e-15 (objective
# 1.4e-11) with r = 0.01 (K = 2, n = 4, d = 4) the inner solves ended between relative gradients 2e-8 and 1e-2, one
# on negative curvature; at 1e-10 with r = 0.01 and r = 0.05 (K = 3, n = 4, d = 3, one restart) they ran out of
# steps at 7e-6; at 1e-8 (and the reported 1e-7) certified.
MD_LAMBDA_RANGE = (1e-8, 1e5)
# Model 3 with label smoothing (K = 2, n = 3, d = 2, 25 % noise, 2 restarts; r = 1, 5, 10, 20): two corners where the
# inner solves stall above their tolerance (KKT residual 3e-8 .. 4e-8 > 1e-8). Small weight decays: at
# sqrt(lambda_W lambda_H) = 1e-7 alpha = 0.1, 0.3 and 0.9 failed for some r, at 1e-6 alpha = 0.5 (r = 5, 10); at 1e-5
# alpha 0.1 .. 0.9 certified for every r (and K = 3, n = 4, d = 3 at r = 0.05, 5). Smoothing near its threshold,
# where the margin of the uncoupled Model 2 optimum (``model2_margin``) vanishes: alpha = 0.999 failed at margins
# 1.0e-3 and 1.9e-3, alpha = 0.99 certified at 1.0e-2 and 1.9e-2. With CE (alpha = 0) all of MD_LAMBDA_RANGE
# certified in the same cases.
MD_LS_MIN_DECAY = 1e-5
MD_LS_MIN_MARGIN = 1e-2


def _common(problem) -> None:
    require_int(problem.C, "C", 2)
    require_int(problem.n, "n", 1)
    if problem.d is None:
        object.__setattr__(problem, "d", 2 * problem.C)
    require_int(problem.d, "d", problem.C)
    require_in_unit_interval(problem.alpha, "alpha", closed_right=False)
    require_int(problem.restarts, "restarts", 1)
    require(
        isinstance(problem.seed, int) and problem.seed >= 0, "seed", f"must be an integer >= 0, got {problem.seed!r}"
    )


def _require_model1_range(problem) -> None:
    """Model 1: ``M_max = sqrt(K E_W E_H/(K-1))`` within :data:`M_MAX_RANGE`. Below it the optimum's geometry (equal
    class-mean norms) is decided at order M_max^2 of a loss ~ log K, under the solver's relative-gradient tolerance
    1e-12 (E_W = E_H = 1e-6, M_max = 1.2e-6: restarts 'converged' 94 % off; M_max = 1.2e-4: one in six 1e-3 off).
    Above it the margins carry rounding ~ eps M_max, which lifts the relative gradient's floor to the tolerance:
    at M_max = 61 to 122 the converged restarts end at 3e-13 to 5e-13 and one or two of three stall between 2e-12
    and 3e-10 (with the geometry right to 1e-14); up to M_max = 50 stalls are rare and at the rounding floor of a
    degenerate minimum (accepted by the family, see ``ufm.families.nonnegative.FLOOR_RTOL``). With label smoothing,
    also ``M_max <= MAX_LS_RATIO m*_alpha``."""
    K = problem.C
    M = math.sqrt(K * problem.E_W * problem.E_H / (K - 1))
    low, high = M_MAX_RANGE
    require(
        low <= M <= high,
        "E_W",
        f"E_W E_H = {problem.E_W * problem.E_H:.6g} gives the largest margin M_max = sqrt(K E_W E_H/(K-1)) = "
        f"{M:.4g}, outside [{low:g}, {high:g}] where float64 certifies Model 1's optimum",
    )
    if problem.alpha > 0:
        m_star = math.log1p(K * (1 - problem.alpha) / problem.alpha)  # ufm.theory.nonnegative.smoothing_margin
        require(
            M <= MAX_LS_RATIO * m_star,
            "E_W",
            f"E_W E_H = {problem.E_W * problem.E_H:.6g} gives M_max = {M:.4g}, above {MAX_LS_RATIO:g} times the "
            f"label-smoothing margin m*_alpha = {m_star:.4g}: the optimal margins m* are too small a part of "
            f"logits of size M_max for float64",
        )


def model2_margin(problem) -> tuple[float, float, float | None]:
    """``(gamma, gamma_alpha, m*)`` of Model 2 at the problem's K, n, weight decays and smoothing:
    ``gamma = sqrt(lambda_W lambda_H n K (K-1))``, ``gamma_alpha = gamma + alpha (K-1)/K`` and the optimum's margin
    ``m* = log((K-1)(1 - gamma_alpha)/gamma_alpha)``, None at or past the threshold (K-1)/K (W = H = 0 optimal)."""
    K = problem.C
    gamma = math.sqrt(problem.lambda_W * problem.lambda_H * problem.n * K * (K - 1))
    gamma_alpha = gamma + problem.alpha * (K - 1) / K
    if gamma_alpha >= (K - 1) / K:
        return gamma, gamma_alpha, None
    return gamma, gamma_alpha, math.log((K - 1) * (1 - gamma_alpha) / gamma_alpha)


def _require_model2_range(problem) -> None:
    """Model 2: each weight decay within :data:`LAMBDA_RANGE`; not within the thin band below the threshold
    gamma_alpha = (K-1)/K where the optimum's margin m* = log((K-1)(1 - gamma_alpha)/gamma_alpha) is below
    :data:`MIN_MODEL2_MARGIN` (there the optimum is a nearly zero, degenerate branch: ``m* ~ K eps`` for
    gamma_alpha = (1 - eps)(K-1)/K); and the weight-decay term gamma m* at least :data:`MIN_DECAY_SHARE` of the
    optimal loss (binds only with label smoothing)."""
    low, high = LAMBDA_RANGE
    for name in ("lambda_W", "lambda_H"):
        value = getattr(problem, name)
        require(
            low <= value <= high, name, f"must lie in [{low:g}, {high:g}] (the range float64 certifies), got {value!r}"
        )
    K = problem.C
    gamma, gamma_alpha, m = model2_margin(problem)
    if m is not None:
        require(
            m >= MIN_MODEL2_MARGIN,
            "lambda_W",
            f"lambda_W lambda_H = {problem.lambda_W * problem.lambda_H:.6g} puts gamma_alpha = {gamma_alpha:.10g} "
            f"just below the threshold (K-1)/K = {(K - 1) / K:.10g} (optimal margin {m:.3g} < "
            f"{MIN_MODEL2_MARGIN:g}: a degenerate optimum float64 does not resolve); move it off the threshold",
        )
        # the optimal loss ell_alpha(m) + gamma m (ufm.theory.nonnegative.model2_optimum)
        loss = math.log1p((K - 1) * math.exp(-m)) + problem.alpha * (K - 1) / K * m + gamma * m
        require(
            gamma * m >= MIN_DECAY_SHARE * loss,
            "lambda_W",
            f"lambda_W lambda_H = {problem.lambda_W * problem.lambda_H:.6g} gives a weight-decay term gamma m* = "
            f"{gamma * m:.3g}, below {MIN_DECAY_SHARE:g} of the optimal loss {loss:.6g}: with label smoothing alpha "
            f"= {problem.alpha:g} that term alone decides the optimum's geometry, and float64 does not resolve it",
        )


def _require_md_smoothing_range(problem) -> None:
    """Model 3 with label smoothing: sqrt(lambda_W lambda_H) >= :data:`MD_LS_MIN_DECAY` and the uncoupled Model 2
    margin (:func:`model2_margin`, the coupling ignored) >= :data:`MD_LS_MIN_MARGIN` where it is not W = H = 0."""
    decay = math.sqrt(problem.lambda_W * problem.lambda_H)
    require(
        decay >= MD_LS_MIN_DECAY,
        "lambda_W",
        f"with label smoothing (alpha = {problem.alpha:g}) sqrt(lambda_W lambda_H) must be >= {MD_LS_MIN_DECAY:g} "
        f"(below, the inner solves stall above tolerance; with alpha = 0 down to {MD_LAMBDA_RANGE[0]:g}), "
        f"got {decay:.3g}",
    )
    _, gamma_alpha, margin = model2_margin(problem)
    require(
        margin is None or margin >= MD_LS_MIN_MARGIN,
        "alpha",
        f"alpha = {problem.alpha:g} puts gamma_alpha = {gamma_alpha:.10g} just below the threshold "
        f"(K-1)/K = {(problem.C - 1) / problem.C:.10g} (Model 2 margin {margin or 0:.3g} < {MD_LS_MIN_MARGIN:g}: "
        f"a degenerate optimum the inner solves do not resolve); move it off the threshold",
    )


@dataclasses.dataclass(frozen=True)
class NonnegProblem:
    """K = C classes, n samples per class, features in R^d_{>=0} (default d = 2K: with d = K random starts often
    stop with a dead class), label smoothing alpha (0: CE). ``model="lpm"``: budgets E_W, E_H (Model 1), with
    ``M_max = sqrt(K E_W E_H/(K-1))`` in :data:`M_MAX_RANGE`; ``model="ufm"``: weight decays lambda_W, lambda_H
    (Model 2), each in :data:`LAMBDA_RANGE`, off the band just below the zero-solution threshold (see
    :func:`_require_model2_range`)."""

    C: int = parameter(10, "classes K (>= 2)")
    n: int = parameter(4, "samples per class (>= 1)")
    d: int | None = parameter(None, "feature dimension (>= K)", default_doc="2K")
    model: str = parameter("ufm", "lpm (Model 1, budgets) or ufm (Model 2, weight decays)")
    alpha: float = parameter(0.0, "label smoothing alpha in [0, 1) (0: CE)", flag="--ls-alpha")
    E_W: float = parameter(1.0, "Model 1 classifier budget (1/K)||W||_F^2 = E_W (> 0)")
    E_H: float = parameter(1.0, "Model 1 feature budget (1/N)||H||_F^2 = E_H (> 0)")
    lambda_W: float = parameter(5e-3, "Model 2 weight decay of W (> 0)")
    lambda_H: float = parameter(5e-3, "Model 2 weight decay of H (> 0)")
    restarts: int = parameter(6, "seeded random restarts (>= 1)")
    seed: int = parameter(0, "seed of the restarts")

    def __post_init__(self):
        _common(self)
        require(self.model in ("lpm", "ufm"), "model", f"must be lpm or ufm, got {self.model!r}")
        for name in ("E_W", "E_H", "lambda_W", "lambda_H"):
            require_positive(getattr(self, name), name)
        if self.model == "lpm":
            _require_model1_range(self)
        else:
            _require_model2_range(self)

    @property
    def N(self) -> int:
        return self.C * self.n

    @property
    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.C), self.n)


@dataclasses.dataclass(frozen=True)
class MemorizationDilationProblem:
    """Model 3: Model 2 plus label noise and limited expressivity (our formalisation of Nguyen et al., ICLR 2023).

    Per class k: ``n - n_noisy`` clean samples labelled k and ``n_noisy = round(noise n)`` samples whose TRUE class
    is k but whose label is another class, drawn uniformly among the other K-1 with a fixed seed. Hard coupling
    (R1): ``M_k <= r D_k`` for every class, with D_k the RMS distance of clean class-k features to their mean mu_k and
    M_k the mean distance of the noisy samples of true class k to mu_k. Accepted: r in :data:`R_RANGE`, each weight
    decay in :data:`MD_LAMBDA_RANGE` (the ranges float64 certifies).
    """

    C: int = parameter(3, "classes K (>= 2)")
    n: int = parameter(10, "samples per class (>= 3)")
    d: int | None = parameter(None, "feature dimension (>= K)", default_doc="2K")
    noise: float = parameter(0.2, "share of noisy labels per class, in [0, 1)")
    r: float = parameter(1.0, "expressivity: M_k <= r D_k (> 0)")
    alpha: float = parameter(0.0, "label smoothing alpha in [0, 1) (0: CE)", flag="--ls-alpha")
    lambda_W: float = parameter(5e-3, "weight decay of W (> 0)")
    lambda_H: float = parameter(5e-3, "weight decay of H (> 0)")
    restarts: int = parameter(3, "seeded random restarts (>= 1)")
    seed: int = parameter(0, "seed of the noisy labels and the restarts")

    def __post_init__(self):
        _common(self)
        require_in_unit_interval(self.noise, "noise", closed_right=False)
        require_positive(self.r, "r")
        require(
            R_RANGE[0] <= self.r <= R_RANGE[1],
            "r",
            f"must lie in [{R_RANGE[0]:g}, {R_RANGE[1]:g}] (the range float64 certifies: towards 0 the noisy "
            f"features sit on the clean means, towards infinity the clean ones collapse, where the coupling is "
            f"not differentiable), got {self.r!r}",
        )
        for name in ("lambda_W", "lambda_H"):
            require_positive(getattr(self, name), name)
            value = getattr(self, name)
            require(
                MD_LAMBDA_RANGE[0] <= value <= MD_LAMBDA_RANGE[1],
                name,
                f"must lie in [{MD_LAMBDA_RANGE[0]:g}, {MD_LAMBDA_RANGE[1]:g}] (the range float64 certifies), "
                f"got {value!r}",
            )
        if self.alpha > 0:
            _require_md_smoothing_range(self)
        require(
            self.n_noisy >= 1 and self.n - self.n_noisy >= 2,
            "noise",
            f"needs at least 1 noisy and 2 clean samples per class: n={self.n}, noise={self.noise} gives "
            f"{self.n_noisy} noisy",
        )

    @property
    def N(self) -> int:
        return self.C * self.n

    @property
    def n_noisy(self) -> int:
        return int(round(self.noise * self.n))

    @property
    def true_labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.C), self.n)

    @property
    def noisy_mask(self) -> np.ndarray:
        """True for the last n_noisy samples of every class."""
        return np.tile(np.arange(self.n) >= self.n - self.n_noisy, self.C)

    @property
    def labels(self) -> np.ndarray:
        """Observed labels: the true class for clean samples, a seeded uniformly drawn other class for noisy ones."""
        rng = np.random.default_rng(self.seed + 104729)
        labels = self.true_labels.copy()
        idx = np.flatnonzero(self.noisy_mask)
        shift = rng.integers(1, self.C, size=idx.size)
        labels[idx] = (labels[idx] + shift) % self.C
        return labels
