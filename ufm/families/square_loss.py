"""Square loss with weight decay (seed 003): UFM (``mse``), deep UFM (``mse-deep``), network (``mse-net``).

Joint nonconvex problems over all factors: seeded restarts batched on the solver's leading axis, L-BFGS then
saddle-free Newton polish. Where a closed form exists (linear models with bias none/free, the one-layer UFM with a
decayed bias, networks on orthonormal inputs) the closed-form POINT is also built and evaluated (objective and
gradient norm), so the comparison does not depend on the luck of random starts near a threshold.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ufm import metrics
from ufm.checks import Check
from ufm.checks import square_loss as checks
from ufm.objectives.square_loss import SquareLossData, forward, square_loss
from ufm.problems.square_loss import SquareLossProblem
from ufm.report import Report
from ufm.solver import SolverOptions, minimise
from ufm.theory import square_loss as theory

NAME = "mse"
DESCRIPTION = "square loss with weight decay: UFM, deep UFM, homogeneous network (seed 003)"
VARIANTS = {"mse": {"model": "ufm", "layers": 1, "C": 10},
            "mse-deep": {"model": "ufm", "layers": 3, "C": 10},
            "mse-net": {"model": "net", "layers": 2, "C": 3}}
FLAGS = {"lambda_W": "--lambda-W", "lambda_H": "--lambda-H"}
SOLVER = SolverOptions(rtol=1e-12, linear_solver="eigh", damping=1.0, quasi_newton_steps=3000,
                       quasi_newton_rtol=1e-9, max_steps=200, label="mse")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("square loss (mse, mse-deep, mse-net)")
    group.add_argument("--C", type=int, default=None, help="classes (>= 2; default 10, mse-net 3)")
    group.add_argument("--n", type=int, default=5, help="samples per class (>= 1)")
    group.add_argument("--layers", type=int, default=None, help="weight layers L (>= 1; mse 1, mse-deep 3, mse-net 2)")
    group.add_argument("--act", default="linear", help="activation between layers: linear or relu")
    group.add_argument("--bias", default="none", help="none, free, or a bias weight decay lambda_b > 0")
    group.add_argument("--lambda-W", type=float, default=5e-3, dest="lambda_W", help="weight decay of every layer (> 0)")
    group.add_argument("--lambda-H", type=float, default=5e-3, dest="lambda_H", help="feature weight decay (> 0, UFMs)")
    group.add_argument("--d", type=int, default=None, help="width / feature dimension (>= C; default C)")
    group.add_argument("--inputs", default="orthonormal", help="mse-net inputs: orthonormal or gaussian")
    group.add_argument("--restarts", type=int, default=4, help="seeded random restarts (>= 1)")
    group.add_argument("--seed", type=int, default=0, help="seed of restarts and inputs")


def problem_from_args(ns) -> SquareLossProblem:
    variant = VARIANTS[ns.loss]
    return SquareLossProblem(C=ns.C if ns.C is not None else variant["C"], n=ns.n,
                             layers=ns.layers if ns.layers is not None else variant["layers"], model=variant["model"],
                             act=ns.act, bias=ns.bias, lambda_W=ns.lambda_W, lambda_H=ns.lambda_H, d=ns.d,
                             inputs=ns.inputs, restarts=ns.restarts, seed=ns.seed)


def objective_data(problem: SquareLossProblem) -> SquareLossData:
    lambda_b = 0.0 if problem.bias in ("none", "free") else float(problem.bias)
    X = problem.inputs_matrix() if problem.model == "net" else np.zeros((1, problem.N))
    return SquareLossData(jnp.asarray(problem.targets()), jnp.asarray(X), jnp.full(problem.layers, problem.lambda_W),
                          jnp.asarray(problem.lambda_H), jnp.asarray(lambda_b),
                          jnp.asarray(1.0 if problem.act == "relu" else 0.0))


def layer_shapes(problem: SquareLossProblem) -> list[tuple[int, int]]:
    first_in = problem.input_dim if problem.model == "net" else problem.d
    ins = [first_in] + [problem.d] * (problem.layers - 1)
    outs = [problem.d] * (problem.layers - 1) + [problem.C]
    return list(zip(outs, ins))


def _semi_orthogonal(rng: np.random.Generator, restarts: int, rows: int, cols: int) -> np.ndarray:
    """Seeded Haar-random matrices with orthonormal rows or columns (all singular values 1), batched over restarts."""
    Q, R = np.linalg.qr(rng.standard_normal((restarts, max(rows, cols), min(rows, cols))))
    Q = Q * np.sign(np.diagonal(R, axis1=1, axis2=2))[:, None, :]  # sign fix: Haar, not QR-convention, distributed
    return Q if rows >= cols else np.transpose(Q, (0, 2, 1))


def _start(problem: SquareLossProblem, restarts: int, layer, features) -> dict:
    """A batch of starts: ``layer(rows, cols)`` draws every weight layer, ``features(rows, cols)`` the free H; the
    bias (if any) starts at 0."""
    params = {"layers": [jnp.asarray(layer(o, i)) for o, i in layer_shapes(problem)]}
    if problem.model == "ufm":
        params["H"] = jnp.asarray(features(problem.d, problem.N))
    if problem.bias != "none":
        params["b"] = jnp.zeros((restarts, problem.C))
    return params


def gaussian_params(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """Seeded Gaussian points, each factor scaled by 1/sqrt(fan-in) (outputs of order one): how papers initialise
    gradient descent, and the perturbations of proofs_check's near-optimum restarts."""
    rng = np.random.default_rng(seed)
    return _start(problem, restarts, lambda o, i: rng.standard_normal((restarts, o, i)) / np.sqrt(i),
                  lambda o, i: rng.standard_normal((restarts, o, i)))


def balanced_orthogonal_params(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """Seeded balanced orthogonal points: every factor semi-orthogonal times ``2 n^(1/(2m))`` (m factors).

    Why: a Gaussian square layer has singular values near 0, and for m >= 3 factors each singular mode of the
    product has a local minimum at 0 (its scalar objective ``(a^m - t)^2/2 + m lambda a^2/2`` is flat to order m
    at a = 0), so such modes stay dead: from Gaussian starts all 8 restarts of the C = 10, 3-layer linear deep UFM
    ended rank-deficient (objectives 0.182 and 0.217 against the optimum 0.1466), from these starts all 8 reach it.
    Every mode starts balanced and above the targets' scale (the product's singular values are ``2^m sqrt(n)``,
    Y's ``sqrt(n)``), on the far side of the nonzero minimum; nothing of the closed form is used.
    """
    rng = np.random.default_rng(seed)
    factors = len(layer_shapes(problem)) + (problem.model == "ufm")
    scale = 2.0 * problem.n ** (0.5 / factors)
    draw = lambda o, i: scale * _semi_orthogonal(rng, restarts, o, i)
    return _start(problem, restarts, draw, draw)


def random_params(problem: SquareLossProblem, restarts: int, seed: int) -> dict:
    """The solver's seeded restarts: balanced orthogonal for linear models, Gaussian for ReLU.

    The balanced starts' reason (dead product modes, above) is a property of linear products. With ReLU their
    mixed-sign orthogonal factors put the end points on many kinks: C = 3, 4 bias-free factors, of 6 balanced
    restarts the two that came to the symmetric point stopped 1.1e-9 above it, unconverged on its kinks, and the
    only converged one was at 0.0404; Gaussian starts converge at the symmetric point (0.0355156695) to 2e-16.
    """
    if problem.act == "linear":
        return balanced_orthogonal_params(problem, restarts, seed)
    return gaussian_params(problem, restarts, seed)


def closed_form(problem: SquareLossProblem) -> dict | None:
    """Theory for this problem, with the target product Z (K x N) and bias b of the optimum; None if none is known."""
    linear = problem.act == "linear"
    K, n = problem.C, problem.n
    Y = problem.targets()
    centred = Y - 1.0 / K
    if problem.model == "net" and problem.inputs != "orthonormal":
        return None
    if problem.bias in ("none", "free") and (linear or problem.bias == "none"):
        t = theory.deep_optimum(K, n, problem.factor_decays, problem.bias)
        Z = t["x"] * (Y if problem.bias == "none" else centred)
        b = np.zeros(K) if problem.bias == "none" else np.full(K, 1.0 / K)
        # bias-free ReLU: the linear optimum has nonnegative factors, so ReLU is inactive there (a critical point,
        # the optimum only for small depth / C: for ReLU it is compared, not asserted)
        return {**t, "Z": Z, "b": b, "asserted": linear}
    if problem.layers == 1 and problem.model == "ufm" and linear:
        t = theory.ufm_optimum(K, n, problem.lambda_W, problem.lambda_H, problem.bias)
        g, beta = theory.ufm_decayed_bias(K, n, problem.lambda_W, problem.lambda_H, float(problem.bias))
        Z = t["a"] * centred + g / K * np.ones_like(Y)
        return {**t, "Z": Z, "b": t["bias"], "factor_energy": None, "asserted": True}
    return None


def closed_form_point(problem: SquareLossProblem, Z: np.ndarray, b: np.ndarray) -> dict:
    """Balanced factors of the target product Z: each of the m factors carries ``sqrt(Lambda/lambda_i) S^{1/m}``.

    With Z = U S V^T: first factor ``c_1 E s V^T`` (times X^T for a network on orthonormal inputs), middle factors
    ``c_l E s E^T``, last ``c_m U s E^T``; E embeds R^r in the first r coordinates of R^d. For bias-free targets
    Z = x Y we take U = I, V = Y^T/sqrt(n) exactly, so every factor is nonnegative (ReLU inactive).
    """
    K, d = problem.C, problem.d
    decays = problem.factor_decays
    m = decays.size
    if problem.bias == "none":
        U, S, Vt = np.eye(K), np.full(K, np.linalg.norm(Z[:, 0]) * np.sqrt(problem.n)), problem.targets() / np.sqrt(problem.n)
        S = np.where(np.abs(Z).max() > 0, S, 0.0)
    else:
        U, S, Vt = np.linalg.svd(Z, full_matrices=False)
        S = np.where(S > 1e-12 * S.max(initial=0.0), S, 0.0)  # exact rank: S^{1/m} of a rounding-level value is not small
    r = S.size
    E = np.eye(d)[:, :r]
    s = S ** (1.0 / m)
    Lam = float(np.exp(np.mean(np.log(decays))))
    c = np.sqrt(Lam / decays)
    first = c[0] * E @ (s[:, None] * Vt)
    layers = []
    if problem.model == "net":
        layers.append(first @ problem.inputs_matrix().T)
        factor_index = 1
    else:
        factor_index = 1
    for _ in range(problem.layers - 1 - (1 if problem.model == "net" else 0) + (0 if problem.model == "net" else 0)):
        layers.append(c[factor_index] * E @ np.diag(s) @ E.T)
        factor_index += 1
    layers.append(c[-1] * U @ np.diag(s) @ E.T)
    params = {"layers": [jnp.asarray(W) for W in layers]}
    if problem.model == "ufm":
        params["H"] = jnp.asarray(first)
    if problem.bias != "none":
        params["b"] = jnp.asarray(b)
    return params


@dataclasses.dataclass(frozen=True)
class SquareLossSolution:
    params: dict          # best restart
    restart_losses: np.ndarray
    restart_status: np.ndarray
    restart_ranks: list   # numerical rank of every factor, per restart
    best: int
    solution: object      # the solver's Solution over all restarts


def numerical_ranks(params: dict, tol: float = 1e-6) -> list[int]:
    """Numerical rank of each factor (singular values above tol x the largest), layers then H."""
    mats = [np.asarray(W) for W in params["layers"]] + ([np.asarray(params["H"])] if "H" in params else [])
    ranks = []
    for M in mats:
        sv = np.linalg.svd(M, compute_uv=False)
        ranks.append(int(np.sum(sv > max(tol * sv.max(), 1e-8))))  # absolute floor: a zero factor has rank 0
    return ranks


def solve(problem: SquareLossProblem, *, progress: bool = False, options: SolverOptions | None = None) -> SquareLossSolution:
    data = objective_data(problem)
    p0 = random_params(problem, problem.restarts, problem.seed)
    sol = minimise(square_loss, p0, data, options=dataclasses.replace(options or SOLVER, progress=progress))
    # the lowest converged restart, unless an unconverged one is lower beyond rounding: then that one, so the
    # report grades (and fails) the best point found rather than certify a worse one
    finite = np.where(np.isfinite(sol.loss), sol.loss, np.inf)
    converged_losses = np.where(sol.converged, finite, np.inf)
    best = int(np.argmin(finite))
    if np.isfinite(converged_losses).any():
        lowest_converged = int(np.argmin(converged_losses))
        if converged_losses[lowest_converged] <= finite[best] + 1e-10 * max(1.0, abs(finite[best])):
            best = lowest_converged
    per_restart = [jax.tree.map(lambda a, i=i: a[i], sol.params) for i in range(problem.restarts)]
    return SquareLossSolution(per_restart[best], sol.loss, sol.status, [numerical_ranks(p) for p in per_restart],
                              best, sol)


def evaluate(params: dict, data: SquareLossData) -> tuple[float, float]:
    """(objective, relative gradient norm ||grad|| / max(1, |f|)) at a point."""
    f, g = jax.value_and_grad(square_loss)(params, data)
    gn = float(jnp.linalg.norm(ravel_pytree(g)[0]))
    return float(f), gn / max(1.0, abs(float(f)))


def solution_checks(problem: SquareLossProblem, params: dict, data: SquareLossData, t: dict | None,
                    converged: bool = True) -> tuple[list, dict]:
    """Checks at one solution: identities, objective and geometry vs theory, NC1-NC4, R-B relations, central path.

    The identities are first-order conditions: they are reported but not graded at an unconverged point that
    sits on ReLU kinks (where the objective has no gradient)."""
    F, h = (np.asarray(a) for a in forward(params, data))
    Y, labels, K, lam = problem.targets(), problem.labels, problem.C, problem.lambda_W
    R = Y - F
    b = np.asarray(params["b"]) if "b" in params else np.zeros(K)
    lambda_b = float(data.lambda_b)
    W_L = np.asarray(params["layers"][-1])
    energies = [problem.lambda_W * float(np.sum(np.asarray(W) ** 2)) for W in params["layers"]]
    if "H" in params:
        energies.append(problem.lambda_H * float(np.sum(np.asarray(params["H"]) ** 2)))
    objective = float(square_loss(params, data))
    eps = 1.0 - float(np.mean(F[labels, np.arange(problem.N)]))
    nonzero = np.linalg.norm(W_L) > 1e-8
    identities = [checks.identity_last_layer(lam, W_L, R, h), checks.identity_factors(energies, R, F, b)]
    if problem.bias != "none":
        identities.append(checks.identity_bias(lambda_b, b, R))
    if not nonzero:  # W = H = 0: both sides vanish and their ratio is rounding noise
        identities = [dataclasses.replace(c, tol=None, detail="zero solution: holds trivially") for c in identities]
    kinks = relu_kinks(problem, params, data)
    if kinks and not converged:  # stopped on a kink, where the objective is not differentiable
        identities = [dataclasses.replace(c, tol=None, detail=f"nonsmooth point: {kinks} ReLU pre-activations at 0")
                      for c in identities]
    out = identities
    numbers = {"objective": objective, "eps": eps, "factor_energies": energies}
    asserted = t is not None and t["asserted"]
    if t is not None:
        tol = checks.OBJECTIVE_TOL if asserted else None
        out.append(checks.close("objective = closed form (rel)", objective, t["objective"], tol,
                                f"solver {objective:.15g}, closed form {t['objective']:.15g}"))
        gtol = checks.GEOMETRY_TOL if asserted else None
        out.append(checks.close("eps = closed form (rel)", eps, t["eps"], gtol, f"eps = {eps:.12g}"))
        if "WWt" in t:
            out.append(checks.close("W W^T = closed form (rel)", W_L @ W_L.T, t["WWt"], gtol))
        if t.get("factor_energy") is not None:
            out.append(checks.close("every factor's lambda ||theta||^2 = closed form", energies,
                                    [t["factor_energy"]] * len(energies), gtol))
        if problem.bias != "none":
            out.append(checks.close("bias = closed form", b, t["b"], gtol))
    if nonzero:
        means = metrics.class_means(h.T, labels, K)
        nc = {"NC1": metrics.nc1(h.T, labels, K), "NC2_means": metrics.nc2(h.T, labels, K),
              "NC2_classifier": metrics.frame_geometry(W_L), "NC3": metrics.nc3(W_L, h.T, labels, K),
              "NC4": metrics.nc4(W_L, b, h.T, labels, K)}
        numbers["nc"] = nc
        graded = asserted and problem.bias in ("none", "free")
        g = checks.GEOMETRY_TOL if graded else None
        out += [Check("NC1 tr(S_W S_B^+)/K", nc["NC1"], 1e-10 if graded else None),
                Check("NC2 equinorm of centred means", nc["NC2_means"]["equinorm"], g),
                Check("NC2 equiangularity of classifier rows", nc["NC2_classifier"]["equiangular"], g),
                checks.close("classifier cosine = closed form", nc["NC2_classifier"]["mean_cosine"],
                             theory.rb_cosine(K, problem.bias if problem.bias == "free" else "none"), None)
                if not graded else Check("classifier cosine = closed form (abs)",
                                         abs(nc["NC2_classifier"]["mean_cosine"] - theory.rb_cosine(K, problem.bias)), g),
                Check("NC3 = its limit (abs)", abs(nc["NC3"] - theory.nc3_limit(K, problem.bias))
                      if problem.bias in ("none", "free") else nc["NC3"], g,
                      f"NC3 = {nc['NC3']:.6g}" + (f", limit {theory.nc3_limit(K, problem.bias):.6g}"
                                                  if problem.bias in ("none", "free") else "")),
                Check("NC4 share disagreeing with nearest mean", nc["NC4"], 0.0 if graded else None)]
        out += rb_checks(problem, W_L, means, eps, graded)
        if problem.bias == "free" and problem.layers == 1 and problem.model == "ufm":
            Hc = h - h.mean(axis=1, keepdims=True)
            ridge = (Y - Y.mean(axis=1, keepdims=True)) @ Hc.T @ np.linalg.inv(Hc @ Hc.T + problem.N * lam * np.eye(h.shape[0]))
            out.append(checks.close("central path: W = ridge LS classifier of its features", W_L, ridge,
                                    checks.GEOMETRY_TOL))
    return out, numbers


def relu_kinks(problem: SquareLossProblem, params: dict, data: SquareLossData, tol: float = 1e-7) -> int:
    """Number of ReLU pre-activations within ``tol`` (relative to the largest) of the kink at 0."""
    if problem.act != "relu":
        return 0
    h = params["H"] if "H" in params else data.X
    count = 0
    for W in params["layers"][:-1]:
        z = np.asarray(W @ h)
        count += int(np.sum((np.abs(z) <= tol * np.abs(z).max()) & (z != 0)))
        h = jnp.maximum(W @ h, 0.0)
    return count


def rb_checks(problem, W_L, means, eps, graded) -> list[Check]:
    """The seed's relations (stated for a free bias) and their bias-free correction, at a nonzero solution."""
    K, lam = problem.C, problem.lambda_W
    seed_W = theory.rb_classifier(K, eps, lam, means, "free")
    fixed_W = theory.rb_classifier(K, eps, lam, means, "none")
    seed_norm = theory.rb_classifier_norm_sq(K, eps, lam, "free")
    fixed_norm = theory.rb_classifier_norm_sq(K, eps, lam, "none")
    norms = np.sum(W_L**2, axis=1)
    err_seed = checks.rel(W_L, seed_W)
    out = []
    if problem.bias == "free":
        g = checks.GEOMETRY_TOL if graded else None
        out.append(Check("seed R-B: W_L^c = eps (mu_c - mu_G)/(lam (K-1))", err_seed, g))
        out.append(checks.close("seed R-B: ||W_L^c||^2 = (eps - K eps^2/(K-1))/(K lam)", norms, np.full(K, seed_norm), g))
    elif problem.bias == "none":
        ratio = float(np.sqrt(np.mean(norms) / seed_norm)) if seed_norm > 0 else float("nan")
        out.append(Check("seed R-B W_L formula fails bias-free (needs rel err >= 1e-3; value 1e-3/err)",
                         1e-3 / max(err_seed, 1e-300), 1.0 if graded else None,
                         f"rel err {err_seed:.3g}; ||W_L^c|| / seed's = {ratio:.6g}"))
        g = checks.GEOMETRY_TOL if graded else None
        out.append(Check("corrected bias-free: W_L^c = eps mu_c/(K lam)", checks.rel(W_L, fixed_W), g))
        out.append(checks.close("corrected bias-free: ||W_L^c||^2 = eps(1-eps)/(K lam)", norms, np.full(K, fixed_norm), g))
    else:
        out.append(Check("seed R-B W_L formula with a decayed bias (rel err)", err_seed, None,
                         "the decayed bias forces the bias-free contradiction; reported only"))
    return out


def run(problem: SquareLossProblem, *, progress: bool = True) -> Report:
    t0 = time.perf_counter()
    data = objective_data(problem)
    found = solve(problem, progress=progress)
    t = closed_form(problem)
    best_ok = bool(found.solution.converged[found.best])
    result_checks, numbers = solution_checks(problem, found.params, data, t, best_ok)
    conv = found.solution.report()
    kinks = relu_kinks(problem, found.params, data)
    result_checks.insert(0, Check("solver converged at the best restart (rel grad)",
                                  float(found.solution.rel_grad_norm[found.best]) if best_ok else float("inf"),
                                  SOLVER.rtol,
                                  (f"{kinks} ReLU pre-activations at the kink" if best_ok else
                                   f"stopped on {kinks} ReLU kinks (nonsmooth point), rel grad "
                                   f"{found.solution.rel_grad_norm[found.best]:.2e}") if kinks else ""))
    headline = [f"ufm {problem.model} square loss: C={problem.C} n={problem.n} L={problem.layers} d={problem.d} "
                f"act={problem.act} bias={problem.bias} lambda_W={problem.lambda_W:g}"
                + (f" lambda_H={problem.lambda_H:g}" if problem.model == "ufm" else f" inputs={problem.inputs}")]
    if t is not None:
        point = closed_form_point(problem, t["Z"], t["b"])
        f_point, g_point = evaluate(point, data)
        numbers["closed_form"] = {k: v for k, v in t.items() if k not in ("Z", "outputs", "WWt")}
        numbers["closed_form_point"] = {"objective": f_point, "rel_grad_norm": g_point}
        gtol = 1e-10 if t["asserted"] else None
        result_checks.append(Check("closed-form point is critical (rel grad at it)", g_point, gtol))
        result_checks.append(checks.close("closed-form point's objective = formula", f_point, t["objective"],
                                          checks.OBJECTIVE_TOL))
        lowest = float(np.min(found.restart_losses))
        result_checks.append(Check("no restart below the closed form (rel)", max(0.0, (t["objective"] - lowest) / t["objective"]),
                                   checks.OBJECTIVE_TOL if t["asserted"] else None,
                                   f"lowest restart {lowest:.15g}"))
        headline.append(f"closed form: objective {t['objective']:.15g}  eps {t['eps']:.12g}"
                        + (f"  x* {t['x']:.12g}  beta {t['beta']:.6g} (threshold {t['beta_c']:.6g})" if "x" in t else
                           f"  rho {t['rho']:.6g}"))
    else:
        headline.append("closed form: none known for this configuration (identities and NC metrics only)")
    at_best = np.sum(np.abs(found.restart_losses - found.restart_losses[found.best])
                     <= 1e-10 * abs(found.restart_losses[found.best]))
    result_checks.append(Check("restarts ending at the best objective", float(at_best), None,
                               f"of {problem.restarts}; end objectives {np.array2string(found.restart_losses, precision=10)};"
                               f" factor ranks {found.restart_ranks}"))
    headline.append(f"best restart {found.best}: objective {numbers['objective']:.15g}, eps {numbers['eps']:.12g}")
    numbers.update({"restart_losses": found.restart_losses, "restart_ranks": found.restart_ranks,
                    "restart_status": found.restart_status, "seconds": time.perf_counter() - t0})
    config = {"loss": {"ufm": "mse" if problem.layers == 1 else "mse-deep", "net": "mse-net"}[problem.model],
              **dataclasses.asdict(problem), "solver": dataclasses.asdict(SOLVER)}
    arrays = {f"W{i + 1}": np.asarray(W) for i, W in enumerate(found.params["layers"])}
    if "H" in found.params:
        arrays["H"] = np.asarray(found.params["H"])
    if "b" in found.params:
        arrays["b"] = np.asarray(found.params["b"])
    F, h = forward(found.params, data)
    arrays.update({"F": np.asarray(F), "features": np.asarray(h), "labels": problem.labels,
                   "restart_losses": found.restart_losses})
    return Report(config["loss"], config, headline, result_checks, conv, numbers, arrays, "solution.npz")


def gradient_descent(problem: SquareLossProblem, *, steps: int = 20000, lr: float = 0.5, momentum: float = 0.9,
                     record_every: int = 200, weight_decay: bool = True, init_scale: float = 0.1) -> dict:
    """Full-batch gradient descent with momentum (fixed step, as neural-collapse papers train), NC1-NC4 recorded.

    ``weight_decay=False`` sets every decay to 0 (the plain square loss). Returns arrays ``step``, ``loss``,
    ``NC1``, ``NC2`` (equinorm of centred means), ``NC3``, ``NC4``, ``eps`` at every ``record_every`` steps.
    """
    data = objective_data(problem)
    if not weight_decay:
        data = data._replace(lambda_layers=jnp.zeros_like(data.lambda_layers), lambda_H=jnp.zeros(()),
                             lambda_b=jnp.zeros(()))
    params = jax.tree.map(lambda a: init_scale * a[0], gaussian_params(problem, 1, problem.seed))
    opt = optax.sgd(lr, momentum=momentum)
    state = opt.init(params)

    @jax.jit
    def advance(carry):
        def body(c, _):
            p, s = c
            g = jax.grad(square_loss)(p, data)
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None

        return jax.lax.scan(body, carry, None, length=record_every)[0]

    labels, K = problem.labels, problem.C
    rows = []
    carry = (params, state)
    for k in range(steps // record_every + 1):
        p = carry[0]
        F, h = (np.asarray(a) for a in forward(p, data))
        W_L = np.asarray(p["layers"][-1])
        b = np.asarray(p["b"]) if "b" in p else np.zeros(K)
        rows.append([k * record_every, float(square_loss(p, data)), metrics.nc1(h.T, labels, K),
                     metrics.nc2(h.T, labels, K)["equinorm"], metrics.nc3(W_L, h.T, labels, K),
                     metrics.nc4(W_L, b, h.T, labels, K), 1.0 - float(np.mean(F[labels, np.arange(problem.N)]))])
        if k < steps // record_every:
            carry = advance(carry)
    arr = np.array(rows)
    return {name: arr[:, i] for i, name in enumerate(("step", "loss", "NC1", "NC2", "NC3", "NC4", "eps"))}
