"""Sweeps over a family's problem fields: value specifications, the grid of configurations, their grouping by
array shape, one tidy row per solved configuration, the append-only results table and a compilation counter.

The command line is ``python -m ufm.sweep`` (:mod:`ufm.sweep`); this module holds its logic as functions of plain
values, so that each piece can be tested alone.

Value specifications (one per swept flag):

    3,10,30          a list (each item read by the flag's own type and validated as ``ufm.solve`` would)
    1e-4:1e-1:30log  30 values spaced evenly in log between the end points (both > 0), np.geomspace
    0:1:11lin        11 values spaced evenly between the end points, np.linspace

The end points are kept exactly as given. An integer flag takes a range only where every value is an integer
(``2:10:5lin``), and no value may appear twice. The grid is the Cartesian product of the swept flags' values, the
first swept flag varying slowest; a configuration's index is its position in that order.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import dataclasses
import io
import itertools
import math
import os
import re
from pathlib import Path

import numpy as np

from ufm.report import atomic_write

SPEC_SYNTAX = "a list V1,V2,... or a range START:STOP:N{lin,log} (N >= 2; log: START, STOP > 0)"
# A bound on the grid, so that a typo (1e-4:1e-1:30000000log) is refused at once instead of filling the memory
# with configurations: far more points than a sweep of solves can run.
MAX_POINTS = 100_000
_RANGE = re.compile(r"^(?P<start>[^:]+):(?P<stop>[^:]+):(?P<count>[0-9]+)(?P<scale>lin|log)$")
# An integer flag's range value counts as an integer within this relative distance of one (np.geomspace(1, 1000,
# 4) gives 10.000000000000002).
_INTEGER_RTOL = 1e-9


class SpecError(ValueError):
    """A value specification that cannot be expanded; the message says why (the caller names the flag)."""


def is_spec(text: str) -> bool:
    """Whether a flag's value asks for several values (a list or a range) rather than being one value."""
    return "," in text or ":" in text


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SpecError(f"{spec!r}: end point {text!r} is not a number; valid: {SPEC_SYNTAX}") from None
    if not math.isfinite(value):
        raise SpecError(f"{spec!r}: end point {text!r} is not finite; valid: {SPEC_SYNTAX}")
    return value


def expand_spec(spec: str, *, integer: bool = False) -> tuple[str, ...]:
    """The values of a specification, as the strings to hand to the flag (see the module docstring).

    Args:
        spec: ``V1,V2,...``, ``START:STOP:Nlin`` or ``START:STOP:Nlog``.
        integer: the flag reads integers: a range must give integers (written without a decimal point).

    Returns:
        The values in order. List items are returned as written; range values as ``repr(float)`` (the shortest
        string that reads back as the same float64) or, for an integer flag, as integers.

    Raises:
        SpecError: malformed syntax, an empty or repeated value, N < 2 or N > MAX_POINTS, equal end points,
            log end points <= 0, or non-integer values for an integer flag.
    """
    if ":" not in spec:
        values = tuple(item.strip() for item in spec.split(","))
        if any(not item for item in values):
            raise SpecError(f"{spec!r}: empty value in the list; valid: {SPEC_SYNTAX}")
    else:
        match = _RANGE.match(spec.strip())
        if match is None:
            raise SpecError(f"{spec!r} is not {SPEC_SYNTAX}")
        start, stop = _number(match["start"], spec), _number(match["stop"], spec)
        count, log = int(match["count"]), match["scale"] == "log"
        if not 2 <= count <= MAX_POINTS:
            raise SpecError(f"{spec!r}: N = {count} must lie in [2, {MAX_POINTS}]")
        if start == stop:
            raise SpecError(f"{spec!r}: START = STOP gives one value {count} times; give the value itself")
        if log and not (start > 0 and stop > 0):
            raise SpecError(f"{spec!r}: a log range needs START, STOP > 0")
        grid = np.geomspace(start, stop, count) if log else np.linspace(start, stop, count)
        grid[0], grid[-1] = start, stop
        if integer:
            rounded = np.round(grid)
            if np.any(np.abs(grid - rounded) > _INTEGER_RTOL * np.maximum(1.0, np.abs(grid))):
                raise SpecError(
                    f"{spec!r} gives non-integer values for an integer flag "
                    f"({', '.join(f'{v:g}' for v in grid[:4])}{', ...' if count > 4 else ''})"
                )
            values = tuple(str(int(v)) for v in rounded)
        else:
            values = tuple(repr(float(v)) for v in grid)
    repeated = sorted(v for v, times in collections.Counter(values).items() if times > 1)  # linear in N
    if repeated:
        raise SpecError(f"{spec!r} gives the value {repeated[0]} more than once")
    return values


@dataclasses.dataclass(frozen=True)
class Axis:
    """One swept flag: its flag as written in messages, the argparse dest (the problem field it sets, for the
    families whose flags map one to one), the specification as given, and its expanded values."""

    flag: str
    dest: str
    spec: str
    values: tuple[str, ...]


def grid(axes: list[Axis]) -> list[tuple[str, ...]]:
    """Every configuration, one value per axis, the first axis varying slowest (index = position here)."""
    return list(itertools.product(*(axis.values for axis in axes)))


def grid_size(axes: list[Axis]) -> int:
    return math.prod(len(axis.values) for axis in axes)


def shape_key(problem) -> tuple:
    """The problem's fields that are not floats (sizes, counts, variants, seeds): configurations that agree on
    them have the same array shapes and solver options, so they run one compiled program with new data."""
    return tuple(
        (field.name, getattr(problem, field.name))
        for field in dataclasses.fields(problem)
        if not isinstance(getattr(problem, field.name), float)
    )


def by_shape(problems: list) -> list[list[int]]:
    """The indices of ``problems`` grouped by :func:`shape_key`, groups in order of first appearance, indices in
    order within a group."""
    groups: dict[tuple, list[int]] = {}
    for index, problem in enumerate(problems):
        groups.setdefault(shape_key(problem), []).append(index)
    return list(groups.values())


# Configurations per joint solve on an accelerator (:func:`default_joint_batch`): enough to fill it with small
# problems, few enough that a killed sweep loses little (a joint solve's rows are written when it completes) and
# that progress shows.
JOINT_BATCH = 32


def default_joint_batch() -> int:
    """Problems per joint solve where the caller does not say (``ufm.sweep --batch``): 1 on the CPU, where finished
    elements are computed masked until the slowest one finishes and joint solves measured slower for most families
    (8-point sweeps, joint / one at a time: md 51 / 15 s, nonneg-ufm 14.1 / 8.8 s, mixup 8.4 / 7.0 s; faster for
    ce, 5.7 / 6.0 s, and mse, 41 / 46-53 s for 1000 points); ``ufm.sweeps.JOINT_BATCH`` on an accelerator, where a
    batch's elements run side by side (not measured)."""
    import jax

    return 1 if jax.default_backend() == "cpu" else JOINT_BATCH


def joint_batches(problems: list, size: int) -> list[list[int]]:
    """The configurations solved together: each shape group (:func:`by_shape`, in order) cut into consecutive runs
    of at most ``size`` indices. Fixed by the grid and ``size`` alone (not by what is finished or by the number of
    processes), so that every configuration is solved in the same joint solve whoever solves it: a joint solve's
    last bits depend on its batch (XLA blocks batched products by batch size)."""
    return [group[k : k + size] for group in by_shape(problems) for k in range(0, len(group), size)]


def flatten(prefix: str, value) -> dict:
    """The scalars (bool, int, float, str, None) of nested dicts as ``{prefix + dotted key: scalar}``; lists and
    arrays are left out (they are per restart or per subproblem, not one number of the configuration)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            out.update(flatten(f"{prefix}{key}.", item))
        return out
    if isinstance(value, np.generic) and value.ndim == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return {prefix[:-1]: value}
    return {}


VALUE, VERDICT = "value: ", "verdict: "


def point_row(index: int, problem, report, seconds: float, compilations: int) -> dict:
    """One configuration's row: its index, the problem's fields, the verdict (``passed``, ``failed_checks``), the
    wall time and the compilations it caused, the scalar convergence record (``convergence.*``), every check's
    value and verdict (``value: NAME``, ``verdict: NAME``) and every scalar number (``numbers.*``)."""
    row = {
        "index": index,
        **flatten("", dataclasses.asdict(problem)),
        "passed": report.passed,
        "failed_checks": len(report.failed_checks),
        "seconds": seconds,
        "compilations": compilations,
    }
    row.update({k: v for k, v in flatten("convergence.", report.convergence).items() if not isinstance(v, str)})
    seen: dict[str, int] = {}
    for check in report.checks:
        seen[check.name] = seen.get(check.name, 0) + 1
        name = check.name if seen[check.name] == 1 else f"{check.name} ({seen[check.name]})"
        row[VALUE + name] = check.value
        row[VERDICT + name] = str(check.verdict)
    row.update(flatten("numbers.", report.numbers))
    return row


def cell(value) -> str:
    """A CSV cell: floats as ``repr`` (reads back as the same float64: nan, inf included), None as empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _csv_text(rows: list[dict], header: list[str], with_header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if with_header:
        writer.writerow(header)
    for row in rows:
        writer.writerow([cell(row.get(name)) for name in header])
    return buffer.getvalue()


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings) of a results table; a last line without its newline (a write cut short
    by a kill) is not read: :func:`drop_torn_tail` removes it."""
    text = Path(path).read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.reader(io.StringIO(text))
    lines = list(reader)
    if not lines:
        return [], []
    header = lines[0]
    return header, [dict(zip(header, line)) for line in lines[1:]]


def drop_torn_tail(path: Path) -> bool:
    """Truncate ``path`` after its last newline: a row written only in part (the process killed inside the
    write) is removed, so that its point is solved again. Returns whether anything was removed."""
    with open(path, "rb+") as f:
        data = f.read()
        keep = data.rfind(b"\n") + 1
        if keep == len(data):
            return False
        f.truncate(keep)
        return True


def append_row(path: Path, header: list[str] | None, row: dict) -> list[str]:
    """Add ``row`` to the results table at ``path`` and return the table's header.

    ``header`` None: a new table (header and row, written atomically). A row whose columns are all in the header
    is appended as one line in one write (the previous rows are never rewritten); a row with new columns (a check
    that earlier configurations did not have) rewrites the whole table atomically with the new columns added at
    the end, empty in the earlier rows."""
    path = Path(path)
    if header is None or not set(row) <= set(header):
        old_header, old_rows = read_table(path) if header is not None else ([], [])
        header = old_header + [name for name in row if name not in old_header]
        text = _csv_text(old_rows + [row], header, with_header=True)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text))
        return header
    data = _csv_text([row], header, with_header=False).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
    return header


def as_value(text: str):
    """A cell read back: bool, int, float or the string itself (empty: None)."""
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def changes(rows: list[dict], axes: list[Axis], columns: list[str]) -> list[dict]:
    """Where ``columns`` change along each axis: for every axis and every setting of the other axes, the rows in
    the order of the axis' values, and each consecutive pair whose value in a column differs. Rows are dicts of
    strings (as read back); the axis value is the row's problem field ``axis.dest``.

    Returns:
        ``{"column", "axis" (its flag), "between": [value before, value after], "from", "to", "fixed": {other
        axes' flags: values}}`` per change, axes in order, then columns in order.
    """
    out = []
    for k, axis in enumerate(axes):
        others = [a for j, a in enumerate(axes) if j != k]
        lines: dict[tuple, list[dict]] = {}
        for row in rows:
            lines.setdefault(tuple(row.get(a.dest, "") for a in others), []).append(row)
        for fixed, line in lines.items():
            line = sorted(line, key=lambda row: _order(row.get(axis.dest, "")))
            for column in columns:
                for before, after in itertools.pairwise(line):
                    if before.get(column, "") != after.get(column, ""):
                        out.append(
                            {
                                "column": column,
                                "axis": axis.flag,
                                "between": [as_value(before[axis.dest]), as_value(after[axis.dest])],
                                "from": as_value(before.get(column, "")),
                                "to": as_value(after.get(column, "")),
                                "fixed": {a.flag: as_value(v) for a, v in zip(others, fixed)},
                            }
                        )
    return out


def _order(text: str):
    value = as_value(text)
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0.0, text)


def boolean_columns(rows: list[dict]) -> list[str]:
    """The columns whose every cell is True or False (the verdict ``passed`` and flags such as
    ``numbers.zero_solution``), in table order."""
    if not rows:
        return []
    return [name for name in rows[0] if all(row.get(name) in ("True", "False") for row in rows)]


BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@dataclasses.dataclass(eq=False)  # identity, not value: the listener list is searched by equality
class CompileCounter:
    """The number of XLA compilations (executables built or loaded from the persistent cache) seen so far."""

    count: int = 0

    def __call__(self, event: str, duration_secs: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            self.count += 1


@contextlib.contextmanager
def counting_compilations():
    """Within the block, count JAX's backend compilations (``jax.monitoring``'s compile-duration event, recorded
    once per executable compiled or read from the persistent cache: a configuration that reuses the programs in
    memory adds 0). Yields the :class:`CompileCounter`."""
    import jax.monitoring

    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)


# --- several processes ----------------------------------------------------------------------------------------
# A sweep started as P processes (by a cluster launcher, by hand, or by ``--local-processes``): process I solves
# the joint batches whose position is I modulo P, into a sweep folder of its own (``DIR/processes/I``), and after
# its share every process merges the processes' tables into ``DIR/results.csv`` under a lock. The last merge in
# lock order comes after every process has finished its share, so it sees every row: no process waits for another.

# (count, index) variables that launchers set, in the order they are looked for: ufm's own, SLURM, Open MPI, PMI.
LAUNCHER_ENVIRONMENT = (
    ("UFM_PROCESS_COUNT", "UFM_PROCESS_INDEX"),
    ("SLURM_NTASKS", "SLURM_PROCID"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("PMI_SIZE", "PMI_RANK"),
)


def launcher_process(environ) -> tuple[int, int] | None:
    """``(count, index)`` of this process as a launcher gave them in ``environ`` (the first pair of
    :data:`LAUNCHER_ENVIRONMENT` present), or None. Raises ValueError on values that are not integers."""
    for count_key, index_key in LAUNCHER_ENVIRONMENT:
        if count_key in environ and index_key in environ:
            try:
                return int(environ[count_key]), int(environ[index_key])
            except ValueError:
                raise ValueError(
                    f"{count_key}={environ[count_key]!r}, {index_key}={environ[index_key]!r}: not integers"
                ) from None
    return None


def process_share(batches: list[list[int]], count: int, index: int) -> list[int]:
    """The configurations process ``index`` of ``count`` solves: the joint batches (:func:`joint_batches`) whose
    position is ``index`` modulo ``count`` (neighbouring batches go to different processes, so shape groups and
    costs spread), in order."""
    return [i for k, batch in enumerate(batches) if k % count == index for i in batch]


def merge_tables(tables: list[tuple[list[str], list[dict]]]) -> tuple[list[str], list[dict]]:
    """One table from the processes' ``(header, rows)``: the union of their columns (in order of first
    appearance), rows in index order, a column a process's table lacks left empty. Raises ValueError if two
    tables hold the same configuration."""
    header: list[str] = []
    for names, _ in tables:
        header += [name for name in names if name not in header]
    rows = sorted((row for _, part in tables for row in part), key=lambda row: int(row["index"]))
    indices = [int(row["index"]) for row in rows]
    if len(set(indices)) != len(indices):
        raise ValueError("a configuration appears in two processes' tables")
    return header, [{name: row.get(name, "") for name in header} for row in rows]


def write_table(path: Path, header: list[str], rows: list[dict]) -> None:
    """The whole table at ``path``, written atomically (readers see the old table or the new one)."""
    text = _csv_text(rows, header, with_header=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))
