"""Cross-entropy UFM with weight decay (Zhu, Ding, Zhou, Li, You, Sulam, Qu, NeurIPS 2021): sizes and decays."""

from __future__ import annotations

import dataclasses

import numpy as np

from ufm.problems import InputError, filled, parameter, require, require_in_range, require_int

# Accepted weight decays lambda_W, lambda_H. Every value is a well-posed problem (the infimum is attained for any
# decays > 0); the range is what the tests and the certificate cover: at its ends every restart converges (decays
# 1e-9: rel grad ~3e-20, objective 1.4e-7 equal to the closed form to 2e-16; 1e6: the trivial optimum W = H = 0).
DECAY_RANGE = (1e-9, 1e6)
# Bias decays: the constant direction b ~ 1 has curvature lambda_b alone (CE is shift-invariant), so the bias's
# curvatures span lambda_b to 1 + lambda_b; at 1e3 with decays 1e-9 the Newton polish needs ~50 steps (as at 1e-9).
BIAS_DECAY_RANGE = (1e-9, 1e3)


def parse_bias(value) -> str | float:
    """``"none"`` (b = 0, no bias variable) or a bias weight decay ``lambda_b`` in BIAS_DECAY_RANGE.

    An unregularised bias is refused: CE is invariant under b -> b + beta 1, so its minimisers are not isolated."""
    message = (
        f"must be none or a bias weight decay in [{BIAS_DECAY_RANGE[0]:g}, {BIAS_DECAY_RANGE[1]:g}] (a free "
        f"bias has no unique optimum: CE is shift-invariant), got {value!r}"
    )
    if isinstance(value, str) and value == "none":
        return value
    try:
        lambda_b = float(value)
    except (TypeError, ValueError):
        raise InputError("bias", message) from None
    require(np.isfinite(lambda_b) and BIAS_DECAY_RANGE[0] <= lambda_b <= BIAS_DECAY_RANGE[1], "bias", message)
    return lambda_b


def require_decay(value, field: str) -> None:
    """A weight decay: a finite number in DECAY_RANGE."""
    require_in_range(value, field, DECAY_RANGE)


@dataclasses.dataclass(frozen=True)
class CEProblem:
    """K = C classes, n samples per class (N = C n), feature dimension d >= C - 1 (default C), weight decays
    lambda_W (classifier W, C x d), lambda_H (features H, N x d); ``bias`` ``"none"`` or a bias decay lambda_b;
    ``restarts`` seeded random starts. The objective is :func:`ufm.objectives.ce.ce_loss`."""

    C: int = parameter(4, "classes K (>= 2)")
    n: int = parameter(5, "samples per class (>= 1)")
    d: int | None = parameter(None, "feature dimension (>= C-1)", default_doc="C")
    lambda_W: float = parameter(5e-3, "classifier weight decay (lambda_W/2)||W||_F^2 (in [1e-9, 1e6])")
    lambda_H: float = parameter(5e-3, "feature weight decay (lambda_H/2)||H||_F^2 (in [1e-9, 1e6])")
    bias: str | float = parameter("none", "none, or a bias weight decay lambda_b in [1e-9, 1e3]")
    restarts: int = parameter(4, "seeded random restarts (>= 1)")
    seed: int = parameter(0, "seed of the restarts")

    def __post_init__(self):
        require_int(self.C, "C", 2)
        require_int(self.n, "n", 1)
        if self.d is None:
            object.__setattr__(self, "d", self.C)
        require_int(self.d, "d", self.C - 1)
        require_decay(self.lambda_W, "lambda_W")
        require_decay(self.lambda_H, "lambda_H")
        object.__setattr__(self, "bias", parse_bias(self.bias))
        require_int(self.restarts, "restarts", 1)
        require(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
            "seed",
            f"must be an integer >= 0, got {self.seed!r}",
        )

    @property
    def N(self) -> int:
        return self.C * self.n

    @property
    def lambda_b(self) -> float:
        """The bias decay (0.0 without a bias)."""
        return 0.0 if self.bias == "none" else float(self.bias)

    @property
    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.C), self.n)

    def targets(self) -> np.ndarray:
        """One-hot targets Y (N x C), samples ordered by class."""
        return np.eye(self.C)[self.labels]

    @property
    def n_vars(self) -> int:
        """Optimised scalars: W, H and the bias."""
        return (self.C + self.N) * filled(self.d, "d") + (self.C if self.bias != "none" else 0)
