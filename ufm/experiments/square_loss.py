"""Figure 6: square loss with weight decay (Rangamani & Banburski, ICASSP 2022). Left: the quasi-interpolation
epsilon and the classifier's squared norm against weight decay, solver points on the closed forms (bias-free and
free bias). Bottom: NC1-NC3 along full-batch gradient descent with momentum, with and without weight decay, free
bias and no bias, with NC3's limit at the weight-decayed optimum (0 with a free bias, 2 - 2 sqrt((C-1)/C)
without); NC4 is recorded too."""

from __future__ import annotations

import numpy as np

from ufm.experiments.captions import RANGAMANI_2022, compose, grid
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.objectives import square_loss as objective
from ufm.problems.square_loss import SquareLossProblem
from ufm.theory import square_loss as theory

NAME = "square_loss"
TITLE = "Square loss with weight decay: epsilon, classifier norm, and NC metrics along gradient descent"


def config(quick: bool) -> dict:
    return {
        "C": 3,
        "n": 2,
        "restarts": 2,
        "lambdas": np.geomspace(1e-3, 0.3, 4 if quick else 10).tolist(),
        "gd_steps": 2000 if quick else 20000,
        "gd_record_every": 100 if quick else 500,
        "gd_lr": 0.5,
        "gd_momentum": 0.9,
        "gd_lambda": 5e-3,
    }


def steps(cfg: dict) -> int:
    return 2 * len(cfg["lambdas"]) + 4


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``square_loss.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted, and NC3's limits.
    """
    return compose(
        RANGAMANI_2022,
        f"C = {cfg['C']}, n = {cfg['n']}, {cfg['restarts']} restarts",
        f"eps and the classifier's squared norm against weight decay ({grid(cfg['lambdas'])}), bias-free and free "
        "bias (circles solver, lines (A1)/(A2)); NC1-NC3 along full-batch GD with momentum "
        f"({cfg['gd_steps']} steps, learning rate {cfg['gd_lr']:g}, momentum {cfg['gd_momentum']:g}; recorded "
        f"every {cfg['gd_record_every']} steps) with weight decay lambda = {cfg['gd_lambda']:g} and without: with "
        "decay NC3 goes to 0 with a free bias and to "
        f"2 - 2 sqrt((C-1)/C) = {theory.nc3_limit(cfg['C'], 'none'):.3f} without.",
    )


def compute(cfg: dict, progress) -> dict:
    lam = np.array(cfg["lambdas"])
    eps = np.zeros((2, lam.size))
    norm = np.zeros_like(eps)
    for i, bias in enumerate(("none", "free")):
        for j, l in enumerate(lam):
            p = SquareLossProblem(C=cfg["C"], n=cfg["n"], bias=bias, lambda_W=l, lambda_H=l, restarts=cfg["restarts"])
            found = objective.solve(p)
            F, _ = objective.forward(found.params, objective.objective_data(p))
            eps[i, j] = 1.0 - float(np.mean(np.asarray(F)[p.labels, np.arange(p.N)]))
            norm[i, j] = float(np.sum(np.asarray(found.params["layers"][-1]) ** 2))
            progress.step()
    fine = np.geomspace(lam[0], lam[-1], 200)
    t = [[theory.ufm_optimum(cfg["C"], cfg["n"], l, l, bias) for l in fine] for bias in ("none", "free")]
    out = {
        "lambdas": lam,
        "eps": eps,
        "W_norm_sq": norm,
        "theory_lambdas": fine,
        "theory_eps": np.array([[x["eps"] for x in row] for row in t]),
        "theory_W_norm_sq": np.array([[x["W_norm_sq"] for x in row] for row in t]),
    }
    for bias in ("free", "none"):
        gd_problem = SquareLossProblem(
            C=cfg["C"], n=cfg["n"], bias=bias, lambda_W=cfg["gd_lambda"], lambda_H=cfg["gd_lambda"]
        )
        for tag, wd in (("wd", True), ("nowd", False)):
            traj = objective.gradient_descent(
                gd_problem,
                steps=cfg["gd_steps"],
                lr=cfg["gd_lr"],
                momentum=cfg["gd_momentum"],
                record_every=cfg["gd_record_every"],
                weight_decay=wd,
            )
            out.update({f"gd_{bias}_{tag}_{k}": v for k, v in traj.items()})
            progress.step()
    return out


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=2, nrows=2, width=DOUBLE_COLUMN, height=5.4)
    for ax, key, label in (
        (axes[0, 0], "eps", r"$\epsilon$ (1 - true-class output)"),
        (axes[0, 1], "W_norm_sq", r"$\|W\|_F^2$"),
    ):
        plot_fn = ax.loglog if key == "eps" else ax.semilogx  # ||W||^2 reaches exactly 0 past the threshold
        for i, bias in enumerate(("no bias", "free bias")):
            plot_fn(data["theory_lambdas"], data["theory_" + key][i], color=COLOURS[i], label=f"{bias} (theory)")
            plot_fn(data["lambdas"], data[key][i], "o", color=COLOURS[i], mfc="none", label=f"{bias} (solver)")
        ax.set(
            xlabel=r"weight decay $\lambda_W = \lambda_H$",
            ylabel=label,
            title=f"C = {cfg['C']}, n = {cfg['n']}: lines closed form, circles solver",
        )
    axes[0, 0].legend(frameon=False, fontsize=6, loc="lower right")
    floor = 1e-16  # metrics that reach 0 exactly are drawn at the floor of the axis
    for ax, bias in zip(axes[1], ("free", "none")):
        for k, name in enumerate(("NC1", "NC2", "NC3")):
            for tag, style in (("wd", "-"), ("nowd", "--")):
                ax.semilogy(
                    data[f"gd_{bias}_{tag}_step"],
                    np.maximum(data[f"gd_{bias}_{tag}_{name}"], floor),
                    style,
                    color=COLOURS[k],
                    label=f"{name}" + (" (weight decay)" if tag == "wd" else " (no decay)"),
                )
        limit = theory.nc3_limit(cfg["C"], bias)
        if limit > 0:
            ax.axhline(limit, color="k", ls=":", lw=0.8, label=r"NC3 limit $2-2\sqrt{(C-1)/C}$")
        nc4 = max(float(np.max(data[f"gd_{bias}_{tag}_NC4"][1:])) for tag in ("wd", "nowd"))
        ax.set(
            xlabel="gradient-descent step",
            ylabel="NC metric",
            ylim=(floor / 3, 30),
            title=f"gradient descent, {'free bias' if bias == 'free' else 'no bias'}, "
            rf"$\lambda$ = {cfg['gd_lambda']:g} or 0",
        )
        ax.text(0.97, 0.55, f"NC4 (max after step 0) = {nc4:g}", transform=ax.transAxes, ha="right", fontsize=6)
    handles, labels = axes[1, 1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=4, frameon=False, fontsize=6)
    return fig
