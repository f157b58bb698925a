"""Shared pieces of the benchmarks: the scipy and optax baselines' timing loops, time-to-tolerance, machine info,
and the three-way comparison of a joint (W, H) problem against its closed-form optimal value.

Conventions (the same for every method, so that the table compares like with like):

- ``compile_s`` is jit compilation (0 for scipy), reported apart from ``solve_s``;
- ``solve_s`` is wall time of the solve proper, measured with ``time.perf_counter`` around blocked calls;
  accuracy evaluation against the closed form is never inside a timed region;
- ``time_to_tol[tol]`` is the solve time at which the accuracy measure (max relative feature error, or relative
  objective gap) first reached ``tol``, or ``None`` ("not reached").
  For this package's solver it is its total solve time whenever its final accuracy is within ``tol`` (an upper
  bound: it is not stopped early), for the optax loop the first checkpoint at or below ``tol`` (resolution: one
  checkpoint interval), and for the scipy loop the sum over subproblems of the time each took to first reach
  ``tol`` (stopping each exactly there, an oracle no real user has: it favours scipy).
"""

from __future__ import annotations

import os
import platform
import resource
import time

import numpy as np

TOLERANCES = (1e-6, 1e-10)
GAP_TOLERANCES = (1e-6, 1e-8, 1e-10)


def machine() -> dict:
    """Where the numbers were taken: CPU, cores, load (the machine may be shared), jax devices."""
    import jax

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()),
        "jax_backend": jax.default_backend(),
        "jax_devices": [str(d) for d in jax.devices()],
        "dtype": "float64",
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB); each benchmark case runs in its own process."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def first_time_below(times, errors, tols=TOLERANCES) -> dict:
    """``{tol: first time with error <= tol or None}`` for a trajectory of (time, error)."""
    out = {}
    for tol in tols:
        hit = [t for t, e in zip(times, errors) if e <= tol]
        out[f"{tol:g}"] = float(hit[0]) if hit else None
    return out


def scipy_lbfgsb_loop(fun_and_grad, x0s, error_of, *, maxiter=20000, tols=TOLERANCES) -> dict:
    """Run scipy L-BFGS-B on each row of ``x0s`` to its best accuracy (ftol = gtol = 0: it stops when its line
    search cannot make progress), recording every iterate's time; ``error_of(i, X)`` maps the iterates X of
    subproblem i to accuracy values (computed after the timed run).

    Returns total solve time, iterations, final worst error and the oracle time-to-tolerance (module docstring).
    """
    from scipy.optimize import minimize

    total, iters, worst, hit = 0.0, [], 0.0, {f"{t:g}": 0.0 for t in tols}
    for i, x0 in enumerate(x0s):
        stamps, iterates = [], []
        overhead = [0.0]

        def record(xk):
            t_in = time.perf_counter()
            stamps.append(t_in - overhead[0])
            iterates.append(np.array(xk))
            overhead[0] += time.perf_counter() - t_in

        t0 = time.perf_counter()
        res = minimize(fun_and_grad, x0, args=(i,), jac=True, method="L-BFGS-B", callback=record,
                       options={"ftol": 0.0, "gtol": 0.0, "maxiter": maxiter, "maxfun": 10 * maxiter})
        t1 = time.perf_counter() - overhead[0]
        total += t1 - t0
        iters.append(int(res.nit))
        times = [s - t0 for s in stamps] + [t1 - t0]
        errors = list(error_of(i, np.array(iterates + [res.x])))
        worst = max(worst, float(errors[-1]))
        for tol in tols:
            key = f"{tol:g}"
            if hit[key] is None:
                continue
            below = [t for t, e in zip(times, errors) if e <= tol]
            hit[key] = hit[key] + below[0] if below else None
    return {"solve_s": total, "compile_s": 0.0, "iterations_total": int(np.sum(iters)),
            "iterations_max": int(np.max(iters)), "final_error": worst, "time_to_tol": hit}


def optax_full_batch(loss, params0, data, error_of, *, optimizer, budget, check_every, tols=TOLERANCES) -> dict:
    """The papers' loop: ``budget`` full-batch optax steps at a fixed learning rate on ``loss(params, data)``,
    with the accuracy measured every ``check_every`` steps (outside the timed region)."""
    import jax
    import optax

    @jax.jit
    def run_chunk(params, state):
        def body(_, carry):
            p, s = carry
            g = jax.grad(loss)(p, data)
            updates, s = optimizer.update(g, s, p)
            return optax.apply_updates(p, updates), s

        return jax.lax.fori_loop(0, check_every, body, (params, state))

    params, state = params0, optimizer.init(params0)
    t0 = time.perf_counter()
    compiled = run_chunk.lower(params, state).compile()
    compile_s = time.perf_counter() - t0
    elapsed, times, errors, done = 0.0, [], [], 0
    while done < budget:
        t0 = time.perf_counter()
        params, state = jax.block_until_ready(compiled(params, state))
        elapsed += time.perf_counter() - t0
        done += check_every
        times.append(elapsed)
        errors.append(float(error_of(params)))
        if not np.isfinite(errors[-1]):
            break
    return {"solve_s": elapsed, "compile_s": compile_s, "iterations_total": done, "final_error": errors[-1],
            "best_error": float(np.nanmin(errors)), "time_to_tol": first_time_below(times, errors, tols),
            "iterations_to_tol": {f"{tol:g}": (check_every * (1 + next((k for k, e in enumerate(errors) if e <= tol))))
                                  if any(e <= tol for e in errors) else None for tol in tols}}


# ----------------------------------------------------------------------------------------------------------------
# Joint problems (one instance, one start): accuracy is the relative objective gap to the closed-form value L*
# ----------------------------------------------------------------------------------------------------------------

def relative_gap(f, f_star: float) -> float:
    """``(L - L*) / |L*|``: the accuracy measure of the joint problems (L* from the package's closed form)."""
    return (float(f) - f_star) / abs(f_star)


def ufm_gap(loss, params0, data, f_star: float, options, tols=GAP_TOLERANCES) -> dict:
    """``ufm.solver.minimise`` on ``loss(params, data)`` from one start (a batch of one): its row, with the gap of
    its final objective and time-to-tolerance = its whole solve time where that gap is within tol (module
    docstring)."""
    import jax

    from ufm.solver import minimise

    sol = minimise(loss, jax.tree.map(lambda a: a[None], params0), data, args_axes=None, options=options)
    rep = sol.report()
    gap = relative_gap(sol.loss[0], f_star)
    qn = f" after <= {options.quasi_newton_steps} L-BFGS steps" if options.quasi_newton_steps else ""
    return {"method": f"ufm.solver ({options.linear_solver} Newton{qn})", "compile_s": rep["compile_seconds"],
            "solve_s": rep["solve_seconds"], "iterations_max": rep["max_steps_taken"], "final_error": gap,
            "all_converged": rep["all_converged"], "status": rep["failures"] or "converged",
            "time_to_tol": {f"{t:g}": (rep["solve_seconds"] if gap <= t else None) for t in tols}}


def scipy_lbfgsb_gap(fun_and_grad, x0, f_star: float, *, bounds=None, maxiter=20000, tols=GAP_TOLERANCES) -> dict:
    """scipy L-BFGS-B on one flat problem (``fun_and_grad(x) -> (f, g)``, numpy float64, optional box ``bounds``)
    to its best accuracy (ftol = gtol = 0), the gap of every iterate evaluated in the callback outside the timed
    region; time-to-tolerance is the first iterate within tol."""
    from scipy.optimize import minimize

    stamps, gaps, overhead = [], [], [0.0]

    def record(xk):
        t_in = time.perf_counter()
        stamps.append(t_in - overhead[0])
        gaps.append(relative_gap(fun_and_grad(xk)[0], f_star))
        overhead[0] += time.perf_counter() - t_in

    t0 = time.perf_counter()
    res = minimize(fun_and_grad, x0, jac=True, method="L-BFGS-B", bounds=bounds, callback=record,
                   options={"ftol": 0.0, "gtol": 0.0, "maxiter": maxiter, "maxfun": 2 * maxiter})
    total = time.perf_counter() - overhead[0] - t0
    final = relative_gap(res.fun, f_star)
    return {"method": "scipy L-BFGS-B" + (" (bounds)" if bounds is not None else ""), "compile_s": 0.0,
            "solve_s": total, "iterations_total": int(res.nit), "final_error": final,
            "best_error": float(min(gaps + [final])), "stop": str(res.message),
            "time_to_tol": first_time_below([s - t0 for s in stamps] + [total], gaps + [final], tols)}


def first_order_optimizer(name: str, sgd_lr: float):
    """``(optimizer, description)``: SGD with momentum 0.9 at ``sgd_lr`` (``"sgd-momentum"``), or Adam at lr 1e-3,
    its default in papers (``"adam"``)."""
    import optax

    if name == "sgd-momentum":
        return optax.sgd(sgd_lr, momentum=0.9), f"lr {sgd_lr:.3g}, momentum 0.9"
    if name == "adam":
        return optax.adam(1e-3), "lr 1e-3"
    raise ValueError(f"unknown optimizer {name!r}")


def optax_gap(loss, params0, data, f_star: float, name: str, sgd_lr: float, budget: int, check_every: int,
              tols=GAP_TOLERANCES) -> dict:
    """The papers' loop (:func:`optax_full_batch`) on ``loss(params, data)``, accuracy = the gap to L*."""
    optimizer, desc = first_order_optimizer(name, sgd_lr)
    out = optax_full_batch(loss, params0, data, lambda p: relative_gap(loss(p, data), f_star), optimizer=optimizer,
                           budget=budget, check_every=check_every, tols=tols)
    out.update(method=f"optax {name} ({desc}), full batch")
    return out


def joint_results(spec: dict, run_ufm, run_scipy, run_optax) -> list[dict]:
    """The rows of a joint case: ours, then scipy (unless ``spec["scipy"]`` is false, at most
    ``spec["scipy_maxiter"]`` iterations), then each optax optimizer of ``spec["optax"]`` (default SGD+momentum
    and Adam) for ``spec["budget"]`` steps checked every ``spec["check_every"]``."""
    results = [run_ufm()]
    if spec.get("scipy", True):
        results.append(run_scipy(spec.get("scipy_maxiter", 20000)))
    for name in spec.get("optax", ["sgd-momentum", "adam"]):
        results.append(run_optax(name, spec["budget"], spec["check_every"]))
    return results
