"""``python -m experiments [--out figures/] [--only NAME ...] [--quick] [--quiet]``: regenerate the figures."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

# Figure name -> module; a family that has not landed has no module here and is listed in PENDING instead.
FIGURES = {
    "mixup_geometry": "experiments.mixup_geometry",
    "mixup_coefficients": "experiments.mixup_coefficients",
    "mixup_calibration": "experiments.mixup_calibration",
    "nonneg": "experiments.nonneg",
    "memorization_dilation": "experiments.memorization_dilation",
    "square_loss": "experiments.square_loss",
    "local_linearity": "experiments.local_linearity",
    "mixup_joint": "experiments.mixup_joint",
}
PENDING = {
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("figures"), help="output folder (default figures/)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only these figures: " + ", ".join(FIGURES))
    parser.add_argument("--quick", action="store_true", help="reduced configurations (seconds; for tests)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    names = args.only or list(FIGURES) + list(PENDING)
    unknown = [n for n in names if n not in FIGURES and n not in PENDING]
    if unknown:
        print(f"experiments: error: argument --only: unknown figure {unknown[0]!r}; valid: "
              + ", ".join(list(FIGURES) + list(PENDING)), file=sys.stderr)
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"experiments: error: argument --out: cannot write {args.out}: {err.strerror or err}", file=sys.stderr)
        return 2

    from experiments.pipeline import run_figure

    t0 = time.perf_counter()
    for name in names:
        if name in PENDING:
            print(f"{name}: skipped: {PENDING[name]}", file=sys.stderr)
            continue
        files = run_figure(importlib.import_module(FIGURES[name]), args.out, quick=args.quick, quiet=args.quiet)
        print(f"{name}: " + ", ".join(str(f) for f in files))
    print(f"done in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
