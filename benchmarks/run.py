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
    {"family": "mixup", "C": 10, "n_lambdas": 11, "scipy_max": 100, "optax": ["sgd-momentum"], "budget": 3000,
     "check_every": 500},
    {"family": "square_loss", "K": 10, "n": 10, "methods": ["ufm", "scipy", "sgd-momentum"], "steps": 3000,
     "check_every": 500, "budget_s": 120},
    {"family": "nonnegative", "K": 10, "n": 10, "methods": ["ufm", "scipy", "sgd-momentum"], "steps": 3000,
     "check_every": 500, "budget_s": 120},
]

MIXUP_BUDGET = {"budget": 30000, "check_every": 1000}
ALL = ["ufm", "scipy", "sgd-momentum", "adam"]
SMALL = {"methods": ALL, "steps": 30000, "check_every": 100, "budget_s": 600}
# K = n = 100: 3,000 first-order steps (one step ~15-66 ms there: 30,000 would take 8-35 min per optimizer)
MEDIUM = {"methods": ALL, "steps": 3000, "check_every": 100, "budget_s": 600}
# Research sizes (1e7 variables; one evaluation 0.4-2.5 s here): every method gets 600 s of solve time; the
# first-order loops checked every 20 steps; Adam at lr 1e-3 is left out (it reached no 1e-8 gap in 30,000 steps
# on any smaller case, and 30,000 steps would take 3.7 - 20 h here); our solver's progress is observed
# (benchmarks.common.observe_loss) so that a stop at the budget can say how far it had got.
LARGE = {"methods": ["ufm", "scipy", "sgd-momentum"], "steps": 30000, "check_every": 20, "budget_s": 600,
         "observe": True}
FULL = [
    # target 1: C = 10, 101 lambdas, all 100 ordered pairs (10,100 subproblems)
    {"family": "mixup", "C": 10, "n_lambdas": 101, "scipy_max": 1000, "optax": ["sgd-momentum", "adam"],
     **MIXUP_BUDGET},
    {"family": "mixup", "C": 10, "n_lambdas": 11, "scipy_max": 1100, "optax": ["sgd-momentum"], **MIXUP_BUDGET},
    {"family": "mixup", "C": 100, "n_lambdas": 11, "pairs": 100, "scipy_max": 200, "optax": ["sgd-momentum"],
     "optax_estimate_only": True, **MIXUP_BUDGET},
    {"family": "mixup", "C": 100, "n_lambdas": 11, "pairs": 900, "scipy_max": 200, "optax": ["sgd-momentum"],
     "optax_estimate_only": True, **MIXUP_BUDGET},
    # target 2: C = d = 1000, lambdas {0.1, 0.5, 0.9}, 1000 same-class + 1000 different-class pairs
    {"family": "mixup", "C": 1000, "lambdas": [0.1, 0.5, 0.9], "pairs": 1000, "scipy_max": 20,
     "optax": ["sgd-momentum"], "optax_estimate_only": True, **MIXUP_BUDGET},
    # target 3: joint problems, from K = n = 10 to the research sizes K = 100, n = 1000 and K = 1000, n = 10
    {"family": "square_loss", "K": 10, "n": 10, **SMALL},                       # 5
    {"family": "square_loss", "K": 10, "n": 100, **SMALL},
    {"family": "square_loss", "K": 10, "n": 1000, **SMALL},
    {"family": "square_loss", "K": 100, "n": 10, **SMALL},
    {"family": "square_loss", "K": 100, "n": 100, **MEDIUM},
    {"family": "square_loss", "K": 100, "n": 1000, **LARGE},                    # 10
    {"family": "square_loss", "K": 1000, "n": 10, **LARGE},
    {"family": "nonnegative", "K": 10, "n": 10, "d": 10, **SMALL},              # 12
    {"family": "nonnegative", "K": 10, "n": 100, "d": 10, **SMALL},
    {"family": "nonnegative", "K": 10, "n": 1000, "d": 10, **SMALL},
    {"family": "nonnegative", "K": 100, "n": 10, "d": 100, **SMALL},
    {"family": "nonnegative", "K": 100, "n": 100, "d": 100, **MEDIUM},
    {"family": "nonnegative", "K": 100, "n": 1000, "d": 100, **LARGE},          # 17
    {"family": "nonnegative", "K": 1000, "n": 10, "d": 1000, **LARGE},
    # the family's default d = 2K (unused feature coordinates: degenerate at the optimum)
    {"family": "nonnegative", "K": 10, "n": 10, **SMALL},                       # 19
    {"family": "nonnegative", "K": 100, "n": 10, **SMALL},
    {"family": "mixup_joint", "C": 10, **SMALL},                                # 21
    {"family": "mixup_joint", "C": 100, **LARGE},
]
MODULES = {"mixup": "benchmarks.mixup", "square_loss": "benchmarks.square_loss",
           "nonnegative": "benchmarks.nonnegative", "mixup_joint": "benchmarks.mixup_joint"}
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


COMPILE_ALLOWANCE_S = 180.0   # our solver's compilation before its solve starts (it compiles in 3 - 10 s here)
SETUP_ALLOWANCE_S = 600.0     # building the instance (imports, targets, start) before a method starts


def run_method_process(spec: dict, method: str, mem_limit: int, log) -> dict:
    """Run one method in its own process; stop it at its wall budget (ours: ``budget_s`` after its first objective
    evaluation where observed, else after the instance is built plus COMPILE_ALLOWANCE_S; the others stop
    themselves, the runner only as a safety net) or when its resident memory exceeds ``mem_limit`` bytes. Returns
    its row: the child's own, or one built from what it had reported when it was stopped or died."""
    budget = float(spec.get("budget_s", math.inf))
    job = json.dumps({"spec": spec, "method": method})
    err = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed below, after the child's last words)
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.run", "--method-json", job], stdout=subprocess.PIPE,
                            stderr=err, text=True)
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
            stopped = ("wall budget" if method == "ufm" and ready is not None else "runner's safety deadline")
        if stopped:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.25)
    t_end = time.monotonic()
    reader.join(timeout=10)
    peak_mb = max(usage.ru_maxrss / 1024.0, peak / 2**20)
    result = next((e["row"] for e in events if e.get("event") == "result"), None)
    algebra = next((e["linear_algebra"] for e in events if e.get("event") == "algebra"), None)
    instance = next((e.get("instance") for e in events if e.get("event") == "ready"), None)
    if result is not None and not stopped:
        err.close()
        result.update(peak_rss_mb=peak_mb, instance=instance)
        return result
    err.seek(0)
    tail = err.read().strip().splitlines()[-3:]
    err.close()
    ready = next((e["wall"] for e in events if e.get("event") == "ready"), None)
    first = next((e["wall"] for e in events if e.get("event") == "eval"), None)
    points = [[e["t"], e["f"]] for e in events if e.get("event") == "point"]
    observed = [e["f"] for e in events if e.get("event") == "eval"]
    if stopped is None:
        stopped = (f"died (signal {os.WTERMSIG(status)}{': out of memory?' if os.WTERMSIG(status) == 9 else ''})"
                   if os.WIFSIGNALED(status) else f"failed (exit {os.WEXITSTATUS(status)})")
    row = {"method": {"ufm": "ufm.solver, family options", "scipy": "scipy L-BFGS-B"}.get(method, f"optax {method}"),
           "status": stopped, "budget_exhausted": stopped == "wall budget", "compile_s": None,
           "solve_s": (t_end - first) if first is not None else None,
           "final_f": points[-1][1] if points else float("nan"), "trajectory": points, "peak_rss_mb": peak_mb,
           "observed_f": observed[-1] if observed else None, "instance": instance, "stderr_tail": tail,
           "wall_after_ready_s": (t_end - ready) if ready is not None else None}
    if algebra:
        row["linear_algebra"] = algebra
    log(f"[benchmarks]   {method}: {stopped}")
    return row


def run_joint_case(spec: dict, mem_limit: int, log) -> dict:
    from benchmarks import common

    t0 = time.perf_counter()
    load = list(os.getloadavg())
    rows = []
    for method in spec["methods"]:
        log(f"[benchmarks]   {method} ...")
        row = run_method_process(spec, method, mem_limit, log)
        row["key"] = method
        rows.append(row)
        log(f"[benchmarks]   {method}: solve {row.get('solve_s')} s, f {row.get('final_f')}, {row.get('status')}")
    instance = next((r["instance"] for r in rows if r.get("instance")), None) or {}
    reached = [(min(f for _, f in r["trajectory"] if math.isfinite(f)), r["key"]) for r in rows
               if any(math.isfinite(f) for _, f in r.get("trajectory", []))]
    if not reached:
        return {"family": spec["family"], "spec": spec, "instance": instance, "rows": rows,
                "error": ["no method returned a finite objective"], "load_average_1_5_15": load}
    f_ref, ref_method = min(reached)
    for r in rows:
        r.update(common.gaps_of(r, f_ref))
    f_star = instance.get("f_star")
    case = {"family": spec["family"], "spec": spec, "instance": instance, "rows": rows, "f_ref": f_ref,
            "f_ref_method": ref_method, "f_star": f_star,
            "ref_gap_to_closed_form": common.relative_gap(f_ref, f_star) if f_star is not None else None,
            "load_average_1_5_15": load, "load_average_after": list(os.getloadavg()),
            "wall_s": time.perf_counter() - t0}
    case["ratio"] = ratio(case)
    return case


def ratio(case: dict) -> dict:
    """Ours against the best baseline: the baseline that reached a 1e-10 gap first. ``time_ratio`` = our time to
    1e-10 (our whole solve time) / that baseline's time to 1e-10 (> 1: we are slower); ``solve_ratio`` = our
    solve time / its whole solve time."""
    ours = next(r for r in case["rows"] if r["key"] == "ufm")
    base = [r for r in case["rows"] if r["key"] != "ufm" and r["time_to_gap"].get(TIGHT) is not None]
    best = min(base, key=lambda r: r["time_to_gap"][TIGHT]) if base else None
    t_ours = ours["time_to_gap"].get(TIGHT)
    out = {"best_baseline": best["method"] if best else None, "ours_s": t_ours,
           "baseline_s": best["time_to_gap"][TIGHT] if best else None}
    if best and t_ours is not None:
        out.update(time_ratio=t_ours / best["time_to_gap"][TIGHT], solve_ratio=ours["solve_s"] / best["solve_s"],
                   text=f"{t_ours / best['time_to_gap'][TIGHT]:.3g}")
    elif best:
        out["text"] = "ours did not reach 1e-10"
    elif t_ours is not None:
        out["text"] = "no baseline reached 1e-10"
    else:
        out["text"] = "none reached 1e-10"
    return out


# ----------------------------------------------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------------------------------------------

def fmt_time(x) -> str:
    return "not reached" if x is None else f"{x:.3g}"


def fmt(x, spec="{:.3g}") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else spec.format(x)


CASE_NAMES = {"square_loss_ufm": "sqloss", "nonnegative_ufm": "nonneg", "square_loss": "sqloss",
              "nonnegative": "nonneg", "mixup_joint": "mixup-joint"}


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
    return str(s)


def table(cases: list[dict]) -> str:
    """Mixup cases (one process each; accuracy against Theorem 3.1's closed-form features)."""
    lines = []
    head = f"{'case':34s} {'method':62s} {'compile s':>9s} {'solve s':>9s} {'iters':>7s} {'final err':>10s}"
    for case in cases:
        tols = list(case["results"][0]["time_to_tol"])
        lines.append("")
        lines.append(head + "".join(f" {'t(' + t + ') s':>12s}" for t in tols)
                     + "  base/ufm at the tightest tol both reached")
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
                ratio_txt = (f"{r['time_to_tol'][both[-1]] / ours['time_to_tol'][both[-1]]:.3g}x @{both[-1]}"
                             if both else "no tolerance reached by both")
            lines.append(f"{name:34s} {r['method'][:62]:62s} {r['compile_s']:9.3g} {solve_txt:>9s} {iters!s:>7s} "
                         f"{r['final_error']:10.2e}{ttt}  {ratio_txt}")
            name = ""
            if r.get("note"):
                lines.append(f"{'':34s}   {r['note']}")
    lines.append("")
    lines.append("* extrapolated (scipy: from a seeded sample of subproblems, times scaled by n/sample; optax: from a "
                 "short probe, the budget not run)")
    return "\n".join(lines)


def method_label(r: dict) -> str:
    label = r["method"]
    if r.get("linear_algebra"):
        label += f": {r['linear_algebra']}"
    return label


def joint_table(cases: list[dict]) -> str:
    """Joint cases: per method compile and solve time, peak RSS of its process, final gap to the best objective
    any method reached, time to 1e-6 and 1e-10, status; per case the reference and ours / best baseline."""
    lines = [(f"{'case':38s} {'method':62s} {'compile s':>9s} {'solve s':>9s} {'RSS MB':>7s} {'iters':>6s} "
              f"{'final gap':>10s} {'t(1e-6) s':>11s} {'t(1e-10) s':>11s}  status")]
    for case in cases:
        name = case_name(case["family"], case["instance"])
        lines.append("")
        for r in case["rows"]:
            t = r.get("time_to_gap", {})
            lines.append(f"{name:38s} {method_label(r)[:62]:62s} {fmt(r.get('compile_s')):>9s} "
                         f"{fmt(r.get('solve_s')):>9s} {fmt(r.get('peak_rss_mb'), '{:.0f}'):>7s} "
                         f"{r.get('iterations', '-')!s:>6s} {fmt(r.get('final_gap'), '{:.2e}'):>10s} "
                         f"{fmt_time(t.get('1e-06')):>11s} {fmt_time(t.get(TIGHT)):>11s}  {status_text(r)}")
            name = ""
        ref = (f"reference L_ref = {case['f_ref']:.17g} ({case['f_ref_method']})"
               + (f", closed form L* = {case['f_star']:.17g}, (L_ref - L*)/L* = {case['ref_gap_to_closed_form']:.2g}"
                  if case.get("f_star") is not None else ""))
        rt = case["ratio"]
        lines.append(f"{'':38s} {ref}")
        lines.append(f"{'':38s} ours / best baseline to 1e-10: {rt['text']}"
                     + (f" (best baseline {rt['best_baseline']}; solve-time ratio {rt['solve_ratio']:.3g})"
                        if rt.get("time_ratio") is not None else "")
                     + f"; load average {case['load_average_1_5_15'][0]:.1f} at the start")
    return "\n".join(lines)


def markdown_table(cases: list[dict]) -> str:
    """The joint cases condensed for the README."""
    lines = [("| case | method (our linear algebra) | compile s | solve s | peak RSS MB | final gap | time to 1e-10 s "
              "| ours / best baseline |"), "|---|---|---|---|---|---|---|---|"]
    for case in cases:
        name = case_name(case["family"], case["instance"])
        for r in case["rows"]:
            t = r.get("time_to_gap", {}).get(TIGHT)
            reached = fmt_time(t) if t is not None else (status_text(r) if r.get("budget_exhausted")
                                                         else f"not reached ({status_text(r)})")
            cell = case["ratio"]["text"] if r["key"] == "ufm" else ""
            lines.append(f"| {name} | {method_label(r)} | {fmt(r.get('compile_s'))} | {fmt(r.get('solve_s'))} | "
                         f"{fmt(r.get('peak_rss_mb'), '{:.0f}')} | {fmt(r.get('final_gap'), '{:.1e}')} | "
                         f"{reached} | {cell} |")
            name = ""
    return "\n".join(lines)


def growth_table(mixup: list[dict], joint: list[dict]) -> str:
    """log-log growth of our solve time and peak memory with problem size (mixup: subproblems x d; joint:
    variables); ``>`` marks a solve stopped at its wall budget (a lower bound; no slope from it)."""
    rows = []
    for case in mixup:
        inst, ours = case["instance"], case["results"][0]
        rows.append(("mixup", inst["n"] * inst["d"], ours["solve_s"], False, case["peak_rss_mb"],
                     f"C={inst['C']}, n={inst['n']}"))
    for case in joint:
        inst = case["instance"]
        ours = next(r for r in case["rows"] if r["key"] == "ufm")
        group = CASE_NAMES[case["family"]]
        if case["family"] == "nonnegative":
            group += " d=K" if inst["d"] == inst["K"] else f" d={inst['d'] // inst['K']}K"
        t = ours.get("solve_s")
        if ours.get("budget_exhausted"):
            t = float(case["spec"].get("budget_s", t or 0))
        rows.append((group, inst["n_vars"], t, bool(ours.get("budget_exhausted")), ours.get("peak_rss_mb"),
                     ", ".join(f"{k}={inst[k]}" for k in ("K", "C", "n", "d") if k in inst)))
    lines = [(f"{'family':16s} {'size':>10s} {'log10 size':>10s} {'solve s':>9s} {'log10 s':>8s} {'slope':>6s} "
              f"{'peak RSS MB':>11s}  instance")]
    for group in dict.fromkeys(r[0] for r in rows):
        prev = None
        for _, size, t, lower, mem, desc in sorted((r for r in rows if r[0] == group), key=lambda r: r[1]):
            if t is None:
                lines.append(f"{group:16s} {size:10d} {math.log10(size):10.2f} {'-':>9s}  {desc}")
                continue
            slope = (f"{(math.log10(t) - math.log10(prev[1])) / (math.log10(size) - math.log10(prev[0])):.2f}"
                     if prev and size != prev[0] and not lower else "")
            txt = (">" if lower else "") + f"{t:.3g}"
            lines.append(f"{group:16s} {size:10d} {math.log10(size):10.2f} {txt:>9s} {math.log10(t):8.2f} "
                         f"{slope:>6s} {fmt(mem, '{:.0f}'):>11s}  {desc}")
            prev = None if lower else (size, t)
    lines.append("size: subproblems x dimension (mixup), number of variables (joint problems); slope: d log t / d log "
                 "size from the previous row; >: stopped at the wall budget")
    return "\n".join(lines)


def render(cases: list[dict]) -> str:
    ok = [c for c in cases if "error" not in c]
    mixup = [c for c in ok if c["family"] == "mixup"]
    joint = [c for c in ok if c["family"] in JOINT]
    parts = []
    if mixup:
        parts.append(table(mixup))
    if joint:
        parts.append(joint_table(joint))
    parts.append(growth_table(mixup, joint))
    return "\n\n".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small cases (a few minutes)")
    parser.add_argument("--out", default=None,
                        help="JSON output (default benchmarks/results.json; --quick: benchmarks/results-quick.json)")
    parser.add_argument("--cases", type=int, nargs="+", metavar="I",
                        help="only these cases (indices into the full or quick list, from 0)")
    parser.add_argument("--merge", action="store_true",
                        help="keep the cases of an existing output file that were not run now (same mode; cases "
                             "no longer in the list are dropped)")
    parser.add_argument("--case-timeout", type=float, default=None, metavar="S",
                        help="give up on a mixup case after S seconds (recorded as an error)")
    parser.add_argument("--mem-limit-gb", type=float, default=None, metavar="G",
                        help="stop a joint method whose resident memory exceeds G GiB (default: half the machine's "
                             "memory, the solver's own budget)")
    parser.add_argument("--case-json", help=argparse.SUPPRESS)    # internal: run one mixup case, print its JSON
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
            proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--case-json", json.dumps(spec)],
                                  check=False, capture_output=True, text=True, timeout=ns.case_timeout)
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
    result = {"mode": mode, "selected_cases": selected, "machine": common.machine(), "versions": versions(),
              "dtype": "float64", "wall_s": time.perf_counter() - t0, "mem_limit_bytes": mem_limit, "cases": cases,
              "table": text, "markdown": markdown_table(joint) if joint else ""}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(out)
    log(f"\nwrote {out}")
    return 0 if all("error" not in c for c in cases) else 1


if __name__ == "__main__":
    sys.exit(main())
