"""Mixup CE with a fixed simplex ETF (Theorem 3.1 of Fisher, Meng, Papyan, ICLR 2024): solve every
(c, c', lambda), check, report.

``--points k`` (k >= 3) runs several-point Dirichlet mixup instead (docs/local_linearity.md): random k-point mixes
checked against the k-point closed form, and the non-linearity measure of Chaudhry et al.'s eq. (3).

The solves (``ufm.objectives.mixup``): the main one of every subproblem, the same targets in another feature
dimension and ETF embedding, and the square-loss contrast, all with :data:`SOLVER`; the checks are
``ufm.checks.mixup`` (pair grid), ``ufm.checks.mixup_points`` (k points) and ``ufm.checks.nonlinearity``.
"""

from __future__ import annotations

import numpy as np

from ufm import driver
from ufm.checks import mixup as checks
from ufm.checks import mixup_points as point_checks
from ufm.checks.convergence import auxiliary_converged, every_converged
from ufm.checks.nonlinearity import (
    KAPPA_SWEEP,
    nonlinearity_defined,
    nonlinearity_summary,
    nonlinearity_vs_kappa,
)
from ufm.estimate import driving_field
from ufm.family import Assessment, Family
from ufm.objectives.mixup import (
    SOLVER,
    MixupSolution,
    mixed_soft_target,
    other_dimension,
    peak_bytes_estimate,
    soft_target,
    solve,
    solve_targets,
    square_feature_loss,
    structured_mixes,
)
from ufm.problems import InputError
from ufm.problems.mixup import MixupProblem
from ufm.report import Report
from ufm.solver import SolverOptions
from ufm.theory import mixup as theory

__all__ = [
    "KAPPA_SWEEP",
    "MixupSolution",
    "nonlinearity_defined",
    "nonlinearity_summary",
    "nonlinearity_vs_kappa",
    "other_dimension",
    "run",
    "solve",
    "solve_targets",
    "structured_mixes",
]
NAME = "mixup"
DESCRIPTION = "mixup cross-entropy, fixed simplex-ETF classifier, free features (Fisher et al. 2024, Thm 3.1)"
FLAGS = {"n_lambdas": "--lambdas", "n_mixes": "--mixes"}
DEFAULT_LAMBDAS = MixupProblem.n_lambdas


def add_arguments(parser) -> None:
    group = parser.add_argument_group("mixup")
    group.add_argument("--C", type=int, default=10, help="number of classes (>= 2)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= C-1; default C)")
    group.add_argument("--m", type=float, default=1.0, help="ETF multiplier, ||w_c|| = m (in [1e-2, 1e2])")
    group.add_argument("--mu", type=float, default=1e-2, help="feature weight decay mu in (mu/2)||h||^2 (> 0)")
    group.add_argument(
        "--lambdas",
        type=int,
        default=None,
        dest="n_lambdas",
        help="lambda grid size on [0, 1] (>= 2; default 101; only with --points 2)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the ETF embedding and of the random starts")
    group.add_argument(
        "--points",
        type=int,
        default=2,
        help="number of mixed points k (>= 2; k >= 3: several-point Dirichlet mixup, Chaudhry et al.)",
    )
    group.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="Dirichlet concentration of the k-point weights (> 0; default 1; only with --points >= 3)",
    )
    group.add_argument(
        "--mixes",
        type=int,
        default=None,
        dest="n_mixes",
        help="number of random k-point mixes (>= 1; default 1000; only with --points >= 3)",
    )


# Every flag applies to the one variant; --lambdas (pair grid) versus --alpha/--mixes (points >= 3) depend on
# --points and are refused by problem_from_args / MixupProblem instead.
UNUSED_FLAGS: dict[str, set[str]] = {NAME: set()}


def problem_from_args(ns) -> MixupProblem:
    if ns.n_lambdas is not None and isinstance(ns.points, int) and ns.points > 2:
        raise InputError("n_lambdas", "only used with --points 2 (points >= 3 draws random mixes: --mixes)")
    n_lambdas = DEFAULT_LAMBDAS if ns.n_lambdas is None else ns.n_lambdas
    return MixupProblem(
        C=ns.C,
        d=ns.d,
        m=ns.m,
        mu=ns.mu,
        n_lambdas=n_lambdas,
        seed=ns.seed,
        points=ns.points,
        alpha=ns.alpha,
        n_mixes=ns.n_mixes,
    )


def memory_estimate(problem: MixupProblem) -> tuple[int, str]:
    """``(peak bytes, driving field)`` of :func:`run` (``ufm.objectives.mixup.peak_bytes_estimate``). From the
    sizes only; nothing is allocated."""
    sizes = {
        "C": problem.C,
        "d": problem.d,
        "n_lambdas": problem.n_lambdas,
        "points": problem.points,
        "n_mixes": problem.n_mixes or 0,
    }
    reference = {
        "C": 10,
        "d": sizes["C"],
        **({"n_lambdas": DEFAULT_LAMBDAS} if problem.points <= 2 else {"n_mixes": 1000, "points": 3}),
    }
    return peak_bytes_estimate(sizes), driving_field(peak_bytes_estimate, sizes, reference)


def solver_options(problem: MixupProblem) -> SolverOptions:
    return SOLVER


def solve_family(problem: MixupProblem, options: SolverOptions):
    """The main solve (its Solution graded) and the context: the d-independence and square-loss solves and the
    targets (pair grid: ``(main, alt, square, y)``; k points: ``(W, W_other, d_other, mixes, h, h_alt, h_square,
    auxiliary solutions)``, ``mixes`` as ``ufm.checks.mixup_points.points_checks`` takes them)."""
    other = other_dimension(problem)
    if problem.points <= 2:
        main = solve(problem, options=options, progress=options.progress)
        alt = solve(other, options=options)
        square = solve(problem, loss=square_feature_loss, options=options)
        return main.solution, (main, alt, square, np.asarray(soft_target(problem.C, main.c, main.c_prime, main.lam)))
    W, W_other = problem.classifier(), other.classifier()
    extra = structured_mixes(problem.C, problem.points)
    parts, names = [problem.mixes(), *extra.values()], ["random", *extra]
    bounds = np.cumsum([0] + [len(p[0]) for p in parts])
    slices = {name: slice(int(a), int(b)) for name, a, b in zip(names, bounds[:-1], bounds[1:])}
    classes, lam = (np.concatenate([p[i] for p in parts]) for i in (0, 1))
    y = np.asarray(mixed_soft_target(problem.C, classes, lam))
    h, sol = solve_targets(problem, W, y, options=options, progress=options.progress)
    h_alt, sol_alt = solve_targets(other, W_other, y[slices["random"]], options=options)
    h_sq, sol_sq = solve_targets(problem, W, y, loss=square_feature_loss, options=options)
    return sol, (W, W_other, other.d, (classes, lam, y, slices), h, h_alt, h_sq, (sol_alt, sol_sq))


def assess(problem: MixupProblem, sol, best: int, context, options: SolverOptions) -> Assessment:
    return (assess_grid if problem.points <= 2 else assess_points)(problem, sol, context, options)


def assess_grid(problem: MixupProblem, sol, context, options: SolverOptions) -> Assessment:
    main, alt, square, y = context
    tol = checks.feature_tolerance(problem.kappa)
    graded, v = checks.grid_checks(problem, main, alt, square, y, tol)
    result = [
        every_converged(sol, options.rtol),
        *graded,
        *auxiliary_converged((("d-independence", alt.solution), ("square-loss", square.solution))),
    ]
    bulge = theory.half_mix_bulge_ratio(problem.C, problem.kappa)
    headline = [
        f"ufm mixup: C={problem.C} d={problem.d} m={problem.m:g} mu={problem.mu:g} kappa={problem.kappa:.6g}  "
        f"{problem.n_lambdas} lambdas x {problem.C**2} ordered pairs = {main.c.size} subproblems",
        f"K (root < 0 of K(C-1+e^(-CK)) + kappa = 0) = {v['K']:.15g}   solver: {v['K_solver']:.15g}",
        f"same-class norm (C-1)|K|/m = {v['same_norm']:.12g}   lam=1/2 bulge ratio = {bulge:.12g}",
    ]
    numbers = {
        "kappa": problem.kappa,
        "K": v["K"],
        "K_solver": v["K_solver"],
        "same_class_norm": v["same_norm"],
        "half_mix_bulge_ratio": bulge,
        "max_rel_error": float(np.max(v["rel_err"])),
        "nonlin": v["nonlin"],
        "nonlin_floor": v["nonlin_floor"],
    }
    arrays = {
        "W": main.W,
        "c": main.c,
        "c_prime": main.c_prime,
        "lam": main.lam,
        "h": main.h,
        "h_theory": v["h_theory"],
        "rel_error": v["rel_err"],
        "loss": sol.loss,
        "grad_norm": sol.grad_norm,
        "steps": sol.steps,
        "converged": sol.converged,
    }
    return Assessment(headline, result, numbers, arrays, config={"kappa": problem.kappa})


def assess_points(problem: MixupProblem, sol, context, options: SolverOptions) -> Assessment:
    """Several-point mixup (Chaudhry et al.): random Dirichlet mixes plus vertices and barycentres, checked against
    the k-point closed form; NonLin of eq. (3) for CE and the square loss, and its closed-form sweep over kappa."""
    W, W_other, d_other, mixes, h, h_alt, h_sq, (sol_alt, sol_sq) = context
    C, k, (classes, lam, y, slices) = problem.C, problem.points, mixes
    graded, v = point_checks.points_checks(
        problem, W, W_other, d_other, mixes, h, h_alt, h_sq, checks.feature_tolerance(problem.kappa)
    )
    result = [
        every_converged(sol, options.rtol),
        *graded,
        *auxiliary_converged((("d-independence", sol_alt), ("square-loss", sol_sq))),
    ]
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
    return Assessment(headline, result, numbers, arrays, config={"kappa": problem.kappa})


FAMILY = Family(name=lambda problem: NAME, solver_options=solver_options, solve=solve_family, assess=assess)


def run(problem: MixupProblem, *, progress: bool = True) -> Report:
    """Solve every subproblem (pair grid, or k-point mixes with ``points >= 3``) and check it against Theorem 3.1
    (or the k-point closed form) through the shared driver (``ufm.driver.run``)."""
    return driver.run(FAMILY, problem, progress=progress)
