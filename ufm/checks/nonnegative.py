"""Checks for nonnegative features (Nguyen et al., ICLR 2023; models in
:mod:`ufm.theory.nonnegative`).

Tolerances as for the square loss: objective 1e-12 relative, geometry 1e-8 relative (a joint nonconvex solve at
relative gradient ~1e-13 leaves factors within ~1e-13/curvature of the optimum manifold), KKT 1e-8 relative to
the size of the loss gradient (per block, see :func:`kkt_residual`). float64 meets each of them across the accepted
ranges (``ufm.problems.nonnegative``), whose ends are where it stops doing so: with the relative-accurate
cross-entropy and the loss-scaled passes, the objective is within ~1e-13 relative even where the loss is 2e-21
(Model 1, M_max = 49) and the geometry within ~1e-13 at weight decays 1e-15 (Model 2).
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.checks.convergence import best_converged
from ufm.metrics import class_means
from ufm.objectives.nonnegative import factor_gradients, zero_start
from ufm.theory.nonnegative import optimum_for as theory_for

OBJECTIVE_TOL = 1e-12
GEOMETRY_TOL = 1e-8
KKT_TOL = 1e-8


def kkt_residual(grad_W, W, grad_H, H, *, budgets: bool, support_tol: float = 1e-10) -> dict:
    """KKT residual of ``min f(W, H)`` s.t. H >= 0 (and, with ``budgets``, ||W||^2 and ||H||^2 spheres).

    Budget multipliers are the least-squares ones, ``nu = -<grad, X>/||X||^2`` (exact at a KKT point since the
    nonnegativity multipliers vanish on the support). Stationarity ``grad + nu X = Lambda`` must be 0 on the support
    of H and >= 0 off it (Lambda >= 0 is the multiplier of h >= 0). Returns the worst violation of each block
    relative to that block's scale, the multipliers (scaled to the constraint's own gradient, 2X/size) and the size
    of the support.

    Scales, per block: its loss gradient, or where that vanishes (an interior optimum, e.g. LS beyond the budget
    condition, or the zero solution) the natural size of the terms that cancel in it: ``d CE/d w_k = sum_i (p_ki -
    q_ki) h_i / N``, at most ``2 max|h| / N``, and ``d CE/d h_i`` at most ``2 max|w| / N`` (plus 1/N: the zero
    solution). One scale for both blocks (the larger) hid the W block's residual where H is large and W small, and
    flagged it falsely the other way round (Model 1 at E_W = 1.9e-6, E_H = 1e3: 2.6e-8 against max|W| ~ 1e-3)."""
    nu_W = -float(np.sum(grad_W * W) / np.sum(W * W)) if budgets else 0.0
    nu_H = -float(np.sum(grad_H * H) / np.sum(H * H)) if budgets else 0.0
    rW = grad_W + nu_W * W
    rH = grad_H + nu_H * H
    support = H > max(support_tol * H.max(), 1e-12)  # absolute floor: the zero solution has no support
    N = H.shape[1]
    worst_W = float(np.abs(rW).max())
    worst_H = max(np.abs(rH[support]).max(initial=0.0), np.maximum(0.0, -rH[~support]).max(initial=0.0))
    scale_W = max(float(np.abs(grad_W).max()), (1.0 + float(np.abs(H).max())) / N)
    scale_H = max(float(np.abs(grad_H).max()), (1.0 + float(np.abs(W).max())) / N)
    return {
        "residual": float(max(worst_W / scale_W, worst_H / scale_H)),
        "residual_W": worst_W / scale_W,
        "residual_H": float(worst_H / scale_H),
        "nu_W": nu_W,
        "nu_H": nu_H,
        "support": int(support.sum()),
    }


def geometry(W: np.ndarray, H: np.ndarray, labels: np.ndarray, K: int) -> dict:
    """Collapse, orthogonality of class means, their norms, margins (features H as d x N columns)."""
    means = class_means(H.T, labels, K)
    norms = np.linalg.norm(means, axis=1)
    scale = max(norms.max(), 1e-300)
    spread = float(np.max(np.linalg.norm(H.T - means[labels], axis=1)) / scale)
    unit = means / np.maximum(norms, 1e-300)[:, None]  # a dead class (mu_k = 0) has cosine 0 with every class
    cos = unit @ unit.T
    Z = W @ H
    true = Z[labels, np.arange(H.shape[1])]
    others = np.where(np.eye(K, dtype=bool)[:, labels], np.inf, Z)
    margins = true[None, :] - others
    margins = margins[np.isfinite(margins)]
    return {
        "means": means,
        "mean_norm_sq": norms**2,
        "within_class_spread": spread,
        "max_abs_cos": float(np.max(np.abs(cos[~np.eye(K, dtype=bool)]))),
        "margins": margins,
        "dead_classes": int(np.sum(norms < 1e-6 * scale)),
    }


def relative(name: str, values, expected: float, tol: float | None, detail: str = "") -> Check:
    values = np.atleast_1d(np.asarray(values, dtype=float))
    err = float(np.max(np.abs(values - expected)) / abs(expected)) if expected != 0 else float(np.max(np.abs(values)))
    return Check(name, err, tol, detail)


def converged(name: str, status, rel_grad, best: int, rtol: float, what: str = "restarts", extra: str = "") -> Check:
    """The best element ended CONVERGED: :func:`ufm.checks.convergence.best_converged` under ``name``."""
    return best_converged(status, rel_grad, best, rtol, name=name, what=what, notes=extra)


GEOMETRY_NAMES = (
    "collapse: max ||h_i - mu_k|| / max ||mu_k||",
    "class means orthogonal: max |cos|",
    "||mu_k||^2 = closed form",
    "every margin = closed form",
    "classifier = simplex ETF of the centred means (rel)",
)
BOUNDARY_NAME = "K = 2: decision boundary on the diagonal (|cos|)"


def geometry_checks(problem, W, H, g: dict, t: dict, graded) -> list[Check]:
    """Collapse, orthogonal means, their norms, margins, the classifier; K = 2: the decision boundary (``g``:
    :func:`geometry` of (W, H); ``t``: the closed form; ``graded``: the tolerance, or None where the minimisers
    are not unique)."""
    K, means = problem.C, g["means"]
    result = [
        Check(GEOMETRY_NAMES[0], g["within_class_spread"], graded),
        Check(GEOMETRY_NAMES[1], g["max_abs_cos"], graded),
        relative(GEOMETRY_NAMES[2], g["mean_norm_sq"], t["mean_norm_sq"], graded),
        relative(
            GEOMETRY_NAMES[3],
            g["margins"],
            t["margin"],
            graded,
            f"margins in [{g['margins'].min():.10g}, {g['margins'].max():.10g}]",
        ),
    ]
    # a dead class (mu_k = 0) has no direction: floor the norms so that the check fails with a number, not NaN
    v = means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-300)
    expected_W = t["classifier_scale"] * (
        (means - means.mean(axis=0)) if problem.model == "lpm" else (v - v.mean(axis=0))
    )
    result.append(Check(GEOMETRY_NAMES[4], float(np.linalg.norm(W - expected_W) / np.linalg.norm(expected_W)), graded))
    if K == 2:  # two orthogonal axes; the boundary (w_0 - w_1).h = 0 contains the diagonal mu_0/|mu_0| + mu_1/|mu_1|
        diff, diag = W[0] - W[1], v[0] + v[1]
        result.append(
            Check(
                BOUNDARY_NAME,
                float(abs(diff @ diag) / max(np.linalg.norm(diff) * np.linalg.norm(diag), 1e-300)),
                graded,
            )
        )
    return result


def not_unique(geo: list[dict], at_optimum) -> Check:
    """Reported (LS with M_max > m*): whether the restarts at the optimal value differ in geometry."""
    optimal = [i for i in range(len(geo)) if at_optimum[i]]
    signatures = [np.sort(geo[i]["mean_norm_sq"]) for i in optimal]
    spreads = [geo[i]["within_class_spread"] for i in optimal]
    differ = len(optimal) >= 2 and (
        np.ptp(spreads) > 1e-6 or max(np.max(np.abs(s - signatures[0])) for s in signatures) > 1e-6
    )
    return Check(
        "LS with M_max > m*: minimisers not unique (restarts at the optimum with different geometry)",
        float(differ),
        None,
        f"{len(optimal)} restarts at the optimal value within 1e-10; "
        + (
            f"their geometry differs (collapse spreads {np.array2string(np.array(spreads), precision=3)})"
            if differ
            else "geometry did not differ with these restarts"
        ),
    )


def solution_checks(problem, sol, best: int, WH: list, data, floor: dict, rtol: float) -> tuple[list[Check], dict]:
    """The checks of a solve from seeded restarts (``ufm.objectives.nonnegative.solve_with_floor``) against the
    closed form (``ufm.theory.nonnegative.optimum_for``), and the report's numbers.

    Args:
        problem: the ``NonnegProblem``.
        sol: the solution (``loss`` the model's objective), ``best`` its best element.
        WH: each start's (W, H) in the problem's coordinates.
        data: the objective data (``ufm.objectives.nonnegative.objective_data``).
        floor: ``{start: (gradient norm, f-resolvable gradient)}`` of the stalls accepted at the rounding floor.
        rtol: the solver's relative gradient tolerance.

    Returns:
        ``(checks, numbers)``: convergence first, then objective, KKT, feasibility, geometry (or the zero
        solution), uniqueness and the restarts at spurious points.
    """
    t, K, labels, R = theory_for(problem), problem.C, problem.labels, problem.restarts
    W, H = WH[best]
    geo = [geometry(w, h, labels, K) for w, h in WH]
    gW, gH = factor_gradients(problem.model, W, H, data)
    k = kkt_residual(np.asarray(gW), W, np.asarray(gH), H, budgets=problem.model == "lpm")
    at_optimum = np.abs(sol.loss - t["objective"]) <= 1e-10 * abs(t["objective"])
    names = [f"restart {i}" if i < R else "zero start" for i in range(sol.loss.size)]
    spurious = [
        (names[i], float(sol.loss[i]), geo[i]["dead_classes"]) for i in range(sol.loss.size) if not at_optimum[i]
    ]
    unique, zero, lpm = t.get("unique", True), t.get("zero", False), problem.model == "lpm"
    accepted = "; ".join(f"{names[i]} ({g:.1e}, {fl:.1e})" for i, (g, fl) in floor.items())
    result = [
        converged(
            "solver converged at the best restart",
            sol.status,
            sol.rel_grad_norm,
            best,
            rtol,
            f"{R} restarts" + (" + the zero start" if zero_start(problem) else ""),
            "; last pass on L/s, s the smallest loss: ||grad L||/max(s, L) <= rtol"
            + (
                f"; {len(floor)} stalled at the rounding floor of a degenerate minimum, accepted "
                f"(grad norm, f-resolvable gradient): {accepted}"
                if floor
                else ""
            ),
        ),
        relative(
            "objective = closed form (rel)",
            sol.loss[best],
            t["objective"],
            OBJECTIVE_TOL,
            f"solver {sol.loss[best]:.15g}, closed form {t['objective']:.15g} ({names[best]})",
        ),
        Check(
            "KKT residual (W, H >= 0" + (", budgets)" if lpm else ")"),
            k["residual"],
            KKT_TOL,
            f"support {k['support']} of {H.size} entries"
            + (f", nu_W {k['nu_W']:.6g}, nu_H {k['nu_H']:.6g}" if lpm else ""),
        ),
        Check("H >= 0 exactly (min entry)", float(max(0.0, -H.min())), 0.0),
    ]
    if zero:
        why = (
            f"undefined at the optimum W = H = 0 (gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K): directions, "
            "cosines and ratios of zero vectors"
        )
        result.append(
            Check(
                "zero solution: ||W|| + ||H||",
                float(np.linalg.norm(W) + np.linalg.norm(H)),
                GEOMETRY_TOL,
                f"gamma_alpha = {t['gamma_alpha']:.6g} >= (K-1)/K",
            )
        )
        result += [Check.undefined(name, why) for name in GEOMETRY_NAMES + ((BOUNDARY_NAME,) if K == 2 else ())]
    else:
        result += geometry_checks(problem, W, H, geo[best], t, GEOMETRY_TOL if unique else None)
    result += [] if unique else [not_unique(geo, at_optimum)]
    result.append(
        Check(
            "restarts at spurious points",
            float(len(spurious)),
            None,
            "; ".join(f"{name}: loss {l:.10g}, {dc} dead class(es)" for name, l, dc in spurious) or "none",
        )
    )
    numbers = {
        "theory": t,
        "objective": float(sol.loss[best]),
        "best": best,
        "restart_losses": sol.loss,
        "restart_status": sol.status,
        "rounding_floor": floor,
        "dead_classes": [x["dead_classes"] for x in geo],
        "kkt": k,
    }
    return result, numbers


def headline(problem) -> list[str]:
    """The report's two headline lines: the problem and its closed form."""
    t, K, lpm = theory_for(problem), problem.C, problem.model == "lpm"
    unique, zero = t.get("unique", True), t.get("zero", False)
    head = (
        f"ufm nonnegative {'Model 1 (budgets)' if lpm else 'Model 2 (weight decay)'}: "
        f"K={K} n={problem.n} d={problem.d} alpha={problem.alpha:g} "
        + (
            f"E_W={problem.E_W:g} E_H={problem.E_H:g}"
            if lpm
            else f"lambda_W={problem.lambda_W:g} lambda_H={problem.lambda_H:g}"
        )
    )
    if lpm:
        second = f"closed form: L* = {t['objective']:.15g}, M_max = {t['M_max']:.12g}, m*_alpha = {t['m_star']:.6g}" + (
            "" if unique else "  (M_max > m*: value = entropy of q, minimisers not unique)"
        )
    else:
        second = (
            f"closed form: objective = {t['objective']:.15g}, margin = {t['margin']:.12g}, "
            f"gamma = {t['gamma']:.6g}, gamma_alpha = {t['gamma_alpha']:.6g}" + ("  (zero solution)" if zero else "")
        )
    return [head, second]
