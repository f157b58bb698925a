"""Shared pieces of the benchmarks: the scipy and optax baselines' timing loops, time-to-tolerance, machine info,
and the per-method runs of the joint (W, H) problems.

Conventions (the same for every method, so that the table compares like with like):

- ``compile_s`` is jit compilation (0 for scipy), reported apart from ``solve_s``;
- ``solve_s`` is wall time of the solve proper, measured with ``time.perf_counter`` around blocked calls;
  accuracy evaluation is never inside a timed region;
- ``time_to_tol[tol]`` (mixup: max relative feature error against Theorem 3.1) and ``time_to_gap[tol]`` (joint
  problems: relative objective gap to the best objective any method reached) is the solve time at which the
  accuracy measure first reached ``tol``, or ``None`` ("not reached").
  For this package's solver it is its total solve time whenever its final accuracy is within ``tol`` (an upper
  bound: it is not stopped early), for the optax loop the first checkpoint at or below ``tol`` (resolution: one
  checkpoint interval), for scipy on a joint problem the first iterate within ``tol``, and for the mixup scipy
  loop the sum over subproblems of the time each took to first reach ``tol`` (stopping each exactly there, an
  oracle no real user has: it favours scipy).
- joint problems: every method runs in its own process (``benchmarks.run``) with a wall budget on its solve time
  (``spec["budget_s"]``); its peak memory is its process's peak resident set.
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
        res = minimize(
            fun_and_grad,
            x0,
            args=(i,),
            jac=True,
            method="L-BFGS-B",
            callback=record,
            options={"ftol": 0.0, "gtol": 0.0, "maxiter": maxiter, "maxfun": 10 * maxiter},
        )
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
    return {
        "solve_s": total,
        "compile_s": 0.0,
        "iterations_total": int(np.sum(iters)),
        "iterations_max": int(np.max(iters)),
        "final_error": worst,
        "time_to_tol": hit,
    }


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
    return {
        "solve_s": elapsed,
        "compile_s": compile_s,
        "iterations_total": done,
        "final_error": errors[-1],
        "best_error": float(np.nanmin(errors)),
        "time_to_tol": first_time_below(times, errors, tols),
        "iterations_to_tol": {
            f"{tol:g}": (check_every * (1 + next((k for k, e in enumerate(errors) if e <= tol))))
            if any(e <= tol for e in errors)
            else None
            for tol in tols
        },
    }


# ----------------------------------------------------------------------------------------------------------------
# Joint problems (one instance, one start, one process per method): every method reports its objective values
# over time; the runner turns them into relative gaps against the best objective any method reached
# ----------------------------------------------------------------------------------------------------------------
#
# A joint module (benchmarks.square_loss, benchmarks.nonnegative, benchmarks.mixup_joint) provides
#   instance(spec) -> inst (deterministic: every method's process builds the same instance and start),
#   describe(inst) -> dict (JSON), inst["n_vars"], inst.get("f_star") (closed form, or None),
#   ufm_problem(inst) -> (loss, params0, data, options[, minimise kwargs]): the family's own objective, solver
#     options and bounds,
#   scipy_problem(inst) -> (fun_and_grad, x0, bounds): numpy float64, analytic gradient,
#   optax_problem(inst) -> (loss, params0, data, sgd_lr).
# A method's process prints JSON lines on stdout: {"event": "ready", "wall": t} once the instance is built,
# {"event": "point", "t": solve seconds, "f": objective} as it goes (scipy: every iterate; optax: every
# checkpoint; ours: only with spec["observe"], see observe_loss), and {"event": "result", ...} at the end.
# The reference of the gaps is the lowest objective any method returned, or the closed form where there is one
# and it is lower (no method reached it).

GAP_TOLERANCES_JOINT = (1e-6, 1e-10)


def emit(event: str, **fields) -> None:
    """One JSON line on stdout (flushed: the runner reads it while the method runs)."""
    import json

    print(json.dumps({"event": event, **fields}, default=float), flush=True)


def observe_loss(loss):
    """``loss`` with a host callback that emits the lowest objective value evaluated so far, with its wall time
    (``time.monotonic``), whenever it improves: how far our solver had got if the runner stops it at its wall
    budget (it returns nothing before it ends; its L-BFGS phase is one compiled loop). The values include
    line-search trials, so this is the lowest value *evaluated*, a lower bound on the iterate's. Used only where
    an evaluation costs far more than the callback (``spec["observe"]``, the research sizes)."""
    import jax

    best = [np.inf]

    def seen(f):
        f = float(np.min(np.asarray(f)))
        if np.isfinite(f) and f < best[0]:
            best[0] = f
            emit("eval", wall=time.monotonic(), f=f)

    def observed(params, data):
        f = loss(params, data)
        jax.debug.callback(seen, f)
        return f

    return observed


def ufm_run(module, inst: dict, spec: dict) -> dict:
    """``ufm.solver.minimise`` with the family's own solver options on the family's objective, from the seeded
    start as a batch of one: what ``python -m ufm.solve`` runs per restart. Its time to a tolerance is its whole
    solve time where its final objective is within it (an upper bound: it is not stopped early)."""
    import dataclasses

    import jax

    from ufm.solver import linear_algebra, memory_budget_bytes, minimise

    loss, params0, data, options, *extra = module.ufm_problem(inst)
    kwargs = extra[0] if extra else {}  # e.g. nonnegative= (bounds), as the family passes them
    options = dataclasses.replace(options, progress=False)
    if spec.get("observe"):
        loss = observe_loss(loss)
    chosen = linear_algebra(options, inst["n_vars"])
    estimate = module.memory_estimate(inst) if hasattr(module, "memory_estimate") else None
    emit("algebra", linear_algebra=chosen, memory_estimate_bytes=estimate, memory_budget_bytes=memory_budget_bytes())
    sol = minimise(
        loss,
        jax.tree.map(lambda a: jax.numpy.asarray(a)[None], params0),
        data,
        args_axes=None,
        options=options,
        **kwargs,
    )
    rep = sol.report()
    f = float(sol.loss[0])
    return {
        "method": "ufm.solver, family options",
        "linear_algebra": sol.linear_algebra,
        "options": {
            k: getattr(options, k)
            for k in (
                "linear_solver",
                "rtol",
                "damping",
                "quasi_newton_steps",
                "quasi_newton_rtol",
                "max_steps",
                "cg_max_steps",
                "dense_max_vars",
                "lanczos_steps",
            )
        },
        "compile_s": rep["compile_seconds"],
        "solve_s": rep["solve_seconds"],
        "iterations": rep["max_steps_taken"],
        "status": rep["failures"] or "converged",
        "rel_grad_norm": rep["max_rel_grad_norm"],
        "final_f": f,
        "bounds": str(kwargs.get("nonnegative")) if kwargs.get("nonnegative") is not None else None,
        "trajectory": [[rep["solve_seconds"], f]],
        "devices": rep["devices"],
        "memory_estimate_bytes": estimate,
        "memory_budget_bytes": memory_budget_bytes(),
    }


def scipy_run(module, inst: dict, spec: dict) -> dict:
    """scipy L-BFGS-B on the flat problem (numpy float64, optional bounds) to its best accuracy (ftol = gtol = 0:
    it stops when its line search can make no progress), or until ``spec["budget_s"]`` seconds of solve time;
    every iterate's objective comes from scipy itself (``intermediate_result.fun``: no extra evaluation), the
    callback's own time is not counted."""
    from scipy.optimize import minimize

    fun_and_grad, x0, bounds = module.scipy_problem(inst)
    budget = float(spec.get("budget_s", np.inf))
    maxiter = int(spec.get("scipy_maxiter", 20000))
    trajectory, overhead, exhausted = [], [0.0], [False]
    t0 = time.perf_counter()

    def callback(intermediate_result):
        t_in = time.perf_counter()
        t = t_in - t0 - overhead[0]
        trajectory.append([t, float(intermediate_result.fun)])
        emit("point", t=t, f=trajectory[-1][1])
        overhead[0] += time.perf_counter() - t_in
        if t >= budget:
            exhausted[0] = True
            raise StopIteration

    res = minimize(
        fun_and_grad,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        callback=callback,
        options={"ftol": 0.0, "gtol": 0.0, "maxiter": maxiter, "maxfun": 2 * maxiter},
    )
    total = time.perf_counter() - t0 - overhead[0]
    trajectory.append([total, float(res.fun)])
    return {
        "method": "scipy L-BFGS-B" + (" (bounds)" if bounds is not None else ""),
        "compile_s": 0.0,
        "solve_s": total,
        "iterations": int(res.nit),
        "evaluations": int(res.nfev),
        "final_f": float(res.fun),
        "status": "wall budget" if exhausted[0] else str(res.message),
        "budget_exhausted": exhausted[0],
        "trajectory": trajectory,
    }


def optax_run(module, inst: dict, spec: dict, name: str) -> dict:
    """The papers' loop: full-batch optax steps at a fixed learning rate (:func:`first_order_optimizer`) on the
    family's objective, ``spec["check_every"]`` steps per compiled chunk, the objective evaluated after every chunk
    outside the timed region; it stops after ``spec["steps"]`` steps, at ``spec["budget_s"]`` seconds of solve
    time (checked after each chunk) or at a non-finite objective."""
    import jax
    import optax

    loss, params, data, sgd_lr = module.optax_problem(inst)
    optimizer, desc = first_order_optimizer(name, sgd_lr)
    steps, every = int(spec["steps"]), int(spec["check_every"])
    budget = float(spec.get("budget_s", np.inf))

    @jax.jit
    def run_chunk(params, state):
        def body(_, carry):
            p, s = carry
            g = jax.grad(loss)(p, data)
            updates, s = optimizer.update(g, s, p)
            return optax.apply_updates(p, updates), s

        return jax.lax.fori_loop(0, every, body, (params, state))

    value = jax.jit(loss).lower(params, data).compile()
    state = optimizer.init(params)
    t0 = time.perf_counter()
    compiled = run_chunk.lower(params, state).compile()
    compile_s = time.perf_counter() - t0
    elapsed, done, trajectory, why = 0.0, 0, [], "step budget"
    while done < steps:
        t0 = time.perf_counter()
        params, state = jax.block_until_ready(compiled(params, state))
        elapsed += time.perf_counter() - t0
        done += every
        trajectory.append([elapsed, float(value(params, data))])
        emit("point", t=elapsed, f=trajectory[-1][1])
        if not np.isfinite(trajectory[-1][1]):
            why = "diverged (non-finite objective)"
            break
        if elapsed >= budget and done < steps:
            why = "wall budget"
            break
    finite = [f for _, f in trajectory if np.isfinite(f)]
    return {
        "method": f"optax {name} ({desc}), full batch",
        "compile_s": compile_s,
        "solve_s": elapsed,
        "iterations": done,
        "final_f": trajectory[-1][1],
        "best_f": min(finite) if finite else float("nan"),
        "status": why,
        "budget_exhausted": why == "wall budget",
        "trajectory": trajectory,
    }


def run_joint_method(module, spec: dict, method: str) -> dict:
    """The body of one method's process: build the instance, run the method, return its row (JSON)."""
    t0 = time.perf_counter()
    inst = module.instance(spec)
    emit("ready", wall=time.monotonic(), setup_s=time.perf_counter() - t0, instance=module.describe(inst))
    if method == "ufm":
        row = ufm_run(module, inst, spec)
    elif method == "scipy":
        row = scipy_run(module, inst, spec)
    else:
        row = optax_run(module, inst, spec, method)
    row.update(peak_rss_mb=peak_rss_mb())
    return row


def first_order_optimizer(name: str, sgd_lr: float):
    """``(optimizer, description)``: SGD with momentum 0.9 at ``sgd_lr`` (``"sgd-momentum"``), or Adam at lr 1e-3,
    its default in papers (``"adam"``)."""
    import optax

    if name == "sgd-momentum":
        return optax.sgd(sgd_lr, momentum=0.9), f"lr {sgd_lr:.3g}, momentum 0.9"
    if name == "adam":
        return optax.adam(1e-3), "lr 1e-3"
    raise ValueError(f"unknown optimizer {name!r}")


def relative_gap(f, f_ref: float) -> float:
    """``(L - L_ref) / |L_ref|``: the accuracy measure of the joint problems."""
    return (float(f) - f_ref) / abs(f_ref)


def gaps_of(row: dict, f_ref: float, tols=GAP_TOLERANCES_JOINT) -> dict:
    """A method's final gap, its best gap and its time to each tolerance (first trajectory point within it)."""
    traj = [(t, relative_gap(f, f_ref)) for t, f in row.get("trajectory", []) if np.isfinite(f)]
    out = {
        "final_gap": relative_gap(row["final_f"], f_ref) if np.isfinite(row.get("final_f", np.nan)) else float("nan"),
        "best_gap": min((g for _, g in traj), default=float("nan")),
        "time_to_gap": first_time_below([t for t, _ in traj], [g for _, g in traj], tols),
    }
    if row.get("observed_f") is not None:
        out["observed_gap"] = relative_gap(row["observed_f"], f_ref)
    if row.get("observed_trajectory"):  # ours, observed (observe_loss): lowest evaluated value against time
        obs = row["observed_trajectory"]
        out["observed_time_to_gap"] = first_time_below(
            [t for t, _ in obs], [relative_gap(f, f_ref) for _, f in obs], tols
        )
    return out
