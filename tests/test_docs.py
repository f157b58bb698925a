"""The documentation: generated tables are current, a changed recorded file makes ``--check`` fail, the README stays
short and keeps what tests and CI read from it. All in-process, no solve (the generator reads files and the figure
modules' captions only)."""

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load_generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def copy_of_docs(tmp_path):
    """README, docs/ and the benchmark results copied to a scratch root (the generator's --root)."""
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("figures", "__pycache__"))
    (tmp_path / "benchmarks").mkdir()
    shutil.copy(ROOT / "benchmarks" / "results.json", tmp_path / "benchmarks" / "results.json")
    return tmp_path


def test_generated_pages_are_current():
    assert load_generator().main(["--check"]) == 0


def test_a_changed_recorded_table_makes_check_fail_and_generate_updates_the_page(copy_of_docs, capsys):
    generate = load_generator()
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 0
    table = copy_of_docs / "docs" / "data" / "mixup-C10" / "table.txt"
    table.write_text(table.read_text().replace("ALL CHECKS PASS", "1 CHECK(S) FAILED"))
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 1
    assert "README.md: table:mixup-C10" in capsys.readouterr().err
    assert generate.main(["--root", str(copy_of_docs)]) == 0
    assert "1 CHECK(S) FAILED" in (copy_of_docs / "README.md").read_text()
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 0


def test_a_changed_summary_or_benchmark_number_makes_check_fail(copy_of_docs):
    generate = load_generator()
    summary = copy_of_docs / "docs" / "data" / "mse-C10" / "summary.json"
    data = json.loads(summary.read_text())
    data["numbers"]["eps"] *= 1.5  # the R-B table shows eps
    summary.write_text(json.dumps(data))
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 1

    shutil.copy(ROOT / "docs" / "data" / "mse-C10" / "summary.json", summary)
    results = copy_of_docs / "benchmarks" / "results.json"
    data = json.loads(results.read_text())
    data["cases"][0]["results"][0]["solve_s"] *= 2
    results.write_text(json.dumps(data))
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 1


def test_figure_captions_are_the_modules_captions_of_the_full_configuration(copy_of_docs, capsys, monkeypatch):
    """The table in docs/figures.md is the figure modules' ``caption(config(False))``: a caption changed in its
    module makes ``--check`` fail, and generating writes the new one."""
    import ufm.experiments.mixup_geometry as module

    generate = load_generator()
    page = copy_of_docs / "docs" / "figures.md"
    assert module.caption(module.config(False)) in page.read_text()
    monkeypatch.setattr(module, "caption", lambda cfg: f"Fisher, Meng, Papyan 2024; C = {cfg['C']}: changed")
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 1
    assert "docs/figures.md: figure-captions" in capsys.readouterr().err
    assert generate.main(["--root", str(copy_of_docs)]) == 0
    assert "`mixup_geometry`: Fisher, Meng, Papyan 2024; C = 3: changed |" in page.read_text()


def test_a_changed_network_verdict_makes_check_fail(copy_of_docs, capsys):
    """The verdict table in docs/networks.md is the recorded figures' summaries: a changed verdict or number makes
    ``--check`` fail and generating writes it; a quick configuration's record is refused (bad input)."""
    generate = load_generator()
    record = copy_of_docs / "docs" / "data" / "network-label-noise" / "network_label_noise.json"
    data = json.loads(record.read_text())
    data["summary"]["claims"][-1]["verdict"] = "does not hold"
    data["summary"]["claims"][-1]["numbers"]["held-out accuracy LS"]["20%"]["mean"] = 0.5
    record.write_text(json.dumps(data))
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 1
    assert "docs/networks.md: network-verdicts" in capsys.readouterr().err
    assert generate.main(["--root", str(copy_of_docs)]) == 0
    page = (copy_of_docs / "docs" / "networks.md").read_text()
    row = next(line for line in page.splitlines() if line.startswith("| `network_label_noise` | LS generalises"))
    assert "held-out accuracy LS: 0.952 +- 0.0073 (10%), 0.5 +- " in row and row.endswith("**does not hold** |")
    data["quick"] = True
    record.write_text(json.dumps(data))
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 2


def test_missing_record_is_bad_input(copy_of_docs, capsys):
    generate = load_generator()
    (copy_of_docs / "docs" / "data" / "mixup-C10" / "table.txt").unlink()
    assert generate.main(["--check", "--root", str(copy_of_docs)]) == 2
    assert "mixup-C10" in capsys.readouterr().err


def test_readme_is_short_and_keeps_install_test_and_api():
    text = (ROOT / "README.md").read_text()
    assert len(text.encode()) <= 15_000
    assert "pip install -e '.[test]' && pytest" in text  # mirrored by .ci/run
    assert "## Python API" in text and "```python" in text.split("## Python API", 1)[1]  # tests/test_api.py runs it
    assert 'pip install -U "jax[cuda12]"' in text and "jax.devices()" in text


def test_no_development_remarks_in_tracked_files():
    try:
        out = subprocess.run(
            [
                "git",
                "grep",
                "-n",
                "-e",
                "seed 00",
                "-e",
                "shared/theory",
                "-e",
                "lent to this task",
                "--",
                ".",
                ":!tests/test_docs.py",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except FileNotFoundError:
        pytest.skip("git not available")
    if out.returncode == 128:
        pytest.skip("not a git checkout")
    assert out.stdout == ""
