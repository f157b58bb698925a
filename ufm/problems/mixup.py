"""The mixup problem with a fixed simplex-ETF classifier (Fisher, Meng, Papyan, ICLR 2024): sizes,
hyper-parameters, subproblem grid."""

from __future__ import annotations

import dataclasses

import numpy as np

from ufm.etf import simplex_etf
from ufm.problems import filled, parameter, require, require_int, require_positive

# Beyond this range the optimum's conditioning (Hessian condition ~ 1 + kappa) leaves no correct digits to test.
KAPPA_RANGE = (1e-12, 1e12)
# The solver's relative-gradient test (||grad|| / max(1, |f|) <= 1e-12) is not scale-free in m, since the
# gradient W^T (p - y + z / kappa) scales with ||W|| ~ m: above 1e2 its own rounding (~eps m) stops the polish short
# of the tolerance (m = 1e3 at kappa = 1e9, m = 3e3 at kappa = 1e12, m = 1e4 at kappa = 1: stalled subproblems);
# below 1e-2 the test only bounds p - y + z/kappa by 1e-12 / m, and Newton may stop there (m = 1e-8, kappa = 1:
# features off by 2.8e-8; m = 1e-12: a random start already met it, every check failed).
M_RANGE = (1e-2, 1e2)


@dataclasses.dataclass(frozen=True)
class MixupProblem:
    """C classes, features in R^d, ETF multiplier m, feature weight decay mu, a uniform grid of n_lambdas in [0, 1].

    Every ordered class pair (c, c'), c = c' included, and every grid lambda is one subproblem
    ``min_h logsumexp(W h) - y^T W h + (mu/2)||h||^2`` (``ufm.objectives.mixup``). ``seed`` fixes the random
    isometric embedding of the ETF in R^d (and the solver's random starts).

    ``points`` = k >= 3 (Chaudhry et al., several-point mixup) replaces the pair grid by ``n_mixes`` random mixes: k
    classes drawn uniformly with replacement (repeats allowed) and weights lam ~ Dirichlet(alpha, ..., alpha),
    soft target ``sum_j lam_j e_{c_j}`` (``mixes``). ``alpha`` and ``n_mixes`` are only used when k >= 3
    (defaults 1.0 and 1000); with k = 2 the lambda grid is used and they must be left unset.
    """

    C: int = parameter(10, "number of classes (>= 2)")
    d: int | None = parameter(None, "feature dimension (>= C-1)", default_doc="C")
    m: float = parameter(1.0, "ETF multiplier, ||w_c|| = m (in [1e-2, 1e2])")
    mu: float = parameter(1e-2, "feature weight decay mu in (mu/2)||h||^2, per sample (> 0)")
    n_lambdas: int = parameter(101, "lambda grid size on [0, 1] (>= 2; only with --points 2)")
    seed: int = parameter(0, "seed of the ETF embedding and of the random starts")
    points: int = parameter(
        2, "number of mixed points k (>= 2; k >= 3: several-point Dirichlet mixup, Chaudhry et al.)"
    )
    alpha: float | None = parameter(
        None, "mixing concentration: k-point weights ~ Dirichlet(alpha) (> 0; only with --points >= 3)", default_doc="1"
    )
    n_mixes: int | None = parameter(
        None, "number of random k-point mixes (>= 1; only with --points >= 3)", default_doc="1000"
    )

    def __post_init__(self):
        require_int(self.C, "C", 2)
        if self.d is None:
            object.__setattr__(self, "d", self.C)
        require_int(self.d, "d", self.C - 1)
        require_positive(self.m, "m")
        require(
            M_RANGE[0] <= self.m <= M_RANGE[1],
            "m",
            f"must lie in [{M_RANGE[0]:g}, {M_RANGE[1]:g}] (the "
            f"solver's gradient tolerance is not scale-free in m), got {self.m!r}",
        )
        require_positive(self.mu, "mu")
        kappa = self.C * self.m**2 / ((self.C - 1) * self.mu)
        require(
            KAPPA_RANGE[0] <= kappa <= KAPPA_RANGE[1],
            "mu",
            f"kappa = C m^2/((C-1) mu) must lie in [{KAPPA_RANGE[0]:g}, {KAPPA_RANGE[1]:g}] "
            f"(float64 cannot resolve the optimum beyond), got {kappa:.3g} from m={self.m!r}, mu={self.mu!r}",
        )
        require_int(self.n_lambdas, "n_lambdas", 2)
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")
        require_int(self.points, "points", 2)
        if self.points == 2:
            for field in ("alpha", "n_mixes"):
                require(
                    getattr(self, field) is None, field, "only used with points >= 3 (points = 2 uses the lambda grid)"
                )
        else:
            if self.alpha is None:
                object.__setattr__(self, "alpha", 1.0)
            if self.n_mixes is None:
                object.__setattr__(self, "n_mixes", 1000)
            require_positive(self.alpha, "alpha")
            require_int(self.n_mixes, "n_mixes", 1)

    @property
    def kappa(self) -> float:
        """``C m^2 / ((C-1) mu)``: the only combination of (m, mu) the optimal logits depend on."""
        return self.C * self.m**2 / ((self.C - 1) * self.mu)

    def classifier(self) -> np.ndarray:
        return simplex_etf(self.C, filled(self.d, "d"), self.m, self.seed)

    def lambdas(self) -> np.ndarray:
        return np.linspace(0.0, 1.0, self.n_lambdas)

    def grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flattened (c, c_prime, lam) of every subproblem, c slowest and lam fastest."""
        c, c_prime, lam = np.meshgrid(np.arange(self.C), np.arange(self.C), self.lambdas(), indexing="ij")
        return c.ravel(), c_prime.ravel(), lam.ravel()

    def mixes(self) -> tuple[np.ndarray, np.ndarray]:
        """``n_mixes`` random k-point mixes: classes (n, k) uniform with replacement, lam (n, k) ~ Dirichlet(alpha).

        Seeded by ``seed`` (a stream separate from the ETF embedding's). Any k >= 2 works (tests use k = 2 too).
        """
        rng = np.random.default_rng([self.seed, 8])
        alpha = 1.0 if self.alpha is None else self.alpha
        n = 1000 if self.n_mixes is None else self.n_mixes
        classes = rng.integers(0, self.C, size=(n, self.points))
        lam = rng.dirichlet(np.full(self.points, alpha), size=n)
        return classes, lam
