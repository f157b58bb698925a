"""``python -m ufm.sweep`` (in-process through tests/inprocess.py) and its library ``ufm.sweeps``: value
specifications, the results table, a sweep point equal to the single run of its problem, the square-loss threshold
rho = 1 where the closed form puts it, no recompilation across configurations of one shape, resuming after a
limit, a kill and a torn row without solving a finished point again, and bad input refused before any solve."""

import csv
import dataclasses
import json
import math
import signal
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from inprocess import assert_refused, run_main

import ufm
from ufm import driver, sweeps
from ufm.cli import Interrupted
from ufm.families import square_loss

# mse, C = 3, n = 5: rho = K sqrt(n lambda_W lambda_H) = 1 at lambda_H = 1 / (K^2 n lambda_W) = 2/9 = 0.222 for
# lambda_W = 0.1, so these three points lie at rho = 0.47, 0.95 and 1.16: W = H = 0 at the last one only.
MSE = ["--loss", "mse", "--C", "3", "--lambda-W", "0.1"]
LAMBDA_H = (0.05, 0.2, 0.3)


def rho(lambda_H: float, K: int = 3, n: int = 5, lambda_W: float = 0.1) -> float:
    return K * math.sqrt(n * lambda_W * lambda_H)


def table(folder):
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def leftovers(folder) -> list[str]:
    """Staging folders and temporary files a write cut short would leave."""
    return [p.name for p in folder.rglob("*") if ".incomplete-" in p.name or p.name.endswith(".partial")]


# ---------------------------------------------------------------------------------------------------------------
# Specifications (unit)
# ---------------------------------------------------------------------------------------------------------------


def test_lists_and_ranges_expand_to_their_values():
    assert sweeps.expand_spec("3,10") == ("3", "10")
    assert sweeps.expand_spec("0:1:11lin") == tuple(repr(float(v)) for v in np.linspace(0, 1, 11))
    log = [float(v) for v in sweeps.expand_spec("1e-4:1e-1:30log")]
    # the end points exactly as given; the ratios of neighbours equal (10^(3/29)) to rounding of np.geomspace
    assert len(log) == 30 and log[0] == 1e-4 and log[-1] == 1e-1
    np.testing.assert_allclose(np.diff(np.log10(log)), 3 / 29, rtol=1e-12)
    assert sweeps.expand_spec("2:10:5lin", integer=True) == ("2", "4", "6", "8", "10")
    assert sweeps.expand_spec("1:1000:4log", integer=True) == ("1", "10", "100", "1000")
    assert sweeps.is_spec("1,2") and sweeps.is_spec("1:2:3lin") and not sweeps.is_spec("-1e-3")


@pytest.mark.parametrize(
    "spec, integer, why",
    [
        ("1e-3:1:1log", False, "N = 1"),
        ("1:2:100001lin", False, "N = 100001"),
        ("-1:1:5log", False, "START, STOP > 0"),
        ("1e-3:1e-1:5lg", False, "is not a list"),
        ("a:1:5lin", False, "not a number"),
        ("1:inf:5lin", False, "not finite"),
        ("1:1:5lin", False, "START = STOP"),
        ("2:10:4lin", True, "non-integer"),
        ("1:3:5log", True, "non-integer"),
        ("3,,4", False, "empty value"),
        ("3,3", False, "more than once"),
    ],
)
def test_bad_specifications_say_why(spec, integer, why):
    with pytest.raises(sweeps.SpecError, match=why.replace("(", r"\(")):
        sweeps.expand_spec(spec, integer=integer)


def test_grid_is_the_product_first_axis_slowest():
    axes = [sweeps.Axis("--C", "C", "3,4", ("3", "4")), sweeps.Axis("--m", "m", "1,2,3", ("1", "2", "3"))]
    assert sweeps.grid(axes) == [("3", "1"), ("3", "2"), ("3", "3"), ("4", "1"), ("4", "2"), ("4", "3")]
    assert sweeps.grid_size(axes) == 6


def test_configurations_are_grouped_by_shape():
    problems = [ufm.MixupProblem(C=3, mu=0.1), ufm.MixupProblem(C=4), ufm.MixupProblem(C=3, mu=0.2)]
    assert sweeps.by_shape(problems) == [[0, 2], [1]]


def test_table_appends_rows_adds_columns_and_drops_a_torn_row(tmp_path):
    path = tmp_path / "results.csv"
    header = sweeps.append_row(path, None, {"index": 0, "x": 0.1, "ok": True})
    header = sweeps.append_row(path, header, {"index": 1, "x": float("nan"), "ok": False})
    first_two = path.read_text()
    header = sweeps.append_row(path, header, {"index": 2, "x": 1e-300, "y, new": "a"})  # a new column
    assert header == ["index", "x", "ok", "y, new"]
    _, rows = sweeps.read_table(path)
    assert [sweeps.as_value(r["x"]) for r in rows][::2] == [0.1, 1e-300] and math.isnan(float(rows[1]["x"]))
    assert rows[0]["y, new"] == "" and rows[2]["ok"] == "" and rows[2]["y, new"] == "a"
    assert [line + "," for line in first_two.splitlines()[1:]] == path.read_text().splitlines()[1:3]
    with open(path, "a") as f:
        f.write("3,0.5")  # a write cut short: no newline
    assert len(sweeps.read_table(path)[1]) == 3
    assert sweeps.drop_torn_tail(path) and path.read_text().endswith(",a\n") and not sweeps.drop_torn_tail(path)


def test_changes_along_an_axis():
    axes = [sweeps.Axis("--lambda-H", "lambda_H", "", ())]
    rows = [{"lambda_H": v, "zero": z} for v, z in [("0.3", "True"), ("0.1", "False"), ("0.2", "False")]]
    assert sweeps.changes(rows, axes, ["zero"]) == [
        {"column": "zero", "axis": "--lambda-H", "between": [0.2, 0.3], "from": False, "to": True, "fixed": {}}
    ]


# ---------------------------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------------------------


def _same(a, b) -> bool:
    return (a == b) or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_sweep_points_equal_single_runs_and_find_the_threshold(tmp_path):
    """With ``--batch 1``, every row's verdicts, check values and key numbers equal those of ``ufm.run`` on the
    same problem, exactly: the same compiled programs on the same inputs in one process, and a CSV cell is the
    float's repr, which reads back as the same float64. W = H = 0 exactly where the closed form's rho = K sqrt(n
    lambda_W lambda_H) >= 1."""
    out = run_main(
        "ufm.sweep",
        *MSE,
        "--lambda-H",
        ",".join(map(str, LAMBDA_H)),
        "--out",
        str(tmp_path / "s"),
        "--save-arrays",
        "--batch",
        "1",
    )
    assert out.code == 0, out.stderr
    rows = table(tmp_path / "s")
    assert [float(r["lambda_H"]) for r in rows] == list(LAMBDA_H)
    assert "numbers.zero_solution: False -> True between --lambda-H = 0.2 and 0.3" in out.stdout
    assert len([line for line in out.stderr.splitlines() if line.startswith("ufm.sweep: [")]) == 3
    for row, lambda_H in zip(rows, LAMBDA_H):
        report = ufm.run(ufm.SquareLossProblem(C=3, lambda_W=0.1, lambda_H=lambda_H))
        assert row["passed"] == str(report.passed) == "True"
        for check in report.checks:
            assert row["verdict: " + check.name] == str(check.verdict)
            assert _same(float(row["value: " + check.name]), check.value), check.name
        for key in ("objective", "eps", "closed_form.objective", "closed_form.beta"):
            assert float(row["numbers." + key]) == sweeps.flatten("", report.numbers)[key], key
        # for the one-layer UFM beta is rho (m = 2 factors, beta_c = 1): the closed form's, to rounding
        assert float(row["numbers.closed_form.beta"]) == pytest.approx(rho(lambda_H), rel=1e-14)
        assert row["numbers.zero_solution"] == str(rho(lambda_H) >= 1)
        saved = json.loads((tmp_path / "s" / "points" / row["index"] / "summary.json").read_text())
        assert [c["verdict"] for c in saved["checks"]] == [str(c.verdict) for c in report.checks]
    # one shape: the configurations after the first reuse its compiled programs (count of XLA compilations)
    assert [int(r["compilations"]) for r in rows[1:]] == [0, 0]
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["finished"] == 3 and summary["failed"] == []
    assert leftovers(tmp_path / "s") == []


def test_joint_sweep_points_equal_single_runs_to_rounding(tmp_path):
    """``--batch 32``: the three configurations in one joint solve. Every verdict as ``ufm.run``'s; the objective and
    the closed form's numbers to 1e-13 relative (a joint solve differs from one alone in the last bits only: XLA
    blocks batched products by batch size; 5.6e-16 is the largest difference measured over a 40-point sweep)."""
    argv = ["--lambda-H", ",".join(map(str, LAMBDA_H)), "--out", str(tmp_path / "s"), "--batch", "32"]
    out = run_main("ufm.sweep", *MSE, *argv)
    assert out.code == 0, out.stderr
    rows = table(tmp_path / "s")
    assert [int(r["convergence.problems_in_solve"]) for r in rows] == [3, 3, 3]
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["batch"] == 32
    for row, lambda_H in zip(rows, LAMBDA_H):
        report = ufm.run(ufm.SquareLossProblem(C=3, lambda_W=0.1, lambda_H=lambda_H))
        assert [row["verdict: " + c.name] for c in report.checks] == [str(c.verdict) for c in report.checks]
        for key in ("objective", "closed_form.objective", "closed_form.beta"):
            single = sweeps.flatten("", report.numbers)[key]
            assert float(row["numbers." + key]) == pytest.approx(single, rel=1e-13), key


def _counting_runs(monkeypatch, fail_at=None):
    """Record the lambda_H of every configuration solved, alone (``run``) or jointly (``run_batch``); raise
    SIGINT's Interrupted when configuration number ``fail_at`` is about to be solved (its whole joint solve)."""
    calls, run, run_batch = [], square_loss.run, driver.run_batch

    def count(problems):
        for problem in problems:
            if len(calls) == fail_at:
                raise Interrupted(signal.SIGINT)
            calls.append(problem.lambda_H)

    def counted(problem, **kwargs):
        count([problem])
        return run(problem, **kwargs)

    def counted_batch(family, problems, **kwargs):
        count(problems)
        return run_batch(family, problems, **kwargs)

    monkeypatch.setattr(square_loss, "run", counted)
    monkeypatch.setattr(driver, "run_batch", counted_batch)
    return calls


def test_resume_never_solves_a_finished_point(tmp_path, monkeypatch):
    folder = tmp_path / "s"
    # one joint batch of four, cut by --limit 2: the first two configurations, then the other two
    argv = [*MSE, "--lambda-H", "0.05:0.3:4lin", "--batch", "4", "--out", str(folder), "--quiet"]
    calls = _counting_runs(monkeypatch)
    out = run_main("ufm.sweep", *argv, "--limit", "2")
    assert out.code == 0 and "2 configurations left" in out.stdout and len(calls) == 2
    assert json.loads((folder / "summary.json").read_text())["status"] == "incomplete"
    before = table(folder)
    out = run_main("ufm.sweep", *argv)
    assert out.code == 0 and "(2 in this run" in out.stdout, out.stdout
    assert calls == [0.05, 0.05 + 0.25 / 3, 0.05 + 0.5 / 3, 0.3]  # each configuration once
    # the first rows unchanged (the zero solution at 0.3 adds columns: the table is rewritten with them, empty)
    assert [{k: r[k] for k in before[0]} for r in table(folder)[:2]] == before
    assert [int(r["index"]) for r in table(folder)] == [0, 1, 2, 3]
    out = run_main("ufm.sweep", *argv)  # finished: nothing left to solve
    assert out.code == 0 and "(0 in this run" in out.stdout and len(calls) == 4


def test_killed_sweep_keeps_finished_rows_and_resumes(tmp_path, monkeypatch):
    folder = tmp_path / "s"
    # joint solves of two: the first two configurations, then the third, interrupted
    argv = [*MSE, "--lambda-H", ",".join(map(str, LAMBDA_H)), "--out", str(folder), "--save-arrays", "--quiet"]
    argv += ["--batch", "2"]
    calls = _counting_runs(monkeypatch, fail_at=2)
    out = run_main("ufm.sweep", *argv)
    assert out.code == 130 and out.error_lines == [
        (
            f"ufm.sweep: interrupted (SIGINT); 2 of 3 configurations finished in {folder}; the same command continues "
            "the sweep"
        )
    ]
    assert len(table(folder)) == 2 and sorted(p.name for p in (folder / "points").iterdir()) == ["0", "1"]
    assert leftovers(folder) == []
    # a second kill, harder: the last row written in part, and its arrays already in place
    text = (folder / "results.csv").read_text()
    (folder / "results.csv").write_text(text[: text.rstrip("\n").rfind("\n") + 1] + "1,3,5,1,u")
    monkeypatch.undo()
    calls = _counting_runs(monkeypatch)
    out = run_main("ufm.sweep", *argv)
    assert out.code == 0, out.stderr
    assert calls == [0.2, 0.3]  # the torn row's configuration again, then the one never started
    assert [int(r["index"]) for r in table(folder)] == [0, 1, 2]
    assert sorted(p.name for p in (folder / "points").iterdir()) == ["0", "1", "2"] and leftovers(folder) == []


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--lambda-H", "1e-3:1e-1:1log"], "--lambda-H"),
        (["--lambda-H", "-1:1:5log"], "--lambda-H"),
        (["--lambda-H", "1e-3:1e-1:5lg"], "--lambda-H"),
        (["--C", "2:10:4lin"], "--C"),
        (["--C", "3,,4"], "--C"),
        (["--lambda-H", "1e-12,1e-3"], "--lambda-H"),  # the family's own range check, as ufm.solve words it
        (["--C", "3,1"], "--C"),
        (["--layers", "1,2"], "--layers"),  # does not apply to mse
        (["--C", "3,4", "--C", "5"], "--C"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_bad_input_is_refused_before_any_solve(tmp_path, monkeypatch, flags, named):
    calls = _counting_runs(monkeypatch)
    assert_refused(run_main("ufm.sweep", "--loss", "mse", *flags, "--out", str(tmp_path / "s")), named)
    assert calls == [] and list(tmp_path.iterdir()) == []


def test_one_family_per_sweep(tmp_path):
    assert_refused(run_main("ufm.sweep", "--loss", "mse,ce", "--C", "3", "--out", str(tmp_path / "s")), "--loss")
    assert list(tmp_path.iterdir()) == []


def test_out_is_required_and_never_taken_from_another_command(tmp_path, monkeypatch):
    calls = _counting_runs(monkeypatch)
    assert_refused(run_main("ufm.sweep", *MSE, "--lambda-H", "0.05,0.1"), "--out")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert_refused(run_main("ufm.sweep", *MSE, "--lambda-H", "0.05,0.1", "--out", str(other)), "--out")
    folder = tmp_path / "s"
    assert run_main("ufm.sweep", *MSE, "--lambda-H", "0.05,0.1", "--out", str(folder), "--quiet").code == 0
    before = sorted(p.name for p in folder.iterdir())
    outcome = run_main("ufm.sweep", *MSE, "--lambda-H", "0.05,0.2", "--out", str(folder))
    assert_refused(outcome, "--out")
    assert "another command" in outcome.stderr and len(calls) == 2
    assert sorted(p.name for p in folder.iterdir()) == before and (other / "notes.txt").read_text() == "mine"


def test_a_failing_configuration_exits_1_and_is_named(tmp_path, monkeypatch):
    """A configuration whose report fails (a forced failing check: the exit code must follow the rows' verdicts)."""
    run_batch = driver.run_batch

    def failing_at_02(family, problems, **kwargs):
        reports = run_batch(family, problems, **kwargs)
        forced = lambda r: dataclasses.replace(r, checks=[*r.checks, ufm.Check("forced failure", 1.0, 0.0)])
        return [forced(r) if p.lambda_H == 0.2 else r for p, r in zip(problems, reports)]

    monkeypatch.setattr(driver, "run_batch", failing_at_02)  # the two configurations: one joint solve
    argv = [*MSE, "--lambda-H", "0.05,0.2", "--batch", "2", "--out", str(tmp_path / "s"), "--quiet"]
    outcome = run_main("ufm.sweep", *argv)
    assert outcome.code == 1 and outcome.error_lines[-1].startswith("ufm.sweep: FAILED at configuration(s) 1 ")
    rows = table(tmp_path / "s")
    assert [r["passed"] for r in rows] == ["True", "False"] and rows[1]["verdict: forced failure"] == "FAIL"
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["failed"] == [1]


# ---------------------------------------------------------------------------------------------------------------
# Several processes
# ---------------------------------------------------------------------------------------------------------------

# columns that say how long or how it was solved, not what: they differ between runs (a process's share of the
# configurations is solved in joint solves of fewer problems; the values themselves must agree exactly)
TIMING = ("seconds", "compilations", "problems_in_solve")


def _what(rows):
    return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in rows]


def test_process_share_merge_and_launcher_environment():
    singles = [[i] for i in range(7)]
    assert sweeps.process_share(singles, 3, 1) == [1, 4]
    assert sorted(sum((sweeps.process_share(singles, 3, i) for i in range(3)), [])) == list(range(7))
    # whole joint batches: each shape group cut into runs of at most --batch, fixed by the grid alone
    problems = [ufm.SquareLossProblem(C=c, lambda_H=h) for c in (3, 4) for h in (0.1, 0.2, 0.3)]
    assert sweeps.joint_batches(problems, 2) == [[0, 1], [2], [3, 4], [5]]
    assert sweeps.process_share(sweeps.joint_batches(problems, 2), 2, 1) == [2, 5]
    header, rows = sweeps.merge_tables(
        [(["index", "a"], [{"index": "2", "a": "x"}]), (["index", "b"], [{"index": "0", "b": "y"}])]
    )
    assert header == ["index", "a", "b"] and rows == [
        {"index": "0", "a": "", "b": "y"},
        {"index": "2", "a": "x", "b": ""},
    ]
    with pytest.raises(ValueError, match="two processes"):
        sweeps.merge_tables([(["index"], [{"index": "1"}]), (["index"], [{"index": "1"}])])
    assert sweeps.launcher_process({"SLURM_NTASKS": "4", "SLURM_PROCID": "3"}) == (4, 3)
    assert sweeps.launcher_process(
        {"UFM_PROCESS_COUNT": "2", "UFM_PROCESS_INDEX": "1", "SLURM_NTASKS": "4", "SLURM_PROCID": "3"}
    ) == (2, 1)
    assert sweeps.launcher_process({}) is None


@pytest.mark.parametrize(
    "flags, named",
    [
        (["--processes", "2"], "--process-index"),
        (["--processes", "2", "--process-index", "2"], "--process-index"),
        (["--processes", "0", "--process-index", "0"], "--processes"),
        (["--process-index", "1"], "--process-index"),
        (["--local-processes", "2", "--processes", "2", "--process-index", "0"], "--local-processes"),
        (["--local-processes", "0"], "--local-processes"),
    ],
)
def test_bad_process_flags_are_refused(tmp_path, flags, named):
    assert_refused(run_main("ufm.sweep", *MSE, "--lambda-H", "0.05,0.3", "--out", str(tmp_path / "s"), *flags), named)
    assert not (tmp_path / "s").exists()


def test_processes_merge_into_the_table_of_one_process(tmp_path, monkeypatch):
    """Two processes (run here one after the other, as a launcher may schedule them) each solve their share into
    DIR/processes/<index>; each merges on finishing, and after the last the table equals one process's, row for
    row (timing columns aside), value for value: both solve the joint batches of one process ([0, 1] and [2] with
    --batch 2). Either process alone leaves an incomplete merged table with its own rows."""
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    argv = [*MSE, "--lambda-H", "0.05:0.3:3lin", "--batch", "2", "--quiet"]
    assert run_main("ufm.sweep", *argv, "--out", str(tmp_path / "one")).code == 0
    folder = tmp_path / "two"
    first = run_main("ufm.sweep", *argv, "--out", str(folder), "--processes", "2", "--process-index", "1")
    assert first.code == 0, first.stderr
    assert [r["index"] for r in table(folder)] == ["2"]
    assert json.loads((folder / "summary.json").read_text())["status"] == "incomplete"
    second = run_main("ufm.sweep", *argv, "--out", str(folder), "--processes", "2", "--process-index", "0")
    assert second.code == 0, second.stderr
    assert _what(table(folder)) == _what(table(tmp_path / "one"))
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["processes"]["count"] == 2
    # the same command again: both shares are finished, nothing is solved, the table stays
    calls = _counting_runs(monkeypatch)
    assert run_main("ufm.sweep", *argv, "--out", str(folder), "--processes", "2", "--process-index", "0").code == 0
    assert calls == [] and _what(table(folder)) == _what(table(tmp_path / "one"))


def test_two_local_processes_give_the_table_of_one(tmp_path):
    """``--local-processes 2``: two processes of this machine, started by the sweep itself, give the table of one
    (the same command in this process)."""
    argv = [*MSE, "--lambda-H", "0.05,0.3", "--batch", "1", "--quiet"]  # one configuration a process
    assert run_main("ufm.sweep", *argv, "--out", str(tmp_path / "one")).code == 0
    result = subprocess.run(
        [sys.executable, "-m", "ufm.sweep", *argv, "--out", str(tmp_path / "two"), "--local-processes", "2"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert _what(table(tmp_path / "two")) == _what(table(tmp_path / "one"))
    assert sorted(p.name for p in (tmp_path / "two" / "processes").iterdir()) == ["0", "1"]


@given(
    start=st.floats(-1e12, 1e12, allow_nan=False),
    stop=st.floats(-1e12, 1e12, allow_nan=False),
    count=st.sampled_from([2, 3, 4, 7, 50, sweeps.MAX_POINTS]),
    log=st.booleans(),
)
def test_ranges_keep_their_end_points_count_and_order_or_say_why(start, stop, count, log):
    """Over the whole accepted syntax (N from its minimum 2 to MAX_POINTS, end points of any sign and size): a
    range gives exactly N distinct values, monotone, with the end points exactly as written; or a SpecError (equal
    ends, a log range through 0, values that repeat in float64), never another exception."""
    spec = f"{start!r}:{stop!r}:{count}{'log' if log else 'lin'}"
    try:
        values = [float(v) for v in sweeps.expand_spec(spec)]
    except sweeps.SpecError as err:
        if start == stop:
            assert "START = STOP" in str(err)
        elif log and not (start > 0 and stop > 0):
            assert "log range needs START, STOP > 0" in str(err)
        else:  # N values that float64 cannot keep apart (a range narrow for its size)
            assert "more than once" in str(err)
        return
    assert len(values) == count == len(set(values))
    assert values[0] == start and values[-1] == stop
    steps = np.diff(values)
    assert np.all(steps > 0) if stop > start else np.all(steps < 0)


def test_a_top_folder_made_by_a_sibling_process_meanwhile_is_accepted(tmp_path, monkeypatch):
    """Processes of one sweep check its folder concurrently: one may create DIR/processes between another's
    "absent?" test and its check of where DIR could be created. That is the sweep's own folder, not a refusal
    (seen: "--out: DIR exists and is not empty" from the second of two local processes)."""
    from ufm import sweep

    top, check = tmp_path / "two", sweep._inspect_out

    def sibling_first(out, identity, size):
        (top / sweep.PROCESSES / "0").mkdir(parents=True, exist_ok=True)
        return check(out, identity, size)

    monkeypatch.setattr(sweep, "_inspect_out", sibling_first)
    sweep._inspect_top(top, ["--loss", "mse"])  # accepted: it holds only the processes' folders
    (top / "stray.txt").write_text("")
    with pytest.raises(sweep.UsageError, match="not the folder of a several-process sweep"):
        sweep._inspect_top(top, ["--loss", "mse"])


@given(
    shapes=st.lists(st.integers(0, 3), min_size=1, max_size=200),
    size=st.integers(1, 64),
    count=st.integers(1, 9),
)
def test_joint_batches_and_process_shares_partition_the_grid(shapes, size, count):
    """Over any grid of shape groups, any --batch (from its minimum 1) and any process count: the joint batches
    hold every configuration once, each batch within one shape group and at most ``size`` long, in index order
    within its group; the processes' shares of whole batches partition the configurations."""
    problems = [ufm.SquareLossProblem(C=3 + shape, lambda_H=0.01 * (i + 1)) for i, shape in enumerate(shapes)]
    batches = sweeps.joint_batches(problems, size)
    assert sorted(i for b in batches for i in b) == list(range(len(problems)))
    for batch in batches:
        assert 1 <= len(batch) <= size and len({shapes[i] for i in batch}) == 1 and batch == sorted(batch)
    shares = [sweeps.process_share(batches, count, k) for k in range(count)]
    assert sorted(i for share in shares for i in share) == list(range(len(problems)))
    assert all(set(share) == {i for b in batches[k::count] for i in b} for k, share in enumerate(shares))
