"""Checks of Model 3, memorization-dilation (``ufm.objectives.memorization_dilation``): the augmented Lagrangian's
end point certified in (W, H) (stationarity of ``f + sum_k nu_k c_k`` with H >= 0, feasibility, complementarity,
nu >= 0, all to CERT_TOL relative), or, where the theory proves W = H = 0 optimal, that point's value log K (to
OBJECTIVE_TOL, exact up to rounding) with no restart below it; dilation, memorization, the share of noisy labels
fitted and NC1 of the clean features reported."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ufm import metrics
from ufm.checks import Check
from ufm.checks import nonnegative as checks
from ufm.checks.convergence import status_counts
from ufm.objectives.memorization_dilation import AL_TOL, CERT_TOL, OBJECTIVE_TOL, SOLVER, memberships
from ufm.objectives.nonnegative import cross_entropy, dilation_memorization
from ufm.problems.nonnegative import MemorizationDilationProblem
from ufm.solver import CONVERGED as CONVERGED_STATUS
from ufm.solver import MAX_STEPS


def measures(problem: MemorizationDilationProblem, W: np.ndarray, H: np.ndarray) -> dict:
    """Dilation and memorization raw and relative to the mean distance between clean class means; share of noisy
    labels fitted; NC1 of the clean features (float64, Sigma_B truncated to rank K-1, clamped at 0)."""
    clean, noisy = (np.asarray(a) for a in memberships(problem))
    mu, D, M = (np.asarray(a) for a in dilation_memorization(jnp.asarray(H), jnp.asarray(clean), jnp.asarray(noisy)))
    K = problem.C
    dists = [np.linalg.norm(mu[:, k] - mu[:, l]) for k in range(K) for l in range(K) if k < l]
    spacing = float(np.mean(dists))
    mask = problem.noisy_mask
    fitted = float(np.mean(np.argmax(W @ H[:, mask], axis=0) == problem.labels[mask]))
    clean_idx = ~mask
    with np.errstate(divide="ignore", invalid="ignore"):  # spacing 0 at a collapsed point: reported as VOID
        D_rel, M_rel = D / spacing, M / spacing
    return {
        "D": D,
        "M": M,
        "mean_distance": spacing,
        "D_rel": D_rel,
        "M_rel": M_rel,
        "noisy_fitted": fitted,
        "NC1_clean": metrics.nc1(H[:, clean_idx].T, problem.true_labels[clean_idx], K),
    }


def _lagrangian_gradients(problem, out, with_coupling: bool):
    """Gradients in (W, H) of f and of each c_k (K x d x N) at the best point (f alone where ``with_coupling`` is
    False: the coupling is not differentiable where a D_k or a noisy distance vanishes)."""
    W, H = jnp.asarray(out["W"]), jnp.asarray(out["H"])
    clean, noisy, Q = jnp.asarray(out["clean"]), jnp.asarray(out["noisy"]), jnp.asarray(out["Q"])
    gW, gH = (np.asarray(a) for a in _loss_gradients(W, H, Q, problem.lambda_W, problem.lambda_H))
    if not with_coupling:
        return gW, gH, np.zeros((problem.C,) + H.shape)
    return gW, gH, np.asarray(_coupling_jacobian(H, clean, noisy, problem.r))


# Compiled once per shape (the decays and r are data): op by op they compiled ~70 small programs per run.
@jax.jit
def _loss_gradients(W, H, Q, lambda_W, lambda_H):
    def f(W, H):
        return cross_entropy(W @ H, Q) + 0.5 * lambda_W * jnp.sum(W**2) + 0.5 * lambda_H * jnp.sum(H**2)

    return jax.grad(f, argnums=(0, 1))(W, H)


@jax.jit
def _coupling_jacobian(H, clean, noisy, r):
    def c(H):
        _, D, M = dilation_memorization(H, clean, noisy)
        return M - r * D

    return jax.jacrev(c)(H)


def kkt(problem, out, with_coupling: bool = True) -> dict:
    """KKT residual of ``f + sum_k nu_k c_k`` with H >= 0 (``ufm.checks.nonnegative.kkt_residual``), and per class
    the complementarity ``min(|c_k| / (r D_k), nu_k ||grad c_k|| / g)`` (g the loss gradient's size, floored at its
    natural size (1 + max|W|)/N): zero where the constraint is active or its multiplier carries no share of the
    stationarity."""
    gW, gH, gc = _lagrangian_gradients(problem, out, with_coupling)
    nu = np.asarray(out["multipliers"]) if with_coupling else np.zeros(problem.C)
    W, H = np.asarray(out["W"]), np.asarray(out["H"])
    result = checks.kkt_residual(gW, W, gH + np.tensordot(nu, gc, axes=1), H, budgets=False)
    g = max(np.sqrt(np.sum(gW**2) + np.sum(gH**2)), (1.0 + np.abs(W).max()) / H.shape[1])
    share = nu * np.sqrt(np.sum(gc**2, axis=(1, 2))) / g
    result["share"] = share
    return result


def _at_zero_value(out) -> str:
    """Where the best restart ends at the zero solution's value log K (to OBJECTIVE_TOL) without the theory proving
    W = H = 0 optimal: the note that says so. There the optimum may be W = H = 0 itself, where the coupling is
    not differentiable and the restarts can only approach it (their inner solves stall near it)."""
    zero = out["zero"]
    if abs(out["objective"] - zero["objective"]) > OBJECTIVE_TOL * zero["objective"]:
        return ""
    return (
        f"; the best restart ends at the zero solution's value log K: W = H = 0 may be the optimum, not proved here "
        f"(sqrt(lambda_W lambda_H) = {zero['sqrt_lambda']:.6g} < bound {zero['bound']:.6g}), where the coupling is "
        "not differentiable and the inner solves stall short of it"
    )


def _undefined_at_zero(names, why):
    return [Check.undefined(name, why) for name in names]


FEASIBLE = "feasible: max_k (M_k - r D_k)_+ / (r D_k)"
COMPLEMENTARY = "complementarity: max_k min(|c_k| / (r D_k), nu_k share of stationarity)"
KKT = "KKT residual of f + sum nu_k c_k, H >= 0"
CONVERGED_NAME = "augmented Lagrangian converged at the best restart"
RESTARTS = f"restarts (converged: inner solve converged and constraint residual <= {AL_TOL:g})"


def solution_checks(problem, out) -> tuple[list[Check], dict]:
    """The checks of the best point of an augmented-Lagrangian solve (``out``: the family's ``solve`` record), in
    report order, and its measures (D, M, relative values, NC1, KKT, multipliers, coupling, outer steps)."""
    sol, status, best = out["solution"], out["status"], out["best"]
    restarts = f"{RESTARTS}: {status_counts(status)}"
    objectives = np.sort(out["restart_objectives"])
    if out["best_is_zero"]:
        zero = out["zero"]
        why = (
            f"undefined at the optimum W = H = 0 (proved optimal: sqrt(lambda_W lambda_H) = {zero['sqrt_lambda']:.6g}"
            f" >= {zero['bound']:.6g}): D_k = M_k = 0, no class-mean distance, the coupling not differentiable"
        )
        k = kkt(problem, out, with_coupling=False)
        finite = out["restart_objectives"][np.isfinite(out["restart_objectives"])]
        below = float(max(0.0, (zero["objective"] - finite.min()) / zero["objective"])) if finite.size else 0.0
        result = [
            Check(
                "zero solution optimal: sqrt(lambda_W lambda_H) >= bound (sufficient condition)",
                zero["sqrt_lambda"] / zero["bound"],
                None,
                f"ufm.theory.nonnegative.model3_zero_solution_optimal: bound {zero['bound']:.6g}, the smaller of "
                f"{zero['any_labels_bound']:.6g} (any labels) and {zero['coupled_bound']:.6g} (coupling r)",
            ),
            checks.relative("objective = log K at W = H = 0 (rel)", out["objective"], zero["objective"], OBJECTIVE_TOL),
            Check(
                "no restart ends below the zero solution (rel)",
                below,
                OBJECTIVE_TOL,
                f"{restarts}; objectives {np.array2string(objectives, precision=12)}",
            ),
            Check(
                "KKT residual of f at W = H = 0 (nu = 0), H >= 0",
                k["residual"],
                CERT_TOL,
                "the constraints hold with M = D = 0; their multipliers are 0",
            ),
            *_undefined_at_zero(
                (
                    FEASIBLE,
                    COMPLEMENTARY,
                    "dilation D (mean over classes)",
                    "memorization M (mean over classes)",
                    "restarts: spread of D over the converged ones",
                    "share of noisy labels fitted",
                    "NC1 of clean features",
                ),
                why,
            ),
        ]
        return result, {
            "D": np.zeros(problem.C),
            "M": np.zeros(problem.C),
            "mean_distance": 0.0,
            "D_rel": np.full(problem.C, np.nan),
            "M_rel": np.full(problem.C, np.nan),
            "noisy_fitted": np.nan,
            "NC1_clean": np.nan,
            "kkt": k,
            "multipliers": out["multipliers"],
            "coupling": out["coupling"],
            "outer_steps": out["outer_steps"],
        }
    meas = measures(problem, out["W"], out["H"])
    D, M, nu, c = meas["D"], meas["M"], out["multipliers"], out["coupling"]
    H = out["H"]
    collapsed = bool(np.any(D <= 1e-10 * max(1.0, float(np.abs(H).max()))))
    k = kkt(problem, out, with_coupling=not collapsed)
    why = (
        "undefined where a class's clean features have collapsed (D_k = 0 at the best point: M_k <= r D_k forces "
        "M_k = 0, and D, M are not differentiable there)"
    )
    feasible = Check(FEASIBLE, float(np.max(np.maximum(c, 0) / (problem.r * D))) if not collapsed else np.nan, CERT_TOL)
    slack = np.abs(c) / (problem.r * D) if not collapsed else np.zeros_like(c)
    comp = np.minimum(slack, k["share"])
    complementary = Check(
        COMPLEMENTARY,
        float(comp.max()) if not collapsed else np.nan,
        CERT_TOL,
        f"{int(np.sum(nu > 0))} of {problem.C} multipliers > 0, nu = {np.array2string(nu, precision=4)}"
        f", slack {np.array2string(slack, precision=3)}",
    )
    stationary = Check(KKT, k["residual"], CERT_TOL, f"support {k['support']} of {H.size} entries")
    spacing_ok = meas["mean_distance"] > 1e-10 * max(1.0, float(np.abs(H).max()))
    spread = out["restart_dilation"]
    result = [
        checks.converged(
            CONVERGED_NAME,
            status,
            sol.rel_grad_norm,
            best,
            SOLVER.rtol,
            RESTARTS,
            f"; best constraint residual {float(out['residual'][best]):.2e}; outer steps "
            f"{out['outer_steps']}, final rho {out['rho']:.0e}" + _at_zero_value(out),
        ),
        dataclasses.replace(feasible, void=why, detail=why) if collapsed else feasible,
        dataclasses.replace(complementary, void=why, detail=why) if collapsed else complementary,
        dataclasses.replace(stationary, void=why, detail=why) if collapsed else stationary,
        Check("multipliers nu_k >= 0 (min)", float(max(0.0, -nu.min())), 0.0),
        Check(
            "dilation D (mean over classes)",
            float(D.mean()),
            None,
            f"relative {np.mean(meas['D_rel']):.6g}" if spacing_ok else "class means coincide: no relative value",
        ),
        (
            Check(
                "restarts: spread of D over the converged ones",
                float(np.ptp(spread)),
                None,
                f"{spread.size} converged; objectives " + np.array2string(objectives, precision=9),
            )
            if spread.size
            else Check.undefined("restarts: spread of D over the converged ones", "no restart converged")
        ),
        Check(
            "memorization M (mean over classes)",
            float(M.mean()),
            None,
            f"relative {np.mean(meas['M_rel']):.6g}" if spacing_ok else "class means coincide: no relative value",
        ),
        Check("share of noisy labels fitted", meas["noisy_fitted"], None),
        Check("NC1 of clean features", meas["NC1_clean"], None)
        if spacing_ok
        else Check.undefined("NC1 of clean features", "the clean class means coincide (Sigma_B = 0)"),
    ]
    return result, {**meas, "kkt": k, "multipliers": nu, "coupling": c, "outer_steps": out["outer_steps"]}


HEAD = (
    "ufm memorization-dilation (Model 3): K={p.C} n={p.n} ({p.n_noisy} noisy per class) d={p.d} noise={p.noise:g} "
    "lambda_W={p.lambda_W:g} lambda_H={p.lambda_H:g}"
)
SWEEP_COLUMNS = (
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


def headline(problem: MemorizationDilationProblem, out: dict, meas: dict) -> list[str]:
    """One point's headline: the problem, the outer loop's end, D_k, M_k and the mean class-mean distance."""
    return [
        HEAD.format(p=problem),
        f"r = {problem.r:g}, alpha = {problem.alpha:g}; augmented Lagrangian: {out['outer_steps']} outer steps, "
        f"final rho {out['rho']:.1e}" + ("; optimum W = H = 0 (proved)" if out["best_is_zero"] else ""),
        f"D_k = {np.array2string(meas['D'], precision=6)}  M_k = {np.array2string(meas['M'], precision=6)}  "
        f"mean class-mean distance {meas['mean_distance']:.6f}",
    ]


def solution_record(problem: MemorizationDilationProblem, out: dict, meas: dict) -> tuple[dict, dict, dict]:
    """The report's arrays (samples x features), its JSON numbers, and the convergence failures: the inner
    solves' (``Solution.report``) and the restarts whose inner solve converged but whose constraint did not."""
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
        **{key: out[key] for key in ("objective", "best", "best_is_zero")},
        "restart_status": out["status"],
        "restart_residual": out["residual"],
    }
    failures = dict(out["solution"].report()["failures"])
    outer = int(np.sum((out["status"] == MAX_STEPS) & out["solution"].converged))
    if outer:
        failures["outer loop: constraint residual above tolerance"] = outer
    return arrays, numbers, failures


def sweep_row(alpha: float, r: float, out: dict, meas: dict) -> list:
    """One sweep point's values, in the order of :data:`SWEEP_COLUMNS` (``out``: the solve's record, ``meas``:
    :func:`solution_checks`' measures)."""
    sol, best = out["solution"], out["best"]
    spread = float(np.ptp(out["restart_dilation"])) if out["restart_dilation"].size else np.nan
    return [
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
        float(out["status"][best] == CONVERGED_STATUS),
    ]


def sweep_checks(curve: dict, failures: list[str], alphas) -> tuple[list[Check], dict]:
    """The r sweep's checks (every point certified; LS dilation below CE's at every r, raw and relative: info)
    and the verdicts ``{"D": [per LS alpha], "D_rel": [...]}``; ``alphas[0]`` is CE (0)."""
    ce = curve["alpha"] == 0
    verdict = {}
    for key in ("D", "D_rel"):
        verdict[key] = [bool(np.all(curve[key][curve["alpha"] == a] < curve[key][ce])) for a in alphas[1:]]
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
            str(dict(zip(alphas[1:], verdict["D"]))),
        ),
        Check(
            "LS dilation < CE dilation at every r (relative to class-mean distance)",
            float(all(verdict["D_rel"])),
            None,
            str(dict(zip(alphas[1:], verdict["D_rel"]))),
        ),
    ]
    return result, verdict


def sweep_headline(problem: MemorizationDilationProblem, curve: dict, r_values, alphas) -> list[str]:
    """The r sweep's headline: the problem and one line per sweep point."""
    lines = [
        HEAD.format(p=problem),
        f"sweep over r = {list(r_values)}, alphas = {list(alphas)} (0 = CE), identical data",
        f"{'alpha':>6} {'r':>6} {'D':>10} {'M':>10} {'D/dist':>10} {'M/dist':>10} {'fitted':>7} "
        f"{'objective':>17} {'KKT':>8} {'D spread':>9}",
    ]
    columns = ("alpha", "r", "D", "M", "D_rel", "M_rel", "noisy_fitted", "objective", "kkt_residual")
    lines += [
        f"{a:6g} {r:6g} {D:10.6f} {M:10.6f} {Dr:10.6f} {Mr:10.6f} {fit:7.2f} {obj:17.15f} {kkt_:8.1e} {spread:9.2e}"
        for a, r, D, M, Dr, Mr, fit, obj, kkt_, spread in zip(*(curve[k] for k in (*columns, "D_restart_spread")))
    ]
    lines.append(
        "(best of the converged restarts by objective; D spread = max - min of D over them: Model 3 "
        "has many KKT points of nearly equal value)"
    )
    return lines


def sweep_convergence(curve: dict, failures: list[str], rtol: float, seconds: tuple[float, float]) -> dict:
    """The r sweep's convergence record: one entry per sweep point, its best restart (inner solve and constraint
    residual both converged); ``seconds``: the solver's compile and solve seconds over all points."""
    converged = int(np.sum(curve["converged"]))
    return {
        "subproblems": len(curve["r"]),
        "converged": converged,
        "all_converged": converged == len(curve["r"]),
        "rtol": rtol,
        "max_rel_grad_norm": float(np.max(curve["rel_grad_norm"])),
        "max_grad_norm": float(np.max(curve["grad_norm"])),
        "max_steps_taken": int(np.max(curve["inner_steps"])),
        "mean_steps_taken": float(np.mean(curve["inner_steps"])),
        "failures": {}
        if not failures
        else {"sweep points failing a check": len(set(f.split(":")[0] for f in failures))},
        "compile_seconds": float(seconds[0]),
        "solve_seconds": float(seconds[1]),
    }
