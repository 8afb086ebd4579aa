"""Layer options shared by every command, built from the layer types' declarations.

``--type NAME`` chooses the layer type (default ``conv2d``); every other layer option
(``--input``, ``--kernel``, ``--outputs``, ``--target`` ...) comes from the options the
types declare (:mod:`convviz.layers`). An option the chosen type does not take is one line
and exit 2, as is any rule a value breaks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from convviz.layers import DEFAULT_TYPE, layer_type, type_names, types
from convviz.layers.base import Option
from convviz.spec import SpecError

__all__ = ["OptionError", "check_op", "layer_options", "spec_from_options"]

F = TypeVar("F", bound=Callable[..., Any])


class OptionError(click.ClickException):
    """Bad input: printed as one line, exit status 2."""

    exit_code = 2


def _all_options() -> dict[str, tuple[Option, list[str]]]:
    """Every option key, the first declaration of it, and the types that take it."""
    found: dict[str, tuple[Option, list[str]]] = {}
    for name, declared in types().items():
        for option in declared.options:
            entry = found.setdefault(option.key, (option, []))
            entry[1].append(name)
    return found


def _param(key: str) -> str:
    return f"layer_{key}"


def _help(option: Option, takers: list[str]) -> str:
    default = f" [default: {option.default}]" if isinstance(option.default, str) else ""
    if len(takers) == len(types()):
        return option.help + default
    shown = ", ".join(takers)
    return f"{option.help}{default if takers == [DEFAULT_TYPE] else ''} (types: {shown})"


def layer_options(func: F) -> F:
    """Add ``--type`` and the layer options to a command; pass it ``spec``."""
    declared = _all_options()
    options = [
        click.option(
            "--type",
            "type_name",
            type=click.Choice(type_names()),
            default=DEFAULT_TYPE,
            show_default=True,
            help="Layer type (see `convviz types` for each type's options and ops).",
        )
    ]
    for key, (option, takers) in declared.items():
        if option.flag:
            options.append(
                click.option(option.cli, _param(key), is_flag=True, default=False,
                             help=_help(option, takers))
            )
        else:
            options.append(
                click.option(option.cli, _param(key), default=None, metavar=option.metavar,
                             help=_help(option, takers))
            )
    for decorator in reversed(options):
        func = decorator(func)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        type_name = kwargs.pop("type_name")
        given: dict[str, Any] = {}
        for key, (option, _) in declared.items():
            value = kwargs.pop(_param(key))
            source = ctx.get_parameter_source(_param(key))
            if source is None or source.name == "DEFAULT":
                continue
            given[key] = (not value) if option.flag else value
        kwargs["spec"] = spec_from_options(type_name, given)
        return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def spec_from_options(type_name: str, given: dict[str, Any]) -> Any:
    """Build the spec of ``type_name`` from the options given, as an :class:`OptionError`."""
    declared = layer_type(type_name)
    flags = {o.key: o.cli for o in declared.options}
    for key in given:
        if key not in flags:
            every = _all_options()
            option = every[key][0] if key in every else None
            flag = option.cli if option is not None else f"--{key}"
            takes = " ".join(sorted(flags.values()))
            raise OptionError(f"{flag}: {type_name} does not take this option (it takes {takes})")
    try:
        return declared.build(given)
    except SpecError as err:
        raise OptionError(f"{flags.get(err.field_name, err.field_name)}: {err.rule}") from None


def check_op(spec: Any, op: str, *, extra: tuple[str, ...] = ()) -> str:
    """Check that ``op`` is one of the spec's type's ops (or ``extra``), as an OptionError."""
    declared = layer_type(spec)
    names = (*declared.op_names, *extra)
    if op not in names:
        raise OptionError(
            f"OP: {declared.name} has no op {op!r}; expected one of {', '.join(names)}"
        )
    return op
