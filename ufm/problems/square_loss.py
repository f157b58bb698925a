"""Square loss with weight decay (Rangamani & Banburski, ICASSP 2022): one-layer and deep UFMs, and homogeneous
networks on fixed inputs."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ufm.problems import InputError, filled, parameter, require, require_in_range, require_int
from ufm.solver import SolverOptions, peak_bytes

MODELS = ("ufm", "net")
ACTIVATIONS = ("linear", "relu")
INPUTS = ("orthonormal", "gaussian")
# Accepted weight decays (lambda_W, lambda_H, and a bias decay lambda_b). Below 1e-9 the residual Y - F of the
# optimum (~ K n^(1/m) lambda, e.g. eps = 2.2e-8 at K = 10, n = 5, lambda = 1e-9) is formed by cancelling outputs
# of size ~1, so it keeps fewer than 8 correct digits in float64 and the checks built on it (the identities, eps,
# the R-B relations) have almost nothing left to grade. The upper end only bounds the range so that its extremes
# are tested: past it the optimum is W = H = 0 unless another decay is tiny, and the solver works in balanced
# coordinates, where only the geometric mean of the decays enters (their ratio moves the factors' scales only).
DECAY_RANGE = (1e-9, 1e6)
# A bias decay beyond 1e3 gives the bias a curvature 1 + lambda_b against the factors' ~ Lambda: at lambda_b = 1e4 -
# 1e6 (C = 4, n = 2, 3 layers, Lambda = 5.6e-3) restarts stalled or ran out of steps at relative gradient 1e-10 -
# 7e-7, at 1e6 also with the bias solved in its balanced scale b sqrt(1 + lambda_b); and past 1e3 the bias is
# ~ 1/(K lambda_b) < 1e-3 / K, the bias-free problem (--bias none) to that order.
BIAS_DECAY_RANGE = (1e-9, 1e3)
# A network on Gaussian inputs does not interpolate its targets: the residual stays ~0.1 as the decay vanishes,
# the data term's curvature (~1) then sits beside the factors' rescaling directions (~lambda_W), and below 1e-6
# the Newton polish runs out of steps (C = 2, n = 3, 2 layers, free bias: every restart at lambda_W = 1e-7 and
# 1e-9 ended "maximum steps" at rel grad 1e-5 - 1e-2; at 1e-6 all converge).
GAUSSIAN_INPUTS_MIN_DECAY = 1e-6


def parse_bias(value) -> str | float:
    """``"none"``, ``"free"`` or a weight decay ``lambda_b > 0`` for the bias (``"0"`` means free)."""
    if isinstance(value, str) and value in ("none", "free"):
        return value
    try:
        lambda_b = float(value)
    except (TypeError, ValueError):
        raise InputError("bias", f"must be none, free or a bias weight decay >= 0, got {value!r}") from None
    require(
        np.isfinite(lambda_b) and lambda_b >= 0,
        "bias",
        f"must be none, free or a bias weight decay >= 0, got {value!r}",
    )
    if lambda_b == 0:
        return "free"
    require(
        BIAS_DECAY_RANGE[0] <= lambda_b <= BIAS_DECAY_RANGE[1],
        "bias",
        f"a bias weight decay must lie in [{BIAS_DECAY_RANGE[0]:g}, {BIAS_DECAY_RANGE[1]:g}] (or 0: free), "
        f"got {value!r}",
    )
    return lambda_b


def require_decay(value, field: str) -> None:
    """A weight decay: a finite number in DECAY_RANGE (see there for why the range is bounded)."""
    require_in_range(value, field, DECAY_RANGE, "float64 keeps too few digits of the optimum's residual below")


@dataclasses.dataclass(frozen=True)
class SquareLossProblem:
    """K = C classes, n samples per class, ``layers`` weight matrices W_1..W_L, width d.

    ``model="ufm"``: free features H (d x N) with weight decay lambda_H under the layers (L = 1 is the one-layer
    UFM); ``model="net"``: fixed inputs X (orthonormal columns, or a seeded Gaussian mixture) instead of H. Every
    layer has weight decay lambda_W; ``bias`` is ``"none"``, ``"free"`` or a bias weight decay. Weight decays must
    be > 0 (at 0 the infimum over rescaled factors is not attained) and lie in ``DECAY_RANGE``.
    ``activation="relu"`` needs ``layers >= 2``: the activation acts between layers, and one layer has none.
    Constructing a problem allocates nothing (inputs and targets are built on demand), so a huge size is refused by
    the memory estimate at once.
    """

    C: int = parameter(10, "classes (>= 2)", default_doc="10, mse-net 3")
    n: int = parameter(5, "samples per class (>= 1)")
    layers: int = parameter(1, "weight layers L (>= 1)", default_doc="mse-deep 3, mse-net 2; mse has 1")
    model: str = parameter("ufm", "ufm (free features) or net (fixed inputs)")
    activation: str = parameter("linear", "activation between layers: linear or relu (layers >= 2)", aliases=("--act",))
    bias: str | float = parameter("none", "none, free, or a bias weight decay lambda_b in [1e-9, 1e3]")
    lambda_W: float = parameter(5e-3, "weight decay (lambda_W/2)||W_l||_F^2 of every layer (in [1e-9, 1e6])")
    lambda_H: float = parameter(5e-3, "feature weight decay (lambda_H/2)||H||_F^2 (in [1e-9, 1e6]; UFMs only)")
    d: int | None = parameter(None, "width / feature dimension (>= C)", default_doc="C")
    inputs: str = parameter("orthonormal", "mse-net inputs: orthonormal or gaussian")
    restarts: int = parameter(4, "seeded random restarts (>= 1); a candidate start at W = H = 0 is added to them")
    seed: int = parameter(0, "seed of restarts and inputs")

    def __post_init__(self):
        require_int(self.C, "C", 2)
        require_int(self.n, "n", 1)
        require_int(self.layers, "layers", 1)
        require(self.model in MODELS, "model", f"must be one of {', '.join(MODELS)}, got {self.model!r}")
        require(
            self.activation in ACTIVATIONS,
            "activation",
            f"must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}",
        )
        require(self.inputs in INPUTS, "inputs", f"must be one of {', '.join(INPUTS)}, got {self.inputs!r}")
        object.__setattr__(self, "bias", parse_bias(self.bias))
        require(
            self.activation == "linear" or self.layers >= 2,
            "activation",
            f"relu acts between layers: with layers = 1 there is none (use linear), got activation={self.activation!r}",
        )
        require_decay(self.lambda_W, "lambda_W")
        require_decay(self.lambda_H, "lambda_H")
        if self.d is None:
            object.__setattr__(self, "d", self.C)
        require_int(self.d, "d", self.C)
        require_int(self.restarts, "restarts", 1)
        require(isinstance(self.seed, int) and self.seed >= 0, "seed", f"must be an integer >= 0, got {self.seed!r}")
        if self.model == "net" and self.inputs == "gaussian":
            require(
                self.lambda_W >= GAUSSIAN_INPUTS_MIN_DECAY,
                "lambda_W",
                f"must be >= {GAUSSIAN_INPUTS_MIN_DECAY:g} for a network on Gaussian inputs (they are not "
                f"interpolated: below, the optimum is too ill-conditioned to polish), got {self.lambda_W!r}",
            )
        if self.model == "net" and self.inputs == "orthonormal":
            require(
                self.input_dim >= self.N, "n", f"orthonormal inputs need N = C n <= input dimension {self.input_dim}"
            )

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


def layer_shapes(problem: SquareLossProblem) -> list[tuple[int, int]]:
    """``(rows, cols)`` of every weight layer W_1 ... W_L (the first takes the inputs of a network, H of a UFM)."""
    d = filled(problem.d, "d")
    first_in = problem.input_dim if problem.model == "net" else d
    ins = [first_in] + [d] * (problem.layers - 1)
    outs = [d] * (problem.layers - 1) + [problem.C]
    return list(zip(outs, ins))


def n_variables(problem: SquareLossProblem) -> int:
    """Number of optimised scalars: every layer, the features H of a UFM, the bias."""
    return (
        sum(o * i for o, i in layer_shapes(problem))
        + (filled(problem.d, "d") * problem.N if problem.model == "ufm" else 0)
        + (problem.C if problem.bias != "none" else 0)
    )


def memory_bytes(
    C: int,
    n: int,
    d: int,
    layers: int,
    restarts: int,
    model: str,
    bias,
    inputs: str,
    activation: str,
    options: SolverOptions,
) -> int:
    """Estimated peak bytes of a run from its sizes alone: ``ufm.solver.peak_bytes`` of the batched solve (the
    random restarts and the W = H = 0 candidate where it is added) with ``options``, plus the report's arrays."""
    N = C * n
    input_dim = N if inputs == "orthonormal" else 2 * C
    first_in = input_dim if model == "net" else d
    shapes = list(zip([d] * (layers - 1) + [C], [first_in] + [d] * (layers - 1)))
    n_vars = sum(o * i for o, i in shapes) + (d * N if model == "ufm" else 0) + (C if bias != "none" else 0)
    batch = restarts + (1 if activation == "linear" or layers + (model == "ufm") >= 3 else 0)
    # the objective's data (targets, inputs) and its intermediates (activations, outputs; value and gradient)
    data = 8 * (2 * C * N + (input_dim * N if model == "net" else N) + 2 * (layers + 1) * max(d, C) * N)
    solver = peak_bytes(n_vars, batch, options, data)
    # after the solve: the batch's parameters (balanced and original), the closed-form point and its gradient,
    # the inputs' QR (orthonormal: an input_dim x N draw), outputs, features and the checks' d x N and d x d arrays
    report = 8 * (
        n_vars * (3 * batch + 8) + (3 * input_dim * N if model == "net" else 0) + 6 * max(d, C) * N + 4 * d * d
    )
    return int(solver + report)


def memory_estimate(problem: SquareLossProblem, options: SolverOptions) -> tuple[int, str]:
    """Estimated peak bytes of a run (the batched solve with ``options``: dense Hessians of every restart and the
    candidate; the closed-form point; the report's arrays), from sizes only, and the field that drives it: the one
    whose reduction to its smallest accepted value shrinks the estimate most."""
    sizes: dict[str, Any] = {
        "C": problem.C,
        "n": problem.n,
        "d": problem.d,
        "layers": problem.layers,
        "restarts": problem.restarts,
    }
    rest: dict[str, Any] = {
        "model": problem.model,
        "bias": problem.bias,
        "inputs": problem.inputs,
        "activation": problem.activation,
    }
    estimate = memory_bytes(**sizes, **rest, options=options)
    smallest = {"C": 2, "n": 1, "d": problem.C, "layers": 2 if problem.activation == "relu" else 1, "restarts": 1}
    reduced = {}
    for field, low in smallest.items():
        trial = {**sizes, field: low}
        if field == "C" and problem.d == problem.C:  # d defaults to C and follows it
            trial["d"] = low
        reduced[field] = memory_bytes(**trial, **rest, options=options)
    return estimate, min(reduced, key=reduced.__getitem__)
