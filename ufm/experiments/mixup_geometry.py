"""Figure 1: optimal mixup features of every class pair, C = 3, projected on the plane of the classifier rows.

The UFM counterpart of the activation plots of Fisher et al. (2024, Fig. 1): solver features as points, Theorem 3.1's
curves as lines, the chords between the same-class optima (what the mixed features would follow if the optimum were
linear in lambda) dashed, the classifier rows as black arrows at their true length. A point's colour is the target's
weight on the lower-numbered class of its pair, so the two orders of a pair, (c, c', lambda) and (c', c, 1 - lambda),
which are one target and one point, get one colour.
"""

from __future__ import annotations

import numpy as np
from matplotlib.lines import Line2D

from ufm.experiments.captions import FISHER_2024, compose
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


def caption(cfg: dict) -> str:
    """The figure's caption for configuration ``cfg`` (also written into ``mixup_geometry.json``).

    Args:
        cfg: the configuration (``config(quick)``).

    Returns:
        The caption: citation, configuration, what is plotted, and Theorem 3.1's bulge at lambda = 1/2.
    """
    C, kappa = cfg["C"], cfg["kappa"]
    return compose(
        f"{FISHER_2024}, Theorem 3.1",
        f"C = {C}, d = {cfg['d']}, m = {cfg['m']:g}, kappa = {kappa:g}, fixed ETF, "
        f"{cfg['n_lambdas']} lambdas in [0, 1]",
        "the solver's optimal features of every ordered class pair and lambda on the plane of the classifier rows, "
        "on Theorem 3.1's curves (lines). Colour: the target's weight on the lower-numbered class of the pair "
        "(on class 1 between w_1 and w_2), so both orders of a pair, one target and one point, have one colour; "
        "stars the same-class optima, dashed the chords between them, arrows the classifier rows w_c at their true "
        f"length m = {cfg['m']:g} (not scaled). Mixed features bulge outwards instead of following the chords: at "
        f"lambda = 1/2 the optimum is {theory.half_mix_bulge_ratio(C, kappa):.3f} times as far from the origin as "
        "the chord's midpoint.",
    )


def _problem(cfg: dict) -> MixupProblem:
    C, m = cfg["C"], cfg["m"]
    return MixupProblem(
        C=C, d=cfg["d"], m=m, mu=C * m**2 / ((C - 1) * cfg["kappa"]), n_lambdas=cfg["n_lambdas"], seed=cfg["seed"]
    )


def plane_basis(W: np.ndarray) -> np.ndarray:
    """Orthonormal basis (d x 2) of the row space of a C = 3 ETF, oriented so that w_1 points along +x."""
    Q, _ = np.linalg.qr(np.stack([W[0], W[1]], axis=1))
    return Q * np.sign(Q[:, 0] @ W[0])


def lower_class_weight(c: np.ndarray, c_prime: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """The target's weight on the lower-numbered class of each pair: the colour of a point.

    The target of (c, c', lam) is lam e_c + (1 - lam) e_c', which is that of (c', c, 1 - lam); colouring by lam
    would give one point two colours. This weight is the same for both orders.

    Args:
        c, c_prime: the classes of each subproblem, (n,).
        lam: the weight on ``c``, (n,).

    Returns:
        ``lam`` where c <= c', ``1 - lam`` where c > c' (same-class subproblems keep lam; their target is e_c).
    """
    return np.where(c <= c_prime, lam, 1.0 - lam)


def same_class_optima(h_plane: np.ndarray, c: np.ndarray, c_prime: np.ndarray, C: int) -> np.ndarray:
    """The same-class optimum h_cc of each class (C x 2), the mean over its lambdas (one target, so one point).

    Args:
        h_plane: features on the plane, (n, 2).
        c, c_prime: the classes of each subproblem, (n,).
        C: the number of classes.

    Returns:
        Row c: the plane coordinates of h_cc.
    """
    return np.stack([h_plane[(c == k) & (c_prime == k)].mean(axis=0) for k in range(C)])


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
    h_plane = out.h @ Q
    stars = same_class_optima(h_plane, out.c, out.c_prime, C)
    return {
        "h_plane": h_plane,
        "lam": out.lam,
        "colour": lower_class_weight(out.c, out.c_prime, out.lam),
        "chords": np.stack([[stars[c], stars[cp]] for c, cp in pairs]),
        "c": out.c,
        "c_prime": out.c_prime,
        "W_plane": out.W @ Q,
        "theory_curves": curves,
        "theory_pairs": np.array(pairs),
        "theory_lam": lam_fine,
        "rel_grad_norm": out.solution.rel_grad_norm,
    }


def plot(data: dict, cfg: dict):
    fig, axes = figure(width=SINGLE_COLUMN, height=SINGLE_COLUMN)
    ax = axes[0, 0]
    for k, curve in enumerate(data["theory_curves"]):
        ax.plot(curve[:, 0], curve[:, 1], color="0.25", lw=0.8, zorder=3, label="Theorem 3.1" if k == 0 else None)
    for k, (a, b) in enumerate(data["chords"]):
        ax.plot(
            [a[0], b[0]],
            [a[1], b[1]],
            color="0.45",
            ls=(0, (3, 2)),
            lw=0.8,
            zorder=1,
            label="chord of same-class optima" if k == 0 else None,
        )
    same = data["c"] == data["c_prime"]
    sc = ax.scatter(
        *data["h_plane"][~same].T,
        c=data["colour"][~same],
        cmap=SEQUENTIAL,
        vmin=0,
        vmax=1,
        marker="o",
        s=14,
        zorder=2,
        label="different class (solver)",
    )
    ax.scatter(*data["h_plane"][same].T, c="k", marker="*", s=50, zorder=4, label="same class (solver)")
    # the rows at their true length (no scale factor to state); they point at the same-class optima
    for k, w in enumerate(data["W_plane"]):
        ax.annotate("", xy=w, xytext=(0, 0), arrowprops={"arrowstyle": "-|>", "color": "k", "lw": 1.0})
        ax.text(*(w + 0.22 * w / np.linalg.norm(w)), f"$w_{k + 1}$", ha="center", va="center")
    arrow = Line2D([], [], color="k", lw=1.0, marker=">", markersize=4, markevery=[-1])
    lim = 1.25 * np.max(np.abs(data["h_plane"]))
    ax.set(
        xlim=(-lim, lim),
        ylim=(-lim, lim),
        aspect="equal",
        xlabel="coordinate 1 in span(W)",
        ylabel="coordinate 2 in span(W)",
    )
    ax.set_title(rf"C = {cfg['C']}, $\kappa$ = {cfg['kappa']:g}")
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles + [arrow],
        labels + [rf"classifier row $w_c$ (true length {cfg['m']:g})"],
        loc="outside lower center",
        ncol=2,
        frameon=False,
        fontsize=6,
        columnspacing=1.0,
        handlelength=1.8,
    )
    fig.colorbar(
        sc,
        ax=ax,
        label="weight on the pair's lower-numbered class\n(e.g. on class 1 between $w_1$ and $w_2$)",
        shrink=0.75,
        aspect=30,
        pad=0.02,
    )
    return fig
