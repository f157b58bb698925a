"""Figure 4: nonnegative features (Nguyen et al., ICLR 2023; Model 2).

Left: the K = 2 picture, features of both classes on two orthogonal axes of the nonnegative quadrant, the decision
boundary on the diagonal. Middle and right: margin and objective against the weight decay lambda = lambda_W =
lambda_H for CE and label smoothing, solver points on the closed-form lines, thresholds (W = H = 0 beyond) marked;
the sign-free UFM (features of any sign, solver only) beside them: positivity costs margin.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from ufm.experiments.captions import NGUYEN_2023, compose, grid, losses
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.families import nonnegative as family
from ufm.objectives.nonnegative import cross_entropy, objective_data
from ufm.problems.nonnegative import NonnegProblem
from ufm.solver import minimise
from ufm.theory import nonnegative as theory

NAME = "nonneg"
TITLE = "Nonnegative features: the K = 2 picture, margin and objective against weight decay"


def config(quick: bool) -> dict:
    return {
        "K": 3,
        "n": 2,
        "d": 6,
        "alphas": [0.0, 0.1],
        "restarts": 2,
        "lambdas": np.geomspace(1e-3, 0.3, 2 if quick else 10).tolist(),
        "picture": {"K": 2, "n": 3, "d": 2},
    }


def steps(cfg: dict) -> int:
    return 1 + len(cfg["lambdas"]) * (len(cfg["alphas"]) + 1)


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``nonneg.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted.
    """
    pic = cfg["picture"]
    return compose(
        f"{NGUYEN_2023}; Model 2",
        f"K = {cfg['K']}, n = {cfg['n']}, d = {cfg['d']}, {cfg['restarts']} restarts",
        f"K = {pic['K']} nonnegative features (n = {pic['n']}, d = {pic['d']}) on two orthogonal axes with the "
        "solver's decision boundary on the diagonal; margin and objective of Model 2 against weight decay "
        f"lambda_W = lambda_H ({grid(cfg['lambdas'])}) for {losses(cfg['alphas'])} with the thresholds to "
        "W = H = 0 (dotted), beside the sign-free model.",
    )


def sign_free_loss(params, data):
    """Model 2 without the sign constraint (features H free): the usual CE UFM with weight decay."""
    W, H = params["W"], params["H"]
    return cross_entropy(W @ H, data.Q) + 0.5 * data.lambda_W * jnp.sum(W**2) + 0.5 * data.lambda_H * jnp.sum(H**2)


def _margin(W, H, labels):
    Z = W @ H
    true = Z[labels, np.arange(H.shape[1])]
    Z = Z.copy()
    Z[labels, np.arange(H.shape[1])] = -np.inf
    return float(np.mean(true - Z.max(axis=0)))


def compute(cfg: dict, progress) -> dict:
    pic = NonnegProblem(C=2, n=cfg["picture"]["n"], d=2, model="ufm", restarts=2)
    sol, WH, _ = family.solve(pic)
    W2, H2 = WH[int(np.argmin(sol.loss))]
    progress.step()
    lam = np.array(cfg["lambdas"])
    margin = np.full((len(cfg["alphas"]) + 1, lam.size), np.nan)
    objective = np.full_like(margin, np.nan)
    for j, l in enumerate(lam):
        for i, alpha in enumerate(cfg["alphas"]):
            p = NonnegProblem(
                C=cfg["K"],
                n=cfg["n"],
                d=cfg["d"],
                model="ufm",
                alpha=alpha,
                lambda_W=l,
                lambda_H=l,
                restarts=cfg["restarts"],
            )
            sol, WH, _ = family.solve(p)
            best = int(np.argmin(sol.loss))
            objective[i, j] = sol.loss[best]
            W, H = WH[best]
            margin[i, j] = _margin(W, H, p.labels)
            progress.step()
        p = NonnegProblem(
            C=cfg["K"], n=cfg["n"], d=cfg["d"], model="ufm", lambda_W=l, lambda_H=l, restarts=cfg["restarts"]
        )
        rng = np.random.default_rng(0)
        params = {
            "W": jnp.asarray(rng.standard_normal((p.restarts, p.C, cfg["d"]))),
            "H": jnp.asarray(rng.standard_normal((p.restarts, cfg["d"], p.N))),
        }
        free = minimise(
            sign_free_loss, params, objective_data(p), options=dataclasses.replace(family.SOLVER, progress=False)
        )
        best = int(np.argmin(free.loss))
        objective[-1, j] = free.loss[best]
        margin[-1, j] = _margin(np.asarray(free.params["W"][best]), np.asarray(free.params["H"][best]), p.labels)
        progress.step()
    fine = np.geomspace(lam[0], lam[-1], 200)
    theory_margin = np.array(
        [[theory.model2_optimum(cfg["K"], cfg["n"], l, l, a)["margin"] for l in fine] for a in cfg["alphas"]]
    )
    theory_objective = np.array(
        [[theory.model2_optimum(cfg["K"], cfg["n"], l, l, a)["objective"] for l in fine] for a in cfg["alphas"]]
    )
    # threshold gamma + alpha (K-1)/K = (K-1)/K  <=>  lambda = ((K-1)/K - alpha (K-1)/K) / sqrt(n K (K-1))
    K, n = cfg["K"], cfg["n"]
    thresholds = np.array([(K - 1) / K * (1 - a) / np.sqrt(n * K * (K - 1)) for a in cfg["alphas"]])
    return {
        "picture_W": W2,
        "picture_H": H2,
        "picture_labels": pic.labels,
        "lambdas": lam,
        "margin": margin,
        "objective": objective,
        "theory_lambdas": fine,
        "theory_margin": theory_margin,
        "theory_objective": theory_objective,
        "thresholds": thresholds,
        "alphas": np.array(cfg["alphas"]),
    }


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=3, width=DOUBLE_COLUMN, height=2.6)
    ax = axes[0, 0]
    H, labels, W = data["picture_H"], data["picture_labels"], data["picture_W"]
    for k in (0, 1):
        ax.plot(*H[:, labels == k], "o", color=COLOURS[k], ms=5, mfc="none", label=f"class {k + 1} features")
    top = 1.2 * H.max()
    # the solver's boundary {h : (w_1 - w_2) . h = 0} (no bias), which the theory puts on the diagonal
    normal = W[0] - W[1]
    direction = np.array([normal[1], -normal[0]]) / np.linalg.norm(normal)
    direction *= np.sign(direction.sum()) * top / np.max(np.abs(direction))
    ax.plot([0, direction[0]], [0, direction[1]], "k--", lw=0.8, label="boundary (solver)")
    ax.set(
        xlim=(-0.05 * top, top),
        ylim=(-0.05 * top, top),
        aspect="equal",
        xlabel="$h_1$",
        ylabel="$h_2$",
        title="K = 2: orthogonal axes",
    )
    ax.legend(frameon=False, loc="lower right", bbox_to_anchor=(1.0, 0.08), fontsize=6, handlelength=1.5)
    names = ["CE" if a == 0 else f"LS $\\alpha$={a:g}" for a in data["alphas"]]
    for ax, key, label in ((axes[0, 1], "margin", "margin"), (axes[0, 2], "objective", "objective")):
        for i, name in enumerate(names):
            ax.semilogx(data["theory_lambdas"], data["theory_" + key][i], color=COLOURS[i], label=f"{name} (theory)")
            ax.semilogx(data["lambdas"], data[key][i], "o", color=COLOURS[i], mfc="none")
            ax.axvline(data["thresholds"][i], color=COLOURS[i], ls=":", lw=0.8)
        ax.semilogx(data["lambdas"], data[key][-1], "s", color=COLOURS[3], ms=3, label="sign-free CE (solver)")
        ax.set(xlabel=r"weight decay $\lambda_W = \lambda_H$", ylabel=label)
    axes[0, 1].set_title(f"K = {cfg['K']}, n = {cfg['n']}: lines theory, markers solver", fontsize=7)
    axes[0, 2].set_title("dotted: threshold to W = H = 0", fontsize=7)
    handles, labels_ = axes[0, 1].get_legend_handles_labels()
    fig.legend(handles, labels_, loc="outside lower center", ncol=3, frameon=False)
    return fig
