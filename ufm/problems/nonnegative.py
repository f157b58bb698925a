"""Nonnegative-feature problems (seed 002): Model 1 (budgets), Model 2 (weight decay), Model 3 (label noise)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ufm.problems import require, require_in_unit_interval, require_int, require_positive


def _common(problem) -> None:
    require_int(problem.C, "C", 2)
    require_int(problem.n, "n", 1)
    if problem.d is None:
        object.__setattr__(problem, "d", 2 * problem.C)
    require_int(problem.d, "d", problem.C)
    require_in_unit_interval(problem.alpha, "alpha", closed_right=False)
    require_int(problem.restarts, "restarts", 1)
    require(isinstance(problem.seed, int) and problem.seed >= 0, "seed", f"must be an integer >= 0, got {problem.seed!r}")


@dataclasses.dataclass(frozen=True)
class NonnegProblem:
    """K = C classes, n samples per class, features in R^d_{>=0} (default d = 2K: with d = K random starts often
    stop with a dead class), label smoothing alpha (0: CE). ``model="lpm"``: budgets E_W, E_H (Model 1);
    ``model="ufm"``: weight decays lambda_W, lambda_H (Model 2)."""

    C: int = 10
    n: int = 4
    d: int | None = None
    model: str = "ufm"
    alpha: float = 0.0
    E_W: float = 1.0
    E_H: float = 1.0
    lambda_W: float = 5e-3
    lambda_H: float = 5e-3
    restarts: int = 6
    seed: int = 0

    def __post_init__(self):
        _common(self)
        require(self.model in ("lpm", "ufm"), "model", f"must be lpm or ufm, got {self.model!r}")
        for name in ("E_W", "E_H", "lambda_W", "lambda_H"):
            require_positive(getattr(self, name), name)

    @property
    def N(self) -> int:
        return self.C * self.n

    @property
    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.C), self.n)


@dataclasses.dataclass(frozen=True)
class MemorizationDilationProblem:
    """Model 3: Model 2 plus label noise and limited expressivity (our formalisation, nonnegative_md.md).

    Per class k: ``n - n_noisy`` clean samples labelled k and ``n_noisy = round(noise n)`` samples whose TRUE class
    is k but whose label is another class, drawn uniformly among the other K-1 with a fixed seed. Hard coupling
    (R1): ``M_k <= r D_k`` for every class, with D_k the RMS distance of clean class-k features to their mean mu_k and
    M_k the mean distance of the noisy samples of true class k to mu_k.
    """

    C: int = 3
    n: int = 10
    d: int | None = None
    noise: float = 0.2
    r: float = 1.0
    alpha: float = 0.0
    lambda_W: float = 5e-3
    lambda_H: float = 5e-3
    restarts: int = 3
    seed: int = 0

    def __post_init__(self):
        _common(self)
        require_in_unit_interval(self.noise, "noise", closed_right=False)
        require_positive(self.r, "r")
        require_positive(self.lambda_W, "lambda_W")
        require_positive(self.lambda_H, "lambda_H")
        require(self.n_noisy >= 1 and self.n - self.n_noisy >= 2, "noise",
                f"needs at least 1 noisy and 2 clean samples per class: n={self.n}, noise={self.noise} gives "
                f"{self.n_noisy} noisy")

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
