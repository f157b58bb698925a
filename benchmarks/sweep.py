"""Benchmark of ``python -m ufm.sweep``: ``python -m benchmarks.sweep [--points N] [--single-runs M] [--out FILE]``.

One square-loss sweep (``--loss mse --C 3 --lambda-W 0.1 --lambda-H 1e-3:3e-1:N log``, across the rho = 1
threshold) done three ways, each in a fresh Python process, wall time of the whole process (imports, compilation,
solves, writing):

- ``sweep``: one ``python -m ufm.sweep --batch 32`` over the N points (configurations joined into batched solves of
  up to 32, the default on an accelerator);
- ``sweep_one_at_a_time``: the same sweep with ``--batch 1`` (one solve per configuration, the compiled programs
  reused; the default on the CPU); its rows are compared with the joint solves': value for value, verdicts, and
  the objectives' largest relative difference;
- ``single_cli``: ``python -m ufm.solve`` once per point, for M of the N points (evenly spread; M < N because N
  separate processes take too long), extrapolated to N as N x their mean wall time. Two variants: with the
  persistent compilation cache (a folder of this benchmark, warmed by one untimed run first: how a user repeating
  runs works by default) and with ``--no-cache`` (every run compiles);
- ``python_loop``: one process calling ``ufm.run`` on the N problems in a loop (no files written).

Every method has the same persistent-cache setting where it applies (the sweep and the loop run with an empty cache
folder of their own: they compile once). The sampled single runs' verdicts are compared with the sweep's rows.
Ratios are single-CLI time (extrapolated) / sweep time and loop time / sweep time. On demand only: never part of
the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FAMILY = ["--loss", "mse", "--C", "3", "--lambda-W", "0.1"]
LOW, HIGH = 1e-3, 3e-1

LOOP = """
import sys, time
t0 = time.perf_counter()
import ufm
values = [float(v) for v in sys.argv[1:]]
passed = [ufm.run(ufm.SquareLossProblem(C=3, lambda_W=0.1, lambda_H=v)).passed for v in values]
print(sum(passed), time.perf_counter() - t0)
"""


def timed(argv: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # the caller reads the code
    return time.perf_counter() - t0, done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000, help="N, the sweep's points (default 1000)")
    parser.add_argument(
        "--single-runs",
        type=int,
        default=10,
        dest="single_runs",
        help="M, the single CLI runs timed per variant (default 10), extrapolated to N",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    from benchmarks.common import machine

    n, m = args.points, min(args.single_runs, args.points)
    values = [repr(float(v)) for v in np.geomspace(LOW, HIGH, n)]
    values[0], values[-1] = repr(LOW), repr(HIGH)
    sample = sorted({round(float(k)) for k in np.linspace(0, n - 1, m)})
    py = sys.executable
    results: dict = {
        "points": n,
        "command_family": FAMILY,
        "lambda_H": f"{LOW:g}:{HIGH:g}:{n}log",
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="ufm-bench-sweep-") as tmp:
        tmp = Path(tmp)
        tables = {}
        for name, batch in (("sweep", ["--batch", "32"]), ("sweep_one_at_a_time", ["--batch", "1"])):
            wall, done = timed(
                [
                    py,
                    "-m",
                    "ufm.sweep",
                    *FAMILY,
                    "--lambda-H",
                    f"{LOW!r}:{HIGH!r}:{n}log",
                    *batch,
                    "--quiet",
                    "--out",
                    str(tmp / name),
                    "--cache-dir",
                    str(tmp / f"cache-{name}"),
                ]
            )
            assert done.returncode == 0, done.stderr
            with open(tmp / name / "results.csv", newline="") as f:
                tables[name] = {int(r["index"]): r for r in csv.DictReader(f)}
            results[name] = {"seconds": wall, "per_point": wall / n, "batch": int(batch[1])}
            print(f"{name}: {n} points in {wall:.1f} s", flush=True)
        rows, alone = tables["sweep"], tables["sweep_one_at_a_time"]
        # the joint solves' rows against the one-at-a-time rows (a joint solve differs in the last bits only)
        how = ("seconds", "compilations", "problems_in_solve")
        same = lambda a, b, keep: all(a[k] == b.get(k) for k in a if keep(k) and not any(t in k for t in how))
        equal = sum(same(rows[k], alone[k], lambda _: True) for k in rows)
        verdicts = sum(same(rows[k], alone[k], lambda c: c == "passed" or c.startswith("verdict: ")) for k in rows)
        objective = lambda r: float(r["numbers.objective"])
        gap = max(abs(objective(rows[k]) - objective(alone[k])) / abs(objective(alone[k])) for k in rows)
        results["sweep"].update(
            {
                "rows_equal_to_one_at_a_time": f"{equal}/{n}",
                "verdicts_equal_to_one_at_a_time": f"{verdicts}/{n}",
                "max_relative_objective_difference": gap,
            }
        )
        print(
            f"sweep against the one-at-a-time sweep: rows equal value for value {equal}/{n}, verdicts equal "
            f"{verdicts}/{n}, objectives within {gap:.2g} relative",
            flush=True,
        )

        wall, done = timed([py, "-c", LOOP, *values])
        assert done.returncode == 0, done.stderr
        passed, inner = done.stdout.split()
        results["python_loop"] = {"seconds": wall, "loop_seconds": float(inner), "passed": int(passed)}
        print(f"python loop over ufm.run: {n} points in {wall:.1f} s", flush=True)

        timed(
            [
                py,
                "-m",
                "ufm.solve",
                *FAMILY,
                "--lambda-H",
                values[0],
                "--quiet",
                "--out",
                str(tmp / "warm"),
                "--cache-dir",
                str(tmp / "cache-single"),
            ]
        )  # untimed: fills the cache the timed runs load from
        for variant, cache in (("cached", ["--cache-dir", str(tmp / "cache-single")]), ("no_cache", ["--no-cache"])):
            walls, agree = [], 0
            for k in sample:
                wall, done = timed(
                    [
                        py,
                        "-m",
                        "ufm.solve",
                        *FAMILY,
                        "--lambda-H",
                        values[k],
                        "--quiet",
                        *cache,
                        "--out",
                        str(tmp / f"{variant}-{k}"),
                    ]
                )
                assert done.returncode in (0, 1), done.stderr
                summary = json.loads((tmp / f"{variant}-{k}" / "summary.json").read_text())
                agree += all(rows[k]["verdict: " + c["name"]] == c["verdict"] for c in summary["checks"])
                walls.append(wall)
            mean = float(np.mean(walls))
            results[f"single_cli_{variant}"] = {
                "runs_timed": len(walls),
                "seconds_each": walls,
                "mean_seconds": mean,
                "extrapolated_seconds": mean * n,
                "verdicts_equal_to_sweep": f"{agree}/{len(walls)}",
            }
            print(
                f"single CLI runs ({variant}): mean {mean:.2f} s over {len(walls)} runs -> {mean * n:.0f} s for "
                f"{n} (extrapolated); verdicts equal to the sweep's: {agree}/{len(walls)}",
                flush=True,
            )
    sweep_s = results["sweep"]["seconds"]
    results["ratios"] = {
        "sweep_one_at_a_time / sweep": results["sweep_one_at_a_time"]["seconds"] / sweep_s,
        "single_cli_cached / sweep": results["single_cli_cached"]["extrapolated_seconds"] / sweep_s,
        "single_cli_no_cache / sweep": results["single_cli_no_cache"]["extrapolated_seconds"] / sweep_s,
        "python_loop / sweep": results["python_loop"]["seconds"] / sweep_s,
    }
    for name, ratio in results["ratios"].items():
        print(f"{name}: {ratio:.1f}x")
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
