"""Problem definitions: frozen dataclasses of sizes and hyper-parameters, validated on construction.

Each field is declared with :func:`parameter`, which carries its one-line documentation: the command line is
generated from the fields (``ufm.cli.add_problem_arguments``), so a field's name, its flag and its help are
written once, here.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, TypeVar

T = TypeVar("T")


class InputError(ValueError):
    """Bad user input: names the offending field and its valid range (the CLI turns it into exit code 2)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parameter(
    default: Any, doc: str, *, default_doc: str | None = None, flag: str | None = None, aliases: tuple[str, ...] = ()
) -> Any:
    """A problem field with its documentation, from which the command line is generated.

    Args:
        default: the field's default (``None``: filled in by ``__post_init__`` from other fields).
        doc: what the field is and its valid range, one line (e.g. ``"samples per class (>= 1)"``).
        default_doc: how the default reads in the help when it is not the value itself (``"C"``, ``"2K"``).
        flag: the command-line flag when it is not the rule's (:func:`flag_name`).
        aliases: earlier spellings of the flag, still accepted with a deprecation warning.

    Returns:
        a ``dataclasses.field`` with these in its metadata.
    """
    metadata = {"doc": doc, "default_doc": default_doc, "flag": flag, "aliases": tuple(aliases)}
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field: dataclasses.Field) -> str:
    """The command-line flag of a problem field: its ``flag`` if given, else ``--`` and the name with ``_`` as
    ``-`` and a leading ``n_`` (a count) dropped: ``lambda_W`` -> ``--lambda-W``, ``n_nodes`` -> ``--nodes``."""
    if field.metadata.get("flag"):
        return field.metadata["flag"]
    name = field.name[2:] if field.name.startswith("n_") else field.name
    return "--" + name.replace("_", "-")


def from_namespace(cls: type[T], namespace: Any, defaults: tuple[str, ...] = (), **values: Any) -> T:
    """The problem dataclass ``cls`` from a command line's namespace: each field from the attribute of its name,
    except ``values`` (given), and the fields in ``defaults`` that the command line left unset (``None``: flags
    whose default depends on other flags), which take the dataclass's default."""
    fields = {f.name: f.default for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    given = {name: values[name] if name in values else getattr(namespace, name) for name in fields}
    return cls(**{k: fields[k] if v is None and k in defaults else v for k, v in given.items()})


def require(condition: bool, field: str, message: str) -> None:
    """Raise :class:`InputError` for ``field`` unless ``condition`` holds."""
    if not condition:
        raise InputError(field, message)


def filled(value: T | None, field: str) -> T:
    """``value`` of a field that ``__post_init__`` fills in when it is left unset (``None``), as its filled type.

    The check narrows ``T | None`` to ``T`` for the type checker; it fails only for an object whose fields were
    set around its constructor's validation.
    """
    if value is None:
        raise AssertionError(f"{field} is unset: __post_init__ fills it in")
    return value


def require_int(value, field: str, low: int) -> None:
    require(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        field,
        f"must be an integer >= {low}, got {value!r}",
    )


def require_positive(value, field: str) -> None:
    require(
        isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
        field,
        f"must be a finite number > 0, got {value!r}",
    )


def require_nonnegative(value, field: str) -> None:
    require(
        isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
        field,
        f"must be a finite number >= 0, got {value!r}",
    )


def require_in_unit_interval(value, field: str, *, closed_right: bool = True) -> None:
    ok = isinstance(value, (int, float)) and 0 <= value and (value <= 1 if closed_right else value < 1)
    require(ok, field, f"must lie in [0, 1{']' if closed_right else ')'}, got {value!r}")


def require_in_range(value, field: str, bounds: tuple[float, float], why: str = "") -> None:
    """Raise :class:`InputError` for ``field`` unless ``value`` is a finite number in ``[bounds[0], bounds[1]]``;
    ``why``: the reason for the range, said in the message."""
    if bounds[0] > 0:
        require_positive(value, field)
    else:
        require_nonnegative(value, field)
    reason = f" ({why})" if why else ""
    require(
        bounds[0] <= value <= bounds[1], field, f"must lie in [{bounds[0]:g}, {bounds[1]:g}]{reason}, got {value!r}"
    )
