"""Where the test suite's time goes: a pytest plugin that adds up JAX's compilation per test file.

    python -m pytest -p benchmarks.compile_profile [--compile-profile-json FILE] [pytest arguments]

For every test file: its seconds on a worker (setup, call and teardown of its tests, module fixtures included), the
XLA backend compilations (count and seconds), the part of those spent on programs that took at least
``LARGE_SECONDS`` each (the solver's start and advance programs; the rest are mostly single eager operations on a
new shape), and the seconds of tracing and of lowering to MLIR. The numbers are JAX's own monitoring events
(``/jax/core/compile/*``), recorded in the process that runs the tests (each xdist worker) and summed on the
controller, so ``-n`` works. Compilations in subprocesses (the command-line tests) are not seen: a file whose worker
seconds are far above its compile seconds spends them there or in running programs.

Run on demand, not by the suite: it measures the suite, it does not test anything. A ``--compile-profile-json`` that
cannot be written is refused before any test runs (pytest's usage error, exit 4); the file is written whole at the
end or not at all.
"""

from __future__ import annotations

import collections
import json
import os
import tempfile

import jax.monitoring
import pytest

LARGE_SECONDS = 0.1
_EVENTS = {
    "/jax/core/compile/backend_compile_duration": "backend",
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
}
_FIELDS = ("backend", "backend_n", "large", "large_n", "trace", "lower")
_PROPERTY = "compile_profile"

_since_last_report: collections.Counter = collections.Counter()
_by_file: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)  # on the controller


def _record(event: str, duration: float, **_) -> None:
    kind = _EVENTS.get(event)
    if kind is None:
        return
    _since_last_report[kind] += duration
    if kind == "backend":
        _since_last_report["backend_n"] += 1
        if duration >= LARGE_SECONDS:
            _since_last_report["large"] += duration
            _since_last_report["large_n"] += 1


def pytest_addoption(parser):
    parser.addoption("--compile-profile-json", metavar="FILE", help="also write the per-file table as JSON")


def pytest_configure(config):
    path = config.getoption("compile_profile_json")
    if path and not _is_worker():  # refused before the suite runs, not after it
        try:  # a file can be created beside it (os.access would say yes to root anywhere)
            tempfile.TemporaryFile(dir=os.path.dirname(os.path.abspath(path))).close()
            ok = os.path.isfile(path) or not os.path.lexists(path)
        except OSError:
            ok = False
        if not ok:
            raise pytest.UsageError(f"--compile-profile-json: {path} is not a regular file in a writable folder")
    jax.monitoring.register_event_duration_secs_listener(_record)


def _is_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Everything compiled since the previous report (this phase, or a module fixture set up for it) goes with
    # this report, which xdist carries to the controller with its user properties.
    outcome = yield
    report = outcome.get_result()
    report.user_properties.append((_PROPERTY, {k: float(_since_last_report[k]) for k in _FIELDS}))
    _since_last_report.clear()


def pytest_runtest_logreport(report):
    if _is_worker():  # its controller adds up
        return
    row = _by_file[report.nodeid.split("::")[0]]
    row["seconds"] += report.duration
    for name, numbers in report.user_properties:
        if name == _PROPERTY:
            row.update(numbers)


def _table(rows: dict) -> list[str]:
    lines = [
        f"{'file':40s} {'worker s':>9s} {'compile s':>10s} {'(n)':>6s} "
        f"{'>=' + format(LARGE_SECONDS, 'g') + ' s':>9s} {'(n)':>5s} {'trace s':>8s} {'lower s':>8s}"
    ]
    total: collections.Counter = collections.Counter()
    for path, row in sorted(rows.items(), key=lambda kv: -kv[1]["seconds"]):
        total.update(row)
        lines.append(_line(path, row))
    lines.append(_line("total", total))
    return lines


def _line(name: str, row) -> str:
    return (
        f"{name:40s} {row['seconds']:9.1f} {row['backend']:10.1f} {int(row['backend_n']):6d} "
        f"{row['large']:9.1f} {int(row['large_n']):5d} {row['trace']:8.1f} {row['lower']:8.1f}"
    )


def pytest_terminal_summary(terminalreporter, config):
    if _is_worker() or not _by_file:
        return
    terminalreporter.section("compilation per test file (JAX monitoring events)")
    for line in _table(_by_file):
        terminalreporter.write_line(line)
    path = config.getoption("compile_profile_json")
    if path:  # written whole or not at all
        staging = f"{path}.partial-{os.getpid()}"
        with open(staging, "w") as f:
            json.dump({name: dict(row) for name, row in _by_file.items()}, f, indent=1, sort_keys=True)
        os.replace(staging, path)
