"""``python -m ufm.experiments [--out figures/] [--only NAME ...] [--quick] [--quiet]``: regenerate the figures.

--out is checked before anything is computed (a writable folder, or one that can be created; not a link; the files
to be replaced regular files). The figures are staged in one hidden folder and moved into --out when all are done,
so an interrupted or failed run leaves --out as it was. Exit codes: 0 written; 2 bad input (one line naming the
argument; nothing computed, nothing written); 3 the figures could not be written (one line; nothing left behind);
130 SIGINT, 143 SIGTERM (nothing left behind).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from ufm.cli import (
    EXIT_BAD_INPUT,
    EXIT_NOT_WRITTEN,
    EXIT_OK,
    Interrupted,
    Parser,
    UsageError,
    interruptible,
    os_problem,
    say,
    warn,
)
from ufm.precision import float64

# Figure name -> module; a family that has not landed has no module here and is listed in PENDING instead.
FIGURES = {
    "mixup_geometry": "ufm.experiments.mixup_geometry",
    "mixup_coefficients": "ufm.experiments.mixup_coefficients",
    "mixup_calibration": "ufm.experiments.mixup_calibration",
    "nonneg": "ufm.experiments.nonneg",
    "memorization_dilation": "ufm.experiments.memorization_dilation",
    "square_loss": "ufm.experiments.square_loss",
    "local_linearity": "ufm.experiments.local_linearity",
    "mixup_joint": "ufm.experiments.mixup_joint",
    "phase_diagrams": "ufm.experiments.phase_diagrams",
    "network_mixup": "ufm.experiments.network_mixup",
    "network_label_noise": "ufm.experiments.network_label_noise",
    "network_linearity": "ufm.experiments.network_linearity",
}
PENDING: dict[str, str] = {}


@float64
def main(argv=None) -> int:
    try:
        with interruptible():
            return _main(argv)
    except (Interrupted, KeyboardInterrupt) as err:
        sig = err if isinstance(err, Interrupted) else Interrupted(2)
        warn(f"experiments: interrupted ({sig.name}); nothing written")
        return sig.exit_code


def _main(argv) -> int:
    from ufm.experiments.pipeline import EXTENSIONS
    from ufm.report import OutputDir

    parser = Parser(
        prog="python -m ufm.experiments",
        description=__doc__.split("\n")[0],
        epilog="exit codes: 0 written; 2 bad input; 3 not written; 130 SIGINT, 143 SIGTERM",
    )
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these figures: " + ", ".join(FIGURES))
    parser.add_argument("--quick", action="store_true", help="reduced configurations (seconds; for tests)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    try:
        args = parser.parse_args(argv)
        names = args.only or list(FIGURES) + list(PENDING)
        unknown = [n for n in names if n not in FIGURES and n not in PENDING]
        if unknown:
            raise UsageError(
                f"argument --only: unknown figure {unknown[0]!r}; valid: " + ", ".join(list(FIGURES) + list(PENDING))
            )
        try:
            out = OutputDir(args.out, merge=True, replaces=[f"{n}.{ext}" for n in names for ext in EXTENSIONS])
        except OSError as err:
            raise UsageError(f"argument --out: {os_problem(err, args.out)}") from None
    except UsageError as err:
        warn(f"experiments: error: {err}")
        return EXIT_BAD_INPUT

    from ufm.experiments.pipeline import run_figure

    t0 = time.perf_counter()
    done = []
    try:
        for name in names:
            if name in PENDING:
                warn(f"{name}: skipped: {PENDING[name]}")
                continue
            files = run_figure(importlib.import_module(FIGURES[name]), out, quick=args.quick, quiet=args.quiet)
            done.append((name, [args.out / f.name for f in files]))
        out.commit()
    except OSError as err:
        out.discard()
        warn(
            f"experiments: error: argument --out: figures not written ({os_problem(err, args.out)}); nothing "
            "left behind"
        )
        return EXIT_NOT_WRITTEN
    except BaseException:
        out.discard()
        raise
    try:
        for name, files in done:
            say(f"{name}: " + ", ".join(str(f) for f in files))
        say(f"done in {time.perf_counter() - t0:.1f} s")
    except Interrupted as sig:
        warn(f"experiments: interrupted ({sig.name}) after the figures were written to {args.out}")
        return sig.exit_code
    return EXIT_OK


if __name__ == "__main__":
    from ufm.cli import exit_main

    exit_main(main)
