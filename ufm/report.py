"""A run's report, its terminal table, and atomic writing of summary.json, arrays (.npz) and table.txt."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ufm.checks import Check


@dataclasses.dataclass(frozen=True)
class Report:
    """What a family's run produced: headline lines, checks, convergence, JSON-ready numbers and arrays."""

    family: str
    config: dict
    headline: list[str]
    checks: list[Check]
    convergence: dict
    numbers: dict
    arrays: dict[str, np.ndarray]
    arrays_name: str = "features.npz"

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def summary(self, wall_seconds: float) -> dict:
        return {
            "family": self.family,
            "passed": self.passed,
            "config": self.config,
            "numbers": self.numbers,
            "checks": [check.to_dict() for check in self.checks],
            "convergence": self.convergence,
            "wall_seconds": wall_seconds,
            "versions": versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }


def versions() -> dict:
    import jax
    import jaxlib
    import optax
    import scipy

    import ufm

    return {
        "ufm": ufm.__version__, "python": platform.python_version(), "jax": jax.__version__,
        "jaxlib": jaxlib.__version__, "numpy": np.__version__, "scipy": scipy.__version__, "optax": optax.__version__,
        "backend": jax.default_backend(), "machine": platform.machine(),
    }


def render_table(report: Report, wall_seconds: float) -> str:
    """The human-readable table: headline, convergence, one row per check, verdict."""
    conv = report.convergence
    lines = list(report.headline)
    lines.append(
        f"solver: {conv['converged']}/{conv['subproblems']} converged (rel grad <= {conv['rtol']:.0e}), "
        f"max rel grad {conv['max_rel_grad_norm']:.1e}, steps <= {conv['max_steps_taken']}, "
        f"compile {conv['compile_seconds']:.1f} s, solve {conv['solve_seconds']:.2f} s"
    )
    for message, count in conv.get("failures", {}).items():
        lines.append(f"  ! {count} subproblem(s): {message}")
    width = max(len(check.name) for check in report.checks)
    lines.append(f"{'check':<{width}}  {'value':>9}  {'tol':>7}  verdict")
    for check in report.checks:
        tol = "-" if check.tol is None else f"{check.tol:.0e}"
        value = "-" if check.void is not None and not np.isfinite(check.value) else f"{check.value:9.2e}"
        lines.append(f"{check.name:<{width}}  {value:>9}  {tol:>7}  {check.verdict}"
                     + (f"  ({check.detail})" if check.detail else ""))
    verdict = "ALL CHECKS PASS" if report.passed else f"{len(report.failed_checks)} CHECK(S) FAILED"
    lines.append(f"{verdict}   wall time {wall_seconds:.1f} s")
    return "\n".join(lines)


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any) -> str:
    """JSON text; NaN/inf become null (strict JSON)."""

    def clean(x):
        if isinstance(x, float) and not np.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, np.generic):
            return clean(x.item())
        return x

    return json.dumps(clean(obj), indent=2, default=_json_default, allow_nan=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path | str, write: Callable[[str], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place, so that readers never
    see a partial file and a failure leaves nothing behind. The file gets the permissions a plain ``open`` would
    give (``tempfile`` makes it private)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputDir:
    """An output directory written atomically: files go to a hidden staging directory beside the target, which
    is renamed into place by :meth:`commit`; :meth:`discard` removes it. Opening fails (OSError) if the target
    exists and is not empty, or if its parent cannot be written."""

    def __init__(self, target: Path | str):
        self.target = Path(target).absolute()
        if self.target.exists() and (not self.target.is_dir() or any(self.target.iterdir())):
            raise FileExistsError(f"{self.target} exists and is not an empty directory")
        self._created_parents = []
        parent = self.target.parent
        while not parent.exists():
            self._created_parents.append(parent)
            parent = parent.parent
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.partial-", dir=self.target.parent))
            os.chmod(self.staging, 0o777 & ~_umask())  # as mkdir would make it (mkdtemp's is private)
        except OSError:
            self._remove_created_parents()
            raise

    def write_text(self, name: str, text: str) -> None:
        (self.staging / name).write_text(text)

    def write_npz(self, name: str, arrays: dict) -> None:
        with open(self.staging / name, "wb") as f:
            np.savez(f, **arrays)

    def commit(self) -> Path:
        if self.target.exists():
            self.target.rmdir()  # empty, checked at opening
        os.replace(self.staging, self.target)
        return self.target

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._remove_created_parents()

    def _remove_created_parents(self) -> None:
        for p in self._created_parents:
            try:
                p.rmdir()
            except OSError:
                break


def write_report(out: OutputDir, report: Report, table: str, wall_seconds: float) -> Path:
    """Write summary.json, the arrays and table.txt into ``out`` and move it into place."""
    out.write_text("summary.json", to_json(report.summary(wall_seconds)) + "\n")
    out.write_npz(report.arrays_name, report.arrays)
    out.write_text("table.txt", table + "\n")
    return out.commit()
