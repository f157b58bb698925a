"""The real CLI, as a user runs it: `python -m ufm.solve ...` in a subprocess."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ufm.solve", *args], capture_output=True, text=True, cwd=cwd,
                          stdin=subprocess.DEVNULL, timeout=300)


def test_mixup_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = run_cli("--loss", "mixup", "--C", "3", "--lambdas", "5", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "ALL CHECKS PASS" in result.stdout
    assert result.stderr == ""  # --quiet: no progress
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] and summary["config"]["C"] == 3 and summary["config"]["d"] == 3
    assert summary["convergence"]["all_converged"] and "jax" in summary["versions"]
    arrays = np.load(out / "features.npz")
    for key in ("W", "c", "c_prime", "lam", "h", "h_theory"):
        assert key in arrays
    n = 3 * 3 * 5
    assert arrays["h"].shape == (n, 3) and arrays["h_theory"].shape == (n, 3) and arrays["lam"].shape == (n,)
    # the arrays are what the table claims: recompute the worst relative error from them
    err = np.linalg.norm(arrays["h"] - arrays["h_theory"], axis=1) / np.linalg.norm(arrays["h_theory"], axis=1)
    assert np.isclose(err.max(), summary["numbers"]["max_rel_error"], rtol=1e-12)
    assert (out / "table.txt").read_text().strip() in result.stdout
    assert not [p for p in tmp_path.iterdir() if p.name != "run"]  # no staging debris
    # written atomically through private temporary files, but delivered with the permissions of a plain write
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((out / "summary.json").stat().st_mode & 0o777) == 0o666 & ~umask


def test_default_out_is_a_new_folder_under_runs(tmp_path):
    for _ in range(2):
        assert run_cli("--loss", "mixup", "--C", "2", "--lambdas", "3", "--quiet", cwd=tmp_path).returncode == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.startswith("mixup-") for r in runs)


def test_progress_is_shown_by_default(tmp_path):
    result = run_cli("--loss", "mixup", "--C", "2", "--lambdas", "3", "--out", str(tmp_path / "r"))
    assert result.returncode == 0 and "rel grad" in result.stderr


@pytest.mark.parametrize("args, flag", [
    (["--C", "1"], "--C"),
    (["--C", "5", "--d", "3"], "--d"),
    (["--m", "0"], "--m"),
    (["--m", "-2"], "--m"),
    (["--mu", "0"], "--mu"),
    (["--mu", "-1e-3"], "--mu"),
    (["--lambdas", "1"], "--lambdas"),
    (["--C", "three"], "--C"),
    (["--seed", "-1"], "--seed"),
    (["--m", "1e200"], "--mu"),  # kappa overflows: named by the kappa range error
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, flag):
    out = tmp_path / "out"
    result = run_cli("--loss", "mixup", *args, "--out", str(out), "--quiet", cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_loss(tmp_path):
    result = run_cli("--loss", "hinge", "--out", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "--loss" in result.stderr and "mixup" in result.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="uses a file as a parent directory")
def test_unwritable_out(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("--loss", "mixup", "--C", "2", "--out", str(blocker / "sub"), "--quiet")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "--out" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_existing_nonempty_out_is_never_overwritten(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("--loss", "mixup", "--C", "2", "--out", str(out), "--quiet")
    assert result.returncode == 2 and "--out" in result.stderr
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize("loss, args, flag", [
    ("mse", ["--C", "1"], "--C"),
    ("mse", ["--lambda-W", "-1e-3"], "--lambda-W"),
    ("mse", ["--lambda-H", "-1"], "--lambda-H"),
    ("mse", ["--n", "0"], "--n"),
    ("mse", ["--bias", "sometimes"], "--bias"),
    ("mse-deep", ["--layers", "0"], "--layers"),
    ("mse-deep", ["--act", "tanh"], "--act"),
    ("mse-net", ["--inputs", "images"], "--inputs"),
    ("nonneg-lpm", ["--C", "1"], "--C"),
    ("nonneg-lpm", ["--E-W", "0"], "--E-W"),
    ("nonneg-lpm", ["--E-H", "-1"], "--E-H"),
    ("nonneg-lpm", ["--C", "4", "--d", "3"], "--d"),
    ("nonneg-ufm", ["--ls-alpha", "1"], "--ls-alpha"),
    ("nonneg-ufm", ["--lambda-H", "0"], "--lambda-H"),
    ("md", ["--noise", "1"], "--noise"),
    ("md", ["--noise", "-0.1"], "--noise"),
    ("md", ["--r", "0"], "--r"),
])
def test_bad_input_of_every_family_exits_2(tmp_path, capsys, loss, args, flag):
    """The CLI's own entry point (in-process: parsing and validation need no subprocess): one line naming the
    argument, exit 2, nothing written."""
    from ufm.solve import main

    out = tmp_path / "out"
    assert main(["--loss", loss, *args, "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0], lines
    assert list(tmp_path.iterdir()) == []
