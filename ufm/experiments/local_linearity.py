"""Figure 7: mixup's non-linearity measure (Chaudhry et al., eq. 3) at the UFM optimum against kappa, two-point against
several-point mixup.

For k = 2, 3, 4 mixed points (classes uniform with replacement, weights ~ Dirichlet(1)), the normalised NonLin
``|| f^(mix) - sum_j lam_j f^(x_j) ||`` (f^ = f/||f||) of the cross-entropy optimum with the fixed simplex ETF.
Left: NonLin against kappa (lines: the k-point closed form, ``ufm.theory.mixup.mixed_optimal_features``; circles:
the solver in the full dimension), with the floor that any exactly linear map reaches at the same mixes (dashed;
the square-loss optimum sits on it). Right: the excess over that floor, the part of NonLin the map owes to the
cross-entropy, and the unnormalised distance relative to the vertex norm.
"""

from __future__ import annotations

import numpy as np

from ufm.experiments.captions import CHAUDHRY_2022, comma_list, compose, grid
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.families import mixup as family
from ufm.objectives.mixup import mixed_soft_target
from ufm.problems.mixup import MixupProblem

NAME = "local_linearity"
TITLE = "Non-linearity (Chaudhry et al. eq. 3) of the mixup optimum against kappa, for 2-, 3- and 4-point mixup"


def config(quick: bool) -> dict:
    return {
        "C": 10,
        "d": 10,
        "m": 1.0,
        "points": [2, 3, 4],
        "alpha": 1.0,
        "n_mixes": 50 if quick else 400,
        "theory_kappas": np.logspace(-2, 4, 13 if quick else 49).tolist(),
        "solver_kappas": [0.1, 100.0] if quick else [0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4],
        "seed": 0,
    }


def steps(cfg: dict) -> int:
    return len(cfg["points"]) * (1 + len(cfg["solver_kappas"]))


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``local_linearity.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted.
    """
    return compose(
        f"{CHAUDHRY_2022}, eq. 3",
        f"fixed ETF, C = {cfg['C']}, d = {cfg['d']}, m = {cfg['m']:g}",
        f"NonLin of the k-point CE optimum against kappa for k = {comma_list(cfg['points'])} ({cfg['n_mixes']} "
        f"Dirichlet({cfg['alpha']:g}) mixes per k; lines the closed form at {grid(cfg['theory_kappas'])}, circles "
        f"the solver at kappa = {comma_list(cfg['solver_kappas'])}) and its excess over the linear-map floor: NonLin "
        "increases with kappa; the unnormalised variant in dotted lines. NonLin here is that of the optimal "
        "feature of a mixed target, not of a network applied to a mixed input.",
    )


def _problem(cfg, k, kappa):
    C, m = cfg["C"], cfg["m"]
    return MixupProblem(
        C=C,
        d=cfg["d"],
        m=m,
        mu=C * m**2 / ((C - 1) * kappa),
        seed=cfg["seed"],
        points=k,
        **({} if k == 2 else {"alpha": cfg["alpha"], "n_mixes": cfg["n_mixes"]}),
    )


def _mixes(cfg, k):
    """Seeded mixes; k = 2 draws them like k >= 3 (Dirichlet weights, not the lambda grid) for a like comparison."""
    rng = np.random.default_rng([cfg["seed"], k])
    classes = rng.integers(0, cfg["C"], size=(cfg["n_mixes"], k))
    lam = rng.dirichlet(np.full(k, cfg["alpha"]), size=cfg["n_mixes"])
    return classes, lam


SUMMARY_KEYS = ("nonlin", "floor", "excess", "unnormalised_rel")


def compute(cfg: dict, progress) -> dict:
    C = cfg["C"]
    vertex_y = np.eye(C)
    out = {
        "points": np.array(cfg["points"]),
        "theory_kappas": np.array(cfg["theory_kappas"]),
        "solver_kappas": np.array(cfg["solver_kappas"]),
    }
    for k in cfg["points"]:
        classes, lam = _mixes(cfg, k)
        y = np.asarray(mixed_soft_target(C, classes, lam))
        W = _problem(cfg, k, 1.0).classifier()
        rows = family.nonlinearity_vs_kappa(_problem(cfg, k, 1.0), W, classes, lam, y, cfg["theory_kappas"])
        for key in SUMMARY_KEYS:
            out[f"theory_{key}_k{k}"] = np.array([r[key] for r in rows])
        progress.step()
        solver: dict[str, list] = {key: [] for key in SUMMARY_KEYS}
        converged = []
        for kappa in cfg["solver_kappas"]:
            problem = _problem(cfg, k, kappa)
            h, sol = family.solve_targets(problem, W, np.concatenate([y, vertex_y]))
            converged.append(bool(sol.converged.all()))
            summary = family.nonlinearity_summary(h[: len(y)], h[len(y) :], classes, lam, y, C)
            for key in SUMMARY_KEYS:
                solver[key].append(summary[key])
            progress.step()
        for key in SUMMARY_KEYS:
            out[f"solver_{key}_k{k}"] = np.array(solver[key])
        out[f"solver_converged_k{k}"] = np.array(converged)
        out[f"classes_k{k}"], out[f"lam_k{k}"] = classes, lam
    return out


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=2, width=DOUBLE_COLUMN, height=3.0)
    left, right = axes[0]
    for i, k in enumerate(data["points"]):
        colour = COLOURS[i]
        left.semilogx(data["theory_kappas"], data[f"theory_nonlin_k{k}"], color=colour, label=f"k = {k}")
        left.semilogx(data["solver_kappas"], data[f"solver_nonlin_k{k}"], "o", color=colour, mfc="none")
        left.axhline(data[f"theory_floor_k{k}"][0], color=colour, ls="--", lw=0.8)
        right.loglog(data["theory_kappas"], data[f"theory_excess_k{k}"], color=colour, label=f"k = {k}")
        right.loglog(data["solver_kappas"], data[f"solver_excess_k{k}"], "o", color=colour, mfc="none")
        right.loglog(data["theory_kappas"], data[f"theory_unnormalised_rel_k{k}"], color=colour, ls=":")
    left.plot([], [], "k--", lw=0.8, label="linear-map floor")
    left.plot([], [], "ko", mfc="none", label="solver")
    left.set(
        xlabel=r"$\kappa = C m^2 / ((C-1)\mu)$",
        ylabel="NonLin, eq. (3) (normalised)",
        title=f"C = {cfg['C']}, {cfg['n_mixes']} Dirichlet({cfg['alpha']:g}) mixes per k",
    )
    left.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    right.plot([], [], "k-", label="NonLin - floor")
    right.plot([], [], "k:", label=r"unnormalised $/ \|h_{cc}\|$")
    right.set(
        xlabel=r"$\kappa$",
        ylabel="distance from linear",
        title="what the cross-entropy adds (lines theory, circles solver)",
    )
    right.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return fig
