"""Checks of the two-layer mixup model (the per-layer question of Chaudhry et al.).

There is no closed form for the nonlinear model; what is graded is what must hold exactly: convergence of the
best restart, linearity of the input mix, and (linear activation) exact linearity of every layer. NonLin values
themselves are reported only.
"""

from __future__ import annotations

from collections import Counter

import jax
import jax.numpy as jnp
import numpy as np

from ufm.checks import Check
from ufm.metrics import nonlinearity, nonlinearity_floor
from ufm.objectives.mixup_deep import RELU_SHARPNESS, DeepMixupData, activation_function, forward, make_loss
from ufm.problems.mixup_deep import RULES, MixupDeepProblem

LINEAR_TOL = 1e-10  # relative to the layer's vertex norm: the composition of linear maps is exact up to rounding
LAYERS = ("g", "h", "z")  # input features (mixed), hidden layer, logits


def converged(rule: str, solution, best: int, rtol: float, floor: dict | None = None) -> Check:
    """The best restart (``ufm.solver.best_element``) converged: relative gradient <= ``rtol``, or, for a restart
    in ``floor`` ({restart: (Newton-predicted decrease, f's rounding window)},
    ``ufm.objectives.mixup_deep.accept_rounding_floor``), stalled at f's rounding floor of a degenerate minimum where
    the Newton model predicts no decrease f can resolve. Graded 0 (yes) or 1 (no), finite either way; the detail
    gives the numbers, counts the restarts that did not converge, by status (saddles included), and names the best
    one's status when it is among them."""
    from ufm.solver import STATUS_MESSAGES

    floor = floor or {}
    ok = bool(solution.converged[best])
    rel_grad = float(solution.rel_grad_norm[best])
    failures = "; ".join(
        f"{n}/{solution.status.size} restart(s): {msg}" for msg, n in solution.report()["failures"].items()
    )
    if not ok:
        detail = f"best restart {best}: {STATUS_MESSAGES[int(solution.status[best])]}, rel grad {rel_grad:.2e}" + (
            "" if solution.converged.any() else "; no restart converged"
        )
    elif best in floor:
        decrease, window = floor[best]
        detail = (
            f"stalled at f's rounding floor (degenerate minimum, rel grad {rel_grad:.2e}): no trial along the "
            f"Newton ray decreased f beyond its rounding window {window:.2e}, the Newton model's decrease in "
            f"the clearly curved directions is {decrease:.2e}"
        )
    else:
        detail = f"rel grad {rel_grad:.2e} (rtol {rtol:.0e})"
    if floor:
        detail = "; ".join(x for x in (detail, f"{len(floor)} restart(s) accepted at the rounding floor") if x)
    detail = "; ".join(x for x in (detail, failures) if x)
    return Check(f"{rule}: best restart converged (0 = yes)", 0.0 if ok else 1.0, 0.0, detail)


def restarts_at_best(rule: str, loss: np.ndarray, converged: np.ndarray, rtol: float = 1e-9) -> Check:
    """How many converged restarts reach the best converged loss (to ``rtol`` relative): info on the landscape."""
    if not np.any(converged):
        return Check(f"{rule}: restarts reaching the best loss", 0.0, None, f"0/{loss.size}: none converged")
    best = float(np.min(loss[converged]))
    hits = int(np.sum(converged & (loss <= best + rtol * max(1.0, abs(best)))))
    return Check(
        f"{rule}: restarts reaching the best loss",
        float(hits),
        None,
        f"{hits}/{loss.size} (converged); losses {np.min(loss):.10g} .. {np.max(loss):.10g}",
    )


def exactly_linear(rule: str, layer: str, unnormalised_rel: float) -> Check:
    """A layer that is a composition of linear maps of the input mix: unnormalised NonLin / vertex norm = 0.
    VOID where the layer is 0 at every vertex (the zero optimum of large weight decays): nothing to compare."""
    name = f"{rule}: layer {layer} exactly linear (unnormalised NonLin, rel)"
    if np.isnan(unnormalised_rel):
        return Check.undefined(name, f"layer {layer} is 0 at every vertex (zero optimum): no scale to compare with")
    return Check(name, unnormalised_rel, LINEAR_TOL)


def layer_outputs(problem: MixupDeepProblem, params: dict, data: DeepMixupData, inputs: np.ndarray) -> dict:
    """Outputs of every layer (g: the inputs themselves, h: hidden, z: logits) for inputs (n x d0), with the
    problem's activation (relu itself, not its smooth surrogate)."""
    act = activation_function(problem.activation, problem.sharpness)
    h, z = forward(params, data, act, jnp.asarray(inputs))
    return {"g": np.asarray(inputs), "h": np.asarray(h), "z": np.asarray(z)}


def layer_nonlinearity(problem: MixupDeepProblem, params: dict, data: DeepMixupData) -> dict:
    """Per layer: weighted mean NonLin (eq. 3), its floor, the excess, and unnormalised NonLin / vertex norm.

    Eq. (3) normalises every output; where the mixed output or a vertex output is exactly 0 (a relu layer switched
    off) it is undefined: those mixes are left out of the normalised means (their weight renormalised; ``undefined``
    counts them) and every normalised number is NaN if none is left. The unnormalised measure is NaN where the
    layer is 0 at every vertex (no scale).
    """
    pairs, lam, weights = problem.evaluation_mixes()
    g = np.asarray(params["g"])
    eye = np.eye(problem.C)
    inputs_mix = np.einsum("nk,nkc->nc", lam, eye[pairs]) @ g
    mixed = layer_outputs(problem, params, data, inputs_mix)
    vertex = layer_outputs(problem, params, data, g)
    out = {}
    for layer in LAYERS:
        pts = vertex[layer][pairs]
        defined = (np.linalg.norm(mixed[layer], axis=-1) > 0) & np.all(np.linalg.norm(pts, axis=-1) > 0, axis=-1)
        total = float(np.sum(weights[defined]))
        w = weights[defined] / total if total > 0 else np.zeros(0)
        defined &= total > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            nl = nonlinearity(mixed[layer][defined], pts[defined], lam[defined])
            floor = nonlinearity_floor(pts[defined], lam[defined])
        raw = nonlinearity(mixed[layer], pts, lam, normalise=False)
        scale = float(np.mean(np.linalg.norm(vertex[layer], axis=-1)))
        nan = float("nan")
        out[layer] = {
            "nonlin": float(w @ nl) if w.size else nan,
            "floor": float(w @ floor) if w.size else nan,
            "excess": float(w @ (nl - floor)) if w.size else nan,
            "unnormalised_rel": float(weights @ raw) / scale if scale > 0 else nan,
            "undefined": int(np.sum(~defined)),
        }
    return out


def stage_record(problem: MixupDeepProblem, s: float, sol, best: int, floor: dict, data: DeepMixupData) -> dict:
    """One continuation stage's record (sharpness ``s``): the best restart's loss, relative gradient, convergence
    and NonLin per layer, every restart's status, and the restarts accepted at the rounding floor (``floor``)."""
    return {
        "sharpness": s,
        "loss": float(sol.loss[best]),
        "rel_grad": float(sol.rel_grad_norm[best]),
        "converged": bool(sol.converged[best]),
        "statuses": sol.status.tolist(),
        "floor": floor,
        "nonlin": layer_nonlinearity(problem, {k: v[best] for k, v in sol.params.items()}, data),
    }


def rule_checks(
    problem: MixupDeepProblem, rule: str, sol, best: int, data: DeepMixupData, history: list, params: dict, rtol: float
) -> list[Check]:
    """One training rule's checks: the best restart converged, restarts reaching the best loss, NonLin's spread over
    the converged restarts at the best loss (info: whether it is well defined), the input mix exactly linear, the
    relu limit (NonLin at the last two sharpness stages, relu-evaluated, differ by O(1/s); info) and, with the
    linear activation, every layer exactly linear. ``history``: the stages' records (:func:`stage_record`)."""
    nonlin = history[-1]["nonlin"]
    at_best = np.flatnonzero(sol.converged & (sol.loss <= sol.loss[best] + 1e-9 * max(1.0, abs(sol.loss[best]))))
    spread = max(
        (
            abs(
                layer_nonlinearity(problem, {k: v[i] for k, v in sol.params.items()}, data)[layer]["excess"]
                - nonlin[layer]["excess"]
            )
            for i in at_best
            for layer in LAYERS
        ),
        default=0.0,
    )
    result = [
        converged(rule, sol, best, rtol, history[-1]["floor"]),
        restarts_at_best(rule, sol.loss, sol.converged),
        Check(f"{rule}: NonLin spread over the restarts at the best loss", float(spread), None),
        exactly_linear(rule, "g (input mix)", nonlin["g"]["unnormalised_rel"]),
    ]
    if len(history) > 1:
        change = max(
            abs(history[-1]["nonlin"][layer][key] - history[-2]["nonlin"][layer][key])
            for layer in LAYERS
            for key in ("nonlin", "unnormalised_rel")
        )
        relu_loss = float(jax.jit(make_loss(activation_function("relu")))(params, data))  # one program, not ~30 ops
        result.append(
            Check(
                f"{rule}: relu limit, NonLin change over the last stage",
                change,
                None,
                f"s {history[-2]['sharpness']:g} -> {history[-1]['sharpness']:g}; relu loss "
                f"{relu_loss:.10g} vs smooth {history[-1]['loss']:.10g}",
            )
        )
    if problem.activation == "linear":
        result += [exactly_linear(rule, layer, nonlin[layer]["unnormalised_rel"]) for layer in ("h", "z")]
    return result


def seed_finding(table: dict, checks: list[Check]) -> tuple[dict, float]:
    """Chaudhry et al.'s qualitative finding (Sec. 3.1): mixup more linear than ERM in the last layer but not in the
    intermediate one; the consistency loss more linear than ERM in every layer. Judged both on eq. (3) as the paper
    defines it and on the unnormalised NonLin (relative to the layer's norm), with a tolerance: the relu limit is
    only reached to O(1/s). The two measures can disagree (eq. 3 also moves with the vertex geometry, its floor).

    Returns ``({"<rule> vs ERM, layer <layer>": {"eq3": verdict, "unnormalised": verdict}}, tolerance)``.
    """
    tol = max(1e-4, 10 * max((c.value for c in checks if "relu limit" in c.name), default=0.0))

    def compare(rule, layer, key):
        diff = table[rule][layer][key] - table["erm"][layer][key]
        if not np.isfinite(diff):
            return "undefined (a layer is 0)"
        return "equal" if abs(diff) <= tol else ("more linear" if diff < 0 else "less linear")

    verdicts = {
        f"{rule} vs ERM, layer {layer}": {
            "eq3": compare(rule, layer, "nonlin"),
            "unnormalised": compare(rule, layer, "unnormalised_rel"),
        }
        for rule in ("mixup", "consistency")
        for layer in ("h", "z")
    }
    return verdicts, tol


def convergence_record(per_rule: dict) -> dict:
    """The entries of the run's convergence record over the solver's (the rules' restarts as one batch): the mean
    of the rules' mean steps, the failures of every rule added up, with the restarts accepted at f's rounding
    floor counted beside them (converged, but only to that floor), and ``per_rule``: each rule's own record."""
    failures = dict(sum((Counter(c["failures"]) for c in per_rule.values()), Counter()))
    floor_count = sum(c["converged_at_rounding_floor"] for c in per_rule.values())
    if floor_count:
        failures["stalled at f's rounding floor of a degenerate minimum (accepted as converged)"] = floor_count
    return {
        "mean_steps_taken": float(np.mean([c["mean_steps_taken"] for c in per_rule.values()])),
        "failures": failures,
        "per_rule": per_rule,
    }


def headline(problem: MixupDeepProblem, table: dict, losses: dict, verdicts: dict, tol: float) -> list[str]:
    """The report's headline: the configuration, NonLin per rule and layer, and the comparison with ERM."""
    lines = [
        f"ufm mixup-deep: C={problem.C} d0={problem.d0} d1={problem.d1} activation={problem.activation}"
        + (f"(s={problem.sharpness:g})" if problem.activation == "softplus" else "")
        + (f" (by softplus continuation to s={RELU_SHARPNESS[-1]:g})" if problem.activation == "relu" else "")
        + f" classifier={problem.classifier} mu={problem.mu:g} lambda_W={problem.lambda_W:g} alpha={problem.alpha:g} "
        f"consistency={problem.consistency:g}  {problem.restarts} restarts per rule",
        "NonLin of Chaudhry et al. eq. (3) per layer (g: mixed input features, h: hidden, z: logits), best restart;",
        "floor = 1 - |sum lam f^| (any exactly linear map with equal vertex norms); excess = NonLin - floor:",
        f"{'rule':<12} {'layer':<5} {'loss':>12} {'NonLin':>9} {'floor':>9} {'excess':>10} {'unnorm/|f|':>10}",
    ]
    for rule in RULES:
        for layer in LAYERS:
            r = table[rule][layer]
            lines.append(
                f"{rule:<12} {layer:<5} {losses[rule]:12.8f} {r['nonlin']:9.6f} {r['floor']:9.6f} "
                f"{r['excess']:10.3e} {r['unnormalised_rel']:10.3e}"
            )
    lines.append(
        "compared with ERM (Chaudhry et al.: mixup more linear in the last layer, less in the hidden one; "
        f"consistency more linear in all), tolerance {tol:.0e}:"
    )
    lines += [f"  {k}: eq. (3) {v['eq3']}, unnormalised {v['unnormalised']}" for k, v in verdicts.items()]
    return lines
