"""Networks along mixing chords: the per-layer non-linearity (Chaudhry, Menon, Veit, Jayasumana, Ramalingam,
Kumar, "When does mixup promote local linearity in learned representations?", arXiv:2210.16413, 2022, eq. 3) of
the MLPs of ``network_mixup`` (the same training settings, so the same networks, bit for bit), trained by ERM, by
mixup with a learned classifier and by mixup with a fixed simplex ETF.

For a chord between two training samples x_i, x_j of different classes and a weight lam, a layer's output f gives
``NonLin = || f^(lam x_i + (1 - lam) x_j) - (lam f^(x_i) + (1 - lam) f^(x_j)) ||`` with ``f^ = f/||f||``
(``ufm.metrics.nonlinearity``), averaged over the chords and the lambdas; beside it the floor any map reaches
with these end points, ``1 - ||lam f^(x_i) + (1 - lam) f^(x_j)||`` (``ufm.metrics.nonlinearity_floor``), the
excess over it, and the unnormalised distance divided by the mean norm of the two end points. The layers: the
input, every hidden layer (the last one is the features ``ufm.measure`` reads) and the logits. The input is the
identity map, exactly linear: its unnormalised distance is 0 to rounding (a check of the measure), while its
NonLin is not its floor, since the floor is reached by a linear map only where the two end points have equal
norms; the input's NonLin and excess are what an exactly linear map gives on these chords.

The question, per layer, with the spread over training seeds: are mixup-trained networks more linear between
training samples than ERM ones (NonLin, and its excess over the floor, lower for mixup; ``holds`` for every seed,
``does not hold`` for none, else ``holds for k of n seeds``, the rule of ``network_mixup``)? And the same between
held-out samples, which no network saw (``CHORD_SETS``: the data keys ``<objective>_heldout_<layer>_<measure>``):
is what mixup does between training points a property of the map, or of the training set?
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ufm import metrics, networks
from ufm.experiments import network_mixup
from ufm.experiments.captions import CHAUDHRY_2022, at_full, comma_list, compose, grid
from ufm.experiments.seeds import count_verdict, per_objective, stats
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure

NAME = "network_linearity"
TITLE = "Per-layer non-linearity (Chaudhry et al. eq. 3) of MLPs on the digits along chords: ERM against mixup"
LABELS = network_mixup.LABELS
MEASURES = ("nonlin", "floor", "excess", "unnormalised")


def config(quick: bool) -> dict:
    cfg = network_mixup.config(quick)
    training = {key: cfg[key] for key in ("seeds", "objectives", "hidden", "train_steps", "lr", "weight_decay")}
    training.update({key: cfg[key] for key in ("beta_alpha", "m", "held_out")})
    if quick:  # two objectives and a smaller network: a few seconds
        training.update(objectives=["erm", "mixup"], hidden=[32, 32], train_steps=150)
    return {
        **training,
        "chords": 100 if quick else 1000,
        "chord_lambdas": np.linspace(0.1, 0.9, 9).tolist(),
        "seed": 0,
    }


def steps(cfg: dict) -> int:
    return len(cfg["seeds"]) * len(cfg["objectives"])


def layer_names(cfg: dict) -> list[str]:
    return ["input"] + [f"hidden{i + 1}" for i in range(len(cfg["hidden"]))] + ["logits"]


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``network_linearity.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted.
    """
    names = {"erm": "ERM", "mixup": "mixup with a learned classifier", "mixup_etf": "mixup with a fixed simplex ETF"}
    return compose(
        f"{CHAUDHRY_2022}, eq. 3",
        f"the networks of network_mixup: MLP hidden widths {comma_list(cfg['hidden'])} on the digits "
        f"({100 * cfg['held_out']:g} % held out), {cfg['train_steps']} full-batch Adam steps, learning rate "
        f"{cfg['lr']:g}, weight decay {cfg['weight_decay']:g}, mixup Beta({cfg['beta_alpha']:g}), fixed ETF "
        f"m = {cfg['m']:g}, seeds {comma_list(cfg['seeds'])}; {cfg['chords']} chords between training samples of "
        f"different classes at lambdas {grid(cfg['chord_lambdas'])} (plotted), and as many between held-out "
        "samples (in the summary)",
        "NonLin per layer (input, hidden layers, logits) and its excess over the floor any map reaches, mean and "
        f"spread over the seeds, for {', '.join(names[o] for o in cfg['objectives'])}"
        + at_full(
            cfg,
            config(False),
            "; mixup has the lower NonLin at every layer for every seed, but over the floor the learned-classifier "
            "runs are less linear than ERM in both hidden layers and more linear only at the logits, the fixed-ETF "
            "runs more linear at the second hidden layer and the logits; between held-out samples every verdict "
            "is the same, every hidden layer's and the logits' mean within 0.003; docs: comparing a trained network",
        )
        + ".",
    )


def chords(y: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pairs (i, j) of samples of different classes, drawn uniformly (seeded)."""
    rng = np.random.default_rng([seed, 3])
    i = rng.integers(len(y), size=n)
    j = rng.integers(len(y), size=n)
    while np.any(same := y[i] == y[j]):
        j[same] = rng.integers(len(y), size=int(same.sum()))
    return i, j


def layer_nonlinearity(f_i, f_j, f_mix, lam) -> dict:
    """NonLin (eq. 3), its floor, the excess and the unnormalised distance over the mean end-point norm, each the
    mean over the chords (rows) and lambdas (columns); mixes with a zero representation are left out (NaN).

    Args:
        f_i, f_j: (n, d) the end points' representations; f_mix: (n, L, d) the mixes' at the lambdas ``lam`` (L,).
    """
    n, L, _ = f_mix.shape
    points = np.broadcast_to(np.stack([f_i, f_j], axis=1)[:, None], (n, L, 2, f_i.shape[1])).reshape(n * L, 2, -1)
    weights = np.tile(np.stack([lam, 1 - lam], axis=1), (n, 1))
    mix = f_mix.reshape(n * L, -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        nonlin = metrics.nonlinearity(mix, points, weights)
        floor = metrics.nonlinearity_floor(points, weights)
        raw = metrics.nonlinearity(mix, points, weights, normalise=False)
        scale = np.linalg.norm(points, axis=-1).mean(axis=1)
        unnormalised = raw / scale
    return {
        "nonlin": float(np.nanmean(nonlin)),
        "floor": float(np.nanmean(floor)),
        "excess": float(np.nanmean(nonlin - floor)),
        "unnormalised": float(np.nanmean(unnormalised)),
        "left_out": int(np.sum(~np.isfinite(nonlin))),
    }


# The chords measured: between training samples (what mixup trained on) and between held-out samples (which the
# network never saw); the data keys of the held-out ones carry this prefix after the objective.
CHORD_SETS = {"training": ("x_train", "y_train", ""), "held-out": ("x_test", "y_test", "heldout_")}


def run_one(cfg: dict, objective: str, seed: int, data: dict) -> dict:
    """Train one network (``network_mixup.train_config``) and measure every layer along the chords of each set of
    CHORD_SETS (``cfg["chords"]`` chords between samples of different classes, seeded).

    Returns:
        dict ``{chord set: {layer: layer_nonlinearity(...)}}`` and ``train_accuracy``, ``test_accuracy``.
    """
    run = networks.train(network_mixup.train_config(cfg, objective, seed), data)
    lam = np.asarray(cfg["chord_lambdas"], dtype=np.float64)

    def layers(inputs: np.ndarray) -> list[np.ndarray]:
        hidden = [np.asarray(h) for h in networks.layer_outputs(run["params"], jnp.asarray(inputs))]
        return [inputs, *hidden, hidden[-1] @ run["W"].T + run["bias"]]

    out: dict = {}
    for chord_set, (x_key, y_key, _) in CHORD_SETS.items():
        x, y = data[x_key], data[y_key]
        i, j = chords(y, cfg["chords"], cfg["seed"])
        mixed = lam[None, :, None] * x[i][:, None] + (1 - lam[None, :, None]) * x[j][:, None]
        ends_i, ends_j = layers(x[i]), layers(x[j])
        mixes = layers(mixed.reshape(-1, x.shape[1]))
        out[chord_set] = {
            name: layer_nonlinearity(fi, fj, fm.reshape(len(i), len(lam), -1), lam)
            for name, fi, fj, fm in zip(layer_names(cfg), ends_i, ends_j, mixes)
        }
    out.update(train_accuracy=run["train_accuracy"], test_accuracy=run["test_accuracy"])
    return out


def compute(cfg: dict, progress) -> dict:
    data = networks.load_digits(0, cfg["held_out"])
    out: dict = {}
    runs = per_objective(cfg, progress, lambda objective, seed: run_one(cfg, objective, seed, data))
    for objective, rows in runs.items():
        for chord_set, (_, _, prefix) in CHORD_SETS.items():
            for name in layer_names(cfg):
                for key in (*MEASURES, "left_out"):
                    out[f"{objective}_{prefix}{name}_{key}"] = np.array([row[chord_set][name][key] for row in rows])
        for key in ("train_accuracy", "test_accuracy"):
            out[f"{objective}_{key}"] = np.array([row[key] for row in rows])
    return out


def claims(data: dict, cfg: dict) -> list[dict]:
    """Per chord set (training, held-out), mixup objective, layer (hidden layers and logits) and measure (NonLin,
    excess over the floor): is it below ERM's for every seed? Numbers: mean and spread (ddof 0) over the seeds."""
    out: list[dict] = []
    if "erm" not in cfg["objectives"]:
        return out
    for chord_set, (_, _, prefix) in CHORD_SETS.items():
        where = "" if chord_set == "training" else " (held-out chords)"
        out += _claims(data, cfg, chord_set, prefix, where)
    return out


def _claims(data: dict, cfg: dict, chord_set: str, prefix: str, where: str) -> list[dict]:
    out: list[dict] = []
    for objective in (o for o in cfg["objectives"] if o != "erm"):
        for name in layer_names(cfg)[1:]:
            for key, what in (("nonlin", "NonLin (eq. 3)"), ("excess", "NonLin over its floor")):
                erm, mix = data[f"erm_{prefix}{name}_{key}"], data[f"{objective}_{prefix}{name}_{key}"]
                out.append(
                    {
                        "claim": f"{LABELS[objective]} more linear than ERM at {name}: {what}{where}",
                        "condition": "lower than ERM's, same seed",
                        "objective": objective,
                        "chords": chord_set,
                        "layer": name,
                        "measure": key,
                        "numbers": {
                            f"{what} ERM": {"all": stats(erm)},
                            f"{what} {LABELS[objective]}": {"all": stats(mix)},
                        },
                        "verdict": count_verdict(np.asarray(mix) < np.asarray(erm)),
                        "seeds": list(cfg["seeds"]),
                    }
                )
    return out


def summary(data: dict, cfg: dict) -> dict:
    """The claims with their verdicts and, per objective and layer, the mean and standard deviation (ddof 0) over
    the seeds of every measure."""
    out: dict = {"seeds": cfg["seeds"], "claims": claims(data, cfg)}
    for objective in cfg["objectives"]:
        out[objective] = {
            name: {key: stats(data[f"{objective}_{name}_{key}"]) for key in MEASURES} for name in layer_names(cfg)
        }
        out[objective]["held_out_chords"] = {
            name: {key: stats(data[f"{objective}_heldout_{name}_{key}"]) for key in MEASURES}
            for name in layer_names(cfg)
        }
        for key in ("train_accuracy", "test_accuracy"):
            out[objective][key] = stats(data[f"{objective}_{key}"])
    return out


def plot(data: dict, cfg: dict):
    names = layer_names(cfg)
    fig, axes = figure(ncols=2, width=DOUBLE_COLUMN, height=2.6)
    x = np.arange(len(names))
    width = 0.8 / len(cfg["objectives"])
    for ax, key, title in ((axes[0, 0], "nonlin", "NonLin, eq. (3)"), (axes[0, 1], "excess", "NonLin - floor")):
        for k, objective in enumerate(cfg["objectives"]):
            v = np.array([data[f"{objective}_{name}_{key}"] for name in names])  # (layers, seeds)
            shift = (k - (len(cfg["objectives"]) - 1) / 2) * width
            ax.bar(
                x + shift,
                v.mean(axis=1),
                width,
                yerr=v.std(axis=1) if v.shape[1] > 1 else None,
                color=COLOURS[k],
                capsize=2,
                label=LABELS[objective],
            )
            ax.plot(np.repeat(x + shift, v.shape[1]), v.ravel(), "k.", ms=2)
            if key == "nonlin":  # each network's floor on its own bar
                floor = np.array([data[f"{objective}_{name}_floor"].mean() for name in names])
                ax.plot(x + shift, floor, "k_", ms=8, label="floor" if k == 0 else None)
        ax.set_xticks(x, names)
        ax.set(title=title, ylabel=title)
    axes[0, 0].legend(frameon=False, fontsize=6)
    return fig
