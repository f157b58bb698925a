"""Command line: ``python -m ufm.solve --loss FAMILY [options]``: solve, verify against the theory, report.

``python -m ufm.solve --help`` lists the families and the common flags; ``--loss FAMILY --help`` that family's.

Exit codes: 0 every check within tolerance; 1 a check failed (the solver disagrees with the theory, or did not
converge; the failing checks are named on stderr); 2 bad input (one line on stderr naming the argument and its
valid range; nothing computed, nothing written); 3 the results could not be written after the run (one line naming
--out; nothing left behind); 130 SIGINT, 143 SIGTERM (everything the run created removed).

Order of work: parse, validate (the problem dataclass, flags that do not apply to the variant, the memory
estimate against the budget, the output location, the compilation cache folder: nothing created), point JAX's
persistent compilation cache at its folder (creating the folder: the only thing made outside --out), solve, print
the table, write the results (the only moment anything is created in --out), print where.

Compilation cache: --cache-dir DIR, else $UFM_CACHE_DIR, else the folder given to JAX itself
($JAX_COMPILATION_CACHE_DIR, with JAX's own thresholds), else $XDG_CACHE_HOME/ufm/jax (~/.cache/ufm/jax);
--no-cache turns it off. A folder that cannot be written costs one warning and a run compiled from scratch; a
path that is not a folder is bad input.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import sys
import textwrap
import time
from pathlib import Path

from ufm import families
from ufm.cli import (
    CACHE_ENV,
    EXIT_BAD_INPUT,
    EXIT_CODES_HELP,
    EXIT_FAILED,
    EXIT_NOT_WRITTEN,
    EXIT_OK,
    SIZE_HELP,
    HelpFormatter,
    Interrupted,
    Parser,
    UsageError,
    cache_dir_choice,
    deprecation_notes,
    explicit_dests,
    gib,
    interruptible,
    os_problem,
    parse_size,
    say,
    use_compilation_cache,
    warn,
)
from ufm.precision import float64
from ufm.problems import InputError

EXIT_CHECK_FAILED = EXIT_FAILED
PROG = "python -m ufm.solve"


def _common_parser(*, families_help: str = "") -> Parser:
    parser = Parser(
        prog=PROG,
        add_help=False,
        formatter_class=HelpFormatter,
        description="Solve an unconstrained-features model objective and check it against theory.",
        epilog=(families_help + "\n\n" if families_help else "") + EXIT_CODES_HELP,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help (with --loss: that family's flags)")
    parser.add_argument("--loss", default=None, help="loss family (required): " + ", ".join(families.FAMILIES))
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (must not exist or be an empty folder, not a link; default "
        "runs/<loss>-<time>); created only when the results are written",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--max-memory",
        type=parse_size,
        default=None,
        dest="max_memory",
        metavar="SIZE",
        help=f"memory budget of the run, {SIZE_HELP} (default: half the machine's memory); a run "
        "estimated to need more is refused before it starts, and the solver splits its batch into chunks that fit "
        "it (or refuses, exit 2, before solving)",
    )
    cache = parser.add_mutually_exclusive_group()
    cache.add_argument(
        "--cache-dir",
        type=_folder,
        default=None,
        dest="cache_dir",
        metavar="DIR",
        help="folder of the persistent compilation cache, shared by runs: a repeated run loads its "
        f"compiled solves instead of compiling them (default ${CACHE_ENV}, else "
        "$XDG_CACHE_HOME/ufm/jax or ~/.cache/ufm/jax); created if missing",
    )
    cache.add_argument(
        "--no-cache",
        action="store_true",
        dest="no_cache",
        help="no persistent compilation cache (compile everything, write nothing)",
    )
    return parser


def _folder(text: str) -> Path:
    if not text:  # Path("") is the current folder: surely not what was meant
        raise argparse.ArgumentTypeError("must be a folder path, got ''")
    return Path(text)


def _loss_parser() -> Parser:
    """The first pass: only --loss and --help, no abbreviations (``--m`` of mixup must not read as --max-memory)."""
    parser = Parser(prog=PROG, add_help=False, allow_abbrev=False)
    parser.add_argument("-h", "--help", action="store_true")
    parser.add_argument("--loss", default=None)
    return parser


def _families_help() -> str:
    lines = ["loss families (python -m ufm.solve --loss NAME --help for its flags):"]
    width = max(map(len, families.FAMILIES))
    for name in families.FAMILIES:
        try:
            description = getattr(families.load(name), "DESCRIPTION", "")
        except Exception as err:  # a family that cannot be imported must not hide the others' help
            description = f"(cannot be loaded: {type(err).__name__})"
        lines.append(f"  {name:<{width}}  {description}")
    return "\n".join(lines)


def _family_parser(family) -> Parser:
    parser = _common_parser()
    if getattr(family, "DESCRIPTION", ""):
        parser.description = textwrap.fill(f"{parser.description} This family: {family.DESCRIPTION}.", 79)
    family.add_arguments(parser)
    return parser


def default_out(loss: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path("runs") / f"{loss}-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path("runs") / f"{loss}-{stamp}-{k}"
    return path


def flag_of(family, field: str) -> str:
    """The command-line flag of a problem field or argparse dest (the family's FLAGS, else --field-with-dashes)."""
    return getattr(family, "FLAGS", {}).get(field, "--" + field.replace("_", "-"))


def _refuse_unused_flags(family, loss: str, argv: list[str], ns) -> None:
    unused = getattr(family, "UNUSED_FLAGS", {}).get(loss, set())
    if not unused:
        return
    given = explicit_dests(lambda: _family_parser(family), argv, vars(ns)) & set(unused)
    if given:
        flag = min(flag_of(family, dest) for dest in given)
        raise UsageError(f"argument {flag}: does not apply to --loss {loss}; leave it out")


def _refuse_over_budget(family, problem, max_memory: int | None) -> None:
    estimate = getattr(family, "memory_estimate", None)
    if estimate is None:
        return
    needed, field = estimate(problem)
    if max_memory is None:
        from ufm.solver import memory_budget_bytes

        budget = memory_budget_bytes()
        why = f"half the machine's {gib(2 * budget)} memory; --max-memory changes it"
    else:
        budget, why = max_memory, "--max-memory"
    if needed > budget:
        raise UsageError(
            f"argument {flag_of(family, field)}: needs about {gib(needed)} (estimate), more than the "
            f"{gib(budget)} budget ({why})"
        )


def run_options(family, ns) -> dict:
    """The keyword arguments of ``family.run`` that come from the command line and are not problem fields: the
    family's own (``family.run_options(ns)``, e.g. md's ``--sweep``) and ``--max-memory``, the solver's memory
    budget (``SolverOptions.max_memory_bytes``)."""
    own = family.run_options(ns) if hasattr(family, "run_options") else {}
    return {**own, "max_memory_bytes": ns.max_memory}


def parse(argv: list[str]):
    """(family module, namespace, problem) from ``argv``, or None after printing help; raises UsageError."""
    known, _ = _loss_parser().parse_known_args(argv)
    if known.loss is None:
        if known.help:
            say(_common_parser(families_help=_families_help()).format_help())
            return None
        raise UsageError(
            f"argument --loss is required; valid: {', '.join(families.FAMILIES)} ({PROG} --help describes them)"
        )
    if known.loss not in families.FAMILIES:
        raise UsageError(f"argument --loss: unknown loss {known.loss!r}; valid: {', '.join(families.FAMILIES)}")
    family = families.load(known.loss)
    parser = _family_parser(family)
    if known.help:
        say(parser.format_help())
        return None
    ns = parser.parse_args(argv)
    _refuse_unused_flags(family, ns.loss, argv, ns)  # before validation: its message is the one that applies
    try:
        problem = family.problem_from_args(ns)
        _refuse_over_budget(family, problem, ns.max_memory)
    except InputError as err:
        raise UsageError(f"argument {flag_of(family, err.field)}: {err.message}") from None
    for note in deprecation_notes(parser):
        warn(note)
    return family, ns, problem


@float64
def main(argv: list[str] | None = None, *, program: bool = False) -> int:
    """The command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code.

    ``program``: this process is the command line itself (``python -m ufm.solve``), so the persistent compilation
    cache of --cache-dir / --no-cache is set in JAX's global configuration. Called in-process (a library, a test)
    the flags are validated alike but JAX's configuration is left as the caller has it."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with interruptible():
            return _main(argv, program)
    except (Interrupted, KeyboardInterrupt) as err:
        sig = err if isinstance(err, Interrupted) else Interrupted(2)
        warn(f"ufm.solve: interrupted ({sig.name}); nothing written")
        return sig.exit_code


def _main(argv: list[str], program: bool) -> int:
    from ufm.report import OutputDir, render_table, write_report
    from ufm.solver import MemoryBudgetExceeded

    try:
        parsed = parse(argv)
        if parsed is None:
            return EXIT_OK
        family, ns, problem = parsed
        out_path = ns.out if ns.out is not None else default_out(ns.loss)
        try:
            out = OutputDir(out_path)  # validates only: nothing is created before the results are written
        except OSError as err:
            raise UsageError(f"argument --out: {os_problem(err, out_path)}") from None
        cache_dir, cache_source = cache_dir_choice(ns.cache_dir, ns.no_cache)
    except UsageError as err:
        warn(f"ufm.solve: error: {err}")
        return EXIT_BAD_INPUT
    if program:
        use_compilation_cache(cache_dir, cache_source, "ufm.solve")

    t0 = time.perf_counter()
    try:
        report = family.run(problem, progress=not ns.quiet, **run_options(family, ns))
    except MemoryBudgetExceeded as err:  # found from the compiled programs, before they ran: nothing written
        warn(f"ufm.solve: error: argument --max-memory: {err}; smaller sizes would fit")
        return EXIT_BAD_INPUT
    wall = time.perf_counter() - t0
    table = render_table(report, wall)
    code = EXIT_OK if report.passed else EXIT_CHECK_FAILED
    printed = say(table)
    try:
        target = write_report(out, report, table, wall)
    except OSError as err:
        out.discard()
        warn(
            f"ufm.solve: error: argument --out: results not written ({os_problem(err, out.target)}; was it "
            "taken during the run?); nothing left behind"
        )
        return EXIT_NOT_WRITTEN
    except BaseException:
        out.discard()
        raise
    try:
        printed = say(f"results: {target}") and printed
        if not printed:
            warn(f"ufm.solve: stdout was closed before everything was printed; results: {target}")
        if not report.passed:
            warn("ufm.solve: FAILED: " + "; ".join(check.name for check in report.failed_checks))
    except Interrupted as sig:
        warn(f"ufm.solve: interrupted ({sig.name}) after the results were written: {target}")
        return sig.exit_code
    return code


if __name__ == "__main__":
    from ufm.cli import exit_main

    exit_main(functools.partial(main, program=True))
