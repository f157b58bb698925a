"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--cases I ...] [--merge] [--out FILE]``.

Mixup cases run in one Python process each; joint (W, H) cases run every method in its own process (so that its
peak memory, from ``os.wait4``, is its own, no compilation cache is shared, and a method that runs past its wall
budget or the memory limit is stopped and reported as such instead of stopping the run). Results are gathered
into tables and one JSON file with the machine, package versions and dtype. On demand only: never part of the
test suite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

QUICK = [
    {
        "family": "mixup",
        "C": 10,
        "n_lambdas": 11,
        "scipy_max": 100,
        "optax": ["sgd-momentum"],
        "budget": 3000,
        "check_every": 500,
    },
    {
        "family": "square_loss",
        "K": 10,
        "n": 10,
        "methods": ["ufm", "scipy", "sgd-momentum"],
        "steps": 3000,
        "check_every": 500,
        "budget_s": 120,
    },
    {
        "family": "nonnegative",
        "K": 10,
        "n": 10,
        "methods": ["ufm", "scipy", "sgd-momentum"],
        "steps": 3000,
        "check_every": 500,
        "budget_s": 120,
    },
]

MIXUP_BUDGET = {"budget": 30000, "check_every": 1000}
ALL = ["ufm", "scipy", "sgd-momentum", "adam"]
SMALL = {"methods": ALL, "steps": 30000, "check_every": 100, "budget_s": 600}
# K = n = 100: 3,000 first-order steps (one step ~15-66 ms there: 30,000 would take 8-35 min per optimizer)
MEDIUM = {"methods": ALL, "steps": 3000, "check_every": 100, "budget_s": 600}
# Research sizes (1e7 variables; one evaluation 0.4-2.5 s on 2 cores): every method gets 600 s of solve time; the
# first-order loops checked every 20 steps; Adam at lr 1e-3 is left out (30,000 steps would take 3.7 - 20 h, and
# at the smaller sizes it was never the first baseline to a 1e-10 gap); our solver's progress is observed
# (benchmarks.common.observe_loss) so that a stop at the budget can say how far it had got.
LARGE = {
    "methods": ["ufm", "scipy", "sgd-momentum"],
    "steps": 30000,
    "check_every": 20,
    "budget_s": 600,
    "observe": True,
}
FULL = [
    # target 1: C = 10, 101 lambdas, all 100 ordered pairs (10,100 subproblems)
    {
        "family": "mixup",
        "C": 10,
        "n_lambdas": 101,
        "scipy_max": 1000,
        "optax": ["sgd-momentum", "adam"],
        **MIXUP_BUDGET,
    },
    {"family": "mixup", "C": 10, "n_lambdas": 11, "scipy_max": 1100, "optax": ["sgd-momentum"], **MIXUP_BUDGET},
    {
        "family": "mixup",
        "C": 100,
        "n_lambdas": 11,
        "pairs": 100,
        "scipy_max": 200,
        "optax": ["sgd-momentum"],
        "optax_estimate_only": True,
        **MIXUP_BUDGET,
    },
    {
        "family": "mixup",
        "C": 100,
        "n_lambdas": 11,
        "pairs": 900,
        "scipy_max": 200,
        "optax": ["sgd-momentum"],
        "optax_estimate_only": True,
        **MIXUP_BUDGET,
    },
    # target 2: C = d = 1000, lambdas {0.1, 0.5, 0.9}, 1000 same-class + 1000 different-class pairs
    {
        "family": "mixup",
        "C": 1000,
        "lambdas": [0.1, 0.5, 0.9],
        "pairs": 1000,
        "scipy_max": 20,
        "optax": ["sgd-momentum"],
        "optax_estimate_only": True,
        **MIXUP_BUDGET,
    },
    # target 3: joint problems, from K = n = 10 to the research sizes K = 100, n = 1000 and K = 1000, n = 10
    {"family": "square_loss", "K": 10, "n": 10, **SMALL},  # 5
    {"family": "square_loss", "K": 10, "n": 100, **SMALL},
    {"family": "square_loss", "K": 10, "n": 1000, **SMALL},
    {"family": "square_loss", "K": 100, "n": 10, **SMALL},
    {"family": "square_loss", "K": 100, "n": 100, **MEDIUM},
    {"family": "square_loss", "K": 100, "n": 1000, **LARGE},  # 10
    {"family": "square_loss", "K": 1000, "n": 10, **LARGE},
    {"family": "nonnegative", "K": 10, "n": 10, "d": 10, **SMALL},  # 12
    {"family": "nonnegative", "K": 10, "n": 100, "d": 10, **SMALL},
    {"family": "nonnegative", "K": 10, "n": 1000, "d": 10, **SMALL},
    {"family": "nonnegative", "K": 100, "n": 10, "d": 100, **SMALL},
    {"family": "nonnegative", "K": 100, "n": 100, "d": 100, **MEDIUM},
    {"family": "nonnegative", "K": 100, "n": 1000, "d": 100, **LARGE},  # 17
    {"family": "nonnegative", "K": 1000, "n": 10, "d": 1000, **LARGE},
    # the family's default d = 2K (unused feature coordinates: degenerate at the optimum)
    {"family": "nonnegative", "K": 10, "n": 10, **SMALL},  # 19
    {"family": "nonnegative", "K": 100, "n": 10, **SMALL},
    {"family": "mixup_joint", "C": 10, **SMALL},  # 21
    {"family": "mixup_joint", "C": 100, **LARGE},
]
MODULES = {
    "mixup": "benchmarks.mixup",
    "square_loss": "benchmarks.square_loss",
    "nonnegative": "benchmarks.nonnegative",
    "mixup_joint": "benchmarks.mixup_joint",
}
JOINT = ("square_loss", "nonnegative", "mixup_joint")
TIGHT = "1e-10"


def run_case(spec: dict) -> dict:
    """The body of one mixup case (in the child process)."""
    import ufm  # noqa: F401  (float64)
    from benchmarks import common

    module = importlib.import_module(MODULES[spec["family"]])
    t0 = time.perf_counter()
    out = module.case(spec)
    out.update(spec=spec, wall_s=time.perf_counter() - t0, peak_rss_mb=common.peak_rss_mb())
    return out


def run_method(job: dict) -> None:
    """The body of one joint method (in the child process): JSON events on stdout, the last one the result."""
    import ufm  # noqa: F401  (float64)
    from benchmarks import common

    module = importlib.import_module(MODULES[job["spec"]["family"]])
    row = common.run_joint_method(module, job["spec"], job["method"])
    common.emit("result", row=row)


# ----------------------------------------------------------------------------------------------------------------
# The parent side of a joint case
# ----------------------------------------------------------------------------------------------------------------


def _rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


COMPILE_ALLOWANCE_S = 180.0  # our solver's compilation before its solve starts (it compiles in 3 - 10 s here)
SETUP_ALLOWANCE_S = 600.0  # building the instance (imports, targets, start) before a method starts


def child_env(blas_threads: int | None) -> dict:
    """The environment of a case's or method's process: OpenBLAS (numpy and scipy's BLAS, and the LAPACK that
    jaxlib's CPU kernels call: Cholesky, eigh) with ``blas_threads`` threads unless the caller's environment sets
    it. Its threads spin while they wait: on a 2-core machine at load average 5, two threads made
    numpy's square-loss gradient at 1e7 variables 6x slower (2.7 s vs 0.44 s) and jax's 1100 x 1100 eigh 3x slower
    (1.1 s vs 0.37 s) than one. XLA's own thread pool (jax's matrix products) is left as it is."""
    env = dict(os.environ)
    if blas_threads is not None:
        env.setdefault("OPENBLAS_NUM_THREADS", str(blas_threads))
    return env


BLAS_THREADS = 1


def run_method_process(spec: dict, method: str, mem_limit: int, log) -> dict:
    """Run one method in its own process; stop it at its wall budget (ours: ``budget_s`` after its first objective
    evaluation where observed, else after the instance is built plus COMPILE_ALLOWANCE_S; the others stop
    themselves, the runner only as a safety net) or when its resident memory exceeds ``mem_limit`` bytes. Returns
    its row: the child's own, or one built from what it had reported when it was stopped or died."""
    budget = float(spec.get("budget_s", math.inf))
    job = json.dumps({"spec": spec, "method": method})
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed below, after the child's last words)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run", "--method-json", job],
        stdout=subprocess.PIPE,
        stderr=err,
        text=True,
        env=child_env(BLAS_THREADS),
    )
    events: list[dict] = []

    def read():
        for line in proc.stdout:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t_start, stopped, peak = time.monotonic(), None, 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        now = time.monotonic()
        rss = _rss_bytes(proc.pid)
        peak = max(peak, rss)
        ready = next((e["wall"] for e in events if e.get("event") == "ready"), None)
        first = next((e["wall"] for e in events if e.get("event") == "eval"), None)
        if ready is None:
            deadline = t_start + SETUP_ALLOWANCE_S
        elif method == "ufm":
            deadline = (first + budget) if first is not None else ready + COMPILE_ALLOWANCE_S + budget
        else:
            deadline = ready + COMPILE_ALLOWANCE_S + 1.5 * budget + 300.0
        if rss > mem_limit:
            stopped = f"memory limit: resident {rss / 2**30:.1f} GiB > {mem_limit / 2**30:.1f} GiB, stopped"
        elif now > deadline:
            stopped = "wall budget" if method == "ufm" and ready is not None else "runner's safety deadline"
        if stopped:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.25)
    t_end = time.monotonic()
    reader.join(timeout=10)
    peak_mb = max(usage.ru_maxrss / 1024.0, peak / 2**20)
    result = next((e["row"] for e in events if e.get("event") == "result"), None)
    chosen = next((e for e in events if e.get("event") == "algebra"), {})
    algebra = chosen.get("linear_algebra")
    instance = next((e.get("instance") for e in events if e.get("event") == "ready"), None)
    first = next((e["wall"] for e in events if e.get("event") == "eval"), None)
    # ours, observed: the lowest objective evaluated so far against solve time (from its first evaluation)
    observed = [[e["wall"] - first, e["f"]] for e in events if e.get("event") == "eval"]
    if result is not None and not stopped:
        err.close()
        result.update(peak_rss_mb=peak_mb, instance=instance)
        if observed:
            result["observed_trajectory"] = observed
        return result
    err.seek(0)
    tail = err.read().strip().splitlines()[-3:]
    err.close()
    ready = next((e["wall"] for e in events if e.get("event") == "ready"), None)
    points = [[e["t"], e["f"]] for e in events if e.get("event") == "point"]
    if stopped is None:
        stopped = (
            f"died (signal {os.WTERMSIG(status)}{': out of memory?' if os.WTERMSIG(status) == 9 else ''})"
            if os.WIFSIGNALED(status)
            else f"failed (exit {os.WEXITSTATUS(status)})"
        )
    row = {
        "method": {"ufm": "ufm.solver, family options", "scipy": "scipy L-BFGS-B"}.get(method, f"optax {method}"),
        "status": stopped,
        "budget_exhausted": stopped == "wall budget",
        "compile_s": None,
        "solve_s": (t_end - first) if first is not None else None,
        "final_f": points[-1][1] if points else float("nan"),
        "trajectory": points,
        "peak_rss_mb": peak_mb,
        "observed_f": observed[-1][1] if observed else None,
        "observed_trajectory": observed,
        "instance": instance,
        "stderr_tail": tail,
        "wall_after_ready_s": (t_end - ready) if ready is not None else None,
    }
    if algebra:
        row.update(
            linear_algebra=algebra,
            memory_estimate_bytes=chosen.get("memory_estimate_bytes"),
            memory_budget_bytes=chosen.get("memory_budget_bytes"),
        )
    log(f"[benchmarks]   {method}: {stopped}")
    return row


def run_joint_case(spec: dict, mem_limit: int, log) -> dict:
    t0 = time.perf_counter()
    load = list(os.getloadavg())
    rows = []
    for method in spec["methods"]:
        log(f"[benchmarks]   {method} ...")
        row = run_method_process(spec, method, mem_limit, log)
        row["key"] = method
        rows.append(row)
        log(f"[benchmarks]   {method}: solve {row.get('solve_s')} s, f {row.get('final_f')}, {row.get('status')}")
    case = summarise(
        {
            "family": spec["family"],
            "spec": spec,
            "rows": rows,
            "load_average_1_5_15": load,
            "load_average_after": list(os.getloadavg()),
            "wall_s": time.perf_counter() - t0,
        }
    )
    return case


def summarise(case: dict) -> dict:
    """The reference objective, every method's gaps and times to tolerance, and ours / best baseline, from the
    rows (also used by ``--render`` on stored results)."""
    from benchmarks import common

    rows = case["rows"]
    instance = next((r["instance"] for r in rows if r.get("instance")), None) or case.get("instance") or {}
    case["instance"] = instance
    reached = [
        (min(f for _, f in r["trajectory"] if math.isfinite(f)), r["key"])
        for r in rows
        if any(math.isfinite(f) for _, f in r.get("trajectory", []))
    ]
    if not reached:
        case["error"] = ["no method returned a finite objective"]
        return case
    f_ref, ref_method = min(reached)
    f_star = instance.get("f_star")
    best_reached = f_ref
    if f_star is not None and f_star < f_ref:  # nobody reached the closed form: measure against it
        f_ref, ref_method = f_star, "closed form"
    for r in rows:
        r.update(common.gaps_of(r, f_ref))
    # the reference is certified where it is the closed form, or where a method that ended by its own stopping
    # rule (not at a budget or a limit) ended within 1e-12 of it
    finished = [
        r
        for r in rows
        if not r.get("budget_exhausted") and r.get("final_f") == r.get("final_f") and abs(r["final_gap"]) <= 1e-12
    ]
    case.update(
        f_ref=f_ref,
        f_ref_method=ref_method,
        f_star=f_star,
        best_reached=best_reached,
        ref_finished=ref_method == "closed form" or bool(finished),
        ref_gap_to_closed_form=common.relative_gap(best_reached, f_star) if f_star is not None else None,
    )
    case["ratio"] = ratio(case)
    return case


def ratio(case: dict) -> dict:
    """Ours against the best baseline: the baseline that reached a 1e-10 gap first. ``time_ratio`` = our time to
    1e-10 (our whole solve time) / that baseline's time to 1e-10 (> 1: we are slower); ``solve_ratio`` = our
    solve time / its whole solve time. Where only one side reached 1e-10 within its budget, ``bound`` gives the
    ratio's bound from the other side's budget (``>`` or ``<``)."""
    ours = next(r for r in case["rows"] if r["key"] == "ufm")
    others = [r for r in case["rows"] if r["key"] != "ufm"]
    base = [r for r in others if r["time_to_gap"].get(TIGHT) is not None]
    best = min(base, key=lambda r: r["time_to_gap"][TIGHT]) if base else None
    t_ours = ours["time_to_gap"].get(TIGHT)
    out = {
        "best_baseline": best["method"] if best else None,
        "ours_s": t_ours,
        "baseline_s": best["time_to_gap"][TIGHT] if best else None,
    }
    if best and t_ours is not None:
        out.update(
            time_ratio=t_ours / best["time_to_gap"][TIGHT],
            solve_ratio=ours["solve_s"] / best["solve_s"],
            text=f"{t_ours / best['time_to_gap'][TIGHT]:.3g}",
        )
    elif best:
        seen = ours.get("observed_time_to_gap", {}).get(TIGHT)
        if seen is not None and ours.get("final_f") != ours.get("final_f"):
            # stopped before returning (memory), after evaluating a point within 1e-10: it could not have
            # returned before that
            out.update(bound=f">= {seen / best['time_to_gap'][TIGHT]:.3g}")
            out["text"] = (
                f"{out['bound']} (ours stopped: {str(ours.get('status')).split(':')[0]}; a point within "
                f"1e-10 first evaluated after {seen:.3g} s, vs {best['time_to_gap'][TIGHT]:.3g} s)"
            )
        elif ours.get("budget_exhausted") and ours.get("solve_s"):
            out.update(bound=f"> {ours['solve_s'] / best['time_to_gap'][TIGHT]:.3g}")
            out["text"] = f"{out['bound']} (ours stopped at its budget)"
        else:
            out["text"] = f"ours did not reach 1e-10 (final gap {fmt(ours.get('final_gap'), '{:.2g}')})"
    elif t_ours is not None:
        budgets = [r["solve_s"] for r in others if r.get("budget_exhausted") and r.get("solve_s")]
        if budgets and len(budgets) == len(others):
            out.update(bound=f"< {t_ours / max(budgets):.3g}")
            out["text"] = f"{out['bound']} (no baseline reached 1e-10 within its budget)"
        else:
            out["text"] = "no baseline reached 1e-10"
    else:
        out["text"] = "none reached 1e-10"
    return out


def worst_ratio(cases: list[dict]) -> str:
    """The largest ours / best baseline over the joint cases (measured ratios; bounds listed apart)."""
    measured = [
        (c["ratio"]["time_ratio"], case_name(c["family"], c["instance"]))
        for c in cases
        if c.get("ratio", {}).get("time_ratio") is not None
    ]
    bounds = [
        (c["ratio"]["bound"], case_name(c["family"], c["instance"])) for c in cases if c.get("ratio", {}).get("bound")
    ]
    text = ""
    if measured:
        worst, name = max(measured)
        best, best_name = min(measured)
        text = f"worst ours / best baseline to 1e-10 (measured): {worst:.3g} on {name}; best: {best:.3g} on {best_name}"
    if bounds:
        text += ("; " if text else "") + "bounds: " + ", ".join(f"{b} on {n}" for b, n in bounds)
    return text


# ----------------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------------


def fmt_time(x) -> str:
    return "not reached" if x is None else f"{x:.3g}"


def fmt(x, spec="{:.3g}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else spec.format(x)


CASE_NAMES = {
    "square_loss_ufm": "sqloss",
    "nonnegative_ufm": "nonneg",
    "square_loss": "sqloss",
    "nonnegative": "nonneg",
    "mixup_joint": "mixup-joint",
}


def case_name(family: str, inst: dict) -> str:
    """Row label: mixup by its C and number of subproblems, joint problems by K (or C), n, d and variables."""
    if family == "mixup":
        return f"mixup C={inst['C']} n={inst['n']}"
    if family == "mixup_joint":
        return f"mixup-joint C={inst['C']} T={inst['T']} ({inst['n_vars']:.3g} vars)"
    name = f"{CASE_NAMES[family]} K={inst['K']} n={inst['n']}"
    if family in ("nonnegative", "nonnegative_ufm"):
        name += f" d={inst['d']}"
    return f"{name} ({inst['n_vars']:.3g} vars)"


def status_text(r: dict) -> str:
    s = r.get("status")
    if isinstance(s, dict):
        s = ", ".join(f"{k.split(':')[0]} {v}" for k, v in s.items())
    if r.get("budget_exhausted"):
        gap = r.get("observed_gap") if r.get("observed_gap") is not None else r.get("final_gap")
        what = "lowest evaluated gap" if r.get("observed_gap") is not None else "gap"
        s = f"budget exhausted at {what} {fmt(gap, '{:.2g}')}"
    elif r.get("observed_gap") is not None and r.get("final_f") != r.get("final_f"):
        # stopped for another reason (memory): how far it had got
        s = f"{s}, after {fmt(r.get('solve_s'))} s of solve at lowest evaluated gap {fmt(r['observed_gap'], '{:.2g}')}"
    if r.get("observed_time_to_gap", {}).get(TIGHT) is not None and r.get("final_f") != r.get("final_f"):
        s += f" (first evaluated within 1e-10 after {r['observed_time_to_gap'][TIGHT]:.3g} s)"
    if r.get("memory_estimate_bytes") and str(s).startswith("memory limit"):
        s += f" (the family's estimate for this run: {r['memory_estimate_bytes'] / 2**30:.1f} GiB)"
    return str(s)


def table(cases: list[dict]) -> str:
    """Mixup cases (one process each; accuracy against Theorem 3.1's closed-form features)."""
    lines = []
    head = f"{'case':34s} {'method':62s} {'compile s':>9s} {'solve s':>9s} {'iters':>7s} {'final err':>10s}"
    for case in cases:
        tols = list(case["results"][0]["time_to_tol"])
        lines.append("")
        lines.append(
            head + "".join(f" {'t(' + t + ') s':>12s}" for t in tols) + "  base/ufm at the tightest tol both reached"
        )
        inst = case["instance"]
        name = case_name(case["family"], inst)
        ours = case["results"][0]
        for r in case["results"]:
            iters = r.get("iterations_max", r.get("iterations_total", ""))
            solve = r["solve_s"] if r["solve_s"] is not None else r.get("estimated_budget_s")
            solve_txt = fmt_time(solve) + ("*" if r.get("extrapolated") or r["solve_s"] is None else "")
            ttt = "".join(f" {fmt_time(r['time_to_tol'][t]):>12s}" for t in tols)
            ratio_txt = ""
            if r is not ours:
                both = [t for t in tols if r["time_to_tol"][t] is not None and ours["time_to_tol"][t]]
                ratio_txt = (
                    f"{r['time_to_tol'][both[-1]] / ours['time_to_tol'][both[-1]]:.3g}x @{both[-1]}"
                    if both
                    else "no tolerance reached by both"
                )
            lines.append(
                f"{name:34s} {r['method'][:62]:62s} {r['compile_s']:9.3g} {solve_txt:>9s} {iters!s:>7s} "
                f"{r['final_error']:10.2e}{ttt}  {ratio_txt}"
            )
            name = ""
            if r.get("note"):
                lines.append(f"{'':34s}   {r['note']}")
    lines.append("")
    lines.append(
        "* extrapolated (scipy: from a seeded sample of subproblems, times scaled by n/sample; optax: from a "
        "short probe, the budget not run)"
    )
    return "\n".join(lines)


def method_label(r: dict) -> str:
    label = r["method"]
    if r.get("linear_algebra"):
        label += f": {r['linear_algebra']}"
    return label


def joint_table(cases: list[dict]) -> str:
    """Joint cases: per method compile and solve time, peak RSS of its process, final gap to the best objective
    any method reached, time to 1e-6 and 1e-10, status; per case the reference and ours / best baseline."""
    lines = [
        (
            f"{'case':38s} {'method':62s} {'compile s':>9s} {'solve s':>9s} {'RSS MB':>7s} {'iters':>6s} "
            f"{'final gap':>10s} {'t(1e-6) s':>11s} {'t(1e-10) s':>11s}  status"
        )
    ]
    for case in cases:
        name = case_name(case["family"], case["instance"])
        lines.append("")
        for r in case["rows"]:
            t = r.get("time_to_gap", {})
            lines.append(
                f"{name:38s} {method_label(r)[:62]:62s} {fmt(r.get('compile_s')):>9s} "
                f"{fmt(r.get('solve_s')):>9s} {fmt(r.get('peak_rss_mb'), '{:.0f}'):>7s} "
                f"{r.get('iterations', '-')!s:>6s} {fmt(r.get('final_gap'), '{:.2e}'):>10s} "
                f"{fmt_time(t.get('1e-06')):>11s} {fmt_time(t.get(TIGHT)):>11s}  {status_text(r)}"
            )
            name = ""
        ref = (
            f"reference L_ref = {case['f_ref']:.17g} ({case['f_ref_method']}"
            + ("" if case.get("ref_finished", True) else "; no method ended at it by its own stopping rule")
            + ")"
            + (
                f"; closed form L* = {case['f_star']:.17g}, best reached - L* = {case['ref_gap_to_closed_form']:.2g} L*"
                if case.get("f_star") is not None
                else ""
            )
        )
        rt = case["ratio"]
        lines.append(f"{'':38s} {ref}")
        lines.append(
            f"{'':38s} ours / best baseline to 1e-10: {rt['text']}"
            + (
                f" (best baseline {rt['best_baseline']}; solve-time ratio {rt['solve_ratio']:.3g})"
                if rt.get("time_ratio") is not None
                else ""
            )
            + f"; load average {case['load_average_1_5_15'][0]:.1f} at the start"
        )
    return "\n".join(lines)


def markdown_table(cases: list[dict]) -> str:
    """The joint cases condensed for the README."""
    lines = [
        (
            "| case | method (our linear algebra) | compile s | solve s | peak RSS MB | final gap | time to 1e-10 s "
            "| ours / best baseline |"
        ),
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in cases:
        name = case_name(case["family"], case["instance"])
        for r in case["rows"]:
            t = r.get("time_to_gap", {}).get(TIGHT)
            reached = (
                fmt_time(t)
                if t is not None
                else (status_text(r) if r.get("budget_exhausted") else f"not reached ({status_text(r)})")
            )
            cell = case["ratio"]["text"] if r["key"] == "ufm" else ""
            lines.append(
                f"| {name} | {method_label(r)} | {fmt(r.get('compile_s'))} | {fmt(r.get('solve_s'))} | "
                f"{fmt(r.get('peak_rss_mb'), '{:.0f}')} | {fmt(r.get('final_gap'), '{:.1e}')} | "
                f"{reached} | {cell} |"
            )
            name = ""
    return "\n".join(lines)


def growth_table(mixup: list[dict], joint: list[dict]) -> str:
    """log-log growth of our solve time and peak memory with problem size (mixup: subproblems x d; joint:
    variables); ``>`` marks a solve stopped at its wall budget (a lower bound; no slope from it)."""
    rows = []
    for case in mixup:
        inst, ours = case["instance"], case["results"][0]
        rows.append(
            (
                "mixup",
                inst["n"] * inst["d"],
                ours["solve_s"],
                False,
                case["peak_rss_mb"],
                f"C={inst['C']}, n={inst['n']}",
            )
        )
    for case in joint:
        inst = case["instance"]
        ours = next(r for r in case["rows"] if r["key"] == "ufm")
        group = CASE_NAMES[case["family"]]
        if case["family"] == "nonnegative":
            group += " d=K" if inst["d"] == inst["K"] else f" d={inst['d'] // inst['K']}K"
        t = ours.get("solve_s")
        stopped = bool(ours.get("budget_exhausted")) or ours.get("final_f") != ours.get("final_f")  # NaN: no result
        if ours.get("budget_exhausted"):
            t = float(case["spec"].get("budget_s", t or 0))
        rows.append(
            (
                group,
                inst["n_vars"],
                t,
                stopped,
                ours.get("peak_rss_mb"),
                ", ".join(f"{k}={inst[k]}" for k in ("K", "C", "n", "d") if k in inst),
            )
        )
    lines = [
        (
            f"{'family':16s} {'size':>10s} {'log10 size':>10s} {'solve s':>9s} {'log10 s':>8s} {'slope':>6s} "
            f"{'peak RSS MB':>11s}  instance"
        )
    ]
    for group in dict.fromkeys(r[0] for r in rows):
        prev = None
        for _, size, t, lower, mem, desc in sorted((r for r in rows if r[0] == group), key=lambda r: r[1]):
            if t is None:
                lines.append(f"{group:16s} {size:10d} {math.log10(size):10.2f} {'-':>9s}  {desc}")
                continue
            slope = (
                f"{(math.log10(t) - math.log10(prev[1])) / (math.log10(size) - math.log10(prev[0])):.2f}"
                if prev and size != prev[0] and not lower
                else ""
            )
            txt = (">" if lower else "") + f"{t:.3g}"
            lines.append(
                f"{group:16s} {size:10d} {math.log10(size):10.2f} {txt:>9s} {math.log10(t):8.2f} "
                f"{slope:>6s} {fmt(mem, '{:.0f}'):>11s}  {desc}"
            )
            prev = None if lower else (size, t)
    lines.append(
        "size: subproblems x dimension (mixup), number of variables (joint problems); slope: d log t / d log "
        "size from the previous row; >: stopped (wall budget or memory limit) after that long, no result"
    )
    return "\n".join(lines)


def render(cases: list[dict]) -> str:
    ok = [c for c in cases if "error" not in c]
    mixup = [c for c in ok if c["family"] == "mixup"]
    joint = [c for c in ok if c["family"] in JOINT]
    parts = []
    if mixup:
        parts.append(table(mixup))
    if joint:
        parts.append(joint_table(joint) + "\n\n" + worst_ratio(joint))
    parts.append(growth_table(mixup, joint))
    return "\n\n".join(parts)


def write_json(out: Path, result: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small cases (a few minutes)")
    parser.add_argument(
        "--out",
        default=None,
        help="JSON output (default benchmarks/results.json; --quick: benchmarks/results-quick.json)",
    )
    parser.add_argument(
        "--cases",
        type=int,
        nargs="+",
        metavar="I",
        help="only these cases (indices into the full or quick list, from 0)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the cases of an existing output file that were not run now (same mode; cases "
        "no longer in the list are dropped)",
    )
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=None,
        metavar="S",
        help="give up on a mixup case after S seconds (recorded as an error)",
    )
    parser.add_argument(
        "--mem-limit-gb",
        type=float,
        default=None,
        metavar="G",
        help="stop a joint method whose resident memory exceeds G GiB (default: half the machine's "
        "memory, the solver's own budget)",
    )
    parser.add_argument(
        "--render",
        action="store_true",
        help="run nothing: recompute the joint cases' gaps and ratios and the tables from the output "
        "file, and rewrite it",
    )
    parser.add_argument("--case-json", help=argparse.SUPPRESS)  # internal: run one mixup case, print its JSON
    parser.add_argument("--method-json", help=argparse.SUPPRESS)  # internal: run one joint method
    ns = parser.parse_args(argv)
    if ns.case_json:
        print(json.dumps(run_case(json.loads(ns.case_json)), default=float))
        return 0
    if ns.method_json:
        run_method(json.loads(ns.method_json))
        return 0

    import ufm  # noqa: F401
    from benchmarks import common
    from ufm.report import versions
    from ufm.solver import memory_budget_bytes

    log = lambda msg: print(msg, file=sys.stderr, flush=True)
    mem_limit = int(ns.mem_limit_gb * 2**30) if ns.mem_limit_gb else memory_budget_bytes()
    out = Path(ns.out or ("benchmarks/results-quick.json" if ns.quick else "benchmarks/results.json"))
    if ns.render:
        stored = json.loads(out.read_text())
        stored["cases"] = [summarise(c) if c.get("family") in JOINT and c.get("rows") else c for c in stored["cases"]]
        joint = [c for c in stored["cases"] if c.get("family") in JOINT and "error" not in c]
        stored.update(
            table=render(stored["cases"]),
            markdown=markdown_table(joint) if joint else "",
            worst_ratio=worst_ratio(joint),
        )
        print(stored["table"])
        write_json(out, stored)
        return 0
    t0 = time.perf_counter()
    cases = []
    specs = QUICK if ns.quick else FULL
    if ns.cases is not None:
        bad = [i for i in ns.cases if not 0 <= i < len(specs)]
        if bad:
            parser.error(f"argument --cases: {bad[0]} is not a case index (0 to {len(specs) - 1})")
        specs = [specs[i] for i in ns.cases]
    for spec in specs:
        log(f"[benchmarks] {spec}")
        if spec["family"] in JOINT:
            cases.append(run_joint_case(spec, mem_limit, log))
            continue
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.run", "--case-json", json.dumps(spec)],
                check=False,
                capture_output=True,
                text=True,
                timeout=ns.case_timeout,
                env=child_env(BLAS_THREADS),
            )
        except subprocess.TimeoutExpired:
            cases.append({"spec": spec, "error": [f"timed out after {ns.case_timeout:g} s"]})
            continue
        if proc.returncode != 0:
            log(proc.stderr)
            cases.append({"spec": spec, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        cases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    mode = "quick" if ns.quick else "full"
    selected = ns.cases
    if ns.merge and out.exists():
        old = json.loads(out.read_text())
        if old.get("mode") == mode:
            listed = QUICK if ns.quick else FULL
            run_now = [c["spec"] for c in cases]
            kept = [c for c in old.get("cases", []) if c.get("spec") in listed and c.get("spec") not in run_now]
            cases = sorted(kept + cases, key=lambda c: listed.index(c["spec"]))
            selected = sorted({listed.index(c["spec"]) for c in cases})
    text = render(cases)
    print(text)
    joint = [c for c in cases if c.get("family") in JOINT and "error" not in c]
    result = {
        "mode": mode,
        "selected_cases": selected,
        "machine": common.machine(),
        "versions": versions(),
        "dtype": "float64",
        "wall_s": time.perf_counter() - t0,
        "mem_limit_bytes": mem_limit,
        "openblas_threads": child_env(BLAS_THREADS).get("OPENBLAS_NUM_THREADS"),
        "cases": cases,
        "table": text,
        "markdown": markdown_table(joint) if joint else "",
        "worst_ratio": worst_ratio(joint),
    }
    write_json(out, result)
    log(f"\nwrote {out}")
    return 0 if all("error" not in c for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
