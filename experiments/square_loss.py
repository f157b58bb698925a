"""Figure 6: square loss with weight decay (seed 003). Left: the quasi-interpolation epsilon and the classifier's
squared norm against weight decay, solver points on the closed forms (bias-free and free bias). Right: NC1-NC4
along full-batch gradient descent with momentum, with and without weight decay (free bias)."""

from __future__ import annotations

import numpy as np

from experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.families import square_loss as family
from ufm.problems.square_loss import SquareLossProblem
from ufm.theory import square_loss as theory

NAME = "square_loss"
TITLE = "Square loss with weight decay: epsilon, classifier norm, and NC metrics along gradient descent"


def config(quick: bool) -> dict:
    return {"C": 3, "n": 2, "restarts": 2, "lambdas": np.geomspace(1e-3, 0.3, 4 if quick else 10).tolist(),
            "gd_steps": 2000 if quick else 20000, "gd_record_every": 100 if quick else 500, "gd_lr": 0.5,
            "gd_momentum": 0.9, "gd_lambda": 5e-3}


def steps(cfg: dict) -> int:
    return 2 * len(cfg["lambdas"]) + 2


def compute(cfg: dict, progress) -> dict:
    lam = np.array(cfg["lambdas"])
    eps = np.zeros((2, lam.size))
    norm = np.zeros_like(eps)
    for i, bias in enumerate(("none", "free")):
        for j, l in enumerate(lam):
            p = SquareLossProblem(C=cfg["C"], n=cfg["n"], bias=bias, lambda_W=l, lambda_H=l, restarts=cfg["restarts"])
            found = family.solve(p)
            F, _ = family.forward(found.params, family.objective_data(p))
            eps[i, j] = 1.0 - float(np.mean(np.asarray(F)[p.labels, np.arange(p.N)]))
            norm[i, j] = float(np.sum(np.asarray(found.params["layers"][-1]) ** 2))
            progress.step()
    fine = np.geomspace(lam[0], lam[-1], 200)
    t = [[theory.ufm_optimum(cfg["C"], cfg["n"], l, l, bias) for l in fine] for bias in ("none", "free")]
    out = {"lambdas": lam, "eps": eps, "W_norm_sq": norm, "theory_lambdas": fine,
           "theory_eps": np.array([[x["eps"] for x in row] for row in t]),
           "theory_W_norm_sq": np.array([[x["W_norm_sq"] for x in row] for row in t])}
    gd_problem = SquareLossProblem(C=cfg["C"], n=cfg["n"], bias="free", lambda_W=cfg["gd_lambda"], lambda_H=cfg["gd_lambda"])
    for tag, wd in (("wd", True), ("nowd", False)):
        traj = family.gradient_descent(gd_problem, steps=cfg["gd_steps"], lr=cfg["gd_lr"], momentum=cfg["gd_momentum"],
                                       record_every=cfg["gd_record_every"], weight_decay=wd)
        out.update({f"gd_{tag}_{k}": v for k, v in traj.items()})
        progress.step()
    return out


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=3, width=DOUBLE_COLUMN, height=3.0)
    for ax, key, label in ((axes[0, 0], "eps", r"$\epsilon$ (1 - true-class output)"),
                           (axes[0, 1], "W_norm_sq", r"$\|W\|_F^2$")):
        plot_fn = ax.loglog if key == "eps" else ax.semilogx  # ||W||^2 reaches exactly 0 past the threshold
        for i, bias in enumerate(("no bias", "free bias")):
            plot_fn(data["theory_lambdas"], data["theory_" + key][i], color=COLOURS[i], label=f"{bias} (theory)")
            plot_fn(data["lambdas"], data[key][i], "o", color=COLOURS[i], mfc="none")
        ax.set(xlabel=r"weight decay $\lambda_W = \lambda_H$", ylabel=label)
    axes[0, 0].legend(frameon=False, fontsize=6)
    ax = axes[0, 2]
    for k, name in enumerate(("NC1", "NC2", "NC3")):
        for tag, style in (("wd", "-"), ("nowd", "--")):
            ax.semilogy(data[f"gd_{tag}_step"], np.maximum(data[f"gd_{tag}_{name}"], 1e-17), style, color=COLOURS[k],
                        label=f"{name}" + (" (weight decay)" if tag == "wd" else " (no decay)"))
    ax.set(xlabel="gradient-descent step", ylabel="NC metric", title=f"C = {cfg['C']}, free bias", ylim=(1e-16, 10))
    ax.legend(frameon=False, fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    axes[0, 0].set_title(f"C = {cfg['C']}, n = {cfg['n']}: lines theory, circles solver", fontsize=7)
    return fig
