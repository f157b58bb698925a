"""Run the benchmarks: ``python -m benchmarks.run [--quick] [--out benchmarks/results.json]``.

Each case runs in its own Python process (so that its peak memory is its own and no compilation cache is shared),
solves the same instance with the three methods, and the results are gathered into one table and one JSON file
with the machine, package versions and dtype. On demand only: never part of the test suite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

QUICK = [
    {"family": "mixup", "C": 10, "n_lambdas": 11, "scipy_max": 100, "optax": ["sgd-momentum"], "budget": 3000,
     "check_every": 500},
    {"family": "square_loss", "K": 10, "n": 10, "optax": ["sgd-momentum"], "budget": 3000, "check_every": 500},
    {"family": "nonnegative", "K": 10, "n": 10, "optax": ["sgd-momentum"], "budget": 3000, "check_every": 500},
]

MIXUP_BUDGET = {"budget": 30000, "check_every": 1000}
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
    # target 3: joint problems
    {"family": "square_loss", "K": 10, "n": 10, "budget": 30000, "check_every": 1000},
    {"family": "square_loss", "K": 10, "n": 100, "budget": 30000, "check_every": 1000},
    {"family": "square_loss", "K": 10, "n": 1000, "budget": 30000, "check_every": 1000},
    {"family": "square_loss", "K": 100, "n": 10, "budget": 30000, "check_every": 1000},
    {"family": "square_loss", "K": 100, "n": 100, "budget": 3000, "check_every": 500, "scipy_maxiter": 3000},
    {"family": "nonnegative", "K": 10, "n": 10, "budget": 30000, "check_every": 1000},
    {"family": "nonnegative", "K": 10, "n": 100, "budget": 30000, "check_every": 1000},
    {"family": "nonnegative", "K": 10, "n": 1000, "budget": 30000, "check_every": 1000},
    {"family": "nonnegative", "K": 100, "n": 10, "budget": 30000, "check_every": 1000},
    # K = 100, n = 100 (2.02e6 variables): budgets cut as for the square loss (one optax step ~66 ms here, so
    # 30,000 steps would take ~35 min per optimizer); not run in development (~30 min, extrapolated from n = 10).
    {"family": "nonnegative", "K": 100, "n": 100, "budget": 3000, "check_every": 500, "scipy_maxiter": 3000},
    # K = 100, n = 1000 (square loss 1e7, nonnegative 2e7 variables) is left out of both families: ten times the
    # n = 100 case for every method (hours on this 2-core machine), and L-BFGS histories of gigabytes.
]
MODULES = {"mixup": "benchmarks.mixup", "square_loss": "benchmarks.square_loss",
           "nonnegative": "benchmarks.nonnegative"}


def run_case(spec: dict) -> dict:
    """The body of one case (in the child process)."""
    import ufm  # noqa: F401  (float64)
    from benchmarks import common

    module = importlib.import_module(MODULES[spec["family"]])
    t0 = time.perf_counter()
    out = module.case(spec)
    out.update(spec=spec, wall_s=time.perf_counter() - t0, peak_rss_mb=common.peak_rss_mb())
    return out


def fmt_time(x) -> str:
    return "not reached" if x is None else f"{x:.3g}"


CASE_NAMES = {"square_loss_ufm": "sqloss", "nonnegative_ufm": "nonneg"}


def case_name(family: str, inst: dict) -> str:
    """Row label: mixup by its C and number of subproblems, joint problems by K, n and number of variables."""
    if family == "mixup":
        return f"mixup C={inst['C']} n={inst['n']}"
    return f"{CASE_NAMES[family]} K={inst['K']} n={inst['n']} ({inst['n_vars']} vars)"


def table(cases: list[dict]) -> str:
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
            ratio = ""
            if r is not ours:
                both = [t for t in tols if r["time_to_tol"][t] is not None and ours["time_to_tol"][t]]
                ratio = (f"{r['time_to_tol'][both[-1]] / ours['time_to_tol'][both[-1]]:.3g}x @{both[-1]}" if both
                         else "no tolerance reached by both")
            lines.append(f"{name:34s} {r['method'][:62]:62s} {r['compile_s']:9.3g} {solve_txt:>9s} {str(iters):>7s} "
                         f"{r['final_error']:10.2e}{ttt}  {ratio}")
            name = ""
            if r.get("note"):
                lines.append(f"{'':34s}   {r['note']}")
    lines.append("")
    lines.append("* extrapolated (scipy: from a seeded sample of subproblems, times scaled by n/sample; optax: from a "
                 "short probe, the budget not run)")
    return "\n".join(lines)


def growth_table(cases: list[dict]) -> str:
    """log-log growth of our solve time and peak memory with problem size (mixup: subproblems x d)."""
    rows = []
    for case in cases:
        inst, ours = case["instance"], case["results"][0]
        size = inst["n"] * inst["d"] if case["family"] == "mixup" else inst["n_vars"]
        rows.append((case["family"], size, ours["solve_s"], case["peak_rss_mb"], inst))
    lines = [f"{'family':16s} {'size':>10s} {'log10 size':>10s} {'solve s':>9s} {'log10 s':>8s} {'slope':>6s} "
             f"{'peak RSS MB':>11s}  instance"]
    for family in ("mixup", *CASE_NAMES):
        prev = None
        for fam, size, t, mem, inst in sorted((r for r in rows if r[0] == family), key=lambda r: r[1]):
            slope = (f"{(math.log10(t) - math.log10(prev[1])) / (math.log10(size) - math.log10(prev[0])):.2f}"
                     if prev and size != prev[0] else "")
            desc = ", ".join(f"{k}={v}" for k, v in inst.items() if k in ("C", "n", "n_lambdas", "n_pairs", "K"))
            lines.append(f"{fam:16s} {size:10d} {math.log10(size):10.2f} {t:9.3g} {math.log10(t):8.2f} {slope:>6s} "
                         f"{mem:11.0f}  {desc}")
            prev = (size, t)
    lines.append("size: subproblems x dimension (mixup), number of variables (square loss, nonnegative); slope: "
                 "d log t / d log size from the previous row")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="three small cases (a few minutes)")
    parser.add_argument("--out", default="benchmarks/results.json", help="JSON output (default %(default)s)")
    parser.add_argument("--cases", type=int, nargs="+", metavar="I",
                        help="only these cases (indices into the full or quick list, from 0)")
    parser.add_argument("--case-timeout", type=float, default=None, metavar="S",
                        help="give up on a case after S seconds (recorded as an error)")
    parser.add_argument("--case-json", help=argparse.SUPPRESS)  # internal: run one case, print its JSON
    ns = parser.parse_args(argv)
    if ns.case_json:
        print(json.dumps(run_case(json.loads(ns.case_json)), default=float))
        return 0

    import ufm  # noqa: F401
    from benchmarks import common
    from ufm.report import versions

    t0 = time.perf_counter()
    cases = []
    specs = QUICK if ns.quick else FULL
    if ns.cases is not None:
        bad = [i for i in ns.cases if not 0 <= i < len(specs)]
        if bad:
            parser.error(f"argument --cases: {bad[0]} is not a case index (0 to {len(specs) - 1})")
        specs = [specs[i] for i in ns.cases]
    for spec in specs:
        print(f"[benchmarks] {spec}", file=sys.stderr, flush=True)
        try:
            proc = subprocess.run([sys.executable, "-m", "benchmarks.run", "--case-json", json.dumps(spec)],
                                  capture_output=True, text=True, timeout=ns.case_timeout)
        except subprocess.TimeoutExpired:
            cases.append({"spec": spec, "error": [f"timed out after {ns.case_timeout:g} s"]})
            continue
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            cases.append({"spec": spec, "error": proc.stderr.strip().splitlines()[-1:]})
            continue
        cases.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ok = [c for c in cases if "error" not in c]
    text = table(ok) + "\n\n" + growth_table(ok)
    print(text)
    result = {"mode": "quick" if ns.quick else "full", "selected_cases": ns.cases, "machine": common.machine(),
              "versions": versions(),
              "dtype": "float64", "wall_s": time.perf_counter() - t0, "cases": cases, "table": text}
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(out)
    print(f"\nwrote {out}", file=sys.stderr)
    return 0 if len(ok) == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
