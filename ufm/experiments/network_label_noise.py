"""Networks under label noise: MLPs on the digits trained on labels of which a share is flipped, with
cross-entropy (CE) and with label smoothing (LS); their memorization and dilation (Nguyen, Levie, Lienen,
Huellermeier, Kutyniok, "Memorization-Dilation: Modeling Neural Collapse Under Noise", ICLR 2023), every number
computed by ``ufm.measure.measure``.

Two questions, answered with the spread over training seeds (each seed draws the initialisation and the noisy
labels; CE and LS of one seed share the noisy labels):

1. Does LS lower dilation at equal memorization? "Equal memorization" is made operational in two ways, each for
   both sets of definitions ``ufm.measure`` reports (ufm's Model 3: dilation D = RMS distance of the clean samples
   to their class mean, memorization M = mean distance of the noisy samples to their TRUE class's clean mean; the
   paper's code: dilation = standard deviation of those distances, memorization = the noisy samples' mean offset
   from the class they were trained as, projected on the directions to the other class means):

   - matched: the noise rate is swept; per seed, CE's points (M, D) over the noise rates, sorted by M, are joined
     by straight lines, and each LS point whose M lies in CE's range is compared with CE's interpolated D at that
     M (LS points outside CE's range are not compared, and counted). Raw and relative to the class-mean distance
     (``*_relative``: the scale-free version). A seed counts when LS's D is below CE's at every matched point;
     seeds without a matched point are left out of the count, and with none at all the claim is "not testable".
   - matched by weight decay: at each noise rate CE is also trained at larger weight decays
     (``ce_weight_decays``), which shrink its features; CE's points (M, D) over its weight decays at that noise
     rate, sorted by M and joined by straight lines, are interpolated at LS's M (same noise rate, same seed, same
     noisy labels). A seed counts when LS's D is below CE's at every matched noise rate.
   - ratio: D / M at each noise rate (scale-free by construction: raw and relative ratios are equal). A seed
     counts when LS's ratio is below CE's at every noise rate.

2. Does LS generalise better? Held-out accuracy (true labels; the held-out samples are never noisy): a seed counts
   when LS's is above CE's at every noise rate.

Verdicts as in ``network_mixup``: ``holds`` (every seed), ``does not hold`` (none), else ``holds for k of n
seeds``.
"""

from __future__ import annotations

import numpy as np

from ufm import networks
from ufm.experiments.captions import NGUYEN_2023, at_full, comma_list, compose
from ufm.experiments.seeds import count_verdict, stats
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.measure import measure

NAME = "network_label_noise"
TITLE = "MLPs on the digits under label noise: memorization and dilation with CE and with label smoothing"
LOSSES = ("ce", "ls")
LABELS = {"ce": "CE", "ls": "LS"}
# ufm.measure's label-noise numbers recorded per run, and the runs' accuracies
MEASURES = (
    "dilation",
    "memorization",
    "dilation_std",
    "memorization_projection",
    "class_mean_distance",
    "noisy_fitted",
    "nc1_clean",
)
SCALED = ("dilation", "memorization", "dilation_std", "memorization_projection")  # also reported relative
KEYS = (
    list(MEASURES) + [f"{key}_relative" for key in SCALED] + ["train_accuracy", "train_accuracy_true", "test_accuracy"]
)
# (name, dilation key, memorization key): the two sets of definitions ufm.measure reports
DEFINITIONS = (
    ("Model 3", "dilation", "memorization"),
    ("paper's code", "dilation_std", "memorization_projection"),
)


def config(quick: bool) -> dict:
    return {
        "seeds": [0] if quick else [0, 1, 2],
        "noise_rates": [0.1, 0.3] if quick else [0.1, 0.2, 0.3],
        "smoothing": 0.1,
        "hidden": [32, 32] if quick else [64, 64],
        "train_steps": 150 if quick else 1000,
        "lr": 3e-3,
        "weight_decay": 5e-3,
        # CE's further weight decays, for the comparison at memorization matched within one noise rate
        "ce_weight_decays": [1e-2, 2e-2],
        "held_out": 0.25,
    }


def steps(cfg: dict) -> int:
    return len(cfg["seeds"]) * len(cfg["noise_rates"]) * (len(LOSSES) + len(cfg["ce_weight_decays"]))


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``network_label_noise.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted.
    """
    rates = ", ".join(f"{100 * r:g}" for r in cfg["noise_rates"])
    return compose(
        NGUYEN_2023,
        f"MLP hidden widths {comma_list(cfg['hidden'])} on the digits ({100 * cfg['held_out']:g} % held out), "
        f"{cfg['train_steps']} full-batch Adam steps, learning rate {cfg['lr']:g}, weight decay "
        f"{cfg['weight_decay']:g}, {rates} % noisy labels (each flipped to a uniformly drawn other class), CE and "
        f"LS alpha = {cfg['smoothing']:g}, CE also at weight decays {comma_list(cfg['ce_weight_decays'])}, seeds "
        f"{comma_list(cfg['seeds'])}",
        "dilation against memorization (ufm measure; ufm's Model 3 definitions and the paper's code's, relative to "
        "the class-mean distance), one point per noise rate and seed, and held-out accuracy against the noise rate"
        + at_full(
            cfg,
            config(False),
            "; LS has the lower dilation-to-memorization ratio at every noise rate for every seed in both "
            "definitions and the higher held-out accuracy for every seed; at memorization matched across noise "
            "rates its dilation is lower for every seed in the paper's code's definitions (raw: the 2 seeds with a "
            "matched point), for 1 of 3 seeds in Model 3's relative to the class-mean distance, and Model 3's raw "
            "memorizations of CE and LS do not overlap; at memorization matched by CE's weight decay (open "
            "circles: CE at weight decays 0.01 and 0.02) within each noise rate, LS's dilation relative to the "
            "class-mean distance is lower for every seed and noise rate in both definitions, Model 3's raw one "
            "at 10 and 20 % but not at 30 % (1 of 3 seeds); docs: comparing a trained network",
        )
        + ".",
    )


def train_config(
    cfg: dict, loss: str, noise: float, seed: int, weight_decay: float | None = None
) -> networks.TrainConfig:
    """The training settings of one network of the figure's configuration ``cfg`` (``weight_decay``: None for
    ``cfg["weight_decay"]``)."""
    return networks.TrainConfig(
        objective="erm",
        hidden=tuple(cfg["hidden"]),
        steps=cfg["train_steps"],
        lr=cfg["lr"],
        weight_decay=cfg["weight_decay"] if weight_decay is None else weight_decay,
        seed=seed,
        held_out=cfg["held_out"],
        label_noise=noise,
        smoothing=cfg["smoothing"] if loss == "ls" else 0.0,
    )


def run_one(cfg: dict, loss: str, noise: float, seed: int, data: dict, weight_decay: float | None = None) -> dict:
    """Train one network and measure it (``weight_decay``: as in :func:`train_config`).

    Returns:
        dict with ``arrays`` (what ``ufm.measure`` was given), ``numbers`` (its numbers) and ``values`` (``KEYS``).
    """
    run = networks.train(train_config(cfg, loss, noise, seed, weight_decay), data)
    arrays = networks.label_noise_arrays(run)
    numbers = measure(**arrays).numbers
    noise_numbers = numbers["label_noise"]
    values = {key: float(noise_numbers[key]) for key in MEASURES}
    values.update({f"{key}_relative": float(noise_numbers[f"{key}_relative"]) for key in SCALED})
    values.update({key: run[key] for key in ("train_accuracy", "train_accuracy_true", "test_accuracy")})
    return {"arrays": arrays, "numbers": numbers, "values": values}


def matched_difference(M_ce, D_ce, M_ls, D_ls) -> np.ndarray:
    """LS's dilation minus CE's at LS's memorization, CE's (M, D) points joined by straight lines in order of M.

    Args:
        M_ce, D_ce: CE's memorization and dilation, one per noise rate; M_ls, D_ls: LS's.

    Returns:
        One difference per LS point; NaN where LS's M lies outside CE's range (no CE point to compare with).
    """
    order = np.argsort(M_ce)
    M, D = np.asarray(M_ce)[order], np.asarray(D_ce)[order]
    inside = (M_ls >= M[0]) & (M_ls <= M[-1])
    return np.where(inside, np.asarray(D_ls) - np.interp(M_ls, M, D), np.nan)


def matched_verdict(diff) -> str:
    """The verdict on "LS lowers dilation at matched memorization" from the matched differences (noise rates,
    seeds; NaN where not matched): :func:`ufm.experiments.seeds.count_verdict` over the seeds with a matched point
    (a seed counts when every one of its differences is negative), with the seeds that have none named; ``"not
    testable"`` when no seed has one (LS's memorization outside CE's range: no like-for-like comparison exists)."""
    diff = np.asarray(diff, dtype=float)
    matched = np.isfinite(diff)
    tested = [j for j in range(diff.shape[1]) if matched[:, j].any()]
    if not tested:
        return "not testable: LS's memorization lies outside CE's range for every seed"
    verdict = count_verdict([bool(np.all(diff[matched[:, j], j] < 0)) for j in tested])
    missing = diff.shape[1] - len(tested)
    if missing:
        verdict += f" ({len(tested)} of {diff.shape[1]} seeds with a matched point)"
    return verdict


def compute(cfg: dict, progress) -> dict:
    data = networks.load_digits(0, cfg["held_out"])
    out: dict = {"noise_rates": np.array(cfg["noise_rates"]), "seeds": np.array(cfg["seeds"])}
    runs = [(loss, None) for loss in LOSSES] + [("ce", decay) for decay in cfg["ce_weight_decays"]]
    for loss, decay in runs:
        table = {key: np.zeros((len(cfg["noise_rates"]), len(cfg["seeds"]))) for key in KEYS}
        for i, noise in enumerate(cfg["noise_rates"]):
            for j, seed in enumerate(cfg["seeds"]):
                values = run_one(cfg, loss, noise, seed, data, decay)["values"]
                for key in KEYS:
                    table[key][i, j] = values[key]
                progress.step()
        prefix = loss if decay is None else f"ce_decay{cfg['ce_weight_decays'].index(decay)}"
        out.update({f"{prefix}_{key}": value for key, value in table.items()})  # (noise rates, seeds)
    out.update(comparisons(out, len(cfg["ce_weight_decays"])))
    return out


def decay_curve(data: dict, key: str, decays: int) -> np.ndarray:
    """CE's ``key`` at its weight decays, the figure's own first: (1 + decays, noise rates, seeds)."""
    return np.stack([data[f"ce_{key}"]] + [data[f"ce_decay{k}_{key}"] for k in range(decays)])


def comparisons(data: dict, decays: int) -> dict:
    """Per seed: the matched dilation differences (``matched_{dilation key}{suffix}``, CE's points over the noise
    rates; ``decay_matched_{dilation key}{suffix}``, CE's points over its ``decays`` + 1 weight decays at each
    noise rate; (noise rates, seeds), NaN where not matched), the dilation/memorization ratios and the held-out
    accuracy difference (LS - CE)."""
    out = {}
    for _, dk, mk in DEFINITIONS:
        for suffix in ("", "_relative"):
            M_ce, D_ce = data[f"ce_{mk}{suffix}"], data[f"ce_{dk}{suffix}"]
            M_ls, D_ls = data[f"ls_{mk}{suffix}"], data[f"ls_{dk}{suffix}"]
            out[f"matched_{dk}{suffix}"] = np.stack(
                [matched_difference(M_ce[:, j], D_ce[:, j], M_ls[:, j], D_ls[:, j]) for j in range(M_ce.shape[1])],
                axis=1,
            )
            M_dec, D_dec = decay_curve(data, f"{mk}{suffix}", decays), decay_curve(data, f"{dk}{suffix}", decays)
            out[f"decay_matched_{dk}{suffix}"] = np.array(
                [
                    [
                        matched_difference(M_dec[:, i, j], D_dec[:, i, j], M_ls[i, j : j + 1], D_ls[i, j : j + 1])[0]
                        for j in range(M_ls.shape[1])
                    ]
                    for i in range(M_ls.shape[0])
                ]
            )
        for loss in LOSSES:
            out[f"{loss}_ratio_{dk}"] = data[f"{loss}_{dk}"] / data[f"{loss}_{mk}"]
    out["test_accuracy_difference"] = data["ls_test_accuracy"] - data["ce_test_accuracy"]
    return out


def _by_rate(table, rates) -> dict:
    """``{"20%": stats(over the seeds)}`` for each noise rate (the rows of ``table``)."""
    return {f"{100 * rate:g}%": stats(np.asarray(table)[i]) for i, rate in enumerate(rates)}


def claims(data: dict, cfg: dict) -> list[dict]:
    """Every claim the figure tests: its question, the per-seed condition, the numbers (``numbers``: per quantity
    and noise rate, mean and spread over the seeds, ddof 0) and the verdict."""
    seeds = list(cfg["seeds"])
    rates = list(cfg["noise_rates"])
    out = []
    for name, dk, _ in DEFINITIONS:
        for suffix, scale in (("", "raw"), ("_relative", "relative to the class-mean distance")):
            diff = np.asarray(data[f"matched_{dk}{suffix}"], dtype=float)
            matched = np.isfinite(diff)
            out.append(
                {
                    "claim": f"LS lowers dilation at matched memorization ({name}, {scale})",
                    "condition": "LS's dilation below CE's (interpolated at LS's memorization) at every matched "
                    "point of the seed; seeds without a matched point are not counted",
                    "numbers": {"dilation LS - CE at matched memorization": _by_rate(diff, rates)},
                    "matched_points": int(matched.sum()),
                    "points": int(diff.size),
                    "verdict": matched_verdict(diff),
                }
            )
        for suffix, scale in (("", "raw"), ("_relative", "relative to the class-mean distance")):
            diff = np.asarray(data[f"decay_matched_{dk}{suffix}"], dtype=float)
            decays = ", ".join(f"{w:g}" for w in [cfg["weight_decay"], *cfg["ce_weight_decays"]])
            out.append(
                {
                    "claim": f"LS lowers dilation at memorization matched by CE's weight decay ({name}, {scale})",
                    "condition": f"at each noise rate, CE trained at weight decays {decays}: LS's dilation below "
                    "CE's (interpolated at LS's memorization) at every matched noise rate of the seed; seeds "
                    "without a matched point are not counted",
                    "numbers": {"dilation LS - CE at matched memorization": _by_rate(diff, rates)},
                    "matched_points": int(np.isfinite(diff).sum()),
                    "points": int(diff.size),
                    "verdict": matched_verdict(diff),
                }
            )
        ratio_ce, ratio_ls = np.asarray(data[f"ce_ratio_{dk}"]), np.asarray(data[f"ls_ratio_{dk}"])
        out.append(
            {
                "claim": f"LS has the lower dilation / memorization ratio ({name}, scale-free)",
                "condition": "at every noise rate",
                "numbers": {"D/M CE": _by_rate(ratio_ce, rates), "D/M LS": _by_rate(ratio_ls, rates)},
                "verdict": count_verdict(np.all(ratio_ls < ratio_ce, axis=0)),
            }
        )
    ce, ls = np.asarray(data["ce_test_accuracy"]), np.asarray(data["ls_test_accuracy"])
    out.append(
        {
            "claim": "LS generalises better (held-out accuracy, true labels)",
            "condition": "at every noise rate",
            "numbers": {"held-out accuracy CE": _by_rate(ce, rates), "held-out accuracy LS": _by_rate(ls, rates)},
            "verdict": count_verdict(np.all(ls > ce, axis=0)),
        }
    )
    for claim in out:
        claim.update(seeds=seeds)
    return out


def summary(data: dict, cfg: dict) -> dict:
    """The claims with their verdicts, and per loss and noise rate the mean and standard deviation (ddof 0) over
    the seeds of every recorded measure: the numbers docs/networks.md quotes."""
    out: dict = {"seeds": cfg["seeds"], "noise_rates": cfg["noise_rates"], "claims": claims(data, cfg)}
    for loss in LOSSES:
        out[loss] = {
            f"{100 * rate:g}%": {key: stats(np.asarray(data[f"{loss}_{key}"])[i]) for key in KEYS}
            for i, rate in enumerate(cfg["noise_rates"])
        }
    out["ce_weight_decays"] = {
        f"{decay:g}": {
            f"{100 * rate:g}%": {key: stats(np.asarray(data[f"ce_decay{k}_{key}"])[i]) for key in KEYS}
            for i, rate in enumerate(cfg["noise_rates"])
        }
        for k, decay in enumerate(cfg["ce_weight_decays"])
    }
    return out


def plot(data: dict, cfg: dict):
    panels = [(name, dk, mk) for name, dk, mk in DEFINITIONS]
    fig, axes = figure(ncols=len(panels) + 1, width=DOUBLE_COLUMN, height=2.6)
    rates = np.asarray(cfg["noise_rates"])
    for ax, (name, dk, mk) in zip(axes[0], panels):
        for k, loss in enumerate(LOSSES):
            M, D = np.asarray(data[f"{loss}_{mk}_relative"]), np.asarray(data[f"{loss}_{dk}_relative"])
            for j in range(M.shape[1]):
                order = np.argsort(M[:, j])
                ax.plot(M[order, j], D[order, j], "-", color=COLOURS[k], lw=0.8, alpha=0.6)
            ax.scatter(
                M.ravel(), D.ravel(), s=6 + 40 * np.repeat(rates, M.shape[1]), color=COLOURS[k], label=LABELS[loss]
            )
        decays = len(cfg["ce_weight_decays"])
        M, D = decay_curve(data, f"{mk}_relative", decays)[1:], decay_curve(data, f"{dk}_relative", decays)[1:]
        sizes = 6 + 40 * np.broadcast_to(rates[None, :, None], M.shape)
        label = "CE, weight decay " + ", ".join(f"{w:g}" for w in cfg["ce_weight_decays"])
        ax.scatter(M.ravel(), D.ravel(), s=sizes.ravel(), facecolors="none", edgecolors=COLOURS[0], label=label)
        ax.set(xlabel="memorization / class-mean distance", ylabel="dilation / class-mean distance", title=name)
    axes[0, 0].legend(frameon=False, title="marker size: noise rate", title_fontsize=6, loc="upper left")
    ax = axes[0, -1]
    for k, loss in enumerate(LOSSES):
        acc = np.asarray(data[f"{loss}_test_accuracy"])
        ax.errorbar(
            100 * rates, acc.mean(axis=1), yerr=acc.std(axis=1), color=COLOURS[k], capsize=2, label=LABELS[loss]
        )
        ax.plot(np.repeat(100 * rates, acc.shape[1]), acc.ravel(), "k.", ms=2)
    ax.set(xlabel="noisy labels (%)", ylabel="held-out accuracy", title="generalisation")
    ax.legend(frameon=False)
    return fig
