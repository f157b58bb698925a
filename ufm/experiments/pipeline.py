"""Run a figure: compute its data from the solver, save data + configuration + caption, plot, save PNG and PDF
atomically."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ufm.experiments.style import RC
from ufm.precision import float64
from ufm.report import OutputDir, atomic_write, to_json

EXTENSIONS = ("npz", "json", "png", "pdf")  # the files of a figure NAME: data, configuration + caption, the drawings


class Progress:
    """A one-line text progress bar on stderr: ``name [#####.....] 5/10``; silent when ``quiet``."""

    def __init__(self, name: str, total: int, quiet: bool = False):
        self.name, self.total, self.done, self.quiet, self.t0 = name, max(total, 1), 0, quiet, time.perf_counter()
        self._draw()

    def step(self, n: int = 1) -> None:
        self.done = min(self.done + n, self.total)
        self._draw()

    def _draw(self) -> None:
        if self.quiet:
            return
        filled = int(20 * self.done / self.total)
        end = "\n" if self.done >= self.total else ""
        print(
            f"\r{self.name:<24} [{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
            f"{time.perf_counter() - self.t0:6.1f} s",
            end=end,
            file=sys.stderr,
            flush=True,
        )


@float64
def run_figure(module, out, *, quick: bool = False, quiet: bool = False) -> list[Path]:
    """Compute, save and plot one figure module into ``out``; returns the files written.

    ``out`` is a folder (created if missing), or a :class:`ufm.report.OutputDir`, whose staging folder the files
    go into: it is created only once the data are computed, so an interrupted computation leaves nothing."""
    config = module.config(quick)
    caption = module.caption(config)  # before the computation: a caption that cannot be written fails fast
    progress = Progress(module.NAME, module.steps(config), quiet)
    data = module.compute(config, progress)
    if isinstance(out, OutputDir):
        out = out.staging
    else:
        out.mkdir(parents=True, exist_ok=True)
    files = [out / f"{module.NAME}.{ext}" for ext in EXTENSIONS]

    def save_npz(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **data)

    atomic_write(files[0], save_npz)
    atomic_write(
        files[1],
        lambda tmp: Path(tmp).write_text(
            to_json(
                {
                    "figure": module.NAME,
                    "title": module.TITLE,
                    "caption": caption,  # this configuration's own caption; docs/figures.md has the full one
                    "quick": quick,
                    "config": config,
                    # a module's findings read off its data (a verdict with its numbers), where it states them
                    **({"summary": module.summary(data, config)} if hasattr(module, "summary") else {}),
                }
            )
            + "\n"
        ),
    )
    with plt.rc_context(RC):
        fig = module.plot(data, config)
        for path in files[2:]:
            atomic_write(path, functools.partial(fig.savefig, format=path.suffix[1:]))
        plt.close(fig)
    return files


def load_data(out: Path, name: str) -> tuple[dict, dict]:
    """The data and configuration a figure was drawn from."""
    with np.load(out / f"{name}.npz") as npz:
        data = {k: npz[k] for k in npz.files}
    return data, json.loads((out / f"{name}.json").read_text())["config"]
