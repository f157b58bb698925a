"""Command line: ``python -m ufm.sweep --loss FAMILY [flags] --out DIR``: one family's checks over a grid of its
problem's fields, one row per configuration.

    python -m ufm.sweep --loss mse --C 3 --lambda-H 1e-3:3e-1:40log --out runs/mse-lambda-H

Any flag of the family (``python -m ufm.solve --loss FAMILY --help``) takes a list ``--C 3,10`` or a range
``--lambda-H 1e-4:1e-1:30log`` / ``--m 0.5:2:7lin`` (syntax: :mod:`ufm.sweeps`); the grid is the product of the
swept flags' values. The other flags are read by ``ufm.solve``'s own parser, and every configuration is validated
exactly as ``python -m ufm.solve`` validates one run (its range checks, flags that do not apply, the memory
estimate) before anything is solved. Flags of the sweep itself: ``--save-arrays`` (each configuration's
``summary.json``, arrays and ``table.txt``, as ``ufm.solve`` writes them, in ``DIR/points/<index>/``), ``--limit
N`` (solve at most N configurations in this run) and ``--batch N`` (configurations per joint solve).

Each configuration is solved and checked as a single run does it (``family.run``: the same solve, the same
checks, the same report). Configurations of one shape group (:func:`ufm.sweeps.shape_key`: they differ in float
fields only) are solved together in joint batches of up to ``--batch N`` (default 32; fixed by the grid and N,
:func:`ufm.sweeps.joint_batches`): every family writes its solve as steps (``ufm.family.Family.steps``), and
``ufm.driver.run_batch`` joins the same solver call of every configuration of a batch into ONE batched solve, the
hyper-parameters batched data of one compiled program (``ufm.algorithms.batched``); ``--batch 1`` solves them one
after another. A joint solve's values can differ from a solve alone in their last bits (XLA blocks batched
products by batch size), so the batches are fixed: the same command gives the same table however many processes
share it. The ``compilations`` column counts
the executables each configuration had to build or load (a joint solve's go to its first configuration), and
``seconds`` is each configuration's equal share of its joint solve plus its own checks.

Output, in ``--out DIR`` (required; a new or empty folder, or the folder of an unfinished sweep of the same
command):

- ``results.csv``: one row per finished configuration (:func:`ufm.sweeps.point_row`: index, the problem's fields,
  ``passed``, every check's value and verdict, the scalar numbers, the convergence record), appended when the
  configuration is complete and never rewritten except to add a column;
- ``summary.json``: the command, the axes and their values, counts, failed indices, where the boolean columns
  change along each axis (``changes``), compilations and timing of the last run, package versions.

Resuming: the same command with the same ``--out`` continues where a killed or limited sweep stopped: finished
configurations (rows in results.csv) are never solved again. ``--out``, ``--quiet``, ``--limit``, ``--cache-dir``
and ``--no-cache`` may differ between the runs; any other difference (``--batch`` included: it fixes which
configurations are solved together) is refused (one line). The folder appears with
the first finished configuration (nothing is created before), and SIGINT / SIGTERM keep every finished row and
leave nothing half-written (the configurations of the joint solve in progress are dropped).

Several processes (one machine or a cluster): ``--local-processes P`` starts P processes of the same command on
this machine; a launcher (SLURM's ``srun``, ``mpirun``, or by hand) starts them itself, each with ``--processes P
--process-index I`` (or ``--processes auto``: from UFM_PROCESS_COUNT/UFM_PROCESS_INDEX, SLURM, Open MPI or PMI
variables), optionally joining JAX's multi-process runtime with ``--coordinator HOST:PORT``
(``jax.distributed.initialize``). Process I solves the joint batches whose position is I modulo P, on its local
devices, into ``DIR/processes/I/`` (a sweep folder of its own, resumable like any), and each process, on finishing
its share, merges every process's table into ``DIR/results.csv`` and ``DIR/summary.json`` under a lock: the last
merge sees every row, so the merged table equals that of one process (timing columns aside). ``DIR`` must be on a
file system every process sees; ``DIR/processes`` is created when the processes start.

Exit codes: 0 every finished configuration passed; 1 one failed (their indices on stderr); 2 bad input (one line
naming the flag and its valid syntax or range; nothing solved, nothing written); 3 results could not be written
(the finished rows stay); 130 SIGINT, 143 SIGTERM.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import itertools
import json
import os
import re
import shutil
import sys
import textwrap
import time
import types
from pathlib import Path

from ufm import families, sweeps
from ufm import solve as solve_cli
from ufm.cli import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_NOT_WRITTEN,
    EXIT_OK,
    Interrupted,
    Parser,
    UsageError,
    cache_dir_choice,
    canonical_flag,
    interruptible,
    is_number,
    os_problem,
    say,
    use_compilation_cache,
    warn,
)
from ufm.precision import float64
from ufm.sweeps import JOINT_BATCH

PROG = "python -m ufm.sweep"
RESULTS, SUMMARY, POINTS = "results.csv", "summary.json", "points"
KIND = "ufm.sweep"
# Flags that say where and how a sweep runs, not what it computes: a resumed sweep may change them.
NOT_IN_IDENTITY = frozenset(
    {
        "out",
        "quiet",
        "limit",
        "cache_dir",
        "no_cache",
        "processes",
        "process_index",
        "coordinator",
        "local_processes",
    }
)
PROCESSES = "processes"  # DIR/processes/<index>/: the sweep folder of each process of a several-process sweep
DESCRIPTION = (
    "Solve one family's problem over a grid of its flags' values, each configuration checked as "
    "python -m ufm.solve checks one run; one row per configuration in DIR/results.csv."
)
SWEEP_HELP = """sweeping: any flag of the family takes a list or a range instead of one value:
  --C 3,10                     the listed values
  --lambda-H 1e-4:1e-1:30log   30 values evenly spaced in log (end points > 0)
  --m 0.5:2:7lin               7 values evenly spaced
The grid is the product of the swept flags' values (the first varies slowest). Every configuration is checked
exactly as a single python -m ufm.solve run; the same command with the same --out resumes an unfinished sweep.

exit codes: 0 every finished configuration passed; 1 one failed; 2 bad input (one line, nothing solved or
written); 3 results could not be written (finished rows stay); 130 SIGINT, 143 SIGTERM (finished rows stay)."""
OUT_HELP = (
    "the sweep's folder (required): new or empty, or the folder of an unfinished sweep of the same command, "
    "which is then continued; results.csv, summary.json and with --save-arrays points/<index>/"
)


def _sweep_help(parser) -> None:
    """Turn ``ufm.solve``'s help into the sweep's: its program name, description, --out and exit codes."""
    parser.prog, parser.description, parser.epilog = PROG, textwrap.fill(DESCRIPTION, 79), SWEEP_HELP
    parser._option_string_actions["--out"].help = OUT_HELP
    _add_sweep_arguments(parser)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


def _add_sweep_arguments(parser) -> None:
    group = parser.add_argument_group("sweep")
    group.add_argument(
        "--save-arrays",
        action="store_true",
        dest="save_arrays",
        help="write each configuration's summary.json, arrays and table.txt into DIR/points/<index>/",
    )
    group.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help="solve at most N configurations in this run (the same command continues the sweep)",
    )
    group.add_argument(
        "--batch",
        type=_positive_int,
        default=None,
        metavar="N",
        help="solve up to N configurations of one shape in one batched solve (default: 1 on the CPU, where "
        "joint solves measured slower for most families, "
        f"{JOINT_BATCH} on an accelerator)",
    )
    group.add_argument(
        "--local-processes",
        type=_positive_int,
        default=1,
        metavar="P",
        dest="local_processes",
        help="start P processes of this sweep on this machine, each solving every P-th configuration "
        "on its local devices (default 1)",
    )
    group.add_argument(
        "--processes",
        default=None,
        metavar="P",
        help="this process is one of P started by a launcher (an integer >= 1, or 'auto': read "
        "UFM_PROCESS_COUNT/UFM_PROCESS_INDEX, SLURM_NTASKS/SLURM_PROCID, "
        "OMPI_COMM_WORLD_SIZE/RANK or PMI_SIZE/RANK); with --process-index",
    )
    group.add_argument(
        "--process-index",
        type=int,
        default=None,
        metavar="I",
        dest="process_index",
        help="this process's index, 0 <= I < P",
    )
    group.add_argument(
        "--coordinator",
        default=None,
        metavar="HOST:PORT",
        help="join JAX's multi-process runtime (jax.distributed.initialize) at this address; P and I "
        "then come from it where not given",
    )


def _sweep_parser() -> Parser:
    parser = Parser(prog=PROG, add_help=False, allow_abbrev=False)
    _add_sweep_arguments(parser)
    return parser


def _full_parser(family) -> argparse.ArgumentParser:
    """``ufm.solve``'s parser of the family with the sweep's own flags: what a token of the command line means."""
    parser = solve_cli._family_parser(family)
    _sweep_help(parser)
    return parser


@dataclasses.dataclass(frozen=True)
class Occurrence:
    """A flag on the command line: its argparse dest, canonical flag, its tokens ``argv[start:stop]`` and value."""

    dest: str
    flag: str
    start: int
    stop: int
    value: str | None


def _action(parser: argparse.ArgumentParser, name: str):
    """The action argparse gives the option ``name`` (exact, else an unambiguous prefix of a long option)."""
    actions = parser._option_string_actions  # argparse has no public lookup of an option string
    if name in actions:
        return actions[name]
    if name.startswith("--"):
        matches = {id(a): a for option, a in actions.items() if option.startswith(name)}
        if len(matches) == 1:
            return next(iter(matches.values()))
    return None


def occurrences(argv: list[str], parser: argparse.ArgumentParser) -> list[Occurrence]:
    """Every known option of ``argv`` with its value, read as argparse reads it (``--flag value`` and
    ``--flag=value``; a number is a value, never an option). Unknown tokens are skipped: argparse refuses them."""
    out, i = [], 0
    while i < len(argv):
        token = argv[i]
        name, eq, inline = token.partition("=")
        action = _action(parser, name) if token.startswith("-") and not is_number(token) else None
        if action is None:
            i += 1
            continue
        if action.nargs is None:  # one value
            value = inline if eq else (argv[i + 1] if i + 1 < len(argv) else None)
            stop = i + 1 if eq else min(i + 2, len(argv))
        else:
            value, stop = None, i + 1
        out.append(Occurrence(action.dest, canonical_flag(action), i, stop, value))
        i = stop
    return out


def _without(argv: list[str], drop: list[Occurrence]) -> list[str]:
    gone = {k for occ in drop for k in range(occ.start, occ.stop)}
    return [token for k, token in enumerate(argv) if k not in gone]


@dataclasses.dataclass(frozen=True)
class Existing:
    """An unfinished sweep found in --out: its table's header and rows (strings, as read back)."""

    header: list[str]
    rows: list[dict]

    @property
    def finished(self) -> set[int]:
        return {int(row["index"]) for row in self.rows}


@dataclasses.dataclass(frozen=True)
class Plan:
    """A validated sweep: everything needed to run it, nothing solved or written yet."""

    argv: list[str]
    identity: list[str]
    loss: str
    family: types.ModuleType
    axes: list[sweeps.Axis]
    problems: list
    run_options: list[dict]
    out: Path
    quiet: bool
    save_arrays: bool
    limit: int | None
    batch: int
    cache: tuple[Path | None, str]
    existing: Existing | None
    # the configurations this process solves (all of them, or its share of a several-process sweep), the sweep's
    # own folder (``out`` is then DIR/processes/<index>), (count, index) of the processes, and --local-processes
    indices: tuple[int, ...] = ()
    top: Path | None = None
    process: tuple[int, int] | None = None
    local_processes: int = 1
    coordinator: str | None = None


def _print_help(argv: list[str]) -> None:
    loss = next((occ.value for occ in occurrences(argv, solve_cli._loss_parser()) if occ.dest == "loss"), None)
    if loss in families.FAMILIES:
        say(_full_parser(families.load(loss)).format_help())
        return
    parser = solve_cli._common_parser()
    _sweep_help(parser)
    parser.epilog = solve_cli._families_help() + "\n\n" + (parser.epilog or "")
    say(parser.format_help())


def plan(argv: list[str]) -> Plan | None:
    """Parse and validate a sweep's command line: the axes, every configuration's problem (through
    ``ufm.solve.parse``, so with its messages), --out (new, or an unfinished sweep of the same command). Creates
    nothing. Returns None after printing help; raises UsageError (one line naming the flag) on bad input."""
    first = occurrences(argv, solve_cli._loss_parser())
    if any(occ.dest == "help" for occ in first):
        _print_help(argv)
        return None
    loss = next((occ.value for occ in first if occ.dest == "loss"), None)
    if loss is not None and sweeps.is_spec(loss):
        raise UsageError(f"argument --loss: one family per sweep, got {loss!r}; run one sweep per family")
    if loss is None or loss not in families.FAMILIES:
        solve_cli.parse(argv)  # its one-line refusal of a missing or unknown --loss
        raise AssertionError("unreachable: solve_cli.parse refuses a missing or unknown --loss")
    family = families.load(loss)
    parser = _full_parser(family)
    found = occurrences(argv, parser)
    own = [occ for occ in found if occ.dest in SWEEP_DESTS]
    options = _sweep_parser().parse_args([t for occ in own for t in argv[occ.start : occ.stop]])
    process = _process(options)
    common = {a.dest for a in solve_cli._common_parser()._actions} | SWEEP_DESTS
    axes, swept = [], []
    for occ in found:
        if occ.dest in common or occ.value is None or not sweeps.is_spec(occ.value):
            continue
        if sum(o.dest == occ.dest for o in found) > 1:
            raise UsageError(f"argument {occ.flag}: given more than once; give it one value, list or range")
        integer = parser._option_string_actions[occ.flag].type is int
        try:
            values = sweeps.expand_spec(occ.value, integer=integer)
        except sweeps.SpecError as err:
            raise UsageError(f"argument {occ.flag}: {err}") from None
        axes.append(sweeps.Axis(occ.flag, occ.dest, occ.value, values))
        swept.append(occ)
    size = sweeps.grid_size(axes)
    if size > sweeps.MAX_POINTS:
        raise UsageError(
            f"argument {axes[0].flag}: the grid has {size} configurations, more than "
            f"{sweeps.MAX_POINTS}; sweep fewer values"
        )
    base = _without(argv, swept + own)
    problems: list = []
    run_options: list[dict] = []
    ns: argparse.Namespace | None = None
    for values in sweeps.grid(axes):
        parsed = solve_cli.parse(base + [f"{axis.flag}={value}" for axis, value in zip(axes, values)])
        _, ns, problem = parsed
        problems.append(problem)
        run_options.append(solve_cli.run_options(family, ns))
    assert ns is not None  # a grid has at least one configuration
    if ns.out is None:
        raise UsageError("argument --out is required: the sweep's folder (the same --out resumes the sweep)")
    identity = _without(argv, [occ for occ in found if occ.dest in NOT_IN_IDENTITY])
    batch = options.batch if options.batch is not None else sweeps.default_joint_batch()
    cache = cache_dir_choice(ns.cache_dir, ns.no_cache)
    whole = Plan(
        argv,
        identity,
        loss,
        family,
        axes,
        problems,
        run_options,
        ns.out,
        ns.quiet,
        options.save_arrays,
        options.limit,
        batch,
        cache,
        None,
        tuple(range(len(problems))),
    )
    if options.local_processes > 1:  # the processes it starts inspect their own folders
        _inspect_top(ns.out, identity)
        return dataclasses.replace(whole, local_processes=options.local_processes)
    if process is None:
        return dataclasses.replace(whole, existing=_inspect_out(ns.out, identity, len(problems)))
    _inspect_top(ns.out, identity)
    out = ns.out / PROCESSES / str(process[1])
    return dataclasses.replace(
        whole,
        out=out,
        existing=_inspect_out(out, identity, len(problems)),
        indices=tuple(sweeps.process_share(sweeps.joint_batches(problems, batch), *process)),
        top=ns.out,
        process=process,
        coordinator=options.coordinator,
    )


SWEEP_DESTS = frozenset(
    {"save_arrays", "limit", "batch", "local_processes", "processes", "process_index", "coordinator"}
)


def _process(options) -> tuple[int, int] | None:
    """(count, index) of this process in a several-process sweep, or None for one process; UsageError naming the
    flag on a bad value. With --coordinator, JAX's multi-process runtime is joined here and gives them."""
    if options.local_processes > 1 and (options.processes is not None or options.coordinator is not None):
        raise UsageError(
            "argument --local-processes: starts the processes itself; leave out --processes, "
            "--process-index and --coordinator"
        )
    count = index = None
    if options.processes == "auto":
        try:
            found = sweeps.launcher_process(os.environ)
        except ValueError as err:
            raise UsageError(f"argument --processes: auto: {err}") from None
        if found is None and options.coordinator is None:
            raise UsageError(
                "argument --processes: auto found none of "
                + ", ".join("/".join(pair) for pair in sweeps.LAUNCHER_ENVIRONMENT)
            )
        count, index = found if found is not None else (None, None)
    elif options.processes is not None:
        try:
            count = int(options.processes)
        except ValueError:
            count = 0
        if count < 1:
            raise UsageError(f"argument --processes: must be an integer >= 1 or 'auto', got {options.processes!r}")
    if options.process_index is not None:
        index = options.process_index
    if options.coordinator is not None:
        count, index = _join(options.coordinator, count, index)
    if count is None:
        if index is not None:
            raise UsageError("argument --process-index: needs --processes P")
        return None
    if index is None:
        raise UsageError(f"argument --process-index: required with --processes {count} (0 <= I < {count})")
    if not 0 <= index < count:
        raise UsageError(f"argument --process-index: must be in 0..{count - 1}, got {index}")
    return count, index


def _join(coordinator: str, count: int | None, index: int | None) -> tuple[int, int]:
    """Join JAX's multi-process runtime (``jax.distributed.initialize``; count and index None: JAX finds them on
    SLURM, Open MPI and the other clusters it knows); returns its (process_count, process_index)."""
    import jax

    try:
        jax.distributed.initialize(coordinator_address=coordinator, num_processes=count, process_id=index)
    except (RuntimeError, ValueError) as err:
        raise UsageError(f"argument --coordinator: jax.distributed.initialize failed: {err}".splitlines()[0]) from None
    return jax.process_count(), jax.process_index()


def _inspect_top(out: Path, identity: list[str]) -> None:
    """A several-process sweep's own folder: absent, empty, or holding only the processes' folders and the merged
    table of a sweep of the same command; else UsageError naming --out. Reads only."""
    if not out.exists() and not out.is_symlink():
        try:
            _inspect_out(out, identity, 0)  # where it could be created
            return
        except UsageError:
            # A sibling process of the same sweep may have created it since the test above: then it is checked
            # as the existing folder it now is.
            if out.is_symlink() or not out.is_dir():
                raise
    if out.is_symlink() or not out.is_dir():
        raise UsageError(f"argument --out: {out} is not a folder")
    allowed = {PROCESSES, RESULTS, SUMMARY, MERGE_LOCK}
    if any(entry.name not in allowed and not entry.name.startswith(".") for entry in out.iterdir()):
        raise UsageError(
            f"argument --out: {out} exists and is not the folder of a several-process sweep (never overwritten)"
        )
    summary = out / SUMMARY
    if summary.is_file():
        try:
            recorded = json.loads(summary.read_text())
        except (OSError, ValueError) as err:
            raise UsageError(f"argument --out: {summary} is not readable ({err})") from None
        if not isinstance(recorded, dict) or recorded.get("identity") != identity:
            raise UsageError(
                f"argument --out: {out} holds a sweep of another command; give that command, or a new --out"
            )


MERGE_LOCK = ".merge.lock"


def _inspect_out(out: Path, identity: list[str], size: int) -> Existing | None:
    """None for a new sweep (``out`` absent or an empty folder, where it could be created); the unfinished sweep
    in ``out`` if it is one of the same command; else UsageError naming --out. Reads only."""
    from ufm.report import OutputDir

    summary = out / SUMMARY
    if not (out.is_dir() and not out.is_symlink() and summary.is_file() and not summary.is_symlink()):
        try:
            OutputDir(out)  # validates only: absent, or an empty folder, in a writable place
        except OSError as err:
            raise UsageError(f"argument --out: {os_problem(err, out)} (nor the folder of a sweep)") from None
        return None
    try:
        recorded = json.loads(summary.read_text())
        header, rows = sweeps.read_table(out / RESULTS)
    except (OSError, ValueError) as err:
        raise UsageError(f"argument --out: {out} is not a readable sweep folder ({err})") from None
    if not isinstance(recorded, dict) or recorded.get("kind") != KIND:
        raise UsageError(f"argument --out: {out} exists and is not empty (never overwritten)")
    if recorded.get("identity") != identity:
        was = " ".join(recorded.get("identity") or [])
        raise UsageError(
            f"argument --out: {out} holds a sweep of another command ({PROG} {was}); give that command, or a new --out"
        )
    try:
        indices = [int(row["index"]) for row in rows]
    except (KeyError, ValueError):
        raise UsageError(f"argument --out: {out / RESULTS} has rows without an index; not a sweep's table") from None
    if any(not 0 <= i < size for i in indices) or len(set(indices)) != len(indices):
        raise UsageError(f"argument --out: {out / RESULTS} has indices outside 0..{size - 1} or repeated")
    if not os.access(out, os.W_OK | os.X_OK) or not os.access(out / RESULTS, os.W_OK):
        raise UsageError(f"argument --out: {out} is not writable")
    return Existing(header, rows)


@float64
def main(argv: list[str] | None = None, *, program: bool = False) -> int:
    """The command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code. ``program``: this process
    is the command line (``python -m ufm.sweep``), so the persistent compilation cache is configured in JAX (as
    ``ufm.solve.main`` does)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with interruptible():
            try:
                validated = plan(argv)
            except UsageError as err:
                warn(f"ufm.sweep: error: {err}")
                return EXIT_BAD_INPUT
            if validated is None:
                return EXIT_OK
            if validated.local_processes > 1:
                return _launch_local(validated)
            if program:
                use_compilation_cache(*validated.cache, "ufm.sweep")
            return run(validated)
    except (Interrupted, KeyboardInterrupt) as err:  # before the first configuration was solved
        sig = err if isinstance(err, Interrupted) else Interrupted(2)
        warn(f"ufm.sweep: interrupted ({sig.name}); nothing written")
        return sig.exit_code


def _launch_local(p: Plan) -> int:
    """``--local-processes P``: this sweep started as P processes on this machine (``python -m ufm.sweep ...
    --processes P --process-index I``), each solving its share; their exit codes combined (the worst: bad input or
    unwritable results before a failed check, a failed check before success). SIGINT and SIGTERM are passed on."""
    import signal
    import subprocess

    count = p.local_processes
    drop = [occ for occ in occurrences(p.argv, _full_parser(p.family)) if occ.dest == "local_processes"]
    base = [sys.executable, "-m", "ufm.sweep", *_without(p.argv, drop), "--processes", str(count)]
    children = [subprocess.Popen([*base, "--process-index", str(i)], stdin=subprocess.DEVNULL) for i in range(count)]
    try:
        codes = [child.wait() for child in children]
    except (Interrupted, KeyboardInterrupt) as err:
        sig = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        for child in children:
            if child.poll() is None:
                child.send_signal(sig)
        for child in children:
            child.wait()
        raise
    for worst in (EXIT_BAD_INPUT, EXIT_NOT_WRITTEN, 143, 130, EXIT_FAILED):
        if worst in codes:
            return worst
    return max(codes, key=abs)


def _label(axes: list[sweeps.Axis], problem_values: tuple) -> str:
    return " ".join(f"{axis.flag}={value}" for axis, value in zip(axes, problem_values))


def _clean_leftovers(out: Path, finished: set[int]) -> None:
    """Remove what a killed run may have left: a torn last row, staging folders and temporary files, and the
    arrays of a configuration whose row was never written (it is solved again)."""
    sweeps.drop_torn_tail(out / RESULTS)
    for folder in (out, out / POINTS):
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            stale = ".incomplete-" in entry.name or (entry.name.startswith(".") and entry.name.endswith(".partial"))
            orphan = folder == out / POINTS and re.fullmatch(r"[0-9]+", entry.name) and int(entry.name) not in finished
            if (stale or orphan) and not entry.is_symlink():
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()


def _summary(p: Plan, rows: list[dict], status: str, this_run: dict) -> dict:
    from ufm.report import versions

    failed = sorted(int(row["index"]) for row in rows if row.get("passed") != "True")
    columns = sweeps.boolean_columns(rows) + [
        name for name in (rows[0] if rows else {}) if name.startswith(sweeps.VERDICT)
    ]
    groups = sweeps.by_shape(p.problems)
    return {
        "kind": KIND,
        "status": status,
        "command": ["python", "-m", "ufm.sweep", *p.argv],
        "identity": p.identity,
        "loss": p.loss,
        "axes": [dataclasses.asdict(axis) for axis in p.axes],
        "configurations": len(p.indices),
        "finished": len(rows),
        "passed": len(rows) - len(failed),
        "failed": failed,
        "results": RESULTS,
        "arrays": f"{POINTS}/<index>/" if p.save_arrays else None,
        "shape_groups": [{"shape": dict(sweeps.shape_key(p.problems[g[0]])), "configurations": len(g)} for g in groups],
        "batch": p.batch,  # configurations per joint solve (--batch, or the platform's default)
        "changes": sweeps.changes(rows, p.axes, columns),
        "last_run": this_run,
        "versions": versions(),
        "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _write_summary(path: Path, summary: dict) -> None:
    from ufm.report import atomic_write, to_json

    text = to_json(summary) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def _write_point(
    p: Plan, index: int, report, seconds: float, row: dict, header: list[str] | None, first_summary
) -> list[str]:
    """Write one finished configuration: its arrays (if asked), then its row. The first configuration of a new
    sweep creates the folder in one step (summary.json, results.csv and its arrays staged and renamed into place);
    later ones commit their arrays folder, then append the row. Returns the table's header."""
    from ufm.report import OutputDir

    report = dataclasses.replace(report, wall_seconds=seconds)
    if header is None:
        folder = OutputDir(p.out)
        try:
            if p.save_arrays:
                report.save(folder.staging / POINTS / str(index))
            header = sweeps.append_row(folder.path(RESULTS), None, row)
            _write_summary(folder.path(SUMMARY), first_summary())
            folder.commit()
        except BaseException:
            folder.discard()
            raise
        return header
    if p.save_arrays:
        report.save(p.out / POINTS / str(index))
    return sweeps.append_row(p.out / RESULTS, header, row)


def run(p: Plan) -> int:
    """Solve the configurations of ``p`` not yet finished, shape group by shape group, writing each row as its
    configuration completes; then summary.json and the verdict. Returns the exit code."""
    from ufm.solver import MemoryBudgetExceeded

    rows = list(p.existing.rows) if p.existing else []
    header = p.existing.header if p.existing else None
    finished = {int(row["index"]) for row in rows}
    if p.existing:
        _clean_leftovers(p.out, finished)
    groups = sweeps.by_shape(p.problems)
    mine = set(p.indices)
    batches = [[i for i in b if i in mine and i not in finished] for b in sweeps.joint_batches(p.problems, p.batch)]
    batches = [b for b in batches if b]
    if p.limit is not None:  # the first configurations of the joint batches, in order
        cut = list(itertools.accumulate(len(b) for b in batches))
        batches = [b[: max(0, p.limit - (end - len(b)))] for b, end in zip(batches, cut)]
        batches = [b for b in batches if b]
    todo = [i for b in batches for i in b]
    values = sweeps.grid(p.axes)
    total = len(p.indices)
    if not p.quiet:
        who = f" (process {p.process[1]} of {p.process[0]})" if p.process else ""
        warn(
            f"ufm.sweep {p.loss}{who}: {total} configurations in {len(groups)} shape group(s); {len(finished)} "
            f"finished before, {len(todo)} to solve now -> {p.out}"
        )
    if p.top is not None:  # several processes: their folders' parent exists before any of them writes
        (p.top / PROCESSES).mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    solved, code, stopped = 0, None, None
    with sweeps.counting_compilations() as counter:
        group_of = {i: k for k, group in enumerate(groups) for i in group}
        started: set[int] = set()  # the shape groups that have had a configuration solved in this run
        first_compilations = other_compilations = 0
        try:
            for batch in batches:
                before, t_batch = counter.count, time.perf_counter()
                reports = _solve(p, batch)
                share = (time.perf_counter() - t_batch) / len(batch)
                compilations = counter.count - before
                if group_of[batch[0]] not in started:
                    started.add(group_of[batch[0]])
                    first_compilations += compilations
                else:
                    other_compilations += compilations
                for index, report in zip(batch, reports):
                    # a joint solve's compilations go to its first configuration, its time in equal shares
                    row = sweeps.point_row(index, p.problems[index], report, share, compilations)
                    compilations = 0
                    pending = rows + [{k: sweeps.cell(v) for k, v in row.items()}]
                    so_far = {"solved": solved + 1, "seconds": time.perf_counter() - t0, "compilations": counter.count}
                    header = _write_point(
                        p, index, report, share, row, header, functools.partial(_summary, p, pending, "running", so_far)
                    )
                    rows, solved = pending, solved + 1
                    if not p.quiet:
                        elapsed = time.perf_counter() - t0
                        left = elapsed / solved * (len(todo) - solved)
                        verdict = "PASS" if report.passed else f"FAIL ({len(report.failed_checks)} checks)"
                        warn(
                            f"ufm.sweep: [{len(rows)}/{total}] #{index} {_label(p.axes, values[index])}: {verdict}  "
                            f"{share:.2f} s, {row['compilations']} compilations; elapsed {elapsed:.1f} s, "
                            f"~{left:.0f} s left"
                        )
        except Interrupted as sig:
            stopped, code = f"interrupted ({sig.name})", sig.exit_code
        except MemoryBudgetExceeded as err:
            stopped, code = f"error: argument --max-memory: {err}", EXIT_BAD_INPUT
        except OSError as err:
            stopped, code = f"error: argument --out: results not written ({os_problem(err, p.out)})", EXIT_NOT_WRITTEN
    wall = time.perf_counter() - t0
    if (p.out / RESULTS).is_file():  # the table is the record (a signal may land between a write and its count)
        rows = sweeps.read_table(p.out / RESULTS)[1]
    this_run = {
        "solved": solved,
        "seconds": wall,
        "compilations": counter.count,
        "compilations_first_of_each_shape_group": first_compilations,  # the first solved in this run
        "compilations_other_configurations": other_compilations,
    }
    status = "complete" if len(rows) == total else "incomplete"
    if rows:
        try:
            _write_summary(p.out / SUMMARY, _summary(p, rows, status, this_run))
        except OSError as err:
            stopped, code = (
                f"error: argument --out: summary not written ({os_problem(err, p.out / SUMMARY)})",
                code or EXIT_NOT_WRITTEN,
            )
    if p.top is not None and stopped is None:
        try:
            _merge(p, this_run)
        except (OSError, ValueError) as err:
            stopped, code = f"error: argument --out: merged table not written ({err})", EXIT_NOT_WRITTEN
    if stopped is not None:
        where = f"{len(rows)} of {total} configurations finished in {p.out}" if rows else "nothing written"
        warn(f"ufm.sweep: {stopped}; {where}" + ("; the same command continues the sweep" if rows else ""))
        assert code is not None  # set together with stopped
        return code
    return _report(p, rows, solved, wall, this_run)


def _solve(p: Plan, batch: list[int]) -> list:
    """The reports of the configurations ``batch`` (one shape group): one joint solve where the family can join
    them (``ufm.driver.run_batch``) and they share their run options, else one ``family.run`` after another."""
    from ufm import driver

    options = p.run_options[batch[0]]
    declared = getattr(p.family, "FAMILY", None)
    # run options beyond the memory budget are the family's own (its ``run`` reads them): one run each
    same = set(options) <= {"max_memory_bytes"} and all(p.run_options[i] == options for i in batch)
    if declared is not None and declared.steps is not None and len(batch) > 1 and same:
        return driver.run_batch(declared, [p.problems[i] for i in batch], progress=False, **options)
    return [p.family.run(p.problems[i], progress=False, **p.run_options[i]) for i in batch]


def _short(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _merge(p: Plan, this_run: dict) -> None:
    """Every process's table into the sweep's own results.csv and summary.json, under a lock (see
    :mod:`ufm.sweeps`: the last merge sees every process's rows)."""
    import fcntl

    assert p.top is not None and p.process is not None
    with open(p.top / MERGE_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        tables = [
            sweeps.read_table(folder / RESULTS)
            for folder in sorted((p.top / PROCESSES).iterdir())
            if folder.name.isdigit() and (folder / RESULTS).is_file()
        ]
        header, rows = sweeps.merge_tables(tables)
        if not rows:
            return
        sweeps.write_table(p.top / RESULTS, header, rows)
        whole = dataclasses.replace(p, out=p.top, indices=tuple(range(len(p.problems))))
        status = "complete" if len(rows) == len(p.problems) else "incomplete"
        summary = _summary(whole, rows, status, this_run)
        summary["processes"] = {
            "count": p.process[0],
            "folders": f"{PROCESSES}/<index>/",
            "arrays": f"{PROCESSES}/<index>/{POINTS}/<configuration>/" if p.save_arrays else None,
        }
        _write_summary(p.top / SUMMARY, summary)


def _report(p: Plan, rows: list[dict], solved: int, wall: float, this_run: dict) -> int:
    total = len(p.indices)
    failed = [row["index"] for row in rows if row.get("passed") != "True"]
    lines = [
        (
            f"ufm.sweep {p.loss}: {len(rows)} of {total} configurations finished ({solved} in this run, "
            f"{wall:.1f} s); {len(rows) - len(failed)} passed, {len(failed)} failed"
        ),
        (
            f"compilations in this run: {this_run['compilations']} (first configuration solved of each shape "
            f"group {this_run['compilations_first_of_each_shape_group']}, the others "
            f"{this_run['compilations_other_configurations']})"
        ),
    ]
    # the verdict and the family's own flags (numbers such as zero_solution); summary.json lists every change
    shown = [name for name in sweeps.boolean_columns(rows) if name == "passed" or name.startswith("numbers.")]
    for change in sweeps.changes(rows, p.axes, shown)[:20]:
        fixed = "".join(f" {flag}={_short(value)}" for flag, value in change["fixed"].items())
        lines.append(
            f"{change['column']}: {change['from']} -> {change['to']} between {change['axis']} = "
            f"{_short(change['between'][0])} and {_short(change['between'][1])}" + (f" (at{fixed})" if fixed else "")
        )
    if len(rows) < total:
        lines.append(f"{total - len(rows)} configurations left: the same command continues the sweep")
    lines.append(f"results: {p.out / RESULTS}")
    if p.top is not None:
        lines.append(f"merged with the other processes' tables: {p.top / RESULTS}")
    say("\n".join(lines))
    if failed:
        warn(
            f"ufm.sweep: FAILED at configuration(s) {', '.join(failed[:20])}{', ...' if len(failed) > 20 else ''} "
            f"(results.csv: passed = False)"
        )
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    from ufm.cli import exit_main

    exit_main(functools.partial(main, program=True))
