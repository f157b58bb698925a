"""The CLI ``python -m ufm.solve``: in-process through ``ufm.solve.main(argv)`` wherever a subprocess is not the
point (parsing, validation and the solve are the same code; one process shares JAX's import and compilations),
and as a real subprocess for the end-to-end run of the module itself. Signals, broken pipes and output-file
safety are in tests/test_signals.py and tests/test_output_files.py; drawn bad inputs in
tests/test_properties_cli.py."""

import argparse
import dataclasses
import json
import os
import re
import subprocess
import sys

import fake_family
import numpy as np
import pytest
from inprocess import default_compilation_env

from ufm import families
from ufm.cli import Store
from ufm.problems import flag_name
from ufm.solve import main, parse


def solve(capsys, *args):
    """``main(args)`` in-process: (exit code, stdout, stderr)."""
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_module_end_to_end_in_a_subprocess(tmp_path):
    """The module as a user runs it (``python -m``, default --out under ./runs, XLA's default compilation, not the
    suite's faster one): exit 0, quiet, files complete."""
    result = subprocess.run(
        [sys.executable, "-m", "ufm.solve", "--loss", "mixup", "--C", "2", "--lambdas", "3", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=default_compilation_env(),
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "ALL CHECKS PASS" in result.stdout and result.stderr == ""
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith("mixup-") and sorted(p.name for p in run.iterdir()) == [
        "features.npz",
        "summary.json",
        "table.txt",
    ]
    assert json.loads((run / "summary.json").read_text())["passed"]


def test_mixup_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, stderr = solve(capsys, "--loss", "mixup", "--C", "3", "--lambdas", "5", "--out", str(out), "--quiet")
    assert code == 0, stderr
    assert "ALL CHECKS PASS" in stdout
    assert stderr == ""  # --quiet: no progress
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
    assert (out / "table.txt").read_text().strip() in stdout
    assert not [p for p in tmp_path.iterdir() if p.name != "run"]  # no staging debris
    # written atomically through private temporary folders, but delivered with the permissions of a plain write
    umask = os.umask(0)
    os.umask(umask)
    assert (out.stat().st_mode & 0o777) == 0o777 & ~umask
    assert ((out / "summary.json").stat().st_mode & 0o777) == 0o666 & ~umask


def test_default_out_is_a_new_folder_under_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        assert solve(capsys, "--loss", "mixup", "--C", "2", "--lambdas", "3", "--quiet")[0] == 0
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all(r.startswith("mixup-") for r in runs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]


def test_nested_out_is_created_at_write_time(tmp_path, capsys):
    out = tmp_path / "a" / "b" / "run"
    assert solve(capsys, "--loss", "mixup", "--C", "2", "--lambdas", "3", "--quiet", "--out", str(out))[0] == 0
    assert (out / "summary.json").is_file() and [p.name for p in tmp_path.iterdir()] == ["a"]
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b"]


def test_progress_is_shown_by_default(tmp_path, capsys):
    code, _, stderr = solve(capsys, "--loss", "mixup", "--C", "2", "--lambdas", "3", "--out", str(tmp_path / "r"))
    assert code == 0 and "rel grad" in stderr


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--C", "1"], "--C"),
        (["--C", "5", "--d", "3"], "--d"),
        (["--m", "0"], "--m"),
        (["--m", "-2"], "--m"),
        (["--mu", "0"], "--mu"),
        (["--lambdas", "1"], "--lambdas"),
        (["--C", "three"], "--C"),
        (["--seed", "-1"], "--seed"),
        (["--m", "1e200"], "--m"),  # outside the accepted range of m (the tolerances hold for m in [1e-8, 100])
        (["--max-memory", "0"], "--max-memory"),
        (["--max-memory", "4X"], "--max-memory"),
        (["--max-memory", "nan"], "--max-memory"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, args, flag):
    out = tmp_path / "out"
    code, _, stderr = solve(capsys, "--loss", "mixup", *args, "--out", str(out), "--quiet")
    assert code == 2
    assert flag in one_line(stderr)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "loss, args, message",
    [
        ("mixup", ["--mu", "-1e-3"], "argument --mu: must be a finite number > 0, got -0.001"),
        ("mixup", ["--mu", "-1E+2"], "argument --mu: must be a finite number > 0, got -100.0"),
        ("mixup", ["--m", "-.5e1"], "argument --m: must be a finite number > 0, got -5.0"),
        ("mixup", ["--m", "-inf"], "argument --m: must be a finite number > 0, got -inf"),
        ("mixup", ["--mu=-1e-3"], "argument --mu: must be a finite number > 0, got -0.001"),
        ("mixup", ["--seed", "-1"], "argument --seed: must be an integer >= 0, got -1"),
        ("mse", ["--lambda-W", "-1e-3"], "argument --lambda-W: must be a finite number > 0, got -0.001"),
        ("mse", ["--bias", "-1e-3"], "argument --bias:"),
        ("md", ["--noise", "-1e-1"], "argument --noise: must lie in [0, 1), got -0.1"),
    ],
)
def test_negative_numbers_are_values_and_the_range_error_names_the_flag(tmp_path, capsys, loss, args, message):
    """Defect: argparse read '-1e-3' as a flag ('expected one argument'); now the problem's range check speaks."""
    code, _, stderr = solve(capsys, "--loss", loss, *args, "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and message in one_line(stderr) and "expected one argument" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_and_missing_loss(tmp_path, capsys):
    for args in (["--loss", "hinge"], ["--loss", "hinge", "--help"], ["--C", "3"]):
        code, stdout, stderr = solve(capsys, *args, "--out", str(tmp_path / "o"))
        line = one_line(stderr)
        assert code == 2 and "--loss" in line and "mixup" in line and stdout == ""
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_without_loss_lists_families_and_common_flags(capsys, flag):
    code, stdout, stderr = solve(capsys, flag)
    assert code == 0 and stderr == ""
    for name in families.FAMILIES:
        assert f"\n  {name} " in stdout
    for common in ("--loss", "--out", "--quiet", "--max-memory", "--cache-dir", "--no-cache", "exit codes"):
        assert common in stdout


@pytest.mark.parametrize("loss", list(families.FAMILIES))
def test_help_of_every_family_lists_its_flags(capsys, loss):
    own = argparse.ArgumentParser(add_help=False)
    families.load(loss).add_arguments(own)
    deprecated = {s for action in own._actions for s in getattr(action, "deprecated", ())}
    flags = [s for action in own._actions for s in action.option_strings if s not in deprecated]
    assert flags
    for args in (["--loss", loss, "--help"], ["--help", "--loss", loss], ["--loss", loss, "-h", "--C", "bogus"]):
        code, stdout, stderr = solve(capsys, *args)
        assert code == 0 and stderr == "" and stdout.startswith("usage: python -m ufm.solve")
        for f in flags + ["--out", "--max-memory"]:
            assert f in stdout, (loss, f)
        for f in deprecated:  # accepted, not advertised
            assert not re.search(rf"{re.escape(f)}\b(?!-)", stdout), (loss, f)


@pytest.mark.parametrize("loss", list(families.FAMILIES))
def test_flags_are_generated_from_the_problem_fields(loss):
    """One flag per problem field (the variant's own fields aside), named by the field, its default in the help."""
    family = families.load(loss)
    problem_class = type(parse(["--loss", loss])[2])
    own = argparse.ArgumentParser(add_help=False)
    family.add_arguments(own)
    generated = {action.dest: action for action in own._actions if isinstance(action, Store)}
    fields = {field.name for field in dataclasses.fields(problem_class)}
    assert set(generated) <= fields and fields - set(generated) <= {"model"}
    for name, action in generated.items():
        assert action.option_strings[0] == family.FLAGS[name] == flag_name(problem_class.__dataclass_fields__[name])
        assert "default " in action.help, (loss, name)


def test_deprecated_spellings_are_read_and_warned_once_valid(capsys):
    problem = parse(["--loss", "mixup-joint", "--lam-H", "0.07", "--lam-W=0.06"])[2]
    assert (problem.mu, problem.lambda_W) == (0.07, 0.06)
    err = capsys.readouterr().err.splitlines()
    assert err == ["--lam-H is deprecated; use --mu", "--lam-W is deprecated; use --lambda-W"]
    problem = parse(["--loss", "mixup-deep", "--lambdas", "4", "--mu-v", "0.02"])[2]
    assert (problem.n_nodes, problem.lambda_W) == (4, 0.02)
    assert parse(["--loss", "mse-deep", "--act", "relu"])[2].activation == "relu"


@pytest.mark.skipif(os.name != "posix", reason="uses a file as a parent directory")
def test_unwritable_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = solve(capsys, "--loss", "mixup", "--C", "2", "--out", str(blocker / "sub"), "--quiet")
    assert code == 2 and "--out" in one_line(stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_existing_nonempty_out_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, stderr = solve(capsys, "--loss", "mixup", "--C", "2", "--out", str(out), "--quiet")
    assert code == 2 and "--out" in one_line(stderr)
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_existing_empty_out_is_used(tmp_path, capsys):
    out = tmp_path / "empty"
    out.mkdir()
    assert solve(capsys, "--loss", "mixup", "--C", "2", "--lambdas", "3", "--out", str(out), "--quiet")[0] == 0
    assert (out / "summary.json").is_file() and [p.name for p in tmp_path.iterdir()] == ["empty"]


@pytest.mark.parametrize(
    "loss, args, flag",
    [
        ("mse", ["--C", "1"], "--C"),
        ("mse", ["--lambda-W", "-1e-3"], "--lambda-W"),
        ("mse", ["--lambda-H", "-1"], "--lambda-H"),
        ("mse", ["--n", "0"], "--n"),
        ("mse", ["--bias", "sometimes"], "--bias"),
        ("mse-deep", ["--layers", "0"], "--layers"),
        ("mse-deep", ["--activation", "tanh"], "--activation"),
        ("mse-deep", ["--act", "tanh"], "--activation"),  # a deprecated spelling: named by the current one
        ("mixup-deep", ["--lambdas", "1.5"], "--nodes"),  # argparse's own error names it by the current one too
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
        ("mixup", ["--lambda-W", "1"], "--lambda-W"),  # another family's flag
    ],
)
def test_bad_input_of_every_family_exits_2(tmp_path, capsys, loss, args, flag):
    out = tmp_path / "out"
    code, _, stderr = solve(capsys, "--loss", loss, *args, "--out", str(out), "--quiet")
    assert code == 2 and flag in one_line(stderr)
    assert list(tmp_path.iterdir()) == []


# --- flags that do not apply to the chosen variant (the family's optional UNUSED_FLAGS) ---------------------------


def test_a_flag_unused_by_the_variant_is_refused_only_when_given(monkeypatch, tmp_path, capsys):
    from ufm.families import square_loss

    monkeypatch.setattr(square_loss, "UNUSED_FLAGS", {"mse-net": {"lambda_H"}, "mse": {"inputs"}}, raising=False)
    out = ["--out", str(tmp_path / "o"), "--quiet"]
    for args, flag in (
        (["--loss", "mse-net", "--lambda-H", "7"], "--lambda-H"),
        (["--loss", "mse-net", "--lambda-H=5e-3"], "--lambda-H"),  # the default value, but typed
        (["--loss", "mse-net", "--lambda-H", "-1"], "--lambda-H"),  # refused as unused, not range
        (["--loss", "mse", "--inputs", "gaussian"], "--inputs"),
    ):
        code, _, stderr = solve(capsys, *args, *out)
        line = one_line(stderr)
        assert code == 2 and f"argument {flag}: does not apply to --loss {args[1]}" in line, line
    assert list(tmp_path.iterdir()) == []
    # not given, or given to a variant that uses it: accepted (parsed and validated, not run)
    assert parse(["--loss", "mse-net", *out]) is not None
    assert parse(["--loss", "mse", "--lambda-H", "7", *out]) is not None
    assert parse(["--loss", "mse-net", "--inputs", "gaussian", *out]) is not None


@pytest.mark.parametrize(
    "loss, flag, value",
    [("mse-net", "--lambda-H", "7"), ("nonneg-lpm", "--lambda-W", "1"), ("mse", "--inputs", "gaussian")],
)
def test_reported_unused_flags_are_refused(tmp_path, capsys, loss, flag, value):
    """The cases users reported, against the families' own UNUSED_FLAGS (skipped until the family declares it)."""
    family = families.load(loss)
    dest = flag[2:].replace("-", "_")
    if dest not in getattr(family, "UNUSED_FLAGS", {}).get(loss, set()):
        pytest.skip(f"{family.__name__} does not declare {dest} unused by {loss} (yet)")
    code, _, stderr = solve(capsys, "--loss", loss, flag, value, "--out", str(tmp_path / "o"), "--quiet")
    assert code == 2 and f"argument {flag}: does not apply" in one_line(stderr)
    assert list(tmp_path.iterdir()) == []


# --- memory guard (the family's optional memory_estimate against the budget) -----------------------------------


def test_memory_guard_refuses_before_the_run(monkeypatch, tmp_path, capsys):
    import ufm.solver

    state = fake_family.install(monkeypatch, bytes_per_C=2**30)
    monkeypatch.setattr(ufm.solver, "memory_budget_bytes", lambda: 8 * 2**30)
    out = ["--out", str(tmp_path / "o"), "--quiet"]
    code, _, stderr = solve(capsys, "--loss", "fake", "--C", "12", *out)
    line = one_line(stderr)
    assert code == 2 and line.startswith(
        "ufm.solve: error: argument --C: needs about 12 GiB (estimate), more than "
        "the 8 GiB budget (half the machine's 16 GiB memory"
    ), line
    code, _, stderr = solve(capsys, "--loss", "fake", "--C", "12", "--max-memory", "4G", *out)
    assert code == 2 and "needs about 12 GiB (estimate), more than the 4 GiB budget (--max-memory)" in one_line(stderr)
    assert list(tmp_path.iterdir()) == [] and state.runs == 0
    # within the budget: parsed and validated (the run is not reached here)
    assert parse(["--loss", "fake", "--C", "8", *out]) is not None
    assert parse(["--loss", "fake", "--C", "12", "--max-memory", "12.5G", *out]) is not None
    assert parse(["--loss", "fake", "--C", "1", "--max-memory", "1073741824", *out]) is not None


def test_compiled_solver_over_budget_is_refused_and_writes_nothing(monkeypatch, tmp_path, capsys):
    """The solver's second guard (its compiled programs' accounting, read before they run) ends the command line
    like the first: exit 2, one line naming --max-memory, nothing written."""
    from ufm.solver import MemoryBudgetExceeded

    state = fake_family.install(monkeypatch)

    def over_budget():
        raise MemoryBudgetExceeded(3 * 2**30, 2**30, 1000)

    state.during = over_budget
    code, _, stderr = solve(capsys, "--loss", "fake", "--out", str(tmp_path / "o"), "--quiet")
    line = one_line(stderr)
    assert code == 2 and line.startswith(
        "ufm.solve: error: argument --max-memory: the compiled solver for one "
        "element of 1000 variables needs 3.00 GiB, more than the 1.00 GiB"
    ), line
    assert list(tmp_path.iterdir()) == []


def test_families_without_an_estimate_are_not_guarded(monkeypatch, tmp_path):
    import ufm.solver

    fake_family.install(monkeypatch)  # no memory_estimate
    monkeypatch.setattr(ufm.solver, "memory_budget_bytes", lambda: 1)
    assert parse(["--loss", "fake", "--C", "1000", "--out", str(tmp_path / "o")]) is not None


@pytest.mark.parametrize("loss", list(families.FAMILIES))
def test_real_estimates_allow_the_defaults(loss, tmp_path):
    """Every family's default configuration fits the budget of a small machine (4 GiB), estimate or not."""
    assert parse(["--loss", loss, "--max-memory", "4G", "--out", str(tmp_path / "o")]) is not None
