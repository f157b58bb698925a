"""Figure 3: calibration of the mixup optimum.

Left: confidence (largest softmax probability) of the different-class optimum against lambda, for several kappa,
beside the mixup target max(lambda, 1 - lambda). Right: the mixup-target calibration error
``E_{lambda ~ Beta(alpha, alpha)} |confidence - max(lambda, 1 - lambda)|`` against kappa for alpha in {0.2, 1, 2}:
theory lines by Gauss-Jacobi quadrature, solver points from solves at the quadrature nodes.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ufm.experiments.captions import FISHER_2024, comma_list, compose, grid
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.families import mixup as family
from ufm.problems.mixup import MixupProblem
from ufm.theory import mixup as theory

NAME = "mixup_calibration"
TITLE = "Mixup calibration: confidence against lambda and calibration error against kappa"


def config(quick: bool) -> dict:
    return {
        "C": 10,
        "d": 10,
        "m": 1.0,
        "curve_kappas": [1.0, 30.0, 1000.0],
        "n_lambdas": 11 if quick else 21,
        "alphas": [0.2, 1.0, 2.0],
        "theory_kappas": np.logspace(-1, 5, 13 if quick else 49).tolist(),
        "solver_kappas": [1.0, 100.0] if quick else [0.3, 3.0, 30.0, 300.0, 3000.0, 30000.0],
        "quadrature_nodes": 32,
        "seed": 0,
    }


def steps(cfg: dict) -> int:
    return len(cfg["curve_kappas"]) + len(cfg["solver_kappas"])


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``mixup_calibration.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted.
    """
    return compose(
        FISHER_2024,
        f"C = {cfg['C']}, d = {cfg['d']}, m = {cfg['m']:g}, fixed ETF",
        f"the optimum's confidence against lambda ({cfg['n_lambdas']} lambdas; "
        f"kappa = {comma_list(cfg['curve_kappas'])}) "
        "next to the target max(lambda, 1 - lambda), and the Beta(alpha, alpha)-averaged calibration error against "
        f"kappa for alpha = {comma_list(cfg['alphas'])} (lines: {cfg['quadrature_nodes']}-node Gauss-Jacobi quadrature "
        f"at {grid(cfg['theory_kappas'])}; circles: the solver at kappa = {comma_list(cfg['solver_kappas'])}): "
        "it falls like 1/kappa.",
    )


def half_interval_nodes(alpha: float, n: int):
    """Nodes and weights for ``E_{lambda ~ Beta(alpha, alpha)} g(lambda)`` with g symmetric about 1/2.

    ``E g = 2 int_0^{1/2} g(l) l^{a-1} (1-l)^{a-1} dl / B(a, a)``; with l = (1 + x)/4 the singular factor l^{a-1}
    becomes the Jacobi weight (1 + x)^{a-1}, the rest is smooth on [0, 1/2] (the kink of max(l, 1-l) at 1/2 is
    avoided), so Gauss-Jacobi converges fast.
    """
    x, w = special.roots_jacobi(n, 0.0, alpha - 1.0)
    lam = (1 + x) / 4
    weights = w * (1 - lam) ** (alpha - 1)
    # exact total is 1 (half the mass of the symmetric density, doubled): normalising removes the rounding in the
    # rule's weights (their sum drifts by ~1e-13 for alpha = 0.2 at 64 nodes)
    return lam, weights / weights.sum()


def calibration_error(confidence: np.ndarray, lam: np.ndarray, weights: np.ndarray) -> float:
    return float(np.sum(weights * np.abs(confidence - np.maximum(lam, 1 - lam))))


def _problem(cfg, kappa):
    C, m = cfg["C"], cfg["m"]
    return MixupProblem(C=C, d=cfg["d"], m=m, mu=C * m**2 / ((C - 1) * kappa), n_lambdas=2, seed=cfg["seed"])


def _solver_confidence(cfg, kappa, lam):
    out = family.solve(_problem(cfg, kappa), subproblems=(np.zeros(lam.size, int), np.ones(lam.size, int), lam))
    z = out.h @ out.W.T
    return np.max(special.softmax(z, axis=1), axis=1)


def compute(cfg: dict, progress) -> dict:
    C = cfg["C"]
    lam = np.linspace(0.0, 1.0, cfg["n_lambdas"])
    lam_fine = np.linspace(0.0, 1.0, 201)
    curves, curves_theory = [], []
    for kappa in cfg["curve_kappas"]:
        curves.append(_solver_confidence(cfg, kappa, lam))
        curves_theory.append(theory.confidence(C, kappa, lam_fine))
        progress.step()
    nodes = [half_interval_nodes(a, cfg["quadrature_nodes"]) for a in cfg["alphas"]]
    error_theory = np.array(
        [[calibration_error(theory.confidence(C, k, l), l, w) for k in cfg["theory_kappas"]] for l, w in nodes]
    )
    error_solver = np.zeros((len(cfg["alphas"]), len(cfg["solver_kappas"])))
    for j, kappa in enumerate(cfg["solver_kappas"]):
        all_lam = np.concatenate([l for l, _ in nodes])
        conf = np.split(_solver_confidence(cfg, kappa, all_lam), len(nodes))
        for i, (l, w) in enumerate(nodes):
            error_solver[i, j] = calibration_error(conf[i], l, w)
        progress.step()
    return {
        "lam": lam,
        "confidence": np.array(curves),
        "theory_lam": lam_fine,
        "confidence_theory": np.array(curves_theory),
        "curve_kappas": np.array(cfg["curve_kappas"]),
        "alphas": np.array(cfg["alphas"]),
        "theory_kappas": np.array(cfg["theory_kappas"]),
        "error_theory": error_theory,
        "solver_kappas": np.array(cfg["solver_kappas"]),
        "error_solver": error_solver,
    }


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=2, width=DOUBLE_COLUMN, height=3.0)
    ax = axes[0, 0]
    ax.plot(
        data["theory_lam"],
        np.maximum(data["theory_lam"], 1 - data["theory_lam"]),
        "k--",
        lw=1.0,
        label=r"target $\max(\lambda, 1-\lambda)$",
    )
    for k, kappa in enumerate(data["curve_kappas"]):
        ax.plot(data["theory_lam"], data["confidence_theory"][k], color=COLOURS[k], label=rf"$\kappa$ = {kappa:g}")
        ax.plot(data["lam"], data["confidence"][k], "o", color=COLOURS[k], mfc="none")
    ax.set(
        xlabel=r"mixing coefficient $\lambda$",
        ylabel="confidence (max softmax)",
        title=f"C = {cfg['C']}: lines theory, circles solver",
    )
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    ax = axes[0, 1]
    for i, alpha in enumerate(data["alphas"]):
        ax.loglog(data["theory_kappas"], data["error_theory"][i], color=COLOURS[i], label=rf"$\alpha$ = {alpha:g}")
        ax.loglog(data["solver_kappas"], data["error_solver"][i], "o", color=COLOURS[i], mfc="none")
    ax.set(
        xlabel=r"$\kappa = C m^2 / ((C-1)\mu)$",
        ylabel=r"$E_\lambda |\mathrm{conf} - \max(\lambda, 1-\lambda)|$",
        title=r"calibration error, $\lambda \sim$ Beta($\alpha$, $\alpha$)",
    )
    ax.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    return fig
