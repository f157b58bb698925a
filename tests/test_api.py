"""The public Python API: ``ufm.run(problem) -> Report``, exported from ``ufm``, and the README's example."""

import re
from pathlib import Path

import numpy as np
import pytest

import ufm

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_as_written(capsys):
    section = README.read_text().split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "passed" in out and "PASS" in out and "FAIL" not in out
    n_lambdas = ufm.MixupProblem().n_lambdas
    assert namespace["result"].passed and namespace["features"].shape == (5 * 5 * n_lambdas, 5)


def test_run_returns_a_report_that_saves_what_the_cli_writes(tmp_path):
    report = ufm.run(ufm.MixupProblem(C=2, n_lambdas=3))
    assert isinstance(report, ufm.Report) and report.passed and report.wall_seconds > 0
    assert repr(report).startswith("Report(mixup: passed") and len(repr(report)) < 300
    assert all(isinstance(c.verdict, ufm.Verdict) for c in report.checks)
    folder = report.save(tmp_path / "run")
    assert sorted(p.name for p in folder.iterdir()) == ["features.npz", "summary.json", "table.txt"]
    np.testing.assert_array_equal(np.load(folder / "features.npz")["h"], report.arrays["h"])


def test_every_problem_type_has_a_family():
    from ufm import api, families

    assert {api.FAMILY_OF[p] for p in api.FAMILY_OF} <= set(families.FAMILIES.values())
    with pytest.raises(TypeError, match="expected one of"):
        ufm.run({"C": 3})


def test_the_memory_budget_reaches_the_solver():
    """``max_memory_bytes`` becomes the solver's budget: 1000 bytes cannot hold one subproblem's compiled programs
    (refused before solving), 1 GiB can (recorded in the report's solver options; same answer as the default)."""
    from ufm.solver import MemoryBudgetExceeded

    problem = ufm.MixupProblem(C=2, n_lambdas=3)
    with pytest.raises(MemoryBudgetExceeded, match="memory budget"):
        ufm.run(problem, max_memory_bytes=1000)
    report = ufm.run(problem, max_memory_bytes=2**30)
    assert report.passed and report.config["solver"]["max_memory_bytes"] == 2**30
    np.testing.assert_array_equal(report.arrays["h"], ufm.run(problem).arrays["h"])


def test_the_max_memory_flag_is_passed_to_the_run():
    from ufm import solve

    family, ns, _ = solve.parse(["--loss", "md", "--max-memory", "2G", "--sweep", "r"])
    assert solve.run_options(family, ns) == {"sweep_r": True, "max_memory_bytes": 2 * 2**30}
    family, ns, _ = solve.parse(["--loss", "mse"])
    assert solve.run_options(family, ns) == {"max_memory_bytes": None}
