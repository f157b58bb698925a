"""The persistent compilation cache of ``python -m ufm.solve`` (--cache-dir, $UFM_CACHE_DIR, --no-cache).

Runs are real subprocesses (the cache is JAX's process-global configuration, set only by the program) of a small
configuration, ``--loss mixup --C 2 --lambdas 3`` (~1 s of compilation, ~4 s a run), with $XDG_CACHE_HOME pointed
into the test's folder so that nothing is written to the user's own cache.

That every compilation of the repeated run was found in the cache is asserted exactly: it writes no entry to the
folder (JAX writes one only on a miss). Its speed is not asserted (measured: ``compile_seconds`` 1.10 s cold, 0.26
s warm; tracing and lowering remain): timings belong to the benchmarks, and a ratio of two timed runs failed
under load.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ufm.cli import CACHE_ENV, JAX_CACHE_ENV, cache_dir_choice, default_cache_dir

RUN = ["--loss", "mixup", "--C", "2", "--lambdas", "3", "--quiet"]


def environment(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in (CACHE_ENV, JAX_CACHE_ENV, "XDG_CACHE_HOME")}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    env.update(extra)
    return env


def solve(tmp_path, out: str, *args, **env):
    result = subprocess.run(
        [sys.executable, "-m", "ufm.solve", *RUN, *args, "--out", str(tmp_path / out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=300,
        env=environment(tmp_path, **env),
    )
    return result


def entries(folder: Path) -> set[tuple]:
    """The cache's files with their sizes and modification times: JAX writes an entry only on a miss."""
    return {(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_repeated_run_loads_its_compilations_from_the_cache(tmp_path):
    cache = tmp_path / "cache"
    first = solve(tmp_path, "first", "--cache-dir", str(cache))
    assert first.returncode == 0 and first.stderr == "", first.stderr
    written = entries(cache)
    assert written, "the first run cached nothing"
    second = solve(tmp_path, "second", "--cache-dir", str(cache))
    assert second.returncode == 0 and second.stderr == "", second.stderr
    # every compilation of the second run was a cache hit: nothing written or rewritten (compile_seconds, timed,
    # is reported in summary.json but not asserted here: speed belongs to the benchmarks, not to unit tests)
    assert entries(cache) == written
    assert not (tmp_path / "xdg").exists()  # --cache-dir, not the default folder


def test_no_cache_writes_nothing(tmp_path):
    cache = tmp_path / "cache"
    result = solve(tmp_path, "run", "--no-cache", **{CACHE_ENV: str(cache)})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert not cache.exists() and not (tmp_path / "xdg").exists()


def _unwritable(tmp_path) -> Path:
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        return locked / "jax"
    if os.path.isdir("/proc"):  # not even root can create a folder there
        return Path("/proc/ufm-compilation-cache")
    pytest.skip("no folder this user cannot write")


def test_an_unwritable_cache_folder_warns_once_and_the_run_goes_on(tmp_path):
    cache = _unwritable(tmp_path)
    result = solve(tmp_path, "run", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("ufm.solve: warning: argument --cache-dir: compilation cache not used"), line
    assert (tmp_path / "run" / "summary.json").is_file() and not cache.exists()


def test_importing_ufm_leaves_jax_configuration_alone(tmp_path):
    code = (
        "import jax\n"
        "before = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache,\n"
        "          jax.config.jax_persistent_cache_min_compile_time_secs)\n"
        "import ufm, ufm.cli, ufm.solve, ufm.solver, ufm.families\n"
        "for name in ufm.families.FAMILIES:\n"
        "    ufm.families.load(name)\n"
        "ufm.solve.parse(['--loss', 'mixup', '--cache-dir', 'c'])\n"
        "after = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache,\n"
        "         jax.config.jax_persistent_cache_min_compile_time_secs)\n"
        "assert before == after == (None, True, 1.0), (before, after)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        env=environment(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


# --- choice of the folder and bad input (in-process: parsing only) -------------------------------------------------


def test_the_folder_is_chosen_by_flag_then_environment_then_default(tmp_path, monkeypatch):
    for name in (CACHE_ENV, JAX_CACHE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ufm" / "jax"
    assert cache_dir_choice(None, False) == (tmp_path / "xdg" / "ufm" / "jax", "the default cache folder")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "ufm" / "jax"
    monkeypatch.setenv(JAX_CACHE_ENV, str(tmp_path / "jax"))  # JAX's own setting is left to JAX
    assert cache_dir_choice(None, False) == (None, JAX_CACHE_ENV)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert cache_dir_choice(None, False) == (tmp_path / "env", f"environment variable {CACHE_ENV}")
    assert cache_dir_choice(tmp_path / "flag", False) == (tmp_path / "flag", "argument --cache-dir")
    assert cache_dir_choice(tmp_path / "flag", True) == (None, "--no-cache")
    assert list(tmp_path.iterdir()) == []  # choosing creates nothing


@pytest.mark.parametrize("where", ["file", "file/sub"])
def test_a_cache_dir_that_is_not_a_folder_is_bad_input(tmp_path, capsys, monkeypatch, where):
    from ufm.solve import main

    monkeypatch.delenv(CACHE_ENV, raising=False)
    (tmp_path / "file").write_text("x")
    code = main([*RUN, "--cache-dir", str(tmp_path / where), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "argument --cache-dir:" in err[0] and "is not a folder" in err[0], err
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / where))
    code = main([*RUN, "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"environment variable {CACHE_ENV}:" in err[0], err
    code = main([*RUN, "--cache-dir", str(tmp_path / "c"), "--no-cache", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--no-cache" in err[0] and "--cache-dir" in err[0], err
    code = main([*RUN, "--cache-dir", "", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "argument --cache-dir: must be a folder path" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
