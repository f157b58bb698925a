"""Figure 1: optimal mixup features of every class pair, C = 3, projected on the plane of the classifier rows.

The UFM counterpart of the activation plots of Fisher et al. (2024, Fig. 1): solver features as points (colour: lambda,
marker: same- or different-class pair), Theorem 3.1's curves as lines, classifier rows as black arrows.
"""

from __future__ import annotations

import numpy as np

from ufm.experiments.style import SEQUENTIAL, SINGLE_COLUMN, figure
from ufm.families import mixup as family
from ufm.problems.mixup import MixupProblem
from ufm.theory import mixup as theory

NAME = "mixup_geometry"
TITLE = "Mixup geometry, C = 3: optimal features on the classifier plane"


def config(quick: bool) -> dict:
    return {"C": 3, "d": 3, "m": 1.0, "kappa": 15.0, "n_lambdas": 11 if quick else 21, "theory_points": 201, "seed": 0}


def steps(cfg: dict) -> int:
    return 2


def _problem(cfg: dict) -> MixupProblem:
    C, m = cfg["C"], cfg["m"]
    return MixupProblem(
        C=C, d=cfg["d"], m=m, mu=C * m**2 / ((C - 1) * cfg["kappa"]), n_lambdas=cfg["n_lambdas"], seed=cfg["seed"]
    )


def plane_basis(W: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d x 2) of the row space of a C = 3 ETF, oriented so that w_1 points along +x."""
    Q, _ = np.linalg.qr(np.stack([W[0], W[1]], axis=1))
    return Q * np.sign(Q[:, 0] @ W[0])


def compute(cfg: dict, progress) -> dict:
    problem = _problem(cfg)
    out = family.solve(problem)
    progress.step()
    Q = plane_basis(out.W)
    C = cfg["C"]
    lam_fine = np.linspace(0.0, 1.0, cfg["theory_points"])
    pairs = [(c, cp) for c in range(C) for cp in range(C) if c < cp]
    curves = np.stack(
        [
            theory.optimal_features(
                out.W,
                problem.m,
                problem.mu,
                np.full_like(lam_fine, c, dtype=int),
                np.full_like(lam_fine, cp, dtype=int),
                lam_fine,
            )
            @ Q
            for c, cp in pairs
        ]
    )
    progress.step()
    return {
        "h_plane": out.h @ Q,
        "lam": out.lam,
        "c": out.c,
        "c_prime": out.c_prime,
        "W_plane": out.W @ Q,
        "theory_curves": curves,
        "theory_pairs": np.array(pairs),
        "theory_lam": lam_fine,
        "rel_grad_norm": out.solution.rel_grad_norm,
    }


def plot(data: dict, cfg: dict):
    fig, axes = figure(width=SINGLE_COLUMN, height=SINGLE_COLUMN + 0.2)
    ax = axes[0, 0]
    for k, curve in enumerate(data["theory_curves"]):
        ax.plot(curve[:, 0], curve[:, 1], color="0.25", lw=0.8, zorder=3, label="Theorem 3.1" if k == 0 else None)
    same = data["c"] == data["c_prime"]
    sc = ax.scatter(
        *data["h_plane"][~same].T,
        c=data["lam"][~same],
        cmap=SEQUENTIAL,
        vmin=0,
        vmax=1,
        marker="o",
        s=14,
        zorder=2,
        label="different class (solver)",
    )
    ax.scatter(*data["h_plane"][same].T, c="k", marker="*", s=50, zorder=4, label="same class (solver)")
    scale = 1.15 * np.max(np.linalg.norm(data["h_plane"], axis=1)) / np.max(np.linalg.norm(data["W_plane"], axis=1))
    for k, w in enumerate(data["W_plane"]):
        ax.annotate("", xy=scale * w, xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1.0})
        ax.text(*(1.08 * scale * w), f"$w_{k + 1}$", ha="center", va="center")
    lim = 1.3 * scale * np.max(np.abs(data["W_plane"]))
    ax.set(
        xlim=(-lim, lim),
        ylim=(-lim, lim),
        aspect="equal",
        xlabel="coordinate 1 in span(W)",
        ylabel="coordinate 2 in span(W)",
    )
    ax.set_title(rf"C = {cfg['C']}, $\kappa$ = {cfg['kappa']:g}")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=2,
        frameon=False,
        fontsize=6,
        columnspacing=1.0,
        handlelength=1.5,
    )
    fig.colorbar(sc, ax=ax, label=r"mixing coefficient $\lambda$", shrink=0.7, aspect=30, pad=0.02)
    return fig
