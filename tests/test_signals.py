"""Signals and closed pipes on the real command lines (subprocesses: that is the point). SIGINT and SIGTERM during
the solve end the run with 130 / 143 and one line, leaving nothing; SIGKILL cannot be handled, but nothing exists
before the results are written (the staging folder is created at write time), so a run killed during the solve
leaves nothing either. A closed stdout (``| head -1``) does not stop the results from being written, and the run
exits with its verdict's code (no traceback, no 'Exception ignored' at exit)."""

import json
import signal
import subprocess
import sys
import threading

import pytest

# C = 4, 51 lambdas: the first progress line comes after the main solve's compilation; the auxiliary solves (new
# shapes, compiled afresh) keep the run going for seconds after it, so the signal always lands mid-run.
SOLVE = ["ufm.solve", "--loss", "mixup", "--C", "4", "--lambdas", "51"]


def start(args, cwd):
    proc = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    watchdog = threading.Timer(300, proc.kill)  # a hung run fails the test instead of hanging the suite
    watchdog.daemon = True
    watchdog.start()
    return proc


def wait_for(proc, marker: str) -> list[str]:
    """Read stderr until a line contains ``marker`` (progress: the run is under way)."""
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if marker in line:
            return lines
    pytest.fail(f"the run ended (exit {proc.wait()}) before {marker!r} appeared: {''.join(lines)}")


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_solve_interrupted_leaves_nothing(tmp_path, sig, code):
    proc = start([*SOLVE, "--out", str(tmp_path / "runs" / "run")], tmp_path)
    wait_for(proc, "rel grad")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == f"ufm.solve: interrupted ({sig.name}); nothing written"
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_solve_killed_during_the_solve_leaves_nothing(tmp_path):
    proc = start([*SOLVE, "--out", str(tmp_path / "runs" / "run")], tmp_path)
    wait_for(proc, "rel grad")
    proc.kill()
    proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []


def test_proofs_check_terminated_leaves_nothing(tmp_path):
    proc = start(["ufm.proofs_check", "mixup", "--out", str(tmp_path / "c.json")], tmp_path)
    wait_for(proc, "[proofs_check] mixup:")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "proofs_check: interrupted (SIGTERM); nothing written"
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_stdout_closed_still_writes_and_exits_with_the_verdict(tmp_path):
    """``python -m ufm.proofs_check lemmas | head -0``: the reader is gone before the table is printed (the cheapest
    real run; ufm.solve shares the code, tested in-process in tests/test_output_files.py)."""
    out = tmp_path / "c.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ufm.proofs_check", "lemmas", "--quiet", "--out", str(out)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    summary = json.loads(out.read_text())
    assert proc.returncode == (0 if summary["passed"] else 1), err
    assert "Traceback" not in err and "Exception ignored" not in err
    assert f"proofs_check: stdout was closed before the table was printed in full; certificates: {out}" in err
