"""The ``ufm`` console script (``ufm solve|certify|figures``, ``--version``, ``--help``), also ``python -m ufm``."""

import os
import shutil
import subprocess
import sys

import pytest
from inprocess import assert_refused, run_main

import ufm


def test_version_and_help_in_process():
    out = run_main("ufm.__main__", "--version")
    assert out.code == 0 and out.stdout.strip() == f"ufm {ufm.__version__}"
    out = run_main("ufm.__main__", "--help")
    assert out.code == 0 and all(f"  {c} " in out.stdout for c in ("solve", "certify", "figures"))


@pytest.mark.parametrize("argv", [[], ["bogus"]])
def test_missing_or_unknown_command_is_refused(argv):
    assert_refused(run_main("ufm.__main__", *argv), "ufm: error:")


def test_solve_is_the_solve_command_line(tmp_path):
    out = run_main(
        "ufm.__main__",
        "solve",
        "--loss",
        "mixup",
        "--C",
        "2",
        "--lambdas",
        "3",
        "--quiet",
        "--no-cache",
        "--out",
        str(tmp_path / "run"),
    )
    assert out.code == 0 and "ALL CHECKS PASS" in out.stdout and (tmp_path / "run" / "summary.json").exists()


def test_installed_script_and_module_forms():
    """The console script the install creates, and ``python -m ufm``; ``certify`` hands over to proofs_check."""
    script = shutil.which("ufm") or os.path.join(os.path.dirname(sys.executable), "ufm")
    assert os.path.exists(script), "the install did not create the ufm console script"
    done = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == f"ufm {ufm.__version__}"
    done = subprocess.run(
        [sys.executable, "-m", "ufm", "certify", "nosuchfamily"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "FAMILY" in done.stderr and len(done.stderr.strip().splitlines()) == 1
