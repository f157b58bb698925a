"""Figure 8: mixup with the classifier learned jointly (issue 9): does the simplex ETF stay optimal?

Left: the learned ETF multiplier m against alpha (lam ~ Beta(alpha, alpha); alpha = 0 is ERM) for several C:
lines, the minimiser of the one-dimensional reduction F(m) (``ufm.theory.mixup_joint.reduced_multiplier``, which
assumes the ETF); circles, the joint solve of classifier and features from random starts (which does not).
Right: what the joint solve says about the assumption: the relative distance of W W^T to the nearest simplex-ETF
Gram matrix and the relative gap between the two m, per case (log scale; rounding is about 1e-15).
"""

from __future__ import annotations

import dataclasses

import numpy as np

import ufm
from ufm.experiments.captions import FISHER_2024, at_full, comma_list, compose, grid
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.problems.mixup_joint import MixupJointProblem
from ufm.theory.mixup_joint import reduced_multiplier

NAME = "mixup_joint"
TITLE = "Mixup with a learned classifier: multiplier m against alpha, joint solve vs one-dimensional reduction"


def config(quick: bool) -> dict:
    # theory alphas quadratically spaced from 0 (ERM): m moves fastest near alpha = 0
    return {
        "classes": [3] if quick else [3, 5, 10],
        "solver_alphas": [1.0] if quick else [0.0, 0.2, 1.0, 2.0],
        "theory_alphas": (2 * np.linspace(0, 1, 9 if quick else 41) ** 2).tolist(),
        "lambda_W": 5e-2,
        "mu": 5e-2,
        "n_nodes": 16,
        "restarts": 2 if quick else 3,
        "seed": 0,
    }


def steps(cfg: dict) -> int:
    return len(cfg["classes"]) * (1 + len(cfg["solver_alphas"]))


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``mixup_joint.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted, and (full configuration only) the errors found.
    """
    return compose(
        f"testing the ETF assumption of {FISHER_2024}",
        f"classifier learned jointly, lambda_W = {cfg['lambda_W']:g}, mu = {cfg['mu']:g}, "
        f"{cfg['n_nodes']} quadrature nodes, {cfg['restarts']} restarts from random (W, H)",
        f"the learned ETF multiplier m against alpha for C = {comma_list(cfg['classes'])} (circles the joint solve at "
        f"alpha = {comma_list(cfg['solver_alphas'])}, lines the 1-D reduction at {grid(cfg['theory_alphas'])}), and "
        "the ETF error of W W^T and the gap to the 1-D m" + at_full(cfg, config(False), " (all below 3e-11)") + ".",
    )


def compute(cfg: dict, progress) -> dict:
    out = {
        "classes": np.array(cfg["classes"]),
        "theory_alphas": np.array(cfg["theory_alphas"]),
        "solver_alphas": np.array(cfg["solver_alphas"]),
    }
    for C in cfg["classes"]:
        base = MixupJointProblem(
            C=C,
            lambda_W=cfg["lambda_W"],
            mu=cfg["mu"],
            n_nodes=cfg["n_nodes"],
            restarts=cfg["restarts"],
            seed=cfg["seed"],
        )
        out[f"theory_m_C{C}"] = np.array(
            [reduced_multiplier(dataclasses.replace(base, alpha=a))[0] for a in cfg["theory_alphas"]]
        )
        progress.step()
        numbers: dict[str, list] = {key: [] for key in ("m", "m_1d", "etf_error", "passed")}
        for alpha in cfg["solver_alphas"]:
            report = ufm.run(dataclasses.replace(base, alpha=alpha))
            numbers["passed"].append(report.passed)
            for key in ("m", "m_1d", "etf_error"):
                numbers[key].append(report.numbers[key])
            progress.step()
        for key, values in numbers.items():
            out[f"solver_{key}_C{C}"] = np.array(values)
    return out


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=2, width=DOUBLE_COLUMN, height=3.0)
    left, right = axes[0]
    for i, C in enumerate(data["classes"]):
        colour = COLOURS[i]
        left.plot(data["theory_alphas"], data[f"theory_m_C{C}"], color=colour, label=f"C = {C}")
        left.plot(data["solver_alphas"], data[f"solver_m_C{C}"], "o", color=colour, mfc="none", ms=6)
        # floor the log plot at 1e-17: an exact zero (identical m) has no logarithm
        right.semilogy(
            data["solver_alphas"],
            np.maximum(data[f"solver_etf_error_C{C}"], 1e-17),
            "o-",
            color=colour,
            mfc="none",
            label=f"C = {C}: ETF error",
        )
        gap = np.abs(data[f"solver_m_C{C}"] - data[f"solver_m_1d_C{C}"]) / data[f"solver_m_1d_C{C}"]
        right.semilogy(data["solver_alphas"], np.maximum(gap, 1e-17), "x--", color=colour, label=f"C = {C}: m gap")
    left.plot([], [], "ko", mfc="none", label="joint solve")
    left.set(
        xlabel=r"mixup $\alpha$ ($\lambda \sim$ Beta($\alpha$, $\alpha$); 0 = ERM)",
        ylabel=r"ETF multiplier $m = \|w_c\|$",
        title=rf"$\lambda_W$ = {cfg['lambda_W']:g}, $\mu$ = {cfg['mu']:g}; lines: 1-D reduction",
    )
    left.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=3)
    right.set(
        xlabel=r"mixup $\alpha$",
        ylabel="relative error (joint solve)",
        title=r"$\|WW^T - $ETF$\|_F / \|WW^T\|_F$ and $|m - m_{1D}| / m_{1D}$",
    )
    right.legend(frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
    return fig
