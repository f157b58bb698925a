"""``python -m ufm.proofs_check [FAMILY ...] [--out PATH] [--quiet]``: run certificates, print the table, write JSON.

Exit code 0: every certificate PASS or CONDITIONAL; 1: at least one FAIL (the failing measurements and instances
are named on stderr); 2: bad input, --out included (one line naming the argument; checked before any certificate
runs; nothing is written); 3: the JSON could not be written after the run (one line; nothing left behind);
130 SIGINT, 143 SIGTERM (nothing left behind). --out is written atomically and only ever replaces a regular
file: a symbolic link, a device node or another non-regular file at PATH is refused.
"""

from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path

from ufm.cli import (
    EXIT_BAD_INPUT,
    EXIT_CODES_HELP,
    EXIT_NOT_WRITTEN,
    Interrupted,
    UsageError,
    interruptible,
    os_problem,
    say,
    warn,
)
from ufm.cli import Parser as _Parser
from ufm.precision import float64

DEFAULT_OUT = "certificates.json"
EXIT_FAIL = 1


def _out_path(text: str) -> Path:
    """The file ``--out`` names (a folder gets certificates.json inside it), validated creating nothing."""
    from ufm.report import check_output_file

    out = Path(text)
    if out.is_dir() and not out.is_symlink():
        out = out / DEFAULT_OUT
    try:
        return check_output_file(out)
    except OSError as err:
        raise UsageError(f"argument --out: {os_problem(err, out)}") from None


def parse_args(argv, families):
    parser = _Parser(
        prog="python -m ufm.proofs_check",
        description="Certificates for the theorems ufm verifies: hypotheses, first- and second-order optimality of "
        "each closed form, global evidence, scalar facts and lemma identities.",
        epilog=EXIT_CODES_HELP.replace("all checks pass", "no certificate fails").replace(
            "a check failed", "a certificate failed"
        ),
    )
    parser.add_argument(
        "families", nargs="*", metavar="FAMILY", help=f"families to certify (default: all of {', '.join(families)})"
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        help=f"where to write the JSON certificates (default: ./{DEFAULT_OUT}; a folder gets "
        f"{DEFAULT_OUT} inside it); written atomically, replacing an existing regular file "
        "(never a link or a device)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ns = parser.parse_args(argv)
    for name in ns.families:
        if name not in families:
            parser.error(f"argument FAMILY: unknown family {name!r} (choose from {', '.join(families)})")
    ns.out = _out_path(ns.out)
    ns.families = list(dict.fromkeys(ns.families)) or list(families)
    return ns


def _fmt(x, spec=".1e"):
    return "-" if x is None else format(x, spec)


def render_table(certificates) -> str:
    """One row per certificate: family, theorem, instances, worst residual (headline measurement) and its bound,
    smallest Hessian eigenvalue at the claimed optimum, solver restarts (converged/run), verdict."""
    rows = [("family", "theorem", "inst", "worst residual", "bound", "min Hess eig", "restarts", "verdict")]
    for cert in certificates:
        h = cert.headline
        restarts = f"{cert.restarts_converged}/{cert.restarts}" if cert.restarts else "0"
        rows.append(
            (
                cert.family,
                cert.theorem,
                str(len(cert.instances)),
                _fmt(h.value),
                f"{h.sense} {_fmt(h.tol)}",
                _fmt(cert.min_hessian_eig),
                restarts,
                cert.verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5, 6}
    lines = [
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def describe_failures(cert) -> list[str]:
    return [
        f"FAIL {cert.family} / {cert.theorem}: {m.name} = {m.value:.3e} (needs {m.sense} {m.tol:.3e}) at {m.worst_at}"
        for m in cert.failures
    ]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (readers never see a partial file)."""
    from ufm.report import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


@float64
def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        with interruptible():
            return _main(argv)
    except (Interrupted, KeyboardInterrupt) as err:
        sig = err if isinstance(err, Interrupted) else Interrupted(2)
        warn(f"proofs_check: interrupted ({sig.name}); nothing written")
        return sig.exit_code


def _main(argv) -> int:
    from ufm import proofs_check

    try:
        ns = parse_args(argv, proofs_check.FAMILIES)
    except UsageError as err:
        warn(f"proofs_check: error: {err}")
        return EXIT_BAD_INPUT
    log = (lambda msg: None) if ns.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    import json

    from ufm.proofs_check.certificate import FAIL, jsonable
    from ufm.report import versions

    t0 = time.perf_counter()
    certificates = []
    for name in ns.families:
        module = proofs_check.load(name)
        for certify in module.CERTIFICATES:
            log(f"[proofs_check] {name}: {certify.__name__} ...")
            cert = certify()
            log(f"[proofs_check] {name}: {cert.theorem}: {cert.verdict} ({cert.seconds:.1f} s)")
            certificates.append(cert)
    wall = time.perf_counter() - t0
    table = render_table(certificates)
    n_fail = sum(cert.verdict == FAIL for cert in certificates)
    verdict = "ALL CERTIFICATES PASS" if n_fail == 0 else f"{n_fail} CERTIFICATE(S) FAIL"
    printed = say(table) & say(f"{verdict}   wall time {wall:.1f} s   -> {ns.out}")
    summary = {
        "passed": n_fail == 0,
        "families": ns.families,
        "verdicts": {v: sum(c.verdict == v for c in certificates) for v in ("PASS", "CONDITIONAL", "FAIL")},
        "table": table.splitlines(),
        "certificates": [c.to_dict() for c in certificates],
        "wall_seconds": wall,
        "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        write_atomically(ns.out, json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n")
    except OSError as err:
        warn(
            f"proofs_check: error: argument --out: certificates not written ({os_problem(err, ns.out)}); nothing "
            "left behind"
        )
        return EXIT_NOT_WRITTEN
    try:
        if not printed:
            warn(f"proofs_check: stdout was closed before the table was printed in full; certificates: {ns.out}")
        for cert in certificates:
            for line in describe_failures(cert):
                warn(line)
    except Interrupted as sig:
        warn(f"proofs_check: interrupted ({sig.name}) after the certificates were written: {ns.out}")
        return sig.exit_code
    return EXIT_FAIL if n_fail else 0


if __name__ == "__main__":
    from ufm.cli import exit_main

    exit_main(main)
