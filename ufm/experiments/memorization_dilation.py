"""Figure 5: memorization-dilation (Nguyen et al., ICLR 2023, Model 3): dilation against memorization as the
expressivity r varies, for CE and label smoothing on identical noisy data; raw, and relative to the mean distance
between class means."""

from __future__ import annotations

from ufm.experiments.captions import NGUYEN_2023, at_full, comma_list, compose, losses
from ufm.experiments.style import COLOURS, DOUBLE_COLUMN, figure
from ufm.families import memorization_dilation as family
from ufm.problems.nonnegative import MemorizationDilationProblem

NAME = "memorization_dilation"
TITLE = "Memorization-dilation: dilation against memorization for CE and label smoothing"


def config(quick: bool) -> dict:
    return {
        "C": 3,
        "n": 6 if quick else 10,
        "noise": 0.34 if quick else 0.2,
        "restarts": 2 if quick else 3,
        "r_values": [2.0] if quick else list(family.SWEEP_R),
        "alphas": [0.0, 0.3] if quick else list(family.SWEEP_ALPHAS),
    }


def steps(cfg: dict) -> int:
    return 1


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``memorization_dilation.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted, and (full configuration only) the finding.
    """
    return compose(
        f"after {NGUYEN_2023}; our Model 3",
        f"K = {cfg['C']}, n = {cfg['n']}, {100 * cfg['noise']:g} % noisy labels, identical data for every loss, "
        f"{cfg['restarts']} restarts",
        f"dilation against memorization as r varies (r = {comma_list(cfg['r_values'])}) for {losses(cfg['alphas'])}"
        + at_full(
            cfg,
            config(False),
            "; LS lowers dilation in raw terms but not relative to the class-mean distance (findings: label "
            "smoothing and dilation, memorization-dilation Model 3)",
        )
        + ".",
    )


def compute(cfg: dict, progress) -> dict:
    problem = MemorizationDilationProblem(C=cfg["C"], n=cfg["n"], noise=cfg["noise"], restarts=cfg["restarts"])
    curve, failures, _ = family.sweep(problem, r_values=cfg["r_values"], alphas=cfg["alphas"], progress=False)
    if failures:
        raise RuntimeError("memorization-dilation sweep has uncertified points: " + "; ".join(failures))
    progress.step()
    return curve


def plot(data: dict, cfg: dict):
    fig, axes = figure(ncols=2, width=DOUBLE_COLUMN, height=2.8)
    panels = (
        ("M", "D", "raw", "memorization M", "dilation D"),
        ("M_rel", "D_rel", "relative to the mean class-mean distance", "M / distance", "D / distance"),
    )
    for ax, (m, d, title, xlabel, ylabel) in zip(axes[0], panels):
        for i, alpha in enumerate(cfg["alphas"]):
            sel = data["alpha"] == alpha
            ax.plot(
                data[m][sel],
                data[d][sel],
                "o-",
                color=COLOURS[i],
                mfc="none",
                label="CE" if alpha == 0 else f"LS $\\alpha$ = {alpha:g}",
            )
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    # r labels on the CE curve of the raw panel only: in the relative panel the curves meet and labels would
    # cover them (there, as in the raw panel, M grows with r along every curve).
    sel = data["alpha"] == cfg["alphas"][0]
    for x, y, r in zip(data["M"][sel], data["D"][sel], data["r"][sel]):
        axes[0, 0].annotate(f"r={r:g}", (x, y), textcoords="offset points", xytext=(4, 2), fontsize=6)
    axes[0, 0].margins(x=0.08, y=0.08)
    axes[0, 0].legend(frameon=False, loc="lower left")
    axes[0, 1].annotate(
        "r grows to the right", (0.97, 0.97), xycoords="axes fraction", ha="right", va="top", fontsize=6
    )
    return fig
