"""Checks of several-point (Dirichlet) mixup with a fixed simplex ETF (Chaudhry et al.; docs/local_linearity.md).

Tolerances as in ``ufm.checks.mixup``: every graded check takes ``tol = feature_tolerance(kappa)`` =
``max(1e-10, 100 eps (1 + kappa))`` from the family (the rounding floor of the solver's features is
``cond(Hessian) eps`` with ``cond <= 1 + kappa``); each check's docstring says how its value relates to the feature
error. Quantities that the theory does not fix (the size of NonLin for CE) are reported only.
"""

from __future__ import annotations

import numpy as np

from ufm.checks import Check
from ufm.checks.mixup import (
    FEATURE_TOL,
    dimension_independence,
    relative_errors,
    span_basis,
)
from ufm.checks.nonlinearity import (
    nonlinearity_summary,
    nonlinearity_vs_kappa,
    square_normalised_floor,
)
from ufm.metrics import nonlinearity
from ufm.theory import mixup as theory


def feature_error(h, h_theory, scale: float, tol: float = FEATURE_TOL) -> Check:
    """Max ``||h - h*|| / max(||h*||, scale)`` against the k-point closed form, ``scale`` the vertex norm (see
    ``ufm.checks.mixup.relative_errors``: near the uniform target h* is small and computed by cancellation)."""
    err = relative_errors(h, h_theory, scale)
    i = int(np.argmax(err))
    return Check("feature = k-point closed form (max rel err)", float(err[i]), tol, f"worst at mix #{i}")


def gap_system_residual(W, h, classes, lam, kappa: float, tol: float = FEATURE_TOL) -> Check:
    """The solver's own logits satisfy the k x k system: ``g_j = kappa (q_j - p_j + p_o)`` with g read off W h.

    g_j = z_{s_j} - z_o, z_o the mean logit of the unmixed classes (all equal at the optimum: their spread is
    part of the residual); for s = C the level is the centring ``z_o = 0`` (the logits are centred). Residual
    relative to ``max(1, max |g|)``. Independent of the closed-form solver: only the solver's h is used.
    Tolerance ``tol``: the residual is kappa times the reduced gradient ``p - q + Q g / kappa``, which float64
    evaluates to ~eps at best, so its floor is ~eps (1 + kappa), the feature tolerance's own floor.
    """
    C = W.shape[0]
    z = h @ W.T
    z = z - z.mean(axis=-1, keepdims=True)
    worst = 0.0
    for zi, (uniq, q) in zip(z, theory.distinct_weights(classes, lam)):
        others = np.setdiff1d(np.arange(C), uniq)
        z_o = zi[others].mean() if others.size else 0.0
        spread = float(np.max(np.abs(zi[others] - z_o))) if others.size else 0.0
        g = zi[uniq] - z_o
        res = float(theory.mixed_gap_residual(C, kappa, q[None], g[None])[0])
        worst = max(worst, (res + spread) / max(1.0, float(np.max(np.abs(g)))))
    return Check("solver logits solve the k x k gap system (rel residual)", worst, tol)


def outside_mixed_span(W, h, classes, scale: float, tol: float = FEATURE_TOL) -> Check:
    """Norm of the component of h outside span{w_c : c in the mix}, relative to the larger of ``||h||`` and
    ``scale`` (the vertex norm; h vanishes at the uniform mix). A mix naming C-1 or more classes spans the row
    space: then this is the component off the row space."""
    worst = 0.0
    for hi, cl in zip(h, np.atleast_2d(classes)):
        Q = span_basis(W[np.unique(cl)])
        resid = hi - Q @ (Q.T @ hi)
        worst = max(worst, float(np.linalg.norm(resid) / max(np.linalg.norm(hi), scale)))
    return Check("feature in span of the mixed rows (rel residual)", worst, tol)


def barycentre_bulge(h_bary, h_vertex_mean, C: int, kappa: float, k: int, tol: float = FEATURE_TOL) -> Check:
    """``||h(barycentre)|| / ||mean of the k vertices||`` against ``k s/(C|K|)`` (s: scalar root, brentq)."""
    name = "barycentre bulge ratio (solver vs scalar root)"
    if k >= C:
        return Check.undefined(name, "k >= C: both vectors vanish")
    expected = theory.barycentre_bulge_ratio(C, kappa, k)
    ratios = np.linalg.norm(h_bary, axis=-1) / np.linalg.norm(h_vertex_mean, axis=-1)
    err = float(np.max(np.abs(ratios - expected)) / expected)
    return Check(name, err, tol, f"ratio {np.mean(ratios):.12g}, closed form {expected:.12g}")


def square_linear(h_square_mix, h_square_points, lam, tol: float = FEATURE_TOL) -> Check:
    """Square loss: the optimum is exactly linear in the mix (unnormalised NonLin / feature scale = 0)."""
    err = nonlinearity(h_square_mix, h_square_points, lam, normalise=False)
    scale = np.max(np.linalg.norm(h_square_points, axis=-1))
    return Check("square loss: unnormalised NonLin = 0 (rel)", float(np.max(err) / scale), tol)


def points_checks(problem, W, W_other, d_other: int, mixes, h, h_alt, h_square, tol: float) -> tuple[list[Check], dict]:
    """The graded k-point checks after the convergence check, in report order, and the NonLin summaries.

    Args:
        problem: the ``MixupProblem`` (points >= 3).
        W, W_other: the classifiers of the main and of the d-independence problem.
        d_other: the d-independence problem's dimension.
        mixes: ``(classes, lam, y, slices)``: every solved mix (random, then the structured ones), their soft
            targets and the slice of each kind (``"random"``, ``"vertex"``, optionally ``"barycentre"``).
        h, h_alt, h_square: features of the main, d-independence (random mixes) and square-loss solves.
        tol: the feature tolerance.

    Returns:
        ``(checks, values)``: values holds K, the vertex norm, the feature check and the NonLin summaries
        ``ce``, ``square`` and ``sweep`` (closed-form CE NonLin over :data:`KAPPA_SWEEP`) and the closed-form features
        ``h_theory``.
    """
    C, k = problem.C, problem.points
    classes, lam, y, sl = mixes
    rnd = sl["random"]
    K = theory.same_class_root(C, problem.kappa)
    vertex_norm = (C - 1) * abs(K) / problem.m
    h_vertex, h_vertex_sq = h[sl["vertex"]], h_square[sl["vertex"]]
    ce = nonlinearity_summary(h[rnd], h_vertex, classes[rnd], lam[rnd], y[rnd], C)
    h_theory = theory.mixed_optimal_features(W, problem.m, problem.mu, classes, lam)
    feature = feature_error(h, h_theory, vertex_norm, tol)
    result = [
        feature,
        gap_system_residual(W, h, classes, lam, problem.kappa, tol),
        outside_mixed_span(W, h, classes, vertex_norm, tol),
    ]
    if "barycentre" in sl:
        bary = classes[sl["barycentre"]]
        result.append(barycentre_bulge(h[sl["barycentre"]], h_vertex[bary].mean(axis=1), C, problem.kappa, k, tol))
    result += [
        dimension_independence(h[rnd] @ W.T, h_alt @ W_other.T, problem.d, d_other, (C - 1) * abs(K), tol),
        square_linear(h_square[rnd], h_vertex_sq[classes[rnd]], lam[rnd], tol),
        square_normalised_floor(
            h_square[rnd], h_vertex_sq[classes[rnd]], lam[rnd], theory.linear_map_norm(C, y[rnd]), tol
        ),
        Check(
            "NonLin eq. (3), CE, mean over the mixes",
            ce["nonlin"],
            None,
            f"linear-map floor {ce['floor']:.6g}; excess {ce['excess']:.3e}; unnormalised/|h_cc| "
            f"{ce['unnormalised_rel']:.4g}"
            + (f"; {ce['undefined']} mix(es) at the uniform target left out" if ce["undefined"] else ""),
        ),
    ]
    values = {
        "K": K,
        "vertex_norm": vertex_norm,
        "feature": feature,
        "ce": ce,
        "square": nonlinearity_summary(h_square[rnd], h_vertex_sq, classes[rnd], lam[rnd], y[rnd], C),
        "sweep": nonlinearity_vs_kappa(problem, W, classes[rnd], lam[rnd], y[rnd]),
        "h_theory": h_theory,
    }
    return result, values


def points_report(problem, W, mixes, h, h_square, sol, v: dict) -> tuple[list[str], dict, dict]:
    """Several-point mixup's headline, numbers and arrays (``mixes``: ``(classes, lam, y, slices)``, ``sol`` the
    main solve's Solution, ``v`` :func:`points_checks`' values)."""
    C, k, (classes, lam, y, slices) = problem.C, problem.points, mixes
    h_sq = h_square
    ce, sq, n_random = v["ce"], v["square"], slices["random"].stop
    headline = [
        f"ufm mixup, {k}-point (Dirichlet alpha={problem.alpha:g}): C={C} d={problem.d} m={problem.m:g} "
        f"mu={problem.mu:g} kappa={problem.kappa:.6g}  {n_random} random mixes + {len(classes) - n_random}"
        f" vertices/barycentres = {len(classes)} subproblems",
        "NonLin eq. (3) (mean over the random mixes; floor = value of any exactly linear map):",
        f"  CE     {ce['nonlin']:.10f}   excess over floor {ce['excess']:.3e}   unnormalised/|h_cc| "
        f"{ce['unnormalised_rel']:.6g}",
        f"  square {sq['nonlin']:.10f}   excess over floor {sq['excess']:.3e}   unnormalised/|h_cc| "
        f"{sq['unnormalised_rel']:.3e}",
        "  closed-form CE NonLin vs kappa:  " + "  ".join(f"{r['kappa']:g}: {r['nonlin']:.6f}" for r in v["sweep"]),
    ]
    numbers = {
        "kappa": problem.kappa,
        "K": v["K"],
        "vertex_norm": v["vertex_norm"],
        "max_rel_error": v["feature"].value,
        "nonlin_ce": ce,
        "nonlin_square": sq,
        "nonlin_vs_kappa": v["sweep"],
        "barycentre_bulge_ratio": theory.barycentre_bulge_ratio(C, problem.kappa, k),
    }
    arrays = {
        "W": W,
        "classes": classes,
        "lam": lam,
        "y": y,
        "h": h,
        "h_theory": v["h_theory"],
        "h_square": h_sq,
        "loss": sol.loss,
        "grad_norm": sol.grad_norm,
        "steps": sol.steps,
        "converged": sol.converged,
    }
    return headline, numbers, arrays
