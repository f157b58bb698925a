"""Small networks trained on real data, whose last-layer features ``ufm.measure`` compares with the model.

A multilayer perceptron on scikit-learn's bundled handwritten digits (1797 images of 8 x 8 pixels, 10 classes;
Alpaydin, Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine Learning Repository, 1998) is trained
full-batch with Adam to the terminal phase under one of three objectives:

- ``"erm"``: cross-entropy on the clean samples, classifier (W, b) learned;
- ``"mixup"``: two-point mixup (Zhang, Cisse, Dauphin, Lopez-Paz, "mixup: Beyond Empirical Risk Minimization",
  ICLR 2018): inputs ``lam x_i + (1 - lam) x_j`` with target ``lam e_{y_i} + (1 - lam) e_{y_j}``,
  ``lam ~ Beta(alpha, alpha)``, j a random permutation of the batch; classifier (W, b) learned;
- ``"mixup_etf"``: the same with W fixed to a simplex ETF of multiplier m (``ufm.etf.simplex_etf``: ``||w_c|| = m``,
  ``<w_c, w_c'> = -m^2/(C-1)``) and no bias, the classifier of Theorem 3.1 of Fisher, Meng, Papyan, "Pushing
  Boundaries: Mixup's Influence on Neural Collapse", ICLR 2024.

Label noise and label smoothing (Nguyen, Levie, Lienen, Huellermeier, Kutyniok, "Memorization-Dilation:
Modeling Neural Collapse Under Noise", ICLR 2023): with ``label_noise = eta > 0``, ``round(eta N)`` training
samples, drawn uniformly without replacement, are trained with a label drawn uniformly from the C - 1 other
classes (:func:`noisy_labels`); the held-out samples keep their true labels. With ``smoothing = alpha > 0`` every
one-hot target becomes ``(1 - alpha) e_y + (alpha/C) 1`` (:func:`smoothed_targets`; Szegedy, Vanhoucke, Ioffe,
Shlens, Wojna, "Rethinking the Inception Architecture for Computer Vision", CVPR 2016), before any mixing.

Weight decay is the L2 penalty ``(weight_decay/2) ||theta||^2`` on the trained parameters, added to the loss (so
the objective is the regularised one the unconstrained-features model abstracts). Everything is float64 and
seeded: the same configuration gives bit-identical features.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ufm.etf import simplex_etf
from ufm.precision import float64

OBJECTIVES = ("erm", "mixup", "mixup_etf")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        objective: ``"erm"``, ``"mixup"`` or ``"mixup_etf"`` (module docstring).
        hidden: widths of the hidden layers; the last is the feature dimension d.
        steps: full-batch Adam steps (learning rate ``lr`` decayed to 0 on a cosine).
        lr: the initial learning rate.
        weight_decay: coefficient of the L2 penalty ``(weight_decay/2) ||theta||^2`` on the trained parameters.
        alpha: mixup's Beta(alpha, alpha) parameter (unused for ``"erm"``).
        m: the fixed ETF's multiplier (``"mixup_etf"`` only).
        seed: seeds the initialisation, the ETF's embedding and the mixup draws.
        split_seed: seeds the train/held-out split (kept apart from ``seed`` so seeds share one split).
        held_out: share of the samples held out.
        label_noise: share of the training samples trained with a wrong label (:func:`noisy_labels`; 0: none).
        noise_seed: seeds which samples are noisy and their wrong labels (None: ``seed``, so that each training
            seed has its own noisy draw and the objectives of one seed share it).
        smoothing: label smoothing alpha in [0, 1): targets ``(1 - alpha) e_y + alpha/C`` (0: one-hot).
    """

    objective: str = "erm"
    hidden: tuple[int, ...] = (128, 128)
    steps: int = 1500
    lr: float = 1e-3
    weight_decay: float = 1e-4
    alpha: float = 1.0
    m: float = 1.0
    seed: int = 0
    split_seed: int = 0
    held_out: float = 0.25
    label_noise: float = 0.0
    noise_seed: int | None = None
    smoothing: float = 0.0

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError(f"label_noise must lie in [0, 1), got {self.label_noise!r}")
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must lie in [0, 1), got {self.smoothing!r}")


def load_digits(split_seed: int = 0, held_out: float = 0.25) -> dict:
    """The digits, split into training and held-out samples (stratified by class) and standardised.

    Each pixel is standardised, ``x -> (x - mean)/std``, with the training samples' mean and standard deviation
    (pixels constant on the training set keep std 1), so the held-out samples are not used for anything.

    Args:
        split_seed: seeds the split.
        held_out: share of each class held out.

    Returns:
        dict with ``x_train`` (N, 64), ``y_train`` (N,), ``x_test``, ``y_test`` (float64, int64) and ``C`` = 10.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    x, y = sklearn_digits(return_X_y=True)
    x, y = x.astype(np.float64), y.astype(np.int64)
    rng = np.random.default_rng(split_seed)
    test = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        test[rng.permutation(idx)[: round(held_out * len(idx))]] = True
    mean, std = x[~test].mean(axis=0), x[~test].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    x = (x - mean) / std
    return {"x_train": x[~test], "y_train": y[~test], "x_test": x[test], "y_test": y[test], "C": 10}


def noisy_labels(y: np.ndarray, C: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with a share ``fraction`` flipped to a uniformly drawn other class.

    ``round(fraction N)`` of the N samples are drawn uniformly without replacement; each gets the label
    ``(y + s) mod C`` with s uniform on 1..C-1, i.e. uniform over the C - 1 classes other than its own (symmetric
    label noise, as in Nguyen et al., ICLR 2023).

    Args:
        y: (N,) the true labels, 0..C-1; C: the number of classes.
        fraction: the share flipped, in [0, 1); seed: seeds the draw (``numpy.random.default_rng([seed, 2])``).

    Returns:
        ``(labels, noisy_mask)``: (N,) int64 the labels trained with and (N,) bool, true where they differ from y.
    """
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng([seed, 2])
    mask = np.zeros(len(y), dtype=bool)
    mask[rng.choice(len(y), round(fraction * len(y)), replace=False)] = True
    labels = y.copy()
    labels[mask] = (y[mask] + rng.integers(1, C, int(mask.sum()))) % C
    return labels, mask


@float64
def smoothed_targets(labels, C: int, alpha: float) -> jax.Array:
    """Label-smoothing targets ``(1 - alpha) e_y + (alpha/C) 1``, one row per label (rows sum to 1; alpha = 0:
    one-hot).

    Args:
        labels: (N,) integer labels; C: the number of classes; alpha: the smoothing, in [0, 1).

    Returns:
        (N, C) float64.

    References:
        Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for Computer Vision",
        CVPR 2016 (section 7); ``optax.smooth_labels`` uses the same convention.
    """
    targets = jax.nn.one_hot(labels, C, dtype=jnp.float64)
    return targets if alpha == 0 else (1.0 - alpha) * targets + alpha / C


@float64
def init_params(key, sizes: tuple[int, ...]) -> list[dict]:
    """He-initialised dense layers ``sizes[0] -> sizes[1] -> ...`` (He, Zhang, Ren, Sun, "Delving Deep into
    Rectifiers", ICCV 2015): ``W ~ N(0, 2/fan_in)``, ``b = 0``.

    Returns:
        A list of ``{"W": (out, in), "b": (out,)}``.
    """
    layers = []
    for k, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        W = jax.random.normal(k, (fan_out, fan_in), dtype=jnp.float64) * jnp.sqrt(2.0 / fan_in)
        layers.append({"W": W, "b": jnp.zeros(fan_out, dtype=jnp.float64)})
    return layers


@float64
def features(body: list[dict], x):
    """The last-layer features ``h = relu(W_L ... relu(W_1 x + b_1) ... + b_L)`` (N, d) of inputs x (N, p)."""
    for layer in body:
        x = jax.nn.relu(x @ layer["W"].T + layer["b"])
    return x


@float64
def layer_outputs(body: list[dict], x) -> list:
    """Every hidden layer's output ``h_l = relu(W_l h_{l-1} + b_l)``, ``h_0 = x``: a list of L arrays (N, width_l),
    the last one :func:`features`."""
    outputs = []
    for layer in body:
        x = jax.nn.relu(x @ layer["W"].T + layer["b"])
        outputs.append(x)
    return outputs


def soft_cross_entropy(logits, targets):
    """Mean over rows of ``logsumexp(z) - y^T z``: cross-entropy against soft targets y (rows summing to 1)."""
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(targets * logits, axis=1))


def _l2(tree) -> jax.Array:
    return sum((jnp.sum(leaf**2) for leaf in jax.tree_util.tree_leaves(tree)), start=jnp.zeros(()))


@functools.partial(jax.jit, static_argnames=("objective", "steps", "C", "smoothing"))
def _train(params, head, x, y, perms, lams, *, objective, steps, C, lr, weight_decay, smoothing=0.0):
    """Full-batch Adam under ``lax.scan``; ``head`` is the fixed classifier (``"mixup_etf"``) or None; step t mixes
    sample i with ``perms[t, i]`` at weight ``lams[t, i]``; y the labels trained with (noisy ones included)."""
    targets = smoothed_targets(y, C, smoothing)
    optimiser = optax.adam(optax.cosine_decay_schedule(lr, steps))

    def loss(p, perm, lam):
        W, b = (head["W"], head["b"]) if head is not None else (p["head"]["W"], p["head"]["b"])
        if objective == "erm":
            xs, ts = x, targets
        else:
            xs = lam * x + (1 - lam) * x[perm]
            ts = lam * targets + (1 - lam) * targets[perm]
        logits = features(p["body"], xs) @ W.T + b
        return soft_cross_entropy(logits, ts) + 0.5 * weight_decay * _l2(p)

    def step(carry, draw):
        p, state = carry
        value, grad = jax.value_and_grad(loss)(p, *draw)
        updates, state = optimiser.update(grad, state, p)
        return (optax.apply_updates(p, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, optimiser.init(params)), (perms, lams))
    return params, losses


@float64
def train(cfg: TrainConfig, data: dict | None = None) -> dict:
    """Train one MLP on the digits (module docstring) and read off its last-layer features.

    Args:
        cfg: the run.
        data: :func:`load_digits`'s output (None: loaded with ``cfg.split_seed`` and ``cfg.held_out``).

    Returns:
        dict with ``params`` (the body's layers), ``features`` (N, d) of the training samples, ``labels`` (N,)
        the labels trained with, ``true_labels`` (N,) the digits' own labels and ``noisy_mask`` (N,) where they
        differ (all false without label noise), ``W`` (C, d) and ``bias`` (C,) (zeros for ``"mixup_etf"``),
        ``train_accuracy`` (against the labels trained with), ``train_accuracy_true`` (against the true labels)
        and ``test_accuracy`` (held-out samples, true labels; decisions ``argmax(W h + b)``), ``losses`` (steps,)
        the training objective per step, and ``data``.
    """
    data = data if data is not None else load_digits(cfg.split_seed, cfg.held_out)
    C, x = data["C"], jnp.asarray(data["x_train"])
    true = np.asarray(data["y_train"])
    if cfg.label_noise > 0:
        noise_seed = cfg.seed if cfg.noise_seed is None else cfg.noise_seed
        trained, noisy = noisy_labels(true, C, cfg.label_noise, noise_seed)
    else:
        trained, noisy = true, np.zeros(len(true), dtype=bool)
    y = jnp.asarray(trained)
    k_init, k_head = jax.random.split(jax.random.PRNGKey(cfg.seed))
    n = x.shape[0]
    if cfg.objective == "erm":  # nothing is mixed: one placeholder column per step
        perms, lams = np.zeros((cfg.steps, 1), np.int64), np.zeros((cfg.steps, 1, 1))
    else:
        # every step's partners and weights drawn up front on the host: JAX's Beta sampler (rejection sampling)
        # takes seconds for the draws numpy makes in milliseconds
        rng = np.random.default_rng([cfg.seed, 1])
        perms = np.argsort(rng.random((cfg.steps, n)), axis=1)
        lams = rng.beta(cfg.alpha, cfg.alpha, (cfg.steps, n, 1))
    d = cfg.hidden[-1]
    params: dict = {"body": init_params(k_init, (x.shape[1], *cfg.hidden))}
    if cfg.objective == "mixup_etf":
        # fixed, not trained: it is no leaf of params, so neither Adam nor the weight decay touches it
        head = {"W": jnp.asarray(simplex_etf(C, d, cfg.m, cfg.seed)), "b": jnp.zeros(C, dtype=jnp.float64)}
    else:
        head = None
        W0 = jax.random.normal(k_head, (C, d), dtype=jnp.float64) / jnp.sqrt(d)
        params["head"] = {"W": W0, "b": jnp.zeros(C, dtype=jnp.float64)}
    params, losses = _train(
        params,
        head,
        x,
        y,
        jnp.asarray(perms),
        jnp.asarray(lams),
        objective=cfg.objective,
        steps=cfg.steps,
        C=C,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        smoothing=cfg.smoothing,
    )
    W, b = (head["W"], head["b"]) if head is not None else (params["head"]["W"], params["head"]["b"])
    W, b = np.asarray(W), np.asarray(b)
    h = np.asarray(features(params["body"], x))

    def accuracy(xs, ys):
        return float(np.mean(np.argmax(np.asarray(features(params["body"], jnp.asarray(xs))) @ W.T + b, 1) == ys))

    return {
        "params": params["body"],
        "features": h,
        "labels": np.asarray(y),
        "true_labels": true,
        "noisy_mask": noisy,
        "W": W,
        "bias": b,
        "train_accuracy": accuracy(data["x_train"], trained),
        "train_accuracy_true": accuracy(data["x_train"], true),
        "test_accuracy": accuracy(data["x_test"], data["y_test"]),
        "losses": np.asarray(losses),
        "data": data,
    }


def mixed_inputs(x: np.ndarray, y: np.ndarray, C: int, lambdas, per_pair: int, seed: int) -> dict:
    """Mixed inputs ``lam x_i + (1 - lam) x_j`` for every class pair c <= c' and every lambda in ``lambdas``.

    For each pair, ``per_pair`` sample pairs (i of class c, j of class c', i != j) are drawn; each is mixed at every
    lambda, so a sample pair traces its segment. Same-class pairs (c = c') are included: Theorem 3.1's same-class
    optimum does not depend on lambda, which ``ufm.measure``'s lambda-spread tests.

    Args:
        x, y: the samples and their labels; C: the number of classes.
        lambdas: the mixing weights of class c; per_pair: sample pairs per class pair; seed: seeds the draw.

    Returns:
        dict with ``x`` (M, p), ``pairs`` (M, 2) the classes (c, c') and ``lam`` (M,) the weight of c, as
        ``ufm.measure`` takes them (``mixed_labels``, ``mixed_lambda``).
    """
    rng = np.random.default_rng(seed)
    lambdas = np.asarray(lambdas, dtype=np.float64)
    xs, pairs, lams = [], [], []
    for c in range(C):
        for cp in range(c, C):
            i = rng.choice(np.flatnonzero(y == c), per_pair, replace=False)
            pool = np.flatnonzero(y == cp)
            j = np.array([rng.choice(pool[pool != a]) for a in i])
            mix = lambdas[None, :, None] * x[i][:, None] + (1 - lambdas[None, :, None]) * x[j][:, None]
            xs.append(mix.reshape(-1, x.shape[1]))
            pairs.append(np.tile([c, cp], (per_pair * len(lambdas), 1)))
            lams.append(np.tile(lambdas, per_pair))
    return {"x": np.concatenate(xs), "pairs": np.concatenate(pairs).astype(np.int64), "lam": np.concatenate(lams)}


@float64
def measure_arrays(run: dict, lambdas, per_pair: int, seed: int) -> dict:
    """The arrays ``ufm.measure`` takes (docs/measure.md), from a :func:`train` result: the training samples'
    features, labels, W, bias, and the features of :func:`mixed_inputs` of the training samples.

    Returns:
        dict with ``features``, ``labels``, ``W``, ``bias``, ``mixed_features``, ``mixed_labels``,
        ``mixed_lambda`` (``numpy.savez(path, **arrays)`` writes the file ``ufm measure`` reads).
    """
    data = run["data"]
    mixed = mixed_inputs(data["x_train"], data["y_train"], data["C"], lambdas, per_pair, seed)
    return {
        "features": run["features"],
        "labels": run["labels"],
        "W": run["W"],
        "bias": run["bias"],
        "mixed_features": np.asarray(features(run["params"], jnp.asarray(mixed["x"]))),
        "mixed_labels": mixed["pairs"],
        "mixed_lambda": mixed["lam"],
    }


@float64
def label_noise_arrays(run: dict) -> dict:
    """The arrays ``ufm.measure`` takes for memorization and dilation (docs/measure.md), from a :func:`train`
    result: the training samples' features, the labels trained with, W, bias, ``noisy_mask`` and ``true_labels``.

    Returns:
        dict with ``features``, ``labels``, ``W``, ``bias``, ``noisy_mask``, ``true_labels``
        (``numpy.savez(path, **arrays)`` writes the file ``ufm measure`` reads).
    """
    return {key: run[key] for key in ("features", "labels", "W", "bias", "noisy_mask", "true_labels")}
