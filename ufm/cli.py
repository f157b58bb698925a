"""What the three command lines (``python -m ufm.solve``, ``python -m ufm.proofs_check``, ``python -m ufm.experiments``)
share: exit codes, one-line argument errors, negative numbers as values, SIGINT/SIGTERM as exceptions, and
printing to a reader that may go away.

Exit codes (every command line):

    0    success (every check / certificate passed; figures written)
    1    a check or certificate failed (named on stderr); results written
    2    bad input: one line on stderr naming the argument; nothing computed, nothing written
    3    the results could not be written after the run (one line on stderr naming --out and why; the verdict,
         if printed, stands, but nothing was left behind)
    130  interrupted by SIGINT (Ctrl-C), 143 terminated by SIGTERM: everything the run created is removed
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import re
import signal
import sys
import tempfile
import threading
import types
import typing
from pathlib import Path

from ufm.problems import flag_name

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NOT_WRITTEN = 0, 1, 2, 3
EXIT_CODES_HELP = (
    "exit codes: 0 all checks pass; 1 a check failed; 2 bad input (one line, nothing written); "
    "3 results could not be written; 130 SIGINT, 143 SIGTERM (nothing left behind)"
)


class UsageError(Exception):
    """Bad command-line input; the message names the argument (the command line exits 2 with it)."""


def is_number(text: str) -> bool:
    """Whether ``text`` reads as a Python float (``-1e-3``, ``-.5``, ``-inf`` included)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


class Parser(argparse.ArgumentParser):
    """argparse that raises :class:`UsageError` (one line) instead of printing usage and exiting, and reads every
    token that parses as a number as a value: argparse takes ``-1e-3`` for an option (its negative-number pattern
    knows only ``-1`` and ``-1.5``), so ``--mu -1e-3`` would fail with "expected one argument" instead of reaching
    the range check that names the valid values."""

    def error(self, message):
        for action in self._actions:  # argparse names an action by all its spellings: name the current one only
            if getattr(action, "deprecated", ()):
                message = message.replace(
                    f"argument {'/'.join(action.option_strings)}:", f"argument {action.option_strings[0]}:"
                )
        raise UsageError(message)

    def _parse_optional(self, arg_string):
        # None: a positional value (argparse's own answer for '-1' and '-1.5'); none of our flags looks like a number.
        if arg_string.startswith("-") and is_number(arg_string):
            return None
        return super()._parse_optional(arg_string)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's help without the deprecated spellings of a flag (:class:`Store`'s ``deprecated``)."""

    def _format_action_invocation(self, action):
        deprecated = getattr(action, "deprecated", ())
        if not deprecated:
            return super()._format_action_invocation(action)
        current = [s for s in action.option_strings if s not in deprecated]
        return super()._format_action_invocation(
            argparse.Action(current, action.dest, nargs=action.nargs, metavar=action.metavar)
        )


class Store(argparse.Action):
    """argparse's ``store`` that also accepts the deprecated spellings in ``deprecated``; the current flag is
    ``option_strings[0]`` (:func:`canonical_flag`). A deprecated spelling read is noted in the parser's
    ``deprecated_used`` (:func:`deprecation_notes`), for the command line to warn once its input is valid (bad input
    stays one line)."""

    def __init__(self, option_strings, dest, deprecated=(), **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.deprecated = tuple(deprecated)

    def __call__(self, parser, namespace, values, option_string=None):
        if option_string in self.deprecated:
            note = f"{option_string} is deprecated; use {self.option_strings[0]}"
            parser.__dict__.setdefault("deprecated_used", []).append(note)
        setattr(namespace, self.dest, values)


def deprecation_notes(parser: argparse.ArgumentParser) -> list[str]:
    """The deprecated spellings ``parser`` has read, one note each (``--act is deprecated; use --activation``)."""
    return list(dict.fromkeys(parser.__dict__.get("deprecated_used", [])))


def canonical_flag(action: argparse.Action) -> str:
    """The flag an action is named by in messages: the first of a :class:`Store`'s, else the longest."""
    if isinstance(action, Store):
        return action.option_strings[0]
    return max(action.option_strings, key=len)


def _value_type(hint) -> type:
    """The command-line type of a field's annotation: int, float or str (``X | None`` is X; a union of str with
    anything else is read as str and parsed by the dataclass, as the square loss's bias)."""
    options = (
        typing.get_args(hint)
        if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union
        else (hint,)
    )
    options = tuple(o for o in options if o is not type(None))
    if len(options) == 1 and options[0] in (int, float, str):
        return options[0]
    if str in options:
        return str
    raise TypeError(f"no command-line type for the annotation {hint!r}")


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _with_default(doc: str, shown: str | None) -> str:
    """``doc`` with ``default X`` inside its closing parenthesis, or after it in one."""
    if shown is None:
        return doc
    depth = 0
    for i in range(len(doc) - 1, -1, -1):  # the parenthesis that the last character closes, if it is one
        depth += {")": 1, "(": -1}.get(doc[i], 0)
        if depth == 0:
            break
    if doc.endswith(")") and depth == 0:
        return f"{doc[:-1]}; default {shown})"
    return f"{doc} (default {shown})"


def add_problem_arguments(
    parser: argparse.ArgumentParser,
    problem_class,
    title: str,
    *,
    exclude: tuple[str, ...] = (),
    defaults: dict | None = None,
) -> argparse._ArgumentGroup:
    """One flag per field of ``problem_class`` (declared with ``ufm.problems.parameter``) in the group ``title``.

    The flag is ``ufm.problems.flag_name``'s, its dest the field, its type from the annotation, its help the
    field's doc and its default (``default_doc`` or the value). ``defaults`` replaces a field's default on this
    command line (``None``: left to the family's ``problem_from_args``, e.g. a default that depends on the
    variant); ``exclude`` names the fields that are not flags (set by the variant). Returns the group (a family
    adds its flags that are not problem fields to it).
    """
    hints = typing.get_type_hints(problem_class)
    group = parser.add_argument_group(title)
    for field in dataclasses.fields(problem_class):
        if field.name in exclude:
            continue
        if "doc" not in field.metadata:
            raise TypeError(f"{problem_class.__name__}.{field.name} has no doc: declare it with ufm.problems.parameter")
        default = (defaults or {}).get(field.name, field.default)
        shown = field.metadata["default_doc"] or (None if field.default is None else _shown(field.default))
        aliases = field.metadata["aliases"]
        group.add_argument(
            flag_name(field),
            *aliases,
            action=Store,
            deprecated=aliases,
            type=_value_type(hints[field.name]),
            default=default,
            dest=field.name,
            metavar=field.name.upper(),
            help=_with_default(field.metadata["doc"], shown),
        )
    return group


def problem_flags(problem_class) -> dict[str, str]:
    """Field name -> its command-line flag, for every field of ``problem_class``."""
    return {field.name: flag_name(field) for field in dataclasses.fields(problem_class)}


_UNSET = object()


def explicit_dests(make_parser, argv: list[str], dests) -> set[str]:
    """The ``dests`` that ``argv`` sets explicitly (a flag typed, whatever its value, defaults not counted).

    Parses ``argv`` a second time with a fresh parser from ``make_parser()`` whose defaults are a sentinel, so
    abbreviations, ``--flag=value`` and repeated flags count exactly as argparse reads them."""
    parser = make_parser()
    parser.set_defaults(**{dest: _UNSET for dest in dests})
    ns = parser.parse_args(argv)
    return {dest for dest, value in vars(ns).items() if value is not _UNSET}


_SIZE = re.compile(r"^\s*((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([kKmMgGtTpP]?)(?:i?[bB])?\s*$")
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40, "p": 2**50}
SIZE_HELP = "a size > 0: bytes, or with K, M, G, T (powers of 1024), e.g. 512M, 4G, 1.5T"


def parse_size(text: str) -> int:
    """Bytes from ``512M``, ``4G``, ``1.5GiB``, ``1e9`` (K, M, G, T, P are powers of 1024; no unit: bytes).

    Raises argparse.ArgumentTypeError (argparse names the flag) unless the size is finite and > 0."""
    match = _SIZE.match(text)
    value = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else float("nan")
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be {SIZE_HELP}; got {text!r}")
    return max(1, int(value))


def os_problem(err: OSError, path) -> str:
    """What is wrong with an output ``path``, from the OSError that said so (ours name the path themselves)."""
    return f"cannot write {path}: {err.strerror}" if err.strerror else str(err)


def gib(n_bytes: float) -> str:
    """``n_bytes`` in GiB for a message: '3.2 GiB' (three significant digits)."""
    return f"{n_bytes / 2**30:.3g} GiB"


CACHE_ENV = "UFM_CACHE_DIR"
JAX_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/ufm/jax``, else ``~/.cache/ufm/jax``: the per-user home of compiled executables."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ufm" / "jax"


def cache_dir_choice(flag: Path | None, off: bool) -> tuple[Path | None, str]:
    """(folder, what named it) of the persistent compilation cache: None with ``off``; else ``flag`` (--cache-dir),
    $UFM_CACHE_DIR, the folder JAX itself was given ($JAX_COMPILATION_CACHE_DIR: JAX's own settings are then left
    as they are, path None) or :func:`default_cache_dir`. Raises UsageError where the folder, or the first of its
    parents that exists, is not a folder (nothing is created here)."""
    if off:
        return None, "--no-cache"
    if flag is not None:
        path, source = flag, "argument --cache-dir"
    elif os.environ.get(CACHE_ENV):
        path, source = Path(os.environ[CACHE_ENV]), f"environment variable {CACHE_ENV}"
    elif os.environ.get(JAX_CACHE_ENV):
        return None, JAX_CACHE_ENV
    else:
        path, source = default_cache_dir(), "the default cache folder"
    path = path.absolute()
    for folder in (path, *path.parents):
        if os.path.exists(folder):
            if not os.path.isdir(folder):
                what = path if folder == path else f"{path} (its parent {folder})"
                hint = "" if flag is not None else "; --cache-dir DIR or --no-cache overrides it"
                raise UsageError(f"{source}: {what} is not a folder{hint}")
            break
    return path, source


def use_compilation_cache(path: Path | None, source: str, prog: str) -> bool:
    """Point JAX's persistent compilation cache (process-global: for a program, not a library) at ``path``, small
    and fast compilations included, so that a second identical run loads its executables instead of compiling
    them. ``source`` "--no-cache" turns it off; JAX_COMPILATION_CACHE_DIR leaves JAX's own settings alone. A folder
    that cannot be created or written is not an error: one warning on stderr, and the run compiles from scratch.
    Returns whether the cache is in use."""
    import jax

    if source == "--no-cache":
        jax.config.update("jax_enable_compilation_cache", False)
        return False
    if path is None:
        return True
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        warn(f"{prog}: warning: {source}: compilation cache not used ({os_problem(err, path)}); compiling afresh")
        return False
    jax.config.update("jax_compilation_cache_dir", str(path))
    # JAX's defaults keep only compilations over 1 s; every solve here is a handful of shorter ones.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return True


class Interrupted(BaseException):
    """Raised in the main thread on SIGINT or SIGTERM, so that cleanup (``except BaseException``, ``finally``)
    runs exactly as for Ctrl-C. ``exit_code`` is 128 + the signal number (130, 143), the shell's convention."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum


@contextlib.contextmanager
def interruptible():
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (the first one only: a second signal must
    not cut short the cleanup the first started). The previous handlers are restored on leaving. Outside the main
    thread (signals cannot be handled there) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def say(text: str) -> bool:
    """Print ``text`` on stdout and flush; False when the reader has gone (a closed pipe, ``| head -1``), which
    is then not an error: nothing is raised, and stdout is pointed at the null device so that Python's own flush at
    exit does not print an error either."""
    try:
        print(text, flush=True)
        return True
    except BrokenPipeError:
        _silence_stdout()
        return False


def warn(text: str) -> None:
    """One line on stderr (ignored if stderr itself is gone)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (BrokenPipeError, ValueError):
        pass


def _silence_stdout() -> None:
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a captured stream (tests): nothing is flushed at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def exit_main(main) -> None:
    """``sys.exit(main())`` for ``if __name__ == "__main__"``, with a final flush that tolerates a closed pipe."""
    code = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    sys.exit(code)
