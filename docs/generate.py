"""Write the generated tables of the documentation from the recorded result files; ``--check`` fails on a stale page.

    python docs/generate.py            # rewrite every generated block in README.md and docs/**/*.md
    python docs/generate.py --check    # exit 1 (naming the blocks) if a page differs from what the files give

A generated block is delimited in a Markdown page by

    <!-- BEGIN generated: NAME -->
    ...
    <!-- END generated: NAME -->

and its text is a pure function of recorded files: ``docs/data/<run>/`` (what ``python -m ufm.solve ... --out``
wrote: ``summary.json``, ``table.txt``, the arrays), ``docs/data/runs.json`` (the command of each recorded run),
``docs/data/certificates.json`` (``python -m ufm.proofs_check``; recorded with every certificate's instance list
replaced by its length), ``docs/data/mixup-joint-table/``
(``python -m ufm.experiments.mixup_joint_table``) and ``benchmarks/results.json`` (``python -m benchmarks.run``),
or, for the figure captions, of the figure modules' ``caption(config)`` (the text each figure's ``NAME.json``
holds). Re-running a command into its folder and then this script updates the pages. Block names:

- ``table:RUN``: the command and the table the run printed (its ``table.txt``);
- ``rb-summary``: the R-B relations and output sums at the recorded square-loss runs;
- ``nonlin-vs-kappa``: NonLin (Chaudhry et al., eq. 3) of the k-point optimum against kappa;
- ``mixup-joint-table``: the learned-classifier table;
- ``certificates``: the certificate table;
- ``benchmarks-mixup``, ``benchmarks-joint``, ``benchmarks-growth``, ``benchmarks-machine``: the benchmark tables;
- ``figure-captions``: the table of figures, each with its caption at the full configuration;
- ``flags``: every problem flag of ``python -m ufm.solve``, read from the families' parsers (which are generated
  from the problem dataclasses): the field it sets, the families that have it, its deprecated spellings;
- ``network-verdicts``: the claims tested on trained networks, with their numbers and verdicts, from the summaries
  that ``python -m ufm.experiments --only network_mixup network_label_noise network_linearity`` wrote into
  ``docs/data/network-*/NAME.json``.

Needs numpy (and, for the benchmark tables, the repository's ``benchmarks.run`` formatting functions; for the
figure captions, the repository's ``ufm.experiments`` modules, which import the package and so JAX). It never
solves anything.

Exit codes: 0 pages written (or, with ``--check``, up to date); 1 ``--check`` found a stale block; 2 bad input (a
block whose recorded file is missing or an unknown block name; one line, nothing written).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

BLOCK = re.compile(
    r"(<!-- BEGIN generated: (?P<name>[^ ]+) -->\n)(?P<body>.*?)(<!-- END generated: (?P=name) -->)", re.S
)


class MissingRecord(Exception):
    """A block's recorded file is absent or unreadable (bad input: exit 2)."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise MissingRecord(f"{path}: {err}") from None


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as err:
        raise MissingRecord(f"{path}: {err}") from None


def _commands(root: Path) -> dict:
    return _read_json(root / "docs" / "data" / "runs.json")


def _check(summary: dict, name: str) -> dict:
    """The recorded check whose name starts with ``name``."""
    for check in summary["checks"]:
        if check["name"].startswith(name):
            return check
    raise MissingRecord(f"no check named {name!r} in the recorded summary of {summary['family']}")


def _g(x, spec="{:.3g}") -> str:
    return "-" if x is None else spec.format(x)


def run_table(root: Path, run: str) -> str:
    """``table:RUN``: the command, then the table the run printed."""
    commands = _commands(root)
    if run not in commands:
        raise MissingRecord(f"docs/data/runs.json has no command for {run!r}")
    table = _read_text(root / "docs" / "data" / run / "table.txt").rstrip("\n")
    return f"```text\n$ {commands[run]}\n{table}\n```\n"


RB_RUNS = ["mse-C3-n2", "mse-C3", "mse-C10", "mse-C10-free"]


def rb_summary(root: Path) -> str:
    """``rb-summary``: per recorded square-loss run, eps, the R-B W_L formula's error, the corrected forms, NC3 and
    the output and residual sums of the solution (``solution.npz``: outputs F, labels)."""
    commands = _commands(root)
    lines = [
        "| command | eps | R-B W_L formula, rel. error | R-B norm ratio | corrected W_L (rel) | "
        "corrected norm (rel) | NC3 | output sums (mean) | residual sums (min, max) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in RB_RUNS:
        folder = root / "docs" / "data" / run
        summary = _read_json(folder / "summary.json")
        try:
            arrays = np.load(folder / "solution.npz")
            F, labels = arrays["F"], arrays["labels"]
        except (OSError, KeyError, ValueError) as err:
            raise MissingRecord(f"{folder / 'solution.npz'}: {err}") from None
        K = F.shape[0]
        u = (np.eye(K)[:, labels] - F).sum(axis=0)
        eps = summary["numbers"]["eps"]
        nc3 = summary["numbers"]["nc"]["NC3"]
        if summary["config"]["bias"] == "none":
            fails = _check(summary, "R-B W_L formula fails bias-free")
            match = re.search(r"rel err ([0-9.e+-]+); \|\|W_L\^c\|\| / R-B's = ([0-9.e+-]+)", fails["detail"])
            if match is None:
                raise MissingRecord(f"{run}: the R-B check's detail has no relative error")
            rb_err, ratio = match.group(1), match.group(2)
            fixed_W = _g(_check(summary, "corrected bias-free: W_L^c")["value"], "{:.1e}")
            fixed_norm = _g(_check(summary, "corrected bias-free: ||W_L^c||^2")["value"], "{:.1e}")
        else:
            rb_err = _g(_check(summary, "R-B: W_L^c")["value"], "{:.1e}")
            ratio, fixed_W, fixed_norm = "-", "(not applicable)", "(not applicable)"
        lines.append(
            f"| `{commands[run]}` | {eps:.6g} | {rb_err} | {ratio} | {fixed_W} | {fixed_norm} | {nc3:.6f} | "
            f"{F.sum(axis=0).mean():.12f} | {u.min():.3g}, {u.max():.3g} |"
        )
    return "\n".join(lines) + "\n"


def nonlin_vs_kappa(root: Path) -> str:
    """``nonlin-vs-kappa``: the closed-form NonLin sweep recorded by the k-point runs."""
    commands = _commands(root)
    head = None
    lines = []
    for run in ("mixup-points3-C10", "mixup-points4-C10"):
        summary = _read_json(root / "docs" / "data" / run / "summary.json")
        sweep = summary["numbers"]["nonlin_vs_kappa"]
        k = summary["config"]["points"]
        if head is None:
            kappas = [r["kappa"] for r in sweep]
            head = (
                "| k | | "
                + " | ".join(f"kappa = {kap:g}" for kap in kappas)
                + " |\n"
                + "|---|---|"
                + "---|" * len(kappas)
            )
        lines.append(f"| {k} | NonLin (eq. 3) | " + " | ".join(f"{r['nonlin']:.4f}" for r in sweep) + " |")
        lines.append(f"| {k} | excess over floor | " + " | ".join(f"{r['excess']:.2g}" for r in sweep) + " |")
        lines.append(
            f"| {k} | unnormalised / norm h_cc | " + " | ".join(f"{r['unnormalised_rel']:.3g}" for r in sweep) + " |"
        )
        lines.append(f"| {k} | floor (any linear map) | " + " | ".join(f"{r['floor']:.4f}" for r in sweep) + " |")
    sources = ", ".join(f"`{commands[r]}`" for r in ("mixup-points3-C10", "mixup-points4-C10"))
    return head + "\n" + "\n".join(lines) + f"\n\nRecorded by {sources} (closed form at the runs' mixes).\n"


def mixup_joint_table(root: Path) -> str:
    """``mixup-joint-table``: the table and verdict line the experiment wrote."""
    folder = root / "docs" / "data" / "mixup-joint-table"
    table = _read_text(folder / "table.md").rstrip("\n")
    summary = _read_json(folder / "summary.json")
    verdict = summary.get("verdict", "")
    command = _commands(root)["mixup-joint-table"]
    return f"`{command}`:\n\n{table}\n\nVerdict (printed by the run): **{verdict}**\n"


def certificates(root: Path) -> str:
    """``certificates``: the table ``python -m ufm.proofs_check`` printed (its ``table`` in certificates.json) and
    the count of verdicts."""
    data = _read_json(root / "docs" / "data" / "certificates.json")
    verdicts = ", ".join(f"{count} {verdict}" for verdict, count in data["verdicts"].items())
    table = "\n".join(data["table"])
    return (
        f"```text\n$ {_commands(root)['certificates']}\n{table}\n```\n\n"
        f"Families: {', '.join(data['families'])}; verdicts: {verdicts}; "
        f"{'every certificate passed' if data['passed'] else 'a certificate FAILED'}.\n"
    )


def _benchmarks(root: Path) -> dict:
    return _read_json(root / "benchmarks" / "results.json")


def _benchmark_render():
    """The formatting functions of ``python -m benchmarks.run --render`` (one definition of each table)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import run

    return run


def _figure_modules() -> dict:
    """Figure name -> the repository's figure module (``python -m ufm.experiments``' registry, in its order)."""
    import importlib

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from ufm.experiments.__main__ import FIGURES

    return {name: importlib.import_module(module) for name, module in FIGURES.items()}


def figure_captions(root: Path) -> str:
    """``figure-captions``: one row per figure, its PNG and its caption: the module's ``caption`` of its full
    configuration, which ``python -m ufm.experiments`` (without ``--quick``) writes into ``NAME.json`` too."""
    lines = ["| figure | what it shows |", "|---|---|"]
    for name, module in _figure_modules().items():
        # a table cell: a pipe would end the cell; the captions are one line by construction
        text = module.caption(module.config(False)).replace("|", "\\|")
        lines.append(f"| ![{name}](figures/{name}.png) | `{name}`: {text} |")
    return "\n".join(lines) + "\n"


NETWORK_FIGURES = {
    "network_mixup": "network-mixup",
    "network_label_noise": "network-label-noise",
    "network_linearity": "network-linearity",
}


def _spread(stats: dict) -> str:
    """``mean +- std`` of a recorded ``{"mean", "std", "values"}``, 3 significant digits."""
    mean, std = stats["mean"], stats["std"]
    if mean is None:  # NaN, recorded as null: nothing defined
        return "-"
    return f"{mean:.3g} +- {std:.2g}"


def _numbers_cell(numbers: dict) -> str:
    """``quantity: a +- s`` per quantity; per noise rate ``a +- s (10%), ...`` where the numbers are by rate."""
    parts = []
    for quantity, by in numbers.items():
        if list(by) == ["all"]:
            parts.append(f"{quantity}: {_spread(by['all'])}")
        else:
            parts.append(f"{quantity}: " + ", ".join(f"{_spread(v)} ({k})" for k, v in by.items()))
    return "; ".join(parts)


def _network_mixup_claims(summary: dict) -> list[dict]:
    """network_mixup's recorded summary as claims (its JSON states one question, raw and centred)."""
    out = []
    for suffix, which in (("", "raw features"), ("_centred", "features centred")):
        out.append(
            {
                "claim": f"a fixed ETF brings the mixed features closer to Theorem 3.1's optimum ({which})",
                "condition": "relative distance below the learned classifier's, same seed",
                "numbers": {
                    f"distance {label}": {"all": summary[objective][f"distance{suffix}"]}
                    for objective, label in (("mixup", "learned W"), ("mixup_etf", "fixed ETF"))
                },
                "verdict": summary[f"verdict{suffix}"],
                "seeds": summary["seeds"],
            }
        )
    return out


def flag_table(root: Path) -> str:
    """``flags``: one row per problem flag of ``python -m ufm.solve`` (from each family's parser)."""
    from ufm import families
    from ufm import solve as solve_cli
    from ufm.cli import Store

    rows: dict[str, dict] = {}
    for loss in families.FAMILIES:
        family = families.load(loss)
        unused = getattr(family, "UNUSED_FLAGS", {}).get(loss, set())  # refused by that variant
        for action in solve_cli._family_parser(family)._actions:
            if isinstance(action, Store) and action.dest not in unused:
                row = rows.setdefault(action.option_strings[0], {"fields": set(), "losses": [], "old": set()})
                row["fields"].add(action.dest)
                row["losses"].append(loss)
                row["old"].update(action.deprecated)
    lines = ["| flag | problem field | families | deprecated spelling |", "|---|---|---|---|"]
    for flag in sorted(rows, key=lambda f: (f.lower(), f)):
        row = rows[flag]
        every = len(row["losses"]) == len(families.FAMILIES)
        losses = "all" if every else ", ".join(f"`{name}`" for name in row["losses"])
        fields = ", ".join(f"`{name}`" for name in sorted(row["fields"]))
        old = ", ".join(f"`{name}`" for name in sorted(row["old"])) or ""
        lines.append(f"| `{flag}` | {fields} | {losses} | {old} |")
    return "\n".join(lines) + "\n"


def network_verdicts(root: Path) -> str:
    """``network-verdicts``: one row per claim of the network figures: the claim, the per-seed condition, the
    numbers (mean +- standard deviation over the seeds, ddof 0) and the verdict, read from the recorded JSON."""
    lines = ["| figure | claim | per-seed condition | measured (mean +- spread over seeds) | seeds | verdict |"]
    lines.append("|---|---|---|---|---|---|")
    for name, folder in NETWORK_FIGURES.items():
        record = _read_json(root / "docs" / "data" / folder / f"{name}.json")
        if record.get("quick", True):
            raise MissingRecord(f"docs/data/{folder}/{name}.json is not the full configuration's")
        summary = record["summary"]
        claims = _network_mixup_claims(summary) if name == "network_mixup" else summary["claims"]
        for claim in claims:
            seeds = ", ".join(str(s) for s in claim["seeds"])
            lines.append(
                f"| `{name}` | {claim['claim']} | {claim['condition']} | {_numbers_cell(claim['numbers'])} | "
                f"{seeds} | **{claim['verdict']}** |"
            )
    return "\n".join(lines) + "\n"


def benchmarks_joint(root: Path) -> str:
    """``benchmarks-joint``: the joint (W, H) cases, as ``benchmarks.run.markdown_table`` renders them."""
    run = _benchmark_render()
    cases = [c for c in _benchmarks(root)["cases"] if c["family"] in run.JOINT and "error" not in c]
    return run.markdown_table(cases) + "\n\n" + run.worst_ratio(cases) + "\n"


def benchmarks_mixup(root: Path) -> str:
    """``benchmarks-mixup``: the mixup cases (accuracy against Theorem 3.1's features)."""
    lines = [
        "| case | method | compile s | solve s | iterations | final error | time to 1e-6 s | time to 1e-10 s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in _benchmarks(root)["cases"]:
        if case["family"] != "mixup":
            continue
        inst = case["instance"]
        name = f"mixup C={inst['C']} d={inst['d']}, {inst['n']} subproblems"
        for r in case["results"]:
            solve = r.get("solve_s") if r.get("solve_s") is not None else r.get("estimated_budget_s")
            star = "*" if r.get("extrapolated") or r.get("solve_s") is None else ""
            iters = r.get("iterations_max", r.get("iterations_total", "-"))
            ttt = r.get("time_to_tol", {})
            reached = {
                tol: _g(ttt[tol], "{:.3g}") if ttt.get(tol) is not None else "not reached" for tol in ("1e-06", "1e-10")
            }
            lines.append(
                f"| {name} | {r['method']} | {_g(r.get('compile_s'))} | {_g(solve)}{star} | {iters} | "
                f"{_g(r.get('final_error'), '{:.1e}')} | {reached['1e-06']} | {reached['1e-10']} |"
            )
            name = ""
    lines.append("")
    lines.append(
        "`*` extrapolated (scipy: from a seeded sample of subproblems, time scaled to all of them; optax: "
        "from a short probe, the budget not run)."
    )
    return "\n".join(lines) + "\n"


def benchmarks_growth(root: Path) -> str:
    """``benchmarks-growth``: our solve time and peak memory against problem size."""
    run = _benchmark_render()
    cases = [c for c in _benchmarks(root)["cases"] if "error" not in c]
    mixup = [c for c in cases if c["family"] == "mixup"]
    joint = [c for c in cases if c["family"] in run.JOINT]
    return "```text\n" + run.growth_table(mixup, joint) + "\n```\n"


def benchmarks_machine(root: Path) -> str:
    """``benchmarks-machine``: where and with what the recorded benchmark ran."""
    data = _benchmarks(root)
    m, v = data["machine"], data["versions"]
    load = ", ".join(f"{x:.1f}" for x in m.get("load_average_1_5_15", []))
    return (
        f"Recorded in `benchmarks/results.json` (mode {data['mode']}, {len(data['cases'])} cases): "
        f"{m['cpu']}, {m['cpu_count']} cores, JAX backend {m['jax_backend']}, {data['dtype']}, load average "
        f"{load} at the start; ufm {v['ufm']}, Python {v['python']}, jax {v['jax']}, numpy {v['numpy']}, "
        f"scipy {v['scipy']}, optax {v['optax']}.\n"
    )


RENDERERS = {
    "rb-summary": rb_summary,
    "nonlin-vs-kappa": nonlin_vs_kappa,
    "mixup-joint-table": mixup_joint_table,
    "certificates": certificates,
    "benchmarks-joint": benchmarks_joint,
    "benchmarks-mixup": benchmarks_mixup,
    "benchmarks-growth": benchmarks_growth,
    "benchmarks-machine": benchmarks_machine,
    "figure-captions": figure_captions,
    "network-verdicts": network_verdicts,
    "flags": flag_table,
}


def render(root: Path, name: str) -> str:
    if name.startswith("table:"):
        return run_table(root, name.split(":", 1)[1])
    if name not in RENDERERS:
        raise MissingRecord(f"unknown generated block {name!r} (known: table:RUN, {', '.join(RENDERERS)})")
    return RENDERERS[name](root)


def pages(root: Path) -> list[Path]:
    """Every page that may hold generated blocks: README.md and the Markdown files under docs/."""
    return [root / "README.md"] + sorted((root / "docs").rglob("*.md"))


def regenerate(text: str, root: Path) -> tuple[str, list[str]]:
    """``text`` with every block re-rendered, and the names of the blocks that changed."""
    changed = []

    def replace(match: re.Match) -> str:
        body = render(root, match.group("name"))
        if body != match.group("body"):
            changed.append(match.group("name"))
        return match.group(1) + body + match.group(4)

    return BLOCK.sub(replace, text), changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python docs/generate.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail (exit 1) if a page is stale; write nothing")
    parser.add_argument(
        "--root",
        type=Path,
        default=Path(__file__).resolve().parents[1],
        help="repository root (default: the one this script is in)",
    )
    ns = parser.parse_args(argv)
    root = ns.root.resolve()
    if not (root / "docs").is_dir():
        print(f"generate: --root {root} has no docs/ folder", file=sys.stderr)
        return 2
    updates, stale = {}, []
    try:
        for page in pages(root):
            if not page.is_file():
                continue
            text = page.read_text()
            new, changed = regenerate(text, root)
            if changed:
                updates[page] = new
                stale += [f"{page.relative_to(root)}: {name}" for name in changed]
    except MissingRecord as err:
        print(f"generate: {err}", file=sys.stderr)
        return 2
    if ns.check:
        if stale:
            print(
                "generate --check: stale generated blocks (run python docs/generate.py): " + "; ".join(stale),
                file=sys.stderr,
            )
            return 1
        return 0
    for page, text in updates.items():
        page.write_text(text)
        print(f"generate: wrote {page.relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
