"""Figure 2: the different-class optimum against lambda for several kappa (solver points, theory lines).

Panels: the coefficient A(lambda) on w_c of h = A w_c + B w_c', the signed distance to the c/c' boundary, and the
norm of the feature, each divided by its same-class value (lambda = 1) so that kappas are comparable; the
square-loss optimum, linear in lambda, is the dashed contrast.
"""

from __future__ import annotations

import numpy as np

from ufm.experiments.captions import FISHER_2024, comma_list, compose
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.families import mixup as family
from ufm.objectives.mixup import square_feature_loss
from ufm.problems.mixup import MixupProblem
from ufm.theory import mixup as theory

NAME = "mixup_coefficients"
TITLE = "Mixup: coefficient, boundary distance and norm of the mixed feature against lambda"


def config(quick: bool) -> dict:
    return {
        "C": 10,
        "d": 10,
        "m": 1.0,
        "kappas": [1.0, 100.0] if quick else [0.3, 3.0, 30.0, 300.0, 3000.0],
        "n_lambdas": 11 if quick else 21,
        "theory_points": 201,
        "pair": [0, 1],
        "seed": 0,
    }


def steps(cfg: dict) -> int:
    return len(cfg["kappas"])


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``mixup_coefficients.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted.
    """
    c, cp = cfg["pair"]
    return compose(
        FISHER_2024,
        f"C = {cfg['C']}, d = {cfg['d']}, m = {cfg['m']:g}, class pair ({c}, {cp}), fixed ETF, "
        f"{cfg['n_lambdas']} lambdas",
        "the coefficient on w_c, the signed boundary distance and the norm of the optimal feature against lambda, "
        f"each divided by its same-class value, for kappa = {comma_list(cfg['kappas'])} (circles solver, lines "
        "theory); the square loss (dashed) is linear in lambda, CE becomes non-linear as kappa grows.",
    )


def pair_profile(W, c, cp, h):
    """(A, distance, norm) of features h (n x d) of the pair (c, c'), with h = A w_c + B w_c' + (rest)."""
    basis = np.stack([W[c], W[cp]], axis=1)
    coef = np.linalg.lstsq(basis, h.T, rcond=None)[0]
    return coef[0], theory.boundary_distance(W, np.full(len(h), c), np.full(len(h), cp), h), np.linalg.norm(h, axis=1)


def compute(cfg: dict, progress) -> dict:
    C, m, (c, cp) = cfg["C"], cfg["m"], cfg["pair"]
    lam = np.linspace(0.0, 1.0, cfg["n_lambdas"])
    lam_fine = np.linspace(0.0, 1.0, cfg["theory_points"])
    pair = (np.full(lam.size, c), np.full(lam.size, cp), lam)
    pair_fine = (np.full(lam_fine.size, c), np.full(lam_fine.size, cp), lam_fine)
    rows: dict[str, list] = {
        key: []
        for key in (
            "A",
            "dist",
            "norm",
            "A_theory",
            "dist_theory",
            "norm_theory",
            "A_square",
            "dist_square",
            "norm_square",
        )
    }
    for kappa in cfg["kappas"]:
        problem = MixupProblem(C=C, d=cfg["d"], m=m, mu=C * m**2 / ((C - 1) * kappa), n_lambdas=2, seed=cfg["seed"])
        ce = family.solve(problem, subproblems=pair)
        sq = family.solve(problem, subproblems=pair, loss=square_feature_loss)
        h_theory = theory.optimal_features(ce.W, m, problem.mu, *pair_fine)
        for suffix, h in (("", ce.h), ("_theory", h_theory), ("_square", sq.h)):
            A, dist, norm = pair_profile(ce.W, c, cp, h)
            for key, v in (("A", A), ("dist", dist), ("norm", norm)):
                rows[key + suffix].append(v / v[-1])  # divided by the same-class (lambda = 1) value
        progress.step()
    return {
        "kappas": np.array(cfg["kappas"]),
        "lam": lam,
        "theory_lam": lam_fine,
        **{k: np.array(v) for k, v in rows.items()},
    }


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=3, width=DOUBLE_COLUMN, height=2.6)
    labels = [
        r"coefficient on $w_c$: $A(\lambda)/A(1)$",
        r"boundary distance: $s(\lambda)/s(1)$",
        r"norm: $\|h(\lambda)\| / \|h_{cc}\|$",
    ]
    for ax, key, label in zip(axes[0], ("A", "dist", "norm"), labels):
        for k, kappa in enumerate(data["kappas"]):
            colour = COLOURS[k % len(COLOURS)]
            ax.plot(data["theory_lam"], data[key + "_theory"][k], color=colour, lw=1.0, label=rf"$\kappa$ = {kappa:g}")
            ax.plot(data["lam"], data[key][k], "o", color=colour, ms=3, mfc="none")
        ax.plot(data["lam"], data[key + "_square"][0], "k--", lw=1.0, label="square loss (any $\\kappa$)")
        ax.set(xlabel=r"mixing coefficient $\lambda$", ylabel=label)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=len(names), frameon=False)
    fig.suptitle(
        f"C = {cfg['C']}, class pair ({cfg['pair'][0]}, {cfg['pair'][1]}): lines Theorem 3.1, circles solver",
        fontsize=8,
    )
    return fig
