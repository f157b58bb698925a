"""Model 3, memorization-dilation (after Nguyen et al., ICLR 2023; our formalisation): ``md``.

Model 2 (nonnegative UFM with weight decay) on noisy labels with the hard coupling ``c_k = M_k - r D_k <= 0``
(limited expressivity), solved in (W, H) by the augmented-Lagrangian outer loop
``ufm.algorithms.augmented_lagrangian`` around the shared solver, whose inner solves keep H >= 0 as a bound
(projected Newton, as Model 2; objective, data and settings: ``ufm.objectives.memorization_dilation``): it stops
when every restart's inner solve converged and its constraint residual

    V_k = max(c_k, -nu_k / rho)        (nu the multipliers the inner problem used)

is below ``AL_TOL`` relative to ``r D_k``; ``|V_k|`` is zero exactly when ``c_k <= 0``, ``nu_k >= 0`` and
``nu_k c_k = 0`` (feasibility and complementarity).

The end point is certified in (W, H) (``ufm.checks.memorization_dilation``). Where the theory proves W = H = 0
optimal (``ufm.theory.nonnegative.model3_zero_solution_optimal``), that known critical point is the candidate:
the coupling is not differentiable at H = 0 (D and M are norms), so it is evaluated, not a solver start, and the
restarts must not end below it. One point runs through the shared driver (``ufm.driver.run``); ``--sweep r`` is a
grid of such solves on identical data, reported as one curve.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import jax.numpy as jnp
import numpy as np

from ufm import driver
from ufm.algorithms.augmented_lagrangian import (
    constraint_residual,
    minimise_constrained,
)
from ufm.algorithms.augmented_lagrangian import next_penalty as _next_penalty
from ufm.checks import Check
from ufm.checks.memorization_dilation import (
    CERT_TOL,
    COMPLEMENTARY,
    CONVERGED_NAME,
    FEASIBLE,
    KKT,
    OBJECTIVE_TOL,
    RESTARTS,
    kkt,
    measures,
    solution_checks,
)
from ufm.family import Assessment, Family
from ufm.objectives.memorization_dilation import (
    AL_TOL,
    BOUNDS,
    OUTER_STEPS,
    PATIENCE,
    RHO_MAX,
    RHO_START,
    SCHEDULE,
    SOLVER,
    balance,
    memberships,
    restart_dilation_memorization,
    restart_objectives,
    scaled_lagrangian,
    zero_regime,
)
from ufm.objectives.nonnegative import (
    DilationData,
    model2_loss,
    smoothed_targets,
)
from ufm.problems import InputError
from ufm.problems.nonnegative import MemorizationDilationProblem
from ufm.report import Report
from ufm.solver import CONVERGED, MAX_STEPS, SolverOptions, best_element, peak_bytes

__all__ = [
    "AL_TOL",
    "CERT_TOL",
    "COMPLEMENTARY",
    "CONVERGED_NAME",
    "FEASIBLE",
    "KKT",
    "OBJECTIVE_TOL",
    "PATIENCE",
    "RESTARTS",
    "RHO_START",
    "balance",
    "constraint_residual",
    "kkt",
    "measures",
    "next_penalty",
    "run",
    "solution_checks",
    "solve",
    "sweep",
    "zero_regime",
]
NAME = "md"
DESCRIPTION = "memorization-dilation: nonnegative UFM, label noise, coupling M_k <= r D_k (Model 3)"
FLAGS = {"alpha": "--ls-alpha", "lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
UNUSED_FLAGS: dict[str, set[str]] = {"md": set()}  # --r and --ls-alpha with --sweep r: refused in problem_from_args
SWEEP_R = (0.25, 0.5, 1.0, 2.0, 4.0)
SWEEP_ALPHAS = (0.0, 0.1, 0.3)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("memorization-dilation (md)")
    group.add_argument("--C", type=int, default=3, help="classes K (>= 2)")
    group.add_argument("--n", type=int, default=10, help="samples per class (>= 3)")
    group.add_argument("--d", type=int, default=None, help="feature dimension (>= K; default 2K)")
    group.add_argument("--noise", type=float, default=0.2, help="share of noisy labels per class, in [0, 1)")
    group.add_argument("--r", type=float, default=None, help="expressivity: M_k <= r D_k (> 0; default 1)")
    group.add_argument(
        "--ls-alpha", type=float, default=None, dest="alpha", help="label smoothing alpha in [0, 1) (default 0: CE)"
    )
    group.add_argument("--lambda-W", type=float, default=5e-3, dest="lambda_W", help="weight decay of W (> 0)")
    group.add_argument("--lambda-H", type=float, default=5e-3, dest="lambda_H", help="weight decay of H (> 0)")
    group.add_argument("--restarts", type=int, default=3, help="seeded random restarts (>= 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of the noisy labels and the restarts")
    group.add_argument(
        "--sweep",
        choices=["r"],
        default=None,
        help=f"sweep r over {SWEEP_R} for CE and LS alphas {SWEEP_ALPHAS[1:]} on the same data",
    )


def problem_from_args(ns) -> MemorizationDilationProblem:
    if ns.sweep == "r":
        for field, value in (("r", ns.r), ("alpha", ns.alpha)):
            if value is not None:
                raise InputError(
                    field,
                    f"not used with --sweep r (the sweep sets r to {list(SWEEP_R)} and alpha to {list(SWEEP_ALPHAS)})",
                )
    return MemorizationDilationProblem(
        C=ns.C,
        n=ns.n,
        d=ns.d,
        noise=ns.noise,
        r=1.0 if ns.r is None else ns.r,
        alpha=0.0 if ns.alpha is None else ns.alpha,
        lambda_W=ns.lambda_W,
        lambda_H=ns.lambda_H,
        restarts=ns.restarts,
        seed=ns.seed,
    )


def run_options(ns) -> dict:
    return {"sweep_r": ns.sweep == "r"}


def _peak_bytes(K: int, n: int, d: int, batch: int) -> int:
    """Peak bytes of one inner solve (the outer steps and sweep points run one after another), from sizes only.

    Variables per restart ``K d + d N``; the dense Hessian (``ufm.solver.peak_bytes``) and the forward-mode
    intermediates of forming it, one set per variable (matrix-free: a few sets): the d x N x K differences of every
    feature to every clean
    mean and their squares and roots (4 such arrays), the cross-entropy's ~8 K x N arrays, H and its products."""
    N = K * n
    n_vars = K * d + d * N
    per_variable = 4 * d * N * K + 8 * K * N + 3 * d * N
    data = (3 * K * N + d * N * K) * 8
    report = 2 * batch * n_vars * 8
    return peak_bytes(n_vars, batch, SOLVER, data, per_variable * 8) + report


def memory_estimate(problem: MemorizationDilationProblem) -> tuple[int, str]:
    """Estimated peak bytes of ``run(problem)`` (one point or the r sweep) and the size field (C, n, d, restarts)
    whose reduction to its minimum (2, 3, C, 1) would shrink it most. Allocates nothing."""
    K, n, d, R = problem.C, problem.n, problem.d, problem.restarts
    at_minimum = {
        "C": _peak_bytes(2, n, d, R),
        "n": _peak_bytes(K, 3, d, R),
        "d": _peak_bytes(K, n, K, R),
        "restarts": _peak_bytes(K, n, d, 1),
    }
    return _peak_bytes(K, n, d, R), min(at_minimum, key=at_minimum.get)


def _progress(name: str, total: int, quiet: bool):
    """A one-line text progress bar on stderr (``name [#####.....] 5/10  12.3 s``); returns its step function."""
    t0, done = time.perf_counter(), [0]
    total = max(total, 1)

    def draw() -> None:
        if quiet:
            return
        filled = int(20 * done[0] / total)
        print(
            f"\r{name:<24} [{'#' * filled}{'.' * (20 - filled)}] {done[0]}/{total} {time.perf_counter() - t0:6.1f} s",
            end="\n" if done[0] >= total else "",
            file=sys.stderr,
            flush=True,
        )

    def step() -> None:
        done[0] = min(done[0] + 1, total)
        draw()

    draw()
    return step


def next_penalty(rho: float, worst: float, previous: float, tol: float) -> float:
    """``ufm.algorithms.augmented_lagrangian.next_penalty`` at this family's RHO_MAX."""
    return _next_penalty(rho, worst, previous, tol, RHO_MAX)


def solve(
    problem: MemorizationDilationProblem,
    *,
    outer_steps: int = OUTER_STEPS,
    tol: float = AL_TOL,
    progress: bool = False,
    options: SolverOptions | None = None,
) -> dict:
    """Augmented-Lagrangian solve of every restart on the balanced problem (:func:`balance`); returns the best
    point's (W, H), multipliers and constraint values, and per restart: objective, status (CONVERGED only where the
    inner solve converged AND the constraint residual met ``tol``; else the inner status, or MAX_STEPS where the
    outer loop ran out) and residual. ``ranked`` is the Solution with those statuses and the objective (infinite at
    an infeasible restart where any is feasible: it may lie below the constrained optimum); the best point is
    ``ufm.solver.best_element`` of it, or W = H = 0 where the theory proves it optimal and no restart ends below
    it."""
    clean, noisy = memberships(problem)
    R, K, d, N = problem.restarts, problem.C, problem.d, problem.N
    rng = np.random.default_rng(problem.seed)
    # the starting features are those of H = G * G with G uniform in [0.5, 1.5], well inside the orthant
    params = {"W": jnp.asarray(rng.standard_normal((R, K, d))), "H": jnp.asarray(rng.uniform(0.5, 1.5, (R, d, N)) ** 2)}
    t = balance(problem)
    both = float(np.sqrt(problem.lambda_W * problem.lambda_H))
    data = DilationData(
        smoothed_targets(jnp.asarray(problem.labels), K, problem.alpha),
        jnp.asarray(both),
        jnp.asarray(both),
        clean,
        noisy,
        jnp.asarray(problem.r),
        jnp.zeros((R, K)),
        jnp.asarray(RHO_START),
    )
    measure = functools.partial(restart_dilation_memorization, clean=clean, noisy=noisy)

    def constraint(params):
        D, M = (np.asarray(a) for a in measure(params["H"]))
        return M - problem.r * D, np.maximum(problem.r * D.max(axis=1), 1e-300)

    al = minimise_constrained(
        scaled_lagrangian,
        params,
        data,
        constraint=constraint,
        objective=restart_objectives,
        schedule=dataclasses.replace(SCHEDULE, outer_steps=outer_steps, tol=tol),
        options=options or SOLVER,
        label="md",
        progress=progress,
        args_axes=(DilationData(None, None, None, None, None, None, 0, None), None),
        nonnegative=BOUNDS,
    )
    sol, params, c, nu = al.solution, al.solution.params, al.constraint, al.multipliers
    D = np.asarray(measure(params["H"])[0])
    f = np.asarray(restart_objectives(params, data))
    status = np.where(al.done, CONVERGED, np.where(sol.converged, MAX_STEPS, sol.status))
    feasible = np.max(np.maximum(c, 0.0), axis=1) / al.scale <= CERT_TOL
    ranked = dataclasses.replace(sol, loss=np.where(feasible, f, np.inf) if feasible.any() else f, status=status)
    best = best_element(ranked)
    zero = zero_regime(problem)
    best_is_zero = bool(zero["zero"]) and not np.any(np.isfinite(f) & (f < zero["objective"] * (1 - OBJECTIVE_TOL)))
    if best_is_zero:
        W, H, multipliers, c_best = np.zeros((K, d)), np.zeros((d, N)), np.zeros(K), np.zeros(K)
        objective = float(model2_loss({"W": jnp.zeros((K, d)), "H": jnp.zeros((d, N))}, data))
    else:
        W, H = t * np.asarray(params["W"][best]), np.asarray(params["H"][best]) / t
        # back to (W, H): c is homogeneous of degree 1 in H, so c = c'/t and nu = t nu' (same nu c)
        multipliers, c_best, objective = t * nu[best], c[best] / t, float(f[best])
    # Model 3 is nonconvex with many KKT points close in value: the dilation of every converged restart shows how
    # far "the" answer depends on which of them the best restart found.
    return {
        "W": W,
        "H": H,
        "objective": objective,
        "multipliers": multipliers,
        "coupling": c_best,
        "solution": sol,
        "ranked": ranked,
        "best": best,
        "best_is_zero": best_is_zero,
        "zero": zero,
        "status": status,
        "residual": al.residual,
        "outer_steps": al.outer_steps,
        "rho": al.rho,
        "inner_steps": al.inner_steps,
        "violation": float(al.residual[best]),
        "clean": np.asarray(clean),
        "noisy": np.asarray(noisy),
        "Q": np.asarray(data.Q),
        "restart_objectives": f,
        "restart_dilation": D.mean(axis=1)[al.done],
    }


def sweep(problem: MemorizationDilationProblem, *, r_values=SWEEP_R, alphas=SWEEP_ALPHAS, progress: bool = True):
    """Dilation vs memorization over r for CE (alpha = 0) and LS alphas, on identical data (same seed)."""
    step = _progress("md sweep", len(r_values) * len(alphas), quiet=not progress)
    rows, failures = [], []
    for alpha in alphas:
        for r in r_values:
            p = dataclasses.replace(problem, r=float(r), alpha=float(alpha))
            out = solve(p)
            result, meas = solution_checks(p, out)
            failures += [f"alpha={alpha:g} r={r:g}: {c.name} ({c.detail})" for c in result if not c.passed]
            sol, best = out["solution"], out["best"]
            spread = float(np.ptp(out["restart_dilation"])) if out["restart_dilation"].size else np.nan
            rows.append(
                [
                    alpha,
                    r,
                    meas["D"].mean(),
                    meas["M"].mean(),
                    np.mean(meas["D_rel"]),
                    np.mean(meas["M_rel"]),
                    meas["noisy_fitted"],
                    meas["NC1_clean"],
                    out["objective"],
                    sol.rel_grad_norm[best],
                    sol.grad_norm[best],
                    out["inner_steps"][best],
                    meas["kkt"]["residual"],
                    out["outer_steps"],
                    spread,
                    float(out["status"][best] == CONVERGED),
                ]
            )
            step()
    arr = np.array(rows, dtype=float)
    names = (
        "alpha",
        "r",
        "D",
        "M",
        "D_rel",
        "M_rel",
        "noisy_fitted",
        "NC1_clean",
        "objective",
        "rel_grad_norm",
        "grad_norm",
        "inner_steps",
        "kkt_residual",
        "outer_steps",
        "D_restart_spread",
        "converged",
    )
    return {name: arr[:, i] for i, name in enumerate(names)}, failures


HEAD = (
    "ufm memorization-dilation (Model 3): K={p.C} n={p.n} ({p.n_noisy} noisy per class) d={p.d} noise={p.noise:g} "
    "lambda_W={p.lambda_W:g} lambda_H={p.lambda_H:g}"
)


def extra_config() -> dict:
    """The report's config entries after the solver options: the noisy labels, the constraint's loop, balancing."""
    return {
        "noisy_labels": "last round(noise n) samples of each class relabelled uniformly among the other classes "
        "(seeded)",
        "constraint": f"augmented Lagrangian, nu <- max(0, nu + rho c), stop at max_k |max(c_k, -nu_k/rho)| / "
        f"(r D_k) <= {AL_TOL:g}; rho from {RHO_START:g}, x10 while stalling, <= {RHO_MAX:g}",
        "balanced": "solved with both weight decays sqrt(lambda_W lambda_H), (W, H) = (t W', H'/t)",
    }


def solve_family(problem: MemorizationDilationProblem, options: SolverOptions):
    out = solve(problem, progress=options.progress, options=options)
    return out["ranked"], out


def assess(problem: MemorizationDilationProblem, ranked, best: int, out: dict, options: SolverOptions) -> Assessment:
    result, meas = solution_checks(problem, out)
    lines = [
        HEAD.format(p=problem),
        f"r = {problem.r:g}, alpha = {problem.alpha:g}; augmented Lagrangian: {out['outer_steps']} outer steps, "
        f"final rho {out['rho']:.1e}" + ("; optimum W = H = 0 (proved)" if out["best_is_zero"] else ""),
        f"D_k = {np.array2string(meas['D'], precision=6)}  M_k = {np.array2string(meas['M'], precision=6)}  "
        f"mean class-mean distance {meas['mean_distance']:.6f}",
    ]
    arrays = {
        "W": out["W"],
        "H": out["H"],
        "labels": problem.labels,
        "true_labels": problem.true_labels,
        "noisy_mask": problem.noisy_mask,
        "D": meas["D"],
        "M": meas["M"],
        "multipliers": out["multipliers"],
        "restart_objectives": out["restart_objectives"],
        "restart_status": out["status"],
    }
    numbers = {
        **meas,
        "objective": out["objective"],
        "best": out["best"],
        "best_is_zero": out["best_is_zero"],
        "restart_status": out["status"],
        "restart_residual": out["residual"],
    }
    # the inner solves' failures and the restarts whose inner solve converged but whose constraint did not
    # (converged / all_converged are the ranked statuses', the driver's record)
    failures = dict(out["solution"].report()["failures"])
    outer = int(np.sum((out["status"] == MAX_STEPS) & out["solution"].converged))
    if outer:
        failures["outer loop: constraint residual above tolerance"] = outer
    return Assessment(lines, result, numbers, arrays, config=extra_config(), convergence={"failures": failures})


FAMILY = Family(
    name=lambda problem: NAME,
    solver_options=lambda problem: SOLVER,
    solve=solve_family,
    assess=assess,
    arrays_name="solution.npz",
)


def run(problem: MemorizationDilationProblem, *, progress: bool = True, sweep_r: bool = False) -> Report:
    """One point through the shared driver, or (``sweep_r``) the r sweep for CE and the LS alphas."""
    if not sweep_r:
        return driver.run(FAMILY, problem, progress=progress)
    t0 = time.perf_counter()
    config = {"loss": NAME, **dataclasses.asdict(problem), "solver": dataclasses.asdict(SOLVER), **extra_config()}
    curve, failures = sweep(problem, progress=progress)
    config["sweep"] = {"r": list(SWEEP_R), "alphas": list(SWEEP_ALPHAS)}
    ce = curve["alpha"] == 0
    verdict = {}
    for key in ("D", "D_rel"):
        smaller = [bool(np.all(curve[key][curve["alpha"] == a] < curve[key][ce])) for a in SWEEP_ALPHAS[1:]]
        verdict[key] = smaller
    result = [
        Check(
            "every sweep point feasible, coupled and KKT",
            float(len(failures)),
            0.0,
            "; ".join(failures[:5]) or "all points certified",
        ),
        Check(
            "LS dilation < CE dilation at every r (raw), per alpha",
            float(all(verdict["D"])),
            None,
            str(dict(zip(SWEEP_ALPHAS[1:], verdict["D"]))),
        ),
        Check(
            "LS dilation < CE dilation at every r (relative to class-mean distance)",
            float(all(verdict["D_rel"])),
            None,
            str(dict(zip(SWEEP_ALPHAS[1:], verdict["D_rel"]))),
        ),
    ]
    lines = [
        HEAD.format(p=problem),
        f"sweep over r = {list(SWEEP_R)}, alphas = {list(SWEEP_ALPHAS)} (0 = CE), identical data",
        f"{'alpha':>6} {'r':>6} {'D':>10} {'M':>10} {'D/dist':>10} {'M/dist':>10} {'fitted':>7} "
        f"{'objective':>17} {'KKT':>8} {'D spread':>9}",
    ]
    lines += [
        f"{a:6g} {r:6g} {D:10.6f} {M:10.6f} {Dr:10.6f} {Mr:10.6f} {fit:7.2f} {obj:17.15f} {kkt_:8.1e} {spread:9.2e}"
        for a, r, D, M, Dr, Mr, fit, obj, kkt_, spread in zip(
            *(
                curve[k]
                for k in (
                    "alpha",
                    "r",
                    "D",
                    "M",
                    "D_rel",
                    "M_rel",
                    "noisy_fitted",
                    "objective",
                    "kkt_residual",
                    "D_restart_spread",
                )
            )
        )
    ]
    lines.append(
        "(best of the converged restarts by objective; D spread = max - min of D over them: Model 3 "
        "has many KKT points of nearly equal value)"
    )
    # one line per sweep point: its best restart (inner solve and constraint residual both converged)
    converged = int(np.sum(curve["converged"]))
    conv = {
        "subproblems": len(curve["r"]),
        "converged": converged,
        "all_converged": converged == len(curve["r"]),
        "rtol": SOLVER.rtol,
        "max_rel_grad_norm": float(np.max(curve["rel_grad_norm"])),
        "max_grad_norm": float(np.max(curve["grad_norm"])),
        "max_steps_taken": int(np.max(curve["inner_steps"])),
        "mean_steps_taken": float(np.mean(curve["inner_steps"])),
        "failures": {}
        if not failures
        else {"sweep points failing a check": len(set(f.split(":")[0] for f in failures))},
        "compile_seconds": 0.0,
        "solve_seconds": time.perf_counter() - t0,
    }
    return Report(
        NAME, config, lines, result, conv, {"verdict": verdict, "seconds": time.perf_counter() - t0}, curve, "curve.npz"
    )
