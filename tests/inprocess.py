"""Run a command line's ``main(argv)`` in the test process: the same parsing, validation and solve as the
``python -m`` module (whose ``__main__`` only calls ``main``), without a new interpreter importing JAX and
compiling again. One end-to-end subprocess run per command line stays in its own test file."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import os
import time

# The suite's XLA settings (conftest.py), for compilation speed: LLVM optimization level 0, and XLA's CPU elemental
# emitters instead of its fusion emitters (which lower each fusion through MLIR first; a newer XLA's flag).
FAST_COMPILATION = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")


def default_compilation_env() -> dict[str, str]:
    """The environment without the suite's compilation setting: a subprocess then compiles as a user's run does."""
    env = dict(os.environ)
    flags = " ".join(flag for flag in env.get("XLA_FLAGS", "").split() if flag not in FAST_COMPILATION)
    if flags:
        env["XLA_FLAGS"] = flags
    else:
        env.pop("XLA_FLAGS", None)
    return env


@dataclasses.dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def run_main(module: str, *argv: str) -> Outcome:
    """``module.main(list(argv))`` with stdout and stderr captured; e.g. ``run_main("ufm.solve", "--loss", ...)``."""
    packages = ("ufm.proofs_check", "ufm.experiments")  # command lines whose main lives in the package's __main__
    main = importlib.import_module(f"{module}.__main__" if module in packages else module).main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        t0 = time.perf_counter()
        code = main(list(argv))
        seconds = time.perf_counter() - t0
    return Outcome(code, out.getvalue(), err.getvalue(), seconds)


def assert_refused(outcome: Outcome, flag: str) -> None:
    """Exit 2 with exactly one line on stderr naming the argument."""
    assert outcome.code == 2, (outcome.code, outcome.stderr)
    lines = outcome.error_lines
    assert len(lines) == 1 and flag in lines[0], lines
