"""Certificates for Theorem 3.1 of Fisher, Meng, Papyan (ICLR 2024): mixup CE, fixed simplex-ETF W.

Statement and conventions as in the module docstring of :mod:`ufm.theory.mixup`: per feature,
``f(h) = logsumexp(W h) - y^T W h + (mu/2)||h||^2`` with ``y = lam e_c + (1-lam) e_c'``, ``||w_c|| = m``,
``kappa = C m^2/((C-1) mu)``. The closed form (``features``, default :func:`ufm.theory.mixup.optimal_features`) is
checked AT ITS OWN POINT, with no solver: the gradient and Hessian of the objective
(:func:`ufm.objectives.mixup.mixup_feature_loss`, differentiated by JAX in float64) are evaluated there.

Why this is a proof-grade check: f is mu-strongly convex (its Hessian is ``W^T (diag p - p p^T) W + mu I``), so
for any point h, ``||h - h_opt|| <= ||grad f(h)|| / mu`` (strong monotonicity of the gradient). A gradient at the
rounding level therefore bounds the distance of the closed form from the unique minimiser, for every instance on
the grid; the other certificates check the convexity itself and the scalar facts the closed form is built from.

Every certificate function takes its inputs as keyword arguments with defaults (the grid, the closed-form
function), so a test can plant a wrong closed form through the same path and see the certificate fail.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from ufm.etf import etf_gram_error
from ufm.objectives.mixup import MixupData, mixup_feature_loss, soft_target
from ufm.precision import float64
from ufm.problems.mixup import MixupProblem
from ufm.proofs_check.certificate import EPS, Certificate, worst
from ufm.solver import CONVERGED, SolverOptions, minimise
from ufm.theory import mixup as theory

FAMILY = "mixup"
DESCRIPTION = "mixup CE with a fixed simplex-ETF classifier (Fisher, Meng, Papyan, ICLR 2024, Theorem 3.1)"
SOURCE = "Fisher, Meng, Papyan, ICLR 2024, Theorem 3.1; stated in ufm/theory/mixup.py"

# The grid: C in {2, 3, 10}; d in {C-1 (minimal), C, 2C+1}; (m, mu) giving kappa from ~1 to ~8000.
M_MU = ((1.0, 1e-2), (1.0, 1.0), (2.0, 1e-3))
N_LAMBDAS = 11  # 0, 0.1, ..., 1: contains lam = 1/2 and both endpoints
GRID = tuple(
    MixupProblem(C=C, d=d, m=m, mu=mu, n_lambdas=N_LAMBDAS, seed=s)
    for s, (C, d) in enumerate((C, d) for C in (2, 3, 10) for d in (C - 1, C, 2 * C + 1))
    for m, mu in M_MU
)

# Tolerances, and why.
ETF_GRAM_TOL = 1e-14  # the hypothesis "W is a simplex ETF": ||W W^T - g P||_F / ||W W^T||_F (built to ~1e-16)
GRAD_TOL = 64 * EPS  # relative gradient at the closed form, normalised by the size of the terms it is built from
#                      (see _gradient_scale): a correct closed form sits at a few eps, a wrong one at >= 1e-3
DISTANCE_TOL = 1e-10  # ||grad f|| / (mu ||h||): a rigorous bound on the relative distance to the true minimiser;
#                       at rounding it is ~ kappa * eps (<= 2e-12 for kappa <= 8e3)
MODULUS_TOL = 1e-10  # smallest Hessian eigenvalue / mu >= 1 - this (f - (mu/2)||h||^2 is convex: eig >= mu)
ROUNDING = 64 * EPS  # relative rounding allowance for objective values (a sum of O(C) rounded terms)


def _instance(problem: MixupProblem) -> dict:
    C, d = problem.C, problem.d
    exercises = [
        "d = C-1: the row space of W is all of R^d"
        if d == C - 1
        else "d > C-1: h has a free orthogonal complement (Hessian eigenvalue exactly mu there)"
    ]
    if C == 2:
        exercises.append("C = 2: no other class; the common logit level is fixed by a + b = 0")
    exercises.append(
        "kappa < 10: strong regularisation"
        if problem.kappa < 10
        else "kappa >= 10: weak regularisation (Hessian condition number ~ kappa)"
    )
    return {
        "C": C,
        "d": d,
        "m": problem.m,
        "mu": problem.mu,
        "kappa": problem.kappa,
        "seed": problem.seed,
        "n_lambdas": problem.n_lambdas,
        "exercises": exercises,
    }


def _hypotheses(problem: MixupProblem, W: np.ndarray) -> dict:
    gram_err, m_recovered = etf_gram_error(W)
    assert problem.d is not None  # the problem sets d = C when it is not given
    return {
        "etf_gram_rel_error": gram_err,
        "etf_multiplier_rel_error": abs(m_recovered - problem.m) / problem.m,
        "d_minus_C_plus_1": problem.d - (problem.C - 1),
    }


@jax.jit
def _derivatives(h, W, y, mu):
    """Loss, gradient and Hessian eigenvalues of the mixup objective at each row of h (JAX, float64)."""

    def one(h, y):
        data = MixupData(W, y, mu)
        f, g = jax.value_and_grad(mixup_feature_loss)(h, data)
        eig = jnp.linalg.eigvalsh(jax.hessian(mixup_feature_loss)(h, data))
        return f, g, eig

    return jax.vmap(one)(h, y)


def _gradient_scale(W_norm: float, h: np.ndarray, mu: float) -> np.ndarray:
    """Size of what rounding perturbs in ``grad f = W^T (softmax(W h) - y) + mu h``.

    The logits W h carry an absolute error ~ eps ||W|| ||h||, which W^T multiplies again, and the CE part is
    bounded by ||W|| ||p - y|| <= sqrt(2) ||W||: so ``||W|| (||W|| ||h|| + 1) + mu ||h||``.
    """
    hn = np.linalg.norm(h, axis=-1)
    return W_norm * (W_norm * hn + 1.0) + mu * hn


def _optimality(problems, features, same_class: bool, theorem: str, statement: str) -> Certificate:
    t0 = time.perf_counter()
    instances, hyp, rel_grad, dist, eig_ratio, eig_min, where_g, where_d, where_e = [], [], [], [], [], [], [], [], []
    for problem in problems:
        W = problem.classifier()
        c, c_prime, lam = problem.grid()
        keep = (c == c_prime) if same_class else (c != c_prime)
        c, c_prime, lam = c[keep], c_prime[keep], lam[keep]
        h = np.asarray(features(W, problem.m, problem.mu, c, c_prime, lam), dtype=float)
        y = soft_target(problem.C, c, c_prime, lam)
        _, g, eig = (np.asarray(x) for x in _derivatives(jnp.asarray(h), jnp.asarray(W), y, jnp.asarray(problem.mu)))
        g_norm = np.linalg.norm(g, axis=-1)
        K = theory.same_class_root(problem.C, problem.kappa)
        h_scale = np.maximum(np.linalg.norm(h, axis=-1), (problem.C - 1) * abs(K) / problem.m)  # h = 0 at C=2, lam=1/2
        rg = g_norm / _gradient_scale(float(np.linalg.norm(W, 2)), h, problem.mu)
        db = g_norm / (problem.mu * h_scale)
        lo = eig[:, 0]
        ig, idd, ie = int(np.argmax(rg)), int(np.argmax(db)), int(np.argmin(lo))
        sub = lambda i: {"c": int(c[i]), "c_prime": int(c_prime[i]), "lam": float(lam[i])}
        record = _instance(problem)
        record["hypotheses"] = _hypotheses(problem, W)
        record["numbers"] = {
            "subproblems": int(c.size),
            "max_rel_grad": float(rg[ig]),
            "max_distance_bound": float(db[idd]),
            "min_hessian_eig": float(lo[ie]),
            "min_hessian_eig_over_mu": float(lo[ie] / problem.mu),
            "max_hessian_eig": float(np.max(eig[:, -1])),
        }
        instances.append(record)
        hyp.append(record["hypotheses"])
        rel_grad.append(rg[ig])
        dist.append(db[idd])
        eig_ratio.append(lo[ie] / problem.mu)
        eig_min.append(lo[ie])
        where_g.append(sub(ig))
        where_d.append(sub(idd))
        where_e.append(sub(ie))
    ids = [{k: r[k] for k in ("C", "d", "m", "mu", "kappa")} for r in instances]
    measurements = [
        worst(
            rel_grad,
            ids,
            "first order: ||grad f(h*)|| / (||W|| (||W|| ||h*|| + 1) + mu ||h*||)",
            GRAD_TOL,
            where=where_g,
            note="JAX gradient of ufm.objectives.mixup.mixup_feature_loss at the closed form",
        ),
        worst(
            dist,
            ids,
            "distance to the minimiser: ||grad f(h*)|| / (mu ||h*||) (strong convexity bound)",
            DISTANCE_TOL,
            where=where_d,
        ),
        worst(
            eig_ratio,
            ids,
            "second order: smallest Hessian eigenvalue / mu",
            1 - MODULUS_TOL,
            sense=">=",
            where=where_e,
            note="> 0: strict minimum; >= mu: mu-strongly convex",
        ),
        worst(
            [x["etf_gram_rel_error"] for x in hyp], ids, "hypothesis: W W^T simplex-ETF Gram (rel error)", ETF_GRAM_TOL
        ),
        worst(
            [x["etf_multiplier_rel_error"] for x in hyp],
            ids,
            "hypothesis: ETF multiplier = m (rel error)",
            ETF_GRAM_TOL,
        ),
        worst([x["d_minus_C_plus_1"] for x in hyp], ids, "hypothesis: d - (C-1) >= 0", 0, sense=">="),
    ]
    return Certificate(
        FAMILY,
        theorem,
        SOURCE,
        statement,
        "closed form evaluated, no solver: JAX gradient and Hessian eigenvalues of the objective at "
        "it, in float64, for every subproblem (c, c', lam) of every instance",
        measurements,
        instances,
        min_hessian_eig=float(np.min(eig_min)),
        restarts=0,
        seconds=time.perf_counter() - t0,
    )


@float64
def same_class_optimality(*, problems=GRID, features=theory.optimal_features) -> Certificate:
    """Theorem 3.1, same class: ``h*_cc = -((C-1) K/m^2) w_c`` minimises f for every lam (c = c')."""
    return _optimality(
        problems,
        features,
        True,
        "Thm 3.1 same class h*_cc",
        "for c = c' and every lam, h*_cc = -((C-1)K/m^2) w_c, K < 0 the root of "
        "K(C-1+e^{-CK}) + kappa = 0, is the unique minimiser of f",
    )


@float64
def different_class_optimality(*, problems=GRID, features=theory.optimal_features) -> Certificate:
    """Theorem 3.1, different classes: ``h*_cc'(lam) = (C-1)/(C m^2) (a w_c + b w_c')``, (a, b) the gap system."""
    return _optimality(
        problems,
        features,
        False,
        "Thm 3.1 different class h*_cc'(lam)",
        "for c != c', h*_cc'(lam) = (C-1)/(C m^2) (a w_c + b w_c') with (a, b) the unique solution of "
        "a = kappa(lam - p_c + p_o), b = kappa(1 - lam - p_c' + p_o), is the unique minimiser of f",
    )


CONVEXITY_GRID = tuple(p for p in GRID if p.d == 2 * p.C + 1)
RESTARTS = 3


RESTART_LAMBDAS = 5  # restarts run on lam in {0, 1/4, 1/2, 3/4, 1} (every class pair)
RESTART_SCALES = (1.0, 3.0, 10.0)  # restart k starts at distance ~ RESTART_SCALES[k % 3] x the optimal scale
RESTART_OPTIONS = SolverOptions(rtol=1e-12, max_steps=300, progress=False, label="restarts")


def _restarts(problems, features, restarts: int, rng) -> list:
    """Solver runs from random starts for problems of one shape (C, d), batched into one :func:`minimise` call.

    Each problem's subproblems are those of a ``RESTART_LAMBDAS`` grid; returns per problem
    ``(h_star, loss, params, status, steps)`` with ``restarts`` consecutive runs per subproblem.
    """
    Ws, ys, mus, h0s, h_stars = [], [], [], [], []
    for problem in problems:
        W = problem.classifier()
        c, c_prime, lam = dataclasses.replace(problem, n_lambdas=RESTART_LAMBDAS).grid()
        h_star = np.asarray(features(W, problem.m, problem.mu, c, c_prime, lam), dtype=float)
        n, d = h_star.shape
        r = (problem.C - 1) * abs(theory.same_class_root(problem.C, problem.kappa)) / problem.m
        dist = r * np.resize(np.asarray(RESTART_SCALES), n * restarts)[:, None]
        Ws.append(np.repeat(W[None], n * restarts, axis=0))
        ys.append(np.repeat(np.asarray(soft_target(problem.C, c, c_prime, lam)), restarts, axis=0))
        mus.append(np.full(n * restarts, problem.mu))
        h0s.append(np.repeat(h_star, restarts, axis=0) + dist * rng.standard_normal((n * restarts, d)) / np.sqrt(d))
        h_stars.append(h_star)
    data = MixupData(*(jnp.asarray(np.concatenate(x)) for x in (Ws, ys, mus)))
    sol = minimise(
        mixup_feature_loss,
        jnp.asarray(np.concatenate(h0s)),
        data,
        args_axes=MixupData(0, 0, 0),  # type: ignore[arg-type]  # vmap axes, not data
        options=RESTART_OPTIONS,
    )
    bounds = np.cumsum([0] + [len(h) for h in h0s])
    params = np.asarray(sol.params)
    return [
        (h_star, sol.loss[i:j], params[i:j], sol.status[i:j], sol.steps[i:j], data.y[i:j])
        for h_star, i, j in zip(h_stars, bounds[:-1], bounds[1:])
    ]


@float64
def convexity(
    *, problems=CONVEXITY_GRID, features=theory.optimal_features, restarts: int = RESTARTS, seed: int = 0
) -> Certificate:
    """Global evidence: f is mu-strongly convex, and seeded solver restarts never beat the closed form.

    Convexity, two ways: the Hessian's smallest eigenvalue at random points (from near the optimum to far into
    the saturated softmax) is >= mu; and the zero-order inequality
    ``f((x+y)/2) <= (f(x)+f(y))/2 - (mu/8)||x-y||^2`` on random chords. Then ``restarts`` runs per subproblem of
    :func:`ufm.solver.minimise` from random starts 1, 3 and 10 times the optimal scale away must end no lower than
    f(closed form) (up to rounding); converged ones must end at the closed form. Unconverged restarts are counted
    and reported with their final loss, not graded: they are evidence neither way.
    """
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    runs: dict[int, tuple] = {}  # problem index -> (closed form, losses, ends, status, steps, targets)
    for shape in sorted({(p.C, p.d) for p in problems}):
        group = [i for i, p in enumerate(problems) if (p.C, p.d) == shape]
        runs.update(zip(group, _restarts([problems[i] for i in group], features, restarts, rng)))
    instances, ids = [], []
    eig_ratio, chord, lower, dist, unconverged = [], [], [], [], []
    for i, problem in enumerate(problems):
        W = problem.classifier()
        c, c_prime, lam = problem.grid()
        h_star = np.asarray(features(W, problem.m, problem.mu, c, c_prime, lam), dtype=float)
        y = soft_target(problem.C, c, c_prime, lam)
        r = (problem.C - 1) * abs(theory.same_class_root(problem.C, problem.kappa)) / problem.m  # optimal scale
        n, d = h_star.shape
        Wj, muj = jnp.asarray(W), jnp.asarray(problem.mu)
        f = lambda x: np.asarray(_derivatives(jnp.asarray(x), Wj, y, muj)[0])
        # Hessian at random points at distances 0.1 r .. 100 r from the closed form
        scales = np.repeat([0.1, 1.0, 10.0, 100.0], -(-n // 4))[:n, None]
        pts = h_star + scales * r * rng.standard_normal((n, d)) / np.sqrt(d)
        eig = np.asarray(_derivatives(jnp.asarray(pts), Wj, y, muj)[2])
        # strong-convexity inequality on random chords
        x1 = h_star + r * rng.standard_normal((n, d))
        x2 = h_star + r * rng.standard_normal((n, d))
        f1, f2, fm = f(x1), f(x2), f((x1 + x2) / 2)
        excess = fm - (f1 + f2) / 2 + problem.mu / 8 * np.sum((x1 - x2) ** 2, axis=-1)
        chord_rel = np.max(excess / np.maximum(1.0, np.maximum(np.abs(f1), np.abs(f2))))
        # where the restarts ended
        h_run, loss, params, status, steps, y_run = runs[i]
        f_star = np.asarray(_derivatives(jnp.asarray(np.repeat(h_run, restarts, axis=0)), Wj, y_run, muj)[0])
        below = (f_star - loss) / np.maximum(1.0, np.abs(f_star))  # > 0: the solver beat the closed form
        ok = status == CONVERGED
        end_dist = np.linalg.norm(params - np.repeat(h_run, restarts, axis=0), axis=-1)[ok] / r
        record = _instance(problem)
        record["hypotheses"] = _hypotheses(problem, W)
        record["numbers"] = {
            "random_points": int(n),
            "min_hessian_eig_over_mu_random_points": float(np.min(eig[:, 0]) / problem.mu),
            "max_chord_excess_rel": float(chord_rel),
            "restarts": int(loss.size),
            "restarts_converged": int(np.sum(status == CONVERGED)),
            "max_restart_loss_below_closed_form_rel": float(np.max(below)),
            "max_restart_end_distance_rel": float(np.max(end_dist, initial=0.0)),
            "unconverged_restarts_loss_minus_closed_form": (loss[~ok] - f_star[~ok]).tolist(),
            "max_restart_steps": int(np.max(steps)),
        }
        instances.append(record)
        ids.append({k: record[k] for k in ("C", "d", "m", "mu", "kappa")})
        eig_ratio.append(np.min(eig[:, 0]) / problem.mu)
        chord.append(chord_rel)
        lower.append(np.max(below))
        dist.append(np.max(end_dist, initial=0.0))
        unconverged.append(int(np.sum(status != CONVERGED)))
    n_runs = sum(len(run[1]) for run in runs.values())
    n_converged = sum(int(np.sum(run[3] == CONVERGED)) for run in runs.values())
    measurements = [
        worst(
            lower,
            ids,
            "restarts: (f(h*) - f(solver end)) / max(1, |f|) (> 0: solver beat the closed form)",
            ROUNDING,
            note=f"{restarts} restarts per subproblem of a {RESTART_LAMBDAS}-point lam grid, "
            f"ufm.solver.minimise from {RESTART_SCALES} x the optimal scale",
        ),
        worst(
            eig_ratio, ids, "convexity: smallest Hessian eigenvalue / mu at random points", 1 - MODULUS_TOL, sense=">="
        ),
        worst(chord, ids, "convexity: f(mid) - mean f + (mu/8)||x-y||^2 on random chords (rel)", ROUNDING),
        worst(unconverged, ids, "restarts not converged (no evidence either way; reported)", None),
        worst(
            dist,
            ids,
            "converged restarts: ||solver end - h*|| / ((C-1)|K|/m)",
            1e-8,
            note="the solver stops at relative gradient 1e-12, so its distance is <= 1e-12 |f| / mu",
        ),
    ]
    return Certificate(
        FAMILY,
        "Thm 3.1 convexity + restarts",
        SOURCE,
        "each per-feature problem is mu-strongly convex, so the stationary point is the global "
        "minimiser; no solver restart ends below the closed form",
        "Hessian eigenvalues at random points; strong-convexity chord inequality; seeded restarts of "
        "ufm.solver.minimise",
        measurements,
        instances,
        restarts=n_runs,
        restarts_converged=n_converged,
        seconds=time.perf_counter() - t0,
    )


def _scalar_instances(problems) -> list[tuple[int, float]]:
    """Distinct (C, kappa) of the grid plus extreme kappa (1e-3 and 1e6) for every C."""
    pairs = {(p.C, p.kappa) for p in problems}
    pairs |= {(C, k) for C in {p.C for p in problems} for k in (1e-3, 1e6)}
    return sorted(pairs)


@float64
def same_class_root_unique(*, problems=GRID, root=theory.same_class_root, n_grid: int = 200_001) -> Certificate:
    """The root K < 0 of ``F(K) = K (C-1+e^{-CK}) + kappa`` exists, is unique, and ``root`` computes it.

    Bracket: F(0) = kappa > 0 and F(K_lo) < 0 at ``K_lo = -min(kappa/(C-1), 700/C)`` (the second term keeps
    e^{-CK} finite). Uniqueness: F' = C-1 + e^{-CK}(1-CK) >= C on K <= 0, checked on a fine grid both by the
    derivative and by the differences of F (so F is strictly increasing and crosses zero once); and F >= kappa on
    K >= 0 (no root there). Location: ``root(C, kappa)`` lies in the grid cell of the sign change and its Newton
    correction ``|F(K)| / (|K| F'(K))`` (its relative error to first order) is at rounding.
    """
    t0 = time.perf_counter()
    instances, ids = [], []
    bracketed, dF_ratio, deriv_ratio, pos_ratio, changes, in_cell, newton = [], [], [], [], [], [], []
    for C, kappa in _scalar_instances(problems):
        K_lo = -min(kappa / (C - 1), 700.0 / C)
        grid = np.linspace(K_lo, 0.0, n_grid)
        with np.errstate(over="ignore"):
            F = theory.same_class_equation(grid, C, kappa)
        dF = np.diff(F) / np.diff(grid)
        deriv = C - 1 + np.exp(-C * grid) * (1 - C * grid)
        Kpos = np.linspace(0.0, 10.0, 10_001)
        sign_change = np.flatnonzero(np.diff(np.sign(F)) != 0)
        K = float(root(C, kappa))
        Fk, dFk = float(theory.same_class_equation(K, C, kappa)), float(C - 1 + np.exp(-C * K) * (1 - C * K))
        ok_cell = sign_change.size == 1 and grid[sign_change[0]] <= K <= grid[sign_change[0] + 1]
        record = {
            "C": C,
            "kappa": kappa,
            "K": K,
            "bracket": [K_lo, 0.0],
            "F_at_bracket": [float(F[0]), float(F[-1])],
            "grid_points": n_grid,
            "sign_changes": int(sign_change.size),
            "root_in_sign_change_cell": ok_cell,
            "newton_correction_rel": abs(Fk) / (abs(K) * dFk) if K != 0 else float("inf"),
            "target_probability_1_plus_(C-1)K/kappa": 1 + (C - 1) * K / kappa,
        }
        instances.append(record)
        ids.append({"C": C, "kappa": kappa})
        bracketed.append(float(F[0] < 0 < F[-1]))
        dF_ratio.append(np.min(dF) / C)
        deriv_ratio.append(np.min(deriv) / C)
        pos_ratio.append(np.min(theory.same_class_equation(Kpos, C, kappa)) / kappa)
        changes.append(abs(sign_change.size - 1))
        in_cell.append(float(ok_cell))
        newton.append(record["newton_correction_rel"])
    measurements = [
        worst(
            newton,
            ids,
            "root: Newton correction |F(K)| / (|K| F'(K))",
            256 * EPS,
            note="rounding of F at the root is ~ eps * C|K| * kappa; F'|K| >= kappa",
        ),
        worst(bracketed, ids, "sign change bracketed: F(K_lo) < 0 < F(0) (1 = yes)", 1.0, sense=">="),
        worst(changes, ids, "|number of sign changes on the fine grid - 1|", 0),
        worst(in_cell, ids, "root lies in the sign-change cell (1 = yes)", 1.0, sense=">="),
        worst(
            dF_ratio,
            ids,
            "monotone: min (Delta F / Delta K) / C on the grid",
            1 - 1e-6,
            sense=">=",
            note="F' >= C on K <= 0; 1e-6 allows rounding of differences near K = 0",
        ),
        worst(deriv_ratio, ids, "monotone: min F'(K) / C on the grid", 1.0, sense=">="),
        worst(pos_ratio, ids, "no root for K >= 0: min F / kappa on [0, 10]", 1.0, sense=">="),
    ]
    return Certificate(
        FAMILY,
        "Thm 3.1 K root unique",
        SOURCE,
        "K(C-1+e^{-CK}) + kappa = 0 has exactly one root, K < 0",
        "sign change bracketed; monotone on a fine grid by differences and by the derivative; root "
        "located in the sign-change cell and polished to rounding",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


@float64
def gap_symmetry(*, problems=GRID, gaps=theory.different_class_gaps, n_lambdas: int = 101) -> Certificate:
    """Symmetry ``b(lam) = a(1-lam)``, ``a = b`` at lam = 1/2, and the endpoint lam = 1 giving the same-class point.

    Endpoint: at lam = 1 the target is e_c, so the logits are the same-class ones: ``(a, b) = (-C K, 0)`` for
    C >= 3 and ``(-K, K)`` for C = 2 (gauge a + b = 0). The printed (a, b) system's residual is reported too.
    Rounding: (a, b) minimise a convex function whose Hessian has eigenvalues down to ~1/kappa, so the gaps carry
    errors ~ kappa eps relative; the bound is ``64 eps (1 + kappa)``.
    """
    t0 = time.perf_counter()
    lam = np.linspace(0.0, 1.0, n_lambdas)
    instances, ids, sym, endpoint, system = [], [], [], [], []
    for C, kappa in _scalar_instances(problems):
        a, b = (np.asarray(x) for x in gaps(C, kappa, lam))
        a_flip, _ = (np.asarray(x) for x in gaps(C, kappa, 1.0 - lam))
        scale = max(1.0, float(np.max(np.abs(a))))
        K = theory.same_class_root(C, kappa)
        expected = (-C * K, 0.0) if C >= 3 else (-K, K)
        sym_err = float(np.max(np.abs(b - a_flip))) / scale / (1 + kappa)
        end_err = max(abs(a[-1] - expected[0]), abs(b[-1] - expected[1])) / scale / (1 + kappa)
        half = n_lambdas // 2
        res = float(np.max(theory.gap_residual(C, kappa, lam, a, b))) / (kappa * scale) if C >= 3 else float("nan")
        instances.append(
            {
                "C": C,
                "kappa": kappa,
                "n_lambdas": n_lambdas,
                "a_half": float(a[half]),
                "b_half": float(b[half]),
                "symmetry_err_rel": sym_err,
                "endpoint_err_rel": end_err,
                "gap_system_residual_rel": res,
            }
        )
        ids.append({"C": C, "kappa": kappa})
        sym.append(sym_err)
        endpoint.append(end_err)
        system.append(res if C >= 3 else 0.0)
    measurements = [
        worst(sym, ids, "b(lam) = a(1-lam): max |b(lam) - a(1-lam)| / max(1,|a|) / (1+kappa)", 64 * EPS),
        worst(endpoint, ids, "lam = 1: (a, b) = same-class gaps (-CK, 0) [C=2: (-K, K)], rel / (1+kappa)", 64 * EPS),
        worst(system, ids, "printed (a, b) system residual / (kappa max(1,|a|)) (C >= 3)", 64 * EPS),
    ]
    return Certificate(
        FAMILY,
        "Thm 3.1 symmetry b(lam)=a(1-lam)",
        SOURCE,
        "b(lam) = a(1-lam); a = b at lam = 1/2; lam = 1 gives the same-class optimum",
        f"gaps on a {n_lambdas}-point lam grid and on its mirror 1 - lam",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


LIMIT_KAPPAS = tuple(10.0**k for k in range(0, 7))


@float64
def large_kappa_limit(*, classes=(2, 3, 10), kappas=LIMIT_KAPPAS, features=theory.optimal_features) -> Certificate:
    """kappa -> infinity: ``softmax(W h*) -> y`` (calibrated softmax on mixup targets), monotonically.

    On the first-order condition ``z = kappa (y - softmax(z))`` the gap is ``|z|/kappa``, with |z| growing like
    log kappa: the gap must fall strictly with kappa and be below 1e-4 at kappa = 1e6 (where log(kappa)/kappa is
    1.4e-5). Instances: m = 1, d = C, mu = C/((C-1) kappa), every (c, c', lam) on an 11-point lam grid.
    """
    t0 = time.perf_counter()
    instances, ids, decrease, final = [], [], [], []
    for C in classes:
        gaps: list[float] = []
        for k in kappas:
            problem = MixupProblem(C=C, d=C, m=1.0, mu=C / ((C - 1) * k), n_lambdas=N_LAMBDAS, seed=0)
            W = problem.classifier()
            c, c_prime, lam = problem.grid()
            h = np.asarray(features(W, 1.0, problem.mu, c, c_prime, lam), dtype=float)
            p = special.softmax(h @ W.T, axis=-1)
            gaps.append(float(np.max(np.abs(p - np.asarray(soft_target(C, c, c_prime, lam))))))
        gaps_k = np.array(gaps)
        ratio = gaps_k[1:] / gaps_k[:-1]
        instances.append(
            {
                "C": C,
                "kappas": list(kappas),
                "max_abs_softmax_minus_target": gaps_k.tolist(),
                "gap_times_kappa_over_log_kappa": [g * k / max(np.log(k), 1.0) for g, k in zip(gaps_k, kappas)],
            }
        )
        ids.append({"C": C})
        decrease.append(float(np.max(ratio)))
        final.append(float(gaps_k[-1]))
    measurements = [
        worst(final, ids, f"max |softmax(W h*) - y| at kappa = {kappas[-1]:.0e}", 1e-4),
        worst(
            decrease,
            ids,
            "monotone: max gap(10 kappa) / gap(kappa)",
            1.0 - 1e-3,
            note="< 1: strictly decreasing along the kappa sequence",
        ),
    ]
    return Certificate(
        FAMILY,
        "Thm 3.1 kappa->inf: softmax->y",
        SOURCE,
        "as kappa -> infinity the optimal softmax tends to the mixup target y",
        "closed form on kappa = 1e0 .. 1e6; softmax gap to the target",
        measurements,
        instances,
        seconds=time.perf_counter() - t0,
    )


CERTIFICATES = [
    same_class_optimality,
    different_class_optimality,
    convexity,
    same_class_root_unique,
    gap_symmetry,
    large_kappa_limit,
]
