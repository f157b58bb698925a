"""``ufm`` (the console script; also ``python -m ufm``): one command for the package's command lines.

    ufm solve --loss mixup --C 10        # = python -m ufm.solve ...
    ufm certify [FAMILY ...]             # = python -m ufm.proofs_check ...
    ufm figures [--only NAME ...]        # = python -m ufm.experiments ...
    ufm measure FEATURES.npz             # = python -m ufm.measure ...
    ufm sweep --loss mse --lambda-H 1e-3:1:20log --out DIR   # = python -m ufm.sweep ...
    ufm --version

``solve`` and ``measure`` run in this process; ``certify``, ``figures`` and ``sweep`` replace it with ``python -m
ufm.proofs_check``, ``python -m ufm.experiments`` and ``python -m ufm.sweep`` (the library layers never import the
first two). Either way the flags, output and exit codes are exactly those of the ``python -m`` forms.
"""

from __future__ import annotations

import os
import sys

COMMANDS = {
    "solve": ("ufm.solve", "solve a UFM objective to float64 precision and check it against its closed form"),
    "certify": ("ufm.proofs_check", "certify the closed forms (first and second order, scalar roots, restarts)"),
    "figures": ("ufm.experiments", "regenerate the figures from the solver's output"),
    "sweep": ("ufm.sweep", "solve and check one family over a grid of its flags' values (lists, log/lin ranges)"),
    "measure": ("ufm.measure", "measure a trained network's features against the model (NC1-NC4, mixup, noise)"),
}


def usage() -> str:
    from ufm import __version__

    lines = [
        f"usage: ufm {{{','.join(COMMANDS)}}} ... | --version | --help",
        "",
        f"ufm {__version__}: unconstrained-features models solved to machine precision and checked against "
        "closed forms.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<8} {about} (ufm {name} --help)" for name, (_, about) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """The console script on ``argv`` (default ``sys.argv[1:]``); returns the exit code (2: bad input)."""
    from ufm.cli import say, warn

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["-h"], ["--help"]):
        say(usage())
        return 0
    if argv[:1] == ["--version"]:
        from ufm import __version__

        say(f"ufm {__version__}")
        return 0
    if not argv or argv[0] not in COMMANDS:
        given = f"unknown command {argv[0]!r}" if argv else "a command is required"
        warn(f"ufm: error: {given}; valid: {', '.join(COMMANDS)} (ufm --help describes them)")
        return 2
    command, rest = argv[0], argv[1:]
    if command == "solve":
        from ufm.solve import main as solve

        return solve(rest, program=True)
    if command == "measure":
        from ufm.measure import main as measure

        return measure(rest)
    module = COMMANDS[command][0]
    sys.stdout.flush()
    os.execv(sys.executable, [sys.executable, "-m", module, *rest])
    return 0  # pragma: no cover - execv does not return


def console() -> None:
    """The ``ufm`` console script's entry point."""
    from ufm.cli import exit_main

    exit_main(main)


if __name__ == "__main__":
    console()
