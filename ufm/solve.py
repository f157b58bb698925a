"""Command line: ``python -m ufm.solve --loss FAMILY [options]``: solve, verify against the theory, report.

Exit codes: 0 every check within tolerance; 1 a check failed (the solver disagrees with the theory, or did not
converge); 2 bad input (one line on stderr naming the argument and its valid range; nothing written).
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from ufm import families
from ufm.problems import InputError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors raised instead of printed usage."""

    def error(self, message):
        raise UsageError(message)


def _common_parser(add_help: bool) -> _Parser:
    parser = _Parser(prog="python -m ufm.solve", add_help=add_help,
                     description="Solve an unconstrained-features model objective and check it against theory.")
    parser.add_argument("--loss", required=True, help="loss family: " + ", ".join(families.FAMILIES))
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (must not exist or be empty; default runs/<loss>-<time>)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    return parser


def default_out(loss: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{loss}-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path("runs") / f"{loss}-{stamp}-{k}"
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        known, _ = _common_parser(add_help=False).parse_known_args(argv)
        if known.loss not in families.FAMILIES:
            raise UsageError(f"argument --loss: unknown loss {known.loss!r}; valid: {', '.join(families.FAMILIES)}")
        family = families.load(known.loss)
        parser = _common_parser(add_help=True)
        family.add_arguments(parser)
        ns = parser.parse_args(argv)
        try:
            problem = family.problem_from_args(ns)
        except InputError as err:
            flag = getattr(family, "FLAGS", {}).get(err.field, "--" + err.field.replace("_", "-"))
            raise UsageError(f"argument {flag}: {err.message}") from None
    except UsageError as err:
        if "--help" in argv or "-h" in argv:
            raise
        print(f"ufm.solve: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    from ufm.report import OutputDir, render_table, write_report

    out_path = ns.out if ns.out is not None else default_out(ns.loss)
    try:
        out = OutputDir(out_path)
    except OSError as err:
        print(f"ufm.solve: error: argument --out: cannot write {out_path}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT

    try:
        t0 = time.perf_counter()
        extra = family.run_options(ns) if hasattr(family, "run_options") else {}
        report = family.run(problem, progress=not ns.quiet, **extra)
        wall = time.perf_counter() - t0
        table = render_table(report, wall)
        print(table)
        target = write_report(out, report, table, wall)
    except BaseException:
        out.discard()
        raise
    print(f"results: {target}")
    if not report.passed:
        names = "; ".join(check.name for check in report.failed_checks)
        print(f"ufm.solve: FAILED: {names}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
