"""A run's report, its terminal table, and atomic writing of summary.json, arrays (.npz) and table.txt."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    wall_seconds: float | None = None  # set by ufm.run (the command line measures its own)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [check for check in self.checks if not check.passed]

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"{len(self.failed_checks)} check(s) failed"
        return (
            f"Report({self.family}: {verdict}, {len(self.checks)} checks, "
            f"{self.convergence.get('converged')}/{self.convergence.get('subproblems')} converged, "
            f"arrays {sorted(self.arrays)})"
        )

    def save(self, folder) -> Path:
        """Write summary.json, the arrays' NPZ and table.txt into ``folder`` (a new or empty folder; written
        atomically, as the command line does). Returns the folder."""
        wall = float("nan") if self.wall_seconds is None else self.wall_seconds
        return write_report(OutputDir(folder), self, render_table(self, wall), wall)

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
        "ufm": ufm.__version__,
        "python": platform.python_version(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "optax": optax.__version__,
        "backend": jax.default_backend(),
        "machine": platform.machine(),
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
    if conv.get("devices"):
        lines.append(f"devices: {', '.join(conv['devices'])}")
    for message, count in conv.get("failures", {}).items():
        lines.append(f"  ! {count} subproblem(s): {message}")
    width = max(len(check.name) for check in report.checks)
    lines.append(f"{'check':<{width}}  {'value':>9}  {'tol':>7}  verdict")
    for check in report.checks:
        tol = "-" if check.tol is None else ("" if check.sense == "<=" else ">=") + f"{check.tol:.0e}"
        value = "-" if check.void is not None and not np.isfinite(check.value) else f"{check.value:9.2e}"
        lines.append(
            f"{check.name:<{width}}  {value:>9}  {tol:>7}  {check.verdict}"
            + (f"  ({check.detail})" if check.detail else "")
        )
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
        if isinstance(x, np.ndarray):  # arrays too: a NaN inside one must become null, not break the writing
            return clean(x.tolist())
        return x

    return json.dumps(clean(obj), indent=2, default=_json_default, allow_nan=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class OutputError(OSError):
    """An output location that may not be written (a link, a non-regular file, a non-empty folder, no write
    permission); the message names the path."""


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _is_real_dir(path: Path) -> bool:
    st = _lstat(path)
    return st is not None and stat.S_ISDIR(st.st_mode)


def _require_writable(folder: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{folder} is not writable")


def _require_replaceable(path: Path) -> None:
    st = _lstat(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"
        raise OutputError(f"{path} is {kind}; only regular files are replaced")


def check_output_file(path: Path | str) -> Path:
    """Validate, creating nothing, that :func:`atomic_write` may write ``path``: it is absent or a regular file
    (never a link, a device or a folder), and its folder exists and is writable. Returns the absolute path;
    raises :class:`OutputError` naming the path otherwise."""
    path = Path(os.path.abspath(path))
    _require_replaceable(path)
    if not path.parent.is_dir():
        raise OutputError(f"folder {path.parent} does not exist")
    _require_writable(path.parent)
    return path


def atomic_write(path: Path | str, write: Callable[[str], object]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place, so that readers never
    see a partial file and a failure leaves nothing behind. Only a regular file is ever replaced (a link, a device
    node or a folder at ``path`` raises :class:`OutputError`, checked before writing and again just before the
    rename). The file gets the permissions a plain ``open`` would give (``tempfile`` makes it private)."""
    path = Path(path)
    _require_replaceable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        _require_replaceable(path)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OutputDir:
    """A results folder that appears complete, in one step, or not at all.

    Opening only validates (it creates nothing; :class:`OutputError` names the path): the target must not be a
    symbolic link; if it exists it must be an empty folder (``merge=False``) or a folder (``merge=True``, files
    of the same names replaced; each of ``replaces`` that exists there must be a regular file); if it does not,
    its nearest existing ancestor must be a writable folder.

    The first write creates ONE staging folder ``.<name>.incomplete-XXXXXX`` at the highest level the run has to
    create (beside the target, or beside its first missing ancestor, the folders below it inside), so a killed run
    leaves at most that one folder, named for what it is. :meth:`commit` renames it into place: rename(2) replaces
    an empty folder and refuses a non-empty one, a file, a link or a device, so nothing that appeared at the target
    during the run is touched. Merging into an existing folder, the staging folder is inside it
    (``.incomplete-XXXXXX``) and commit moves each file over the one of its name, regular files only.
    :meth:`discard` removes the staging folder.
    """

    def __init__(self, target: Path | str, *, merge: bool = False, replaces=()):
        self.target = Path(os.path.abspath(target))
        self.merge = merge
        self._staging: Path | None = None  # the folder created at the first write
        self._top: Path | None = None  # what the staging folder becomes at commit (the target or an ancestor)
        self._inside = False  # merging: the staging folder is inside the existing target
        self._check(replaces)

    def _check(self, replaces) -> None:
        target = self.target
        st = _lstat(target)
        if st is not None:
            if stat.S_ISLNK(st.st_mode):
                raise OutputError(f"{target} is a symbolic link")
            if not stat.S_ISDIR(st.st_mode):
                raise OutputError(f"{target} exists and is not a folder")
            if self.merge:
                _require_writable(target)
                for name in replaces:
                    _require_replaceable(target / name)
                return
            if any(target.iterdir()):
                raise OutputError(f"{target} exists and is not empty (never overwritten)")
            _require_writable(target.parent)
            return
        ancestor = target.parent
        while _lstat(ancestor) is None:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise OutputError(f"{ancestor} is not a folder")
        _require_writable(ancestor)

    @property
    def staging(self) -> Path:
        """The folder the files go into (created on first use)."""
        staging, top = self._staged()
        return staging / self.target.relative_to(top) if top != self.target else staging

    def _staged(self) -> tuple[Path, Path]:
        """The staging folder and what it becomes at commit (``_top``), created on first use."""
        if self._staging is None or self._top is None:  # both are set together, by _create_staging
            return self._create_staging()
        return self._staging, self._top

    def _create_staging(self) -> tuple[Path, Path]:
        """Create the staging folder; returns it and what it becomes at commit (also stored on self)."""
        if self.merge and _is_real_dir(self.target):
            top, self._inside = self.target, True
            staging = Path(tempfile.mkdtemp(prefix=".incomplete-", dir=self.target))
        else:
            top = self.target
            while _lstat(top.parent) is None:
                top = top.parent
            staging = Path(tempfile.mkdtemp(prefix=f".{top.name}.incomplete-", dir=top.parent))
            if top != self.target:
                (staging / self.target.relative_to(top)).mkdir(parents=True)
        self._staging, self._top = staging, top
        os.chmod(staging, 0o777 & ~_umask())  # as mkdir would make it (mkdtemp's is private)
        return staging, top

    def path(self, name: str) -> Path:
        """Where a file ``name`` of the results is written before commit."""
        return self.staging / name

    def write_text(self, name: str, text: str) -> None:
        self.path(name).write_text(text)

    def write_npz(self, name: str, arrays: dict) -> None:
        with open(self.path(name), "wb") as f:
            np.savez(f, **arrays)

    def commit(self) -> Path:
        """Move the results into place (see the class docstring); raises OSError, leaving the staging folder for
        :meth:`discard`, if the target was taken during the run."""
        staging, top = self._staged()  # nothing written yet: created now, an empty results folder
        if self._inside:
            _move_files(staging, self.target)
        else:
            parts = self.target.relative_to(top).parts
            src, dest = staging, top
            for i in range(len(parts) + 1):
                try:
                    os.rename(src, dest)
                    break
                except OSError:
                    if dest != self.target and _is_real_dir(dest):  # an ancestor appeared meanwhile: go below it
                        src, dest = src / parts[i], dest / parts[i]
                        continue
                    if dest == self.target and self.merge and _is_real_dir(dest):
                        _move_files(src, dest)
                        break
                    raise
        shutil.rmtree(staging, ignore_errors=True)  # what is left of it: empty folders (nothing if renamed whole)
        self._staging, self._inside = None, False
        return self.target

    def discard(self) -> None:
        """Remove the staging folder and everything in it (no-op if nothing was written)."""
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging, self._inside = None, False


def _move_files(src: Path, dest: Path) -> None:
    """Move every file of ``src`` over the one of its name in ``dest``: all are checked first (regular files only
    are replaced), then each is renamed (each file atomic)."""
    names = sorted(os.listdir(src))
    for name in names:
        if not (src / name).is_file():
            raise OutputError(f"{src / name} is not a file")
        _require_replaceable(dest / name)
    for name in names:
        os.replace(src / name, dest / name)


def write_report(out: OutputDir, report: Report, table: str, wall_seconds: float) -> Path:
    """Write summary.json, the arrays and table.txt into ``out`` and move it into place."""
    out.write_text("summary.json", to_json(report.summary(wall_seconds)) + "\n")
    out.write_npz(report.arrays_name, report.arrays)
    out.write_text("table.txt", table + "\n")
    return out.commit()


def progress_bar(name: str, total: int, quiet: bool) -> Callable[[], None]:
    """A one-line text progress bar on stderr (``name [#####.....] 5/10  12.3 s``); returns its step function."""
    t0, done = time.perf_counter(), [0]
    total = max(total, 1)

    def draw() -> None:
        if quiet:
            return
        filled = int(20 * done[0] / total)
        print(
            f"\r{name:<24} [{'#' * filled}{'.' * (20 - filled)}] {done[0]}/{total} {time.perf_counter() - t0:6.1f} s",
            end="\n" if done[0] >= total else "",
            file=sys.stderr,
            flush=True,
        )

    def step() -> None:
        done[0] = min(done[0] + 1, total)
        draw()

    draw()
    return step
