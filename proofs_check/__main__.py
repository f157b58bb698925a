"""``python -m proofs_check [FAMILY ...] [--out PATH] [--quiet]``: run certificates, print the table, write JSON.

Exit code 0: every certificate PASS or CONDITIONAL; 1: at least one FAIL (the failing measurements and instances
are named on stderr); 2: bad input (one line naming the argument; nothing is written).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

DEFAULT_OUT = "certificates.json"
EXIT_FAIL, EXIT_BAD_INPUT = 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors raised instead of printed usage (as ufm.solve)."""

    def error(self, message):
        raise UsageError(message)


def parse_args(argv, families):
    parser = _Parser(
        prog="python -m proofs_check",
        description="Certificates for the theorems ufm verifies: hypotheses, first- and second-order optimality of "
                    "each closed form, global evidence, scalar facts and lemma identities.")
    parser.add_argument("families", nargs="*", metavar="FAMILY",
                        help=f"families to certify (default: all of {', '.join(families)})")
    parser.add_argument("--out", default=DEFAULT_OUT,
                        help=f"where to write the JSON certificates (default: ./{DEFAULT_OUT}; a directory gets "
                             f"{DEFAULT_OUT} inside it); written atomically, replacing an existing file")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    ns = parser.parse_args(argv)
    for name in ns.families:
        if name not in families:
            parser.error(f"argument FAMILY: unknown family {name!r} (choose from {', '.join(families)})")
    out = Path(ns.out)
    if out.is_dir():
        out = out / DEFAULT_OUT
    if not out.parent.is_dir():
        parser.error(f"argument --out: directory {str(out.parent)!r} does not exist")
    if not os.access(out.parent, os.W_OK):
        parser.error(f"argument --out: directory {str(out.parent)!r} is not writable")
    ns.out = out
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
        rows.append((cert.family, cert.theorem, str(len(cert.instances)), _fmt(h.value),
                     f"{h.sense} {_fmt(h.bound)}", _fmt(cert.min_hessian_eig), restarts, cert.verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    right = {2, 3, 5, 6}
    lines = ["  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths)))
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def describe_failures(cert) -> list[str]:
    return [f"FAIL {cert.family} / {cert.theorem}: {m.name} = {m.value:.3e} (needs {m.sense} {m.bound:.3e}) "
            f"at {m.worst_at}" for m in cert.failures]


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (readers never see a partial file)."""
    from ufm.report import atomic_write

    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def main(argv=None) -> int:
    import proofs_check

    argv = sys.argv[1:] if argv is None else argv
    try:
        ns = parse_args(argv, proofs_check.FAMILIES)
    except UsageError as err:
        print(f"proofs_check: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    log = (lambda msg: None) if ns.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    import json

    from proofs_check.certificate import FAIL, jsonable
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
    print(table)
    print(f"{verdict}   wall time {wall:.1f} s   -> {ns.out}")
    summary = {
        "passed": n_fail == 0, "families": ns.families,
        "verdicts": {v: sum(c.verdict == v for c in certificates) for v in ("PASS", "CONDITIONAL", "FAIL")},
        "table": table.splitlines(), "certificates": [c.to_dict() for c in certificates], "wall_seconds": wall,
        "versions": versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        write_atomically(ns.out, json.dumps(jsonable(summary), indent=2, allow_nan=False) + "\n")
    except OSError as err:
        print(f"proofs_check: error: argument --out: cannot write {ns.out}: {err.strerror or err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for cert in certificates:
        for line in describe_failures(cert):
            print(line, file=sys.stderr)
    return EXIT_FAIL if n_fail else 0


if __name__ == "__main__":
    sys.exit(main())
