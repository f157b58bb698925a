"""Output safety of the three command lines: results go only to regular files and folders the run creates; a link,
a device node or any other non-regular file is never replaced; a non-empty --out is never touched; --out is
checked before anything is computed and nothing is created before the results are written; a target taken during
the run makes the run exit 3 with one line, leaving nothing behind. In-process (``main(argv)``), with the work
between validation and writing replaced where the point is what happens around it."""

import json
import os
import stat
import sys
import types
from pathlib import Path

import fake_family
import pytest

from ufm import proofs_check
from ufm.checks import Check
from ufm.proofs_check.__main__ import main as proofs_main
from ufm.proofs_check.certificate import Certificate
from ufm.report import OutputDir, OutputError, atomic_write
from ufm.solve import main as solve_main

FAKE = ["--loss", "fake", "--quiet"]  # tests/fake_family.py: the command line around an instant run


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- OutputDir ----------------------------------------------------------------------------------------------------


def test_opening_creates_nothing_and_the_first_write_one_staging_folder(tmp_path):
    out = OutputDir(tmp_path / "a" / "b" / "run")
    assert tree(tmp_path) == []
    out.write_text("x.txt", "1")
    (staging,) = tmp_path.iterdir()  # ONE folder, at the highest level the run creates, named for what it is
    assert staging.name.startswith(".a.incomplete-") and tree(staging) == ["b", "b/run", "b/run/x.txt"]
    assert out.commit() == tmp_path / "a" / "b" / "run"
    assert tree(tmp_path) == ["a", "a/b", "a/b/run", "a/b/run/x.txt"]


def test_discard_removes_everything_the_run_created(tmp_path):
    out = OutputDir(tmp_path / "a" / "run")
    out.write_text("x.txt", "1")
    out.discard()
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.symlink_to(p.parent / "elsewhere", target_is_directory=True), "symbolic link"),
        (lambda p: p.write_text("mine"), "not a folder"),
        (lambda p: (p.mkdir(), (p / "keep").write_text("mine")), "not empty"),
    ],
)
def test_refused_targets(tmp_path, make, message):
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "run"
    make(target)
    before = tree(tmp_path)
    with pytest.raises(OutputError, match=message):
        OutputDir(target)
    assert tree(tmp_path) == before


def test_a_symlink_to_an_empty_folder_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    with pytest.raises(OutputError, match="symbolic link"):
        OutputDir(tmp_path / "link")
    with pytest.raises(OutputError, match="symbolic link"):
        OutputDir(tmp_path / "link", merge=True)


def test_a_target_filled_during_the_run_is_not_touched(tmp_path):
    target = tmp_path / "run"
    out = OutputDir(target)
    out.write_text("summary.json", "{}")
    target.mkdir()
    (target / "theirs.txt").write_text("theirs")
    with pytest.raises(OSError):
        out.commit()
    out.discard()
    assert tree(tmp_path) == ["run", "run/theirs.txt"] and (target / "theirs.txt").read_text() == "theirs"


def test_a_target_replaced_by_a_link_during_the_run_is_not_touched(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = OutputDir(tmp_path / "run")
    out.write_text("summary.json", "{}")
    (tmp_path / "run").symlink_to(elsewhere)
    with pytest.raises(OSError):
        out.commit()
    out.discard()
    assert (tmp_path / "run").is_symlink() and tree(elsewhere) == [] and tree(tmp_path) == ["elsewhere", "run"]


def test_an_ancestor_created_meanwhile_by_another_run(tmp_path):
    """Two runs under a new runs/: the second finds runs/ taken at commit and goes below it."""
    out = OutputDir(tmp_path / "runs" / "mine")
    out.write_text("x.txt", "1")
    (tmp_path / "runs" / "other").mkdir(parents=True)
    (tmp_path / "runs" / "other" / "y.txt").write_text("2")
    out.commit()
    assert tree(tmp_path) == ["runs", "runs/mine", "runs/mine/x.txt", "runs/other", "runs/other/y.txt"]


def test_merge_replaces_regular_files_only(tmp_path):
    folder = tmp_path / "figures"
    folder.mkdir()
    (folder / "a.png").write_text("old")
    (folder / "keep.png").write_text("untouched")
    (tmp_path / "victim").write_text("victim")
    (folder / "link.png").symlink_to(tmp_path / "victim")
    with pytest.raises(OutputError, match="symbolic link"):
        OutputDir(folder, merge=True, replaces=["a.png", "link.png"])
    out = OutputDir(folder, merge=True, replaces=["a.png", "b.png"])
    out.write_text("a.png", "new")
    out.write_text("b.png", "new")
    assert len([p for p in folder.iterdir() if p.name.startswith(".incomplete-")]) == 1
    out.commit()
    assert (folder / "a.png").read_text() == "new" and (folder / "b.png").read_text() == "new"
    assert (folder / "keep.png").read_text() == "untouched" and (tmp_path / "victim").read_text() == "victim"
    assert sorted(p.name for p in folder.iterdir()) == ["a.png", "b.png", "keep.png", "link.png"]
    # a link that appeared during the run: the commit refuses before moving anything
    out = OutputDir(folder, merge=True, replaces=["c.png"])
    out.write_text("a.png", "newer")
    out.write_text("c.png", "new")
    (folder / "c.png").symlink_to(tmp_path / "victim")
    with pytest.raises(OutputError):
        out.commit()
    out.discard()
    assert (folder / "a.png").read_text() == "new" and (tmp_path / "victim").read_text() == "victim"
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("kind", ["symlink", "device", "folder"])
def test_atomic_write_replaces_regular_files_only(tmp_path, kind):
    path = tmp_path / "certificates.json"
    if kind == "symlink":
        (tmp_path / "victim").write_text("victim")
        path.symlink_to(tmp_path / "victim")
    elif kind == "device":
        path = Path(os.devnull)
    else:
        path.mkdir()
    before = os.lstat(path)
    with pytest.raises(OutputError):
        atomic_write(path, lambda tmp: Path(tmp).write_text("x"))
    after = os.lstat(path)
    assert (before.st_mode, before.st_ino) == (after.st_mode, after.st_ino)
    if kind == "symlink":
        assert (tmp_path / "victim").read_text() == "victim"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_atomic_write_replaces_a_regular_file(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("old")
    atomic_write(path, lambda tmp: Path(tmp).write_text("new"))
    assert path.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["c.json"]


# --- ufm.solve ----------------------------------------------------------------------------------------------------


@pytest.fixture
def fake(monkeypatch):
    return fake_family.install(monkeypatch)


def test_solve_refuses_links_and_devices_as_out(tmp_path, capsys, fake):
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    for out in (tmp_path / "link", os.devnull):
        assert solve_main([*FAKE, "--out", str(out)]) == 2
        assert "--out" in one_line(capsys.readouterr().err)
    assert fake.runs == 0
    assert stat.S_ISCHR(os.lstat(os.devnull).st_mode) and tree(tmp_path) == ["empty", "link"]


def test_solve_unwritable_out_is_refused_before_the_run(tmp_path, monkeypatch, capsys, fake):
    """As root every folder is writable to os.access (except on a read-only file system), so the test makes
    os.access say what it says to a user without write permission."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real_access(p, mode))
    assert solve_main([*FAKE, "--out", str(tmp_path / "run")]) == 2
    assert "is not writable" in one_line(capsys.readouterr().err) and tree(tmp_path) == [] and fake.runs == 0


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_solve_read_only_folder(tmp_path, capsys, fake):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert solve_main([*FAKE, "--out", str(folder / "run")]) == 2
    finally:
        folder.chmod(0o755)
    assert fake.runs == 0 and tree(folder) == []


@pytest.mark.parametrize("taken_by", ["files", "link"])
def test_solve_out_taken_during_the_run_exits_3(tmp_path, capsys, fake, taken_by):
    target = tmp_path / "run"
    (tmp_path / "elsewhere").mkdir()

    def take():
        if taken_by == "files":
            target.mkdir()
            (target / "theirs.txt").write_text("theirs")
        else:
            target.symlink_to(tmp_path / "elsewhere")

    fake.during = take
    assert solve_main([*FAKE, "--out", str(target)]) == 3
    captured = capsys.readouterr()
    assert "ALL CHECKS PASS" in captured.out  # the verdict was printed; only the writing failed
    assert "results not written" in one_line(captured.err)
    expected = ["elsewhere", "run", "run/theirs.txt"] if taken_by == "files" else ["elsewhere", "run"]
    assert tree(tmp_path) == expected


def test_solve_creates_its_staging_folder_only_when_writing(tmp_path, monkeypatch, capsys, fake):
    """During the solve nothing exists; while writing, exactly one folder named incomplete (what SIGKILL leaves)."""
    import ufm.report

    seen = {}
    fake.during = lambda: seen.setdefault("during run", tree(tmp_path))
    real = ufm.report.OutputDir.write_npz

    def write_npz(self, name, arrays):
        seen["while writing"] = [p.name for p in tmp_path.iterdir()]
        return real(self, name, arrays)

    monkeypatch.setattr(ufm.report.OutputDir, "write_npz", write_npz)
    assert solve_main([*FAKE, "--out", str(tmp_path / "runs" / "run")]) == 0
    assert seen["during run"] == []
    (staging,) = seen["while writing"]
    assert staging.startswith(".runs.incomplete-")
    assert tree(tmp_path) == [
        "runs",
        "runs/run",
        "runs/run/features.npz",
        "runs/run/summary.json",
        "runs/run/table.txt",
    ]
    capsys.readouterr()


@pytest.mark.parametrize("passed", [True, False])
def test_solve_broken_stdout_still_writes_and_exits_with_the_verdict(tmp_path, monkeypatch, capsys, passed):
    fake_family.install(monkeypatch, passed=passed)

    class Gone:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stdout", Gone())
    assert solve_main([*FAKE, "--out", str(tmp_path / "run")]) == (0 if passed else 1)
    lines = capsys.readouterr().err.strip().splitlines()
    assert "stdout was closed" in lines[0] and str(tmp_path / "run") in lines[0]
    assert len(lines) == 1 if passed else lines[1] == "ufm.solve: FAILED: fake residual"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["passed"] == passed


# --- proofs_check -------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_certificates(monkeypatch):
    """A proofs_check family of one cheap certificate; ``calls`` counts its runs, ``during`` runs inside it."""
    family = types.ModuleType("proofs_check_fake_out")
    family.FAMILY = "fake"
    state = types.SimpleNamespace(calls=0, during=lambda: None)

    def certify():
        state.calls += 1
        state.during()
        return Certificate("fake", "planted", "test", "1 = 1", "evaluation", [Check("|1 - 1|", 0.0, 1e-14)], [{"C": 3}])

    family.CERTIFICATES = [certify]
    monkeypatch.setitem(sys.modules, "proofs_check_fake_out", family)
    monkeypatch.setitem(proofs_check.FAMILIES, "fake", "proofs_check_fake_out")
    return state


def test_proofs_check_refuses_links_and_devices_before_running(tmp_path, capsys, fake_certificates):
    (tmp_path / "victim").write_text("victim")
    (tmp_path / "link.json").symlink_to(tmp_path / "victim")
    (tmp_path / "dirlink").symlink_to(tmp_path)
    (tmp_path / "dangling.json").symlink_to(tmp_path / "nothing")
    for out in ("link.json", "dirlink", "dangling.json", os.devnull):
        assert proofs_main(["fake", "--out", str(tmp_path / out), "--quiet"]) == 2
        assert "--out" in one_line(capsys.readouterr().err)
    assert fake_certificates.calls == 0
    assert (tmp_path / "victim").read_text() == "victim" and stat.S_ISCHR(os.lstat(os.devnull).st_mode)
    assert tree(tmp_path) == ["dangling.json", "dirlink", "link.json", "victim"]


def test_proofs_check_unwritable_out_is_refused_before_running(tmp_path, monkeypatch, capsys, fake_certificates):
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path) else real_access(p, mode))
    assert proofs_main(["fake", "--out", str(tmp_path / "c.json"), "--quiet"]) == 2
    assert "not writable" in one_line(capsys.readouterr().err)
    assert fake_certificates.calls == 0 and tree(tmp_path) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_proofs_check_read_only_folder(tmp_path, capsys, fake_certificates):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert proofs_main(["fake", "--out", str(folder / "c.json"), "--quiet"]) == 2
    finally:
        folder.chmod(0o755)
    assert fake_certificates.calls == 0 and tree(folder) == []


def test_proofs_check_out_turned_into_a_link_during_the_run_exits_3(tmp_path, capsys, fake_certificates):
    (tmp_path / "victim").write_text("victim")
    out = tmp_path / "c.json"
    fake_certificates.during = lambda: out.symlink_to(tmp_path / "victim")
    assert proofs_main(["fake", "--out", str(out), "--quiet"]) == 3
    captured = capsys.readouterr()
    assert "ALL CERTIFICATES PASS" in captured.out and "not written" in one_line(captured.err)
    assert out.is_symlink() and (tmp_path / "victim").read_text() == "victim"
    assert tree(tmp_path) == ["c.json", "victim"]


def test_proofs_check_replaces_a_regular_file(tmp_path, capsys, fake_certificates):
    out = tmp_path / "c.json"
    out.write_text("old")
    assert proofs_main(["fake", "--out", str(tmp_path), "--quiet"]) == 0  # a folder gets certificates.json
    assert proofs_main(["fake", "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["passed"] and tree(tmp_path) == ["c.json", "certificates.json"]
    capsys.readouterr()


# --- experiments --------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_figures(monkeypatch):
    """experiments with one cheap figure; ``calls`` counts computations, ``during`` runs inside."""
    import ufm.experiments.__main__ as cli
    import ufm.experiments.pipeline as pipeline

    state = types.SimpleNamespace(calls=0, during=lambda: None)
    module = types.ModuleType("experiments_fake_figure")
    module.NAME, module.TITLE = "fake", "a fake figure"
    module.config = lambda quick: {"n": 3}
    module.steps = lambda config: 1
    module.caption = lambda config: f"a fake figure (n = {config['n']})"

    def compute(config, progress):
        state.calls += 1
        state.during()
        progress.step()
        return {"x": __import__("numpy").arange(config["n"])}

    def plot(data, config):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        ax.plot(data["x"])
        return fig

    module.compute, module.plot = compute, plot
    monkeypatch.setitem(sys.modules, "experiments_fake_figure", module)
    monkeypatch.setattr(cli, "FIGURES", {"fake": "experiments_fake_figure"})
    assert pipeline.EXTENSIONS  # the files of a figure
    return state


def experiments_main(*args):
    from ufm.experiments.__main__ import main

    return main(["--only", "fake", "--quiet", *args])


def test_experiments_writes_into_a_new_or_existing_folder(tmp_path, capsys, fake_figures):
    assert experiments_main("--out", str(tmp_path / "figs")) == 0
    assert tree(tmp_path) == ["figs", "figs/fake.json", "figs/fake.npz", "figs/fake.pdf", "figs/fake.png"]
    (tmp_path / "figs" / "other.png").write_text("kept")
    assert experiments_main("--out", str(tmp_path / "figs")) == 0  # replaces its own files, keeps the rest
    assert len(tree(tmp_path)) == 6 and (tmp_path / "figs" / "other.png").read_text() == "kept"
    capsys.readouterr()


def test_experiments_unwritable_or_linked_out_is_refused_before_computing(tmp_path, monkeypatch, capsys, fake_figures):
    (tmp_path / "figs").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "figs")
    (tmp_path / "victim").write_text("victim")
    (tmp_path / "figs" / "fake.png").symlink_to(tmp_path / "victim")
    for out in ("link", "figs"):  # a linked --out; a figure file that is a link
        assert experiments_main("--out", str(tmp_path / out)) == 2
        assert "--out" in one_line(capsys.readouterr().err)
    (tmp_path / "figs" / "fake.png").unlink()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode, **kw: False if str(p) == str(tmp_path / "figs") else real_access(p, mode)
    )
    assert experiments_main("--out", str(tmp_path / "figs")) == 2
    assert "not writable" in one_line(capsys.readouterr().err)
    assert fake_figures.calls == 0 and tree(tmp_path) == ["figs", "link", "victim"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_experiments_read_only_out(tmp_path, capsys, fake_figures):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert experiments_main("--out", str(folder)) == 2
    finally:
        folder.chmod(0o755)
    assert fake_figures.calls == 0 and tree(folder) == []


def test_experiments_interrupted_leaves_nothing(tmp_path, capsys, fake_figures):
    import signal

    from ufm.cli import Interrupted

    def interrupt():
        assert tree(tmp_path) == []  # nothing is created while the figure is computed
        raise Interrupted(signal.SIGTERM)

    fake_figures.during = interrupt
    assert experiments_main("--out", str(tmp_path / "figs")) == 143
    assert "interrupted (SIGTERM)" in one_line(capsys.readouterr().err) and tree(tmp_path) == []


def test_summary_json_turns_non_finite_array_entries_into_null():
    # a NaN inside an array of the numbers (e.g. a per-restart measure undefined at W = H = 0) used to raise
    # "Out of range float values are not JSON compliant" after the verdict was printed
    import json

    import numpy as np

    from ufm.report import to_json

    text = to_json({"a": np.array([1.0, np.nan, np.inf]), "b": [np.float64("nan")], "c": np.array([[2.0]])})
    assert json.loads(text) == {"a": [1.0, None, None], "b": [None], "c": [[2.0]]}
