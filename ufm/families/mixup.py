"""Mixup CE with a fixed simplex ETF (Theorem 3.1 of Fisher, Meng, Papyan, ICLR 2024): solve every
(c, c', lambda), check, report.

``--points k`` (k >= 3) runs several-point Dirichlet mixup instead (docs/local_linearity.md): random k-point mixes
checked against the k-point closed form, and the non-linearity measure of Chaudhry et al.'s eq. (3).
"""

from __future__ import annotations

import dataclasses
import time

import jax.numpy as jnp
import numpy as np

from ufm.checks import Check
from ufm.checks import mixup as checks
from ufm.checks import mixup_points as point_checks
from ufm.estimate import driving_field
from ufm.metrics import nonlinearity
from ufm.objectives.mixup import (MixupData, mixed_soft_target, mixup_feature_loss, soft_target,
                                  square_feature_loss)
from ufm.problems import InputError
from ufm.problems.mixup import MixupProblem
from ufm.report import Report
from ufm.solver import Solution, SolverOptions, minimise, peak_bytes
from ufm.theory import mixup as theory

NAME = "mixup"
DESCRIPTION = "mixup cross-entropy, fixed simplex-ETF classifier, free features (Fisher et al. 2024, Thm 3.1)"
FLAGS = {"n_lambdas": "--lambdas", "n_mixes": "--mixes"}
SOLVER = SolverOptions(rtol=1e-12, linear_solver="cholesky", max_steps=200)
DEFAULT_LAMBDAS = MixupProblem.n_lambdas


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup")
    group.add_argument("--C", type=int, default=10, help="number of classes (>= 2)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    group.add_argument("--m", type=float, default=1.0, help="ETF multiplier, ||w_c|| = m (in [1e-2, 1e2])")
    group.add_argument("--mu", type=float, default=1e-2, help="feature weight decay mu in (mu/2)||h||^2 (> 0)")
    group.add_argument("--lambdas", type=int, default=None, dest="n_lambdas",
                       help="lambda grid size on [0, 1] (>= 2; default 101; only with --points 2)")
    group.add_argument("--seed", type=int, default=0, help="seed of the ETF embedding and of the random starts")
    group.add_argument("--points", type=int, default=2,
                       help="number of mixed points k (>= 2; k >= 3: several-point Dirichlet mixup, Chaudhry et al.)")
    group.add_argument("--alpha", type=float, default=None,
                       help="Dirichlet concentration of the k-point weights (> 0; default 1; only with --points >= 3)")
    group.add_argument("--mixes", type=int, default=None, dest="n_mixes",
                       help="number of random k-point mixes (>= 1; default 1000; only with --points >= 3)")


# Every flag applies to the one variant; --lambdas (pair grid) versus --alpha/--mixes (points >= 3) depend on
# --points and are refused by problem_from_args / MixupProblem instead.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def problem_from_args(ns) -> MixupProblem:
    if ns.n_lambdas is not None and isinstance(ns.points, int) and ns.points > 2:
        raise InputError("n_lambdas", "only used with --points 2 (points >= 3 draws random mixes: --mixes)")
    n_lambdas = DEFAULT_LAMBDAS if ns.n_lambdas is None else ns.n_lambdas
    return MixupProblem(C=ns.C, d=ns.d, m=ns.m, mu=ns.mu, n_lambdas=n_lambdas, seed=ns.seed,
                        points=ns.points, alpha=ns.alpha, n_mixes=ns.n_mixes)


def _subproblems(sizes: dict) -> int:
    """Number of subproblems of the main solve: the pair grid, or the random mixes plus vertices and barycentres."""
    C = sizes["C"]
    if sizes["points"] <= 2:
        return C * C * sizes["n_lambdas"]
    return sizes["n_mixes"] + C + (C if sizes["points"] < C else 0)


def _estimate(sizes: dict) -> int:
    """Peak bytes of a run from its sizes (python ints: no overflow, nothing allocated); see memory_estimate."""
    C, d, k = sizes["C"], sizes["d"], sizes["points"]
    B = _subproblems(sizes)
    d_other = C - 1 if d != C - 1 else 2 * C + 1  # other_dimension
    d_max = max(d, d_other)

    def solve(dim, batch):  # one solve; its data and largest intermediates: W, targets, logits, features
        return peak_bytes(dim, batch, SOLVER, 8 * (C * dim + 2 * batch * C + batch * dim))

    # main and square-loss solves in d, the d-independence one in d_other (random mixes only with points >= 3)
    solves = max(solve(d, B), solve(d_other, B if k <= 2 else sizes["n_mixes"]))
    # the ETF (Helmert basis C x (C-1), isometry d x (C-1)) for both dimensions
    etf = 8 * (C * C + 2 * d_max * C)
    # arrays of the report: features of three solves, closed form, vertex stacks (n, 2 or k, d), logits, targets
    report = 8 * (16 * B * d_max + 8 * B * C)
    if k > 2:
        n = sizes["n_mixes"]
        # (n, k, d) gathers of the closed form and of NonLin (CE, square, the kappa sweep), per-mix python lists
        report += 8 * 8 * n * k * d_max + n * (400 + 16 * k)
    return solves + etf + report


def _sizes(problem: MixupProblem) -> dict:
    return {"C": problem.C, "d": problem.d, "n_lambdas": problem.n_lambdas, "points": problem.points,
            "n_mixes": problem.n_mixes or 0}


def memory_estimate(problem: MixupProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of :func:`run`: the main, d-independence and square-loss solves (each
    ``ufm.solver.peak_bytes`` of its batch, shared data counted once per solve), the ETFs and the report's arrays.
    From the sizes only; nothing is allocated."""
    sizes = _sizes(problem)
    reference = {"C": 10, "d": sizes["C"], **({"n_lambdas": DEFAULT_LAMBDAS} if problem.points <= 2
                                              else {"n_mixes": 1000, "points": 3})}
    return _estimate(sizes), driving_field(_estimate, sizes, reference)


@dataclasses.dataclass(frozen=True)
class MixupSolution:
    """Solver output on the full grid: W, subproblem labels, features h (n x d) and the convergence record."""

    W: np.ndarray
    c: np.ndarray
    c_prime: np.ndarray
    lam: np.ndarray
    h: np.ndarray
    solution: Solution


def solve(problem: MixupProblem, *, subproblems=None, loss=mixup_feature_loss, options: SolverOptions | None = None,
          progress: bool = False) -> MixupSolution:
    """Minimise ``loss`` for every (c, c', lam) of the problem's grid (or of ``subproblems``, a tuple of three
    equal-length arrays) in the full dimension d, from seeded random starts (nothing of the ETF structure or of the
    theorem is used)."""
    W = problem.classifier()
    c, c_prime, lam = problem.grid() if subproblems is None else (np.asarray(x) for x in subproblems)
    h, sol = solve_targets(problem, W, soft_target(problem.C, c, c_prime, lam), loss=loss, options=options,
                           progress=progress)
    return MixupSolution(W, c, c_prime, lam, h, sol)


def solve_targets(problem: MixupProblem, W: np.ndarray, y, *, loss=mixup_feature_loss,
                  options: SolverOptions | None = None, progress: bool = False) -> tuple[np.ndarray, Solution]:
    """Minimise ``loss`` for every soft target row of ``y`` (n, C) from seeded random starts in R^d.

    The starts are N(0, 1/(d m^2)): logits ``W h0`` of order 1 whatever the classifier's scale m (with N(0, 1/d)
    starts, m = 100 gave logits ~100, a saturated softmax with curvature mu only, and a subproblem ran out of its
    200 Newton steps)."""
    y = jnp.asarray(y)
    data = MixupData(jnp.asarray(W), y, jnp.asarray(problem.mu))
    h0 = (np.random.default_rng(problem.seed).standard_normal((y.shape[0], problem.d))
          / (np.sqrt(problem.d) * problem.m))
    sol = minimise(loss, jnp.asarray(h0), data, args_axes=MixupData(None, 0, None),
                   options=dataclasses.replace(options or SOLVER, progress=progress))
    return np.asarray(sol.params), sol


def theory_features(problem: MixupProblem, W: np.ndarray, c, c_prime, lam) -> np.ndarray:
    return theory.optimal_features(W, problem.m, problem.mu, c, c_prime, lam)


def other_dimension(problem: MixupProblem) -> MixupProblem:
    """A second problem with another feature dimension and ETF embedding, for the d-independence check."""
    d_other = problem.C - 1 if problem.d != problem.C - 1 else 2 * problem.C + 1
    return dataclasses.replace(problem, d=d_other, seed=problem.seed + 1)


def converged_check(sol: Solution) -> Check:
    """Every subproblem of the main solve converged: graded on the number that did not (0 passes; a count, not an
    infinite value, so that a failing check stays finite), with the max relative gradient and the statuses."""
    rep = sol.report()
    bad = int(np.sum(~sol.converged))
    detail = f"max rel grad {rep['max_rel_grad_norm']:.2e} (rtol {SOLVER.rtol:.0e})" + (
        f"; {bad} not converged: " + "; ".join(f"{n} {msg}" for msg, n in rep["failures"].items()) if bad else "")
    return Check("solver converged on every subproblem (number not converged)", float(bad), 0.0, detail)


def auxiliary_checks(solves) -> list[Check]:
    """A failing check (the number not converged) for each auxiliary solve (name, Solution) that did not converge
    everywhere."""
    return [Check(f"auxiliary {name} solve converged (number not converged)", float(np.sum(~sol.converged)), 0.0,
                  f"{int(np.sum(~sol.converged))} of {sol.converged.size} subproblems: "
                  + "; ".join(f"{n} {msg}" for msg, n in sol.report()["failures"].items()))
            for name, sol in solves if not sol.converged.all()]


# Below this norm of the linear mix of unit vertices (r, ``theory.linear_map_norm``) the optimum's direction is not
# determined by float64 (the exact optimum is 0 at the uniform target; what the solver returns there is rounding
# noise): eq. (3), which normalises it, is undefined and left out of the reported (ungraded) CE means.
NONLIN_UNDEFINED_R = 1e-8


def nonlinearity_defined(h_mix: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Mixes where the normalised NonLin is defined: a nonzero mixed feature whose target is not (to rounding)
    uniform."""
    return (r > NONLIN_UNDEFINED_R) & (np.linalg.norm(h_mix, axis=-1) > 0)


def undefined_note(defined: np.ndarray) -> str:
    left = int(np.sum(~defined))
    return f"; {left} mix(es) at the uniform target left out (zero optimum: eq. (3) undefined)" if left else ""


def run(problem: MixupProblem, *, progress: bool = True) -> Report:
    if problem.points > 2:
        return run_points(problem, progress=progress)
    t0 = time.perf_counter()
    main = solve(problem, progress=progress)
    W, c, c_prime, lam, h = main.W, main.c, main.c_prime, main.lam, main.h
    h_theory = theory_features(problem, W, c, c_prime, lam)
    K = theory.same_class_root(problem.C, problem.kappa)
    same_norm = (problem.C - 1) * abs(K) / problem.m
    rel_err = checks.relative_errors(h, h_theory, same_norm)

    other = other_dimension(problem)
    alt = solve(other, progress=False)
    square = solve(problem, loss=square_feature_loss, progress=False)

    # K as the solver sees it: the centred non-target logit of a same-class optimum (Theorem 3.1).
    z = h @ W.T
    same = c == c_prime
    z_same = z[same] - z[same].mean(axis=-1, keepdims=True)
    K_solver = float(np.mean(z_same[np.arange(z_same.shape[0]), (c[same] + 1) % problem.C]))

    tol = checks.feature_tolerance(problem.kappa)
    result_checks = [
        converged_check(main.solution),
        checks.feature_error(rel_err, c, c_prime, lam, tol),
        Check("K: solver's non-target logit vs root (rel)", abs(K_solver - K) / abs(K), tol),
        checks.same_class_lambda_independence(h, c, c_prime, tol),
        checks.same_class_alignment(W, h, c, c_prime, tol),
        checks.outside_pair_span(W, h, c, c_prime, same_norm, tol),
        checks.boundary_distance_odd(W, h, c, c_prime, lam, problem.n_lambdas, tol),
        checks.half_mix_bulge(h, c, c_prime, lam, problem.C, problem.kappa, tol),
        checks.dimension_independence(z, alt.h @ alt.W.T, problem.d, other.d, (problem.C - 1) * abs(K), tol),
        checks.square_loss_linearity(square.h, c, c_prime, problem.n_lambdas, tol),
        checks.calibration_gap(W, h, c, c_prime, lam),
    ]
    # Eq. (3) of Chaudhry et al. on the pair grid: vertices are the same-class optima (lambda-independent).
    vertex = np.stack([h[(c == k) & (c_prime == k)].mean(axis=0) for k in range(problem.C)])
    vertex_sq = np.stack([square.h[(c == k) & (c_prime == k)].mean(axis=0) for k in range(problem.C)])
    pair_lam = np.stack([lam, 1 - lam], axis=-1)
    y_grid = np.asarray(soft_target(problem.C, c, c_prime, lam))
    r = theory.linear_map_norm(problem.C, y_grid)
    defined = nonlinearity_defined(h, r)
    nl = nonlinearity(h[defined], vertex[np.stack([c, c_prime], -1)][defined], pair_lam[defined])
    floor = 1.0 - r[defined]
    result_checks += [
        point_checks.square_normalised_floor(square.h, vertex_sq[np.stack([c, c_prime], -1)], pair_lam, r, tol),
        Check("NonLin eq. (3), CE, mean over the grid", float(np.mean(nl)), None,
              f"linear-map floor {np.mean(floor):.6g}; excess {np.mean(nl - floor):.3e}"
              + undefined_note(defined)),
    ]
    result_checks += auxiliary_checks((("d-independence", alt.solution), ("square-loss", square.solution)))

    config = {"loss": NAME, **dataclasses.asdict(problem), "kappa": problem.kappa,
              "solver": dataclasses.asdict(SOLVER)}
    headline = [
        f"ufm mixup: C={problem.C} d={problem.d} m={problem.m:g} mu={problem.mu:g} kappa={problem.kappa:.6g}  "
        f"{problem.n_lambdas} lambdas x {problem.C**2} ordered pairs = {c.size} subproblems",
        f"K (root < 0 of K(C-1+e^(-CK)) + kappa = 0) = {K:.15g}   solver: {K_solver:.15g}",
        f"same-class norm (C-1)|K|/m = {same_norm:.12g}   lam=1/2 bulge ratio = "
        f"{theory.half_mix_bulge_ratio(problem.C, problem.kappa):.12g}",
    ]
    numbers = {"kappa": problem.kappa, "K": K, "K_solver": K_solver, "same_class_norm": same_norm,
               "half_mix_bulge_ratio": theory.half_mix_bulge_ratio(problem.C, problem.kappa),
               "max_rel_error": float(np.max(rel_err)), "nonlin": float(np.mean(nl)),
               "nonlin_floor": float(np.mean(floor)), "seconds": time.perf_counter() - t0}
    arrays = {"W": W, "c": c, "c_prime": c_prime, "lam": lam, "h": h, "h_theory": h_theory, "rel_error": rel_err,
              "loss": main.solution.loss, "grad_norm": main.solution.grad_norm, "steps": main.solution.steps,
              "converged": main.solution.converged}
    return Report(NAME, config, headline, result_checks, main.solution.report(), numbers, arrays)


KAPPA_SWEEP = (0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4)


def structured_mixes(C: int, k: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The C vertices (k copies of one class; their optima are the unmixed features) and, for k < C, the C
    barycentres of k consecutive distinct classes (lam = 1/k each)."""
    out = {"vertex": (np.repeat(np.arange(C)[:, None], k, axis=1), np.full((C, k), 1.0 / k))}
    if k < C:
        out["barycentre"] = ((np.arange(C)[:, None] + np.arange(k)) % C, np.full((C, k), 1.0 / k))
    return out


def nonlinearity_summary(h_mix, h_vertex, classes, lam, y, C: int) -> dict:
    """Mean NonLin over the mixes: normalised (eq. 3), the linear-map floor and the excess over it (over the mixes
    where eq. (3) is defined, see :func:`nonlinearity_defined`; ``undefined`` counts the others), and the
    unnormalised distance relative to the vertex norm (over all mixes)."""
    defined = nonlinearity_defined(h_mix, theory.linear_map_norm(C, y))
    points = h_vertex[classes[defined]]
    nl = nonlinearity(h_mix[defined], points, lam[defined])
    floor = theory.linear_map_nonlinearity(C, y[defined])
    raw = nonlinearity(h_mix, h_vertex[classes], lam, normalise=False) / np.mean(np.linalg.norm(h_vertex, axis=-1))
    mean = (lambda a: float(np.mean(a))) if np.any(defined) else (lambda a: float("nan"))  # none defined: NaN
    return {"nonlin": mean(nl), "floor": mean(floor), "excess": mean(nl - floor),
            "unnormalised_rel": float(np.mean(raw)), "undefined": int(np.sum(~defined))}


def nonlinearity_vs_kappa(problem: MixupProblem, W, classes, lam, y, kappas=KAPPA_SWEEP) -> list[dict]:
    """Closed-form NonLin of the CE optimum at the same mixes for a sweep of kappa (mu varied, m fixed)."""
    rows = []
    C, m = problem.C, problem.m
    vertex_classes = np.repeat(np.arange(C)[:, None], problem.points, axis=1)
    for kap in kappas:
        mu = C * m**2 / ((C - 1) * kap)
        h_mix = theory.mixed_optimal_features(W, m, mu, classes, lam)
        h_vertex = theory.mixed_optimal_features(W, m, mu, vertex_classes, np.full(vertex_classes.shape, 1.0))
        rows.append({"kappa": kap, **nonlinearity_summary(h_mix, h_vertex, classes, lam, y, C)})
    return rows


def run_points(problem: MixupProblem, *, progress: bool = True) -> Report:
    """Several-point mixup (Chaudhry et al.): random Dirichlet mixes plus vertices and barycentres, checked against the
    k-point closed form; NonLin of eq. (3) for CE and the square loss, and its closed-form sweep over kappa."""
    t0 = time.perf_counter()
    C, k = problem.C, problem.points
    W = problem.classifier()
    classes, lam = problem.mixes()
    extra = structured_mixes(C, k)
    parts = [(classes, lam)] + list(extra.values())
    all_classes = np.concatenate([p[0] for p in parts])
    all_lam = np.concatenate([p[1] for p in parts])
    sl = {"random": slice(0, len(classes))}
    start = len(classes)
    for name, (cl, _) in extra.items():
        sl[name] = slice(start, start + len(cl))
        start += len(cl)
    y = np.asarray(mixed_soft_target(C, all_classes, all_lam))

    h, sol = solve_targets(problem, W, y, progress=progress)
    h_theory = theory.mixed_optimal_features(W, problem.m, problem.mu, all_classes, all_lam)
    K = theory.same_class_root(C, problem.kappa)
    vertex_norm = (C - 1) * abs(K) / problem.m
    other = other_dimension(problem)
    W_other = other.classifier()
    h_alt, sol_alt = solve_targets(other, W_other, y[sl["random"]])
    h_sq, sol_sq = solve_targets(problem, W, y, loss=square_feature_loss)

    rnd = sl["random"]
    h_vertex, h_vertex_sq = h[sl["vertex"]], h_sq[sl["vertex"]]
    ce = nonlinearity_summary(h[rnd], h_vertex, classes, lam, y[rnd], C)
    sq = nonlinearity_summary(h_sq[rnd], h_vertex_sq, classes, lam, y[rnd], C)
    sweep = nonlinearity_vs_kappa(problem, W, classes, lam, y[rnd])

    tol = checks.feature_tolerance(problem.kappa)
    feature_check = point_checks.feature_error(h, h_theory, vertex_norm, tol)
    result_checks = [
        converged_check(sol),
        feature_check,
        point_checks.gap_system_residual(W, h, all_classes, all_lam, problem.kappa, tol),
        point_checks.outside_mixed_span(W, h, all_classes, vertex_norm, tol),
    ]
    if "barycentre" in sl:
        bary_classes = extra["barycentre"][0]
        result_checks.append(point_checks.barycentre_bulge(h[sl["barycentre"]], h_vertex[bary_classes].mean(axis=1),
                                                           C, problem.kappa, k, tol))
    result_checks += [
        checks.dimension_independence(h[rnd] @ W.T, h_alt @ W_other.T, problem.d, other.d, (C - 1) * abs(K), tol),
        point_checks.square_linear(h_sq[rnd], h_vertex_sq[classes], lam, tol),
        point_checks.square_normalised_floor(h_sq[rnd], h_vertex_sq[classes], lam,
                                             theory.linear_map_norm(C, y[rnd]), tol),
        Check("NonLin eq. (3), CE, mean over the mixes", ce["nonlin"], None,
              f"linear-map floor {ce['floor']:.6g}; excess {ce['excess']:.3e}; unnormalised/|h_cc| "
              f"{ce['unnormalised_rel']:.4g}" + (f"; {ce['undefined']} mix(es) at the uniform target left out"
                                                 if ce["undefined"] else "")),
    ]
    result_checks += auxiliary_checks((("d-independence", sol_alt), ("square-loss", sol_sq)))

    config = {"loss": NAME, **dataclasses.asdict(problem), "kappa": problem.kappa,
              "solver": dataclasses.asdict(SOLVER)}
    headline = [
        f"ufm mixup, {k}-point (Dirichlet alpha={problem.alpha:g}): C={C} d={problem.d} m={problem.m:g} "
        f"mu={problem.mu:g} kappa={problem.kappa:.6g}  {len(classes)} random mixes + {len(all_classes) - len(classes)}"
        f" vertices/barycentres = {len(all_classes)} subproblems",
        "NonLin eq. (3) (mean over the random mixes; floor = value of any exactly linear map):",
        f"  CE     {ce['nonlin']:.10f}   excess over floor {ce['excess']:.3e}   unnormalised/|h_cc| "
        f"{ce['unnormalised_rel']:.6g}",
        f"  square {sq['nonlin']:.10f}   excess over floor {sq['excess']:.3e}   unnormalised/|h_cc| "
        f"{sq['unnormalised_rel']:.3e}",
        "  closed-form CE NonLin vs kappa:  " + "  ".join(f"{r['kappa']:g}: {r['nonlin']:.6f}" for r in sweep),
    ]
    numbers = {"kappa": problem.kappa, "K": K, "vertex_norm": vertex_norm,
               "max_rel_error": feature_check.value,
               "nonlin_ce": ce, "nonlin_square": sq, "nonlin_vs_kappa": sweep,
               "barycentre_bulge_ratio": theory.barycentre_bulge_ratio(C, problem.kappa, k),
               "seconds": time.perf_counter() - t0}
    arrays = {"W": W, "classes": all_classes, "lam": all_lam, "y": y, "h": h, "h_theory": h_theory, "h_square": h_sq,
              "loss": sol.loss, "grad_norm": sol.grad_norm, "steps": sol.steps, "converged": sol.converged}
    return Report(NAME, config, headline, result_checks, sol.report(), numbers, arrays)
