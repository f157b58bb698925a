"""Square loss with weight decay (seed 003): one-layer and deep UFMs, and homogeneous networks on fixed inputs."""

from __future__ import annotations

import dataclasses

import numpy as np

from ufm.problems import InputError, require, require_int, require_positive

MODELS = ("ufm", "net")
ACTIVATIONS = ("linear", "relu")
INPUTS = ("orthonormal", "gaussian")


def parse_bias(value) -> str | float:
    """``"none"``, ``"free"`` or a weight decay ``lambda_b > 0`` for the bias (``"0"`` means free)."""
    if isinstance(value, str) and value in ("none", "free"):
        return value
    try:
        lambda_b = float(value)
    except (TypeError, ValueError):
        raise InputError("bias", f"must be none, free or a bias weight decay >= 0, got {value!r}") from None
    require(np.isfinite(lambda_b) and lambda_b >= 0, "bias", f"must be none, free or a bias weight decay >= 0, got {value!r}")
    return "free" if lambda_b == 0 else lambda_b


@dataclasses.dataclass(frozen=True)
class SquareLossProblem:
    """K = C classes, n samples per class, ``layers`` weight matrices W_1..W_L, width d.

    ``model="ufm"``: free features H (d x N) with weight decay lambda_H under the layers (L = 1 is the one-layer
    UFM); ``model="net"``: fixed inputs X (orthonormal columns, or a seeded Gaussian mixture) instead of H. Every
    layer has weight decay lambda_W; ``bias`` is ``"none"``, ``"free"`` or a bias weight decay. Weight decays must
    be > 0 (at 0 the infimum over rescaled factors is not attained).
    """

    C: int = 10
    n: int = 5
    layers: int = 1
    model: str = "ufm"
    act: str = "linear"
    bias: str | float = "none"
    lambda_W: float = 5e-3
    lambda_H: float = 5e-3
    d: int | None = None
    inputs: str = "orthonormal"
    restarts: int = 4
    seed: int = 0

    def __post_init__(self):
        require_int(self.C, "C", 2)
        require_int(self.n, "n", 1)
        require_int(self.layers, "layers", 1)
        require(self.model in MODELS, "model", f"must be one of {', '.join(MODELS)}, got {self.model!r}")
        require(self.act in ACTIVATIONS, "act", f"must be one of {', '.join(ACTIVATIONS)}, got {self.act!r}")
        require(self.inputs in INPUTS, "inputs", f"must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        object.__setattr__(self, "bias", parse_bias(self.bias))
        require_positive(self.lambda_W, "lambda_W")
        require_positive(self.lambda_H, "lambda_H")
        if self.d is None:
            object.__setattr__(self, "d", self.C)
        require_int(self.d, "d", self.C)
        require_int(self.restarts, "restarts", 1)
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.model == "net" and self.inputs == "orthonormal":
            require(self.input_dim >= self.N, "n", f"orthonormal inputs need N = C n <= input dimension {self.input_dim}")

    @property
    def N(self) -> int:
        return self.C * self.n

    @property
    def input_dim(self) -> int:
        """Dimension of the fixed inputs of a network: N for orthonormal inputs, 2C for the Gaussian mixture."""
        return self.N if self.inputs == "orthonormal" else 2 * self.C

    @property
    def labels(self) -> np.ndarray:
        return np.repeat(np.arange(self.C), self.n)

    @property
    def factor_decays(self) -> np.ndarray:
        """Weight decay of every factor of the product: (lambda_H, lambda_W x L) for a UFM, (lambda_W x L) for a net."""
        head = [self.lambda_H] if self.model == "ufm" else []
        return np.array(head + [self.lambda_W] * self.layers)

    def targets(self) -> np.ndarray:
        """One-hot targets Y (K x N), samples ordered by class."""
        return np.eye(self.C)[:, self.labels]

    def inputs_matrix(self) -> np.ndarray:
        """Fixed network inputs X (input_dim x N): orthonormal columns (X^T X = I), or a seeded Gaussian mixture
        (class means N(0, I), within-class noise 0.3 N(0, I))."""
        rng = np.random.default_rng(self.seed + 7919)
        if self.inputs == "orthonormal":
            Q, _ = np.linalg.qr(rng.standard_normal((self.input_dim, self.N)))
            return Q
        means = rng.standard_normal((self.C, self.input_dim))
        return (means[self.labels] + 0.3 * rng.standard_normal((self.N, self.input_dim))).T
