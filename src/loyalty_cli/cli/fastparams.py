"""Plain CLI values coerced without pydantic: a start-up saving, nothing else.

typer (>= 0.29) coerces every parameter value through a pydantic TypeAdapter
built on first use (`_TyperParameter.get_runtime_param`). Importing pydantic
and building the adapters costs ~0.3 s, more than many of our commands take.
Our parameters are plain (str, int, float, pathlib.Path, list[Path], an Enum)
and click hands over plain strings, so for those values the outcome of
pydantic's lax mode is known and cheap to reproduce.

`install` gives each such parameter a `PlainRuntimeParam`: it returns the
coerced value itself only for the inputs proven identical to typer's result
(tests/test_cli_fastparams.py runs both paths on tricky inputs) and hands every
other input to the runtime param typer would have built, built on demand. So
every error message and odd case ("1_000", " 5", "5.0", a NUL in a path) is
still typer's own; only plain successes skip pydantic.

This leans on typer internals (typer._coercion, typer._param_types, the
`_runtime_param` slot of typer.core._TyperParameter). If they are not as
expected, `SUPPORTED` is False and nothing is installed: typer's normal path,
slower but correct (tests/test_cli_fastparams.py asserts SUPPORTED, so a typer
upgrade that breaks this fails loudly instead of silently slow).
"""

from __future__ import annotations

import enum
import pathlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from typing import Any, get_args, get_origin

try:
    from typer._coercion import RuntimeParam, build_runtime_param
    from typer._param_types import coerce_cli_choice, coerce_cli_path
    from typer.core import _TyperParameter
    from typer.models import OptionInfo

    _INFO = OptionInfo()
    SUPPORTED = (
        {f.name for f in fields(RuntimeParam)} == {"parameter_info", "annotation"}
        and callable(getattr(RuntimeParam, "coerce", None))
        and callable(getattr(_TyperParameter, "get_runtime_param", None))
        and all(
            hasattr(_INFO, name)
            for name in ("parser", "min", "max", "clamp", "path_type", "case_sensitive")
        )
    )
except (ImportError, AttributeError, TypeError):  # pragma: no cover - another typer
    SUPPORTED = False
    RuntimeParam = object  # type: ignore[assignment,misc]  # lets the class below exist

# A fast path's answer for "not proven identical: ask typer".
_TYPER = object()

# fast(value, param, ctx) -> the coerced value, or _TYPER.
Fast = Callable[[Any, Any, Any], Any]


def _str(value: Any, param: Any, ctx: Any) -> Any:
    # typer: str(value) then pydantic's str check, which keeps any str as it is.
    return value if type(value) is str else _TYPER


def _bool(value: Any, param: Any, ctx: Any) -> Any:
    # typer skips coercing a flag's bool itself, but still builds the adapter for
    # an absent flag's None (RuntimeParam.coerce answers None without it).
    return value if type(value) is bool else _TYPER


def _decimal_digits(text: str) -> bool:
    """ASCII digits only (str.isdigit alone also takes '²' and '٣')."""
    return text.isascii() and text.isdigit()


def _int(value: Any, param: Any, ctx: Any) -> Any:
    # Plain [-]digits only; pydantic also takes '+5', ' 5', '1_000', '5.0': typer's.
    if type(value) is int:
        return value
    if type(value) is str:
        digits = value[1:] if value.startswith("-") else value
        if len(digits) <= 18 and _decimal_digits(digits):
            return int(value)
    return _TYPER


def _float(value: Any, param: Any, ctx: Any) -> Any:
    # Plain [-]digits[.digits] only; exponents, 'inf', '.5', '1_0' are typer's.
    if type(value) is float:
        return value
    if type(value) is str:
        whole, dot, fraction = (value[1:] if value.startswith("-") else value).partition(".")
        if len(value) <= 30 and _decimal_digits(whole) and (not dot or _decimal_digits(fraction)):
            return float(value)
    return _TYPER


def _path(value: Any, param: Any, ctx: Any) -> Any:
    # pydantic turns a str into Path(str) (its path_validator), then typer checks
    # the Path (coerce_cli_path). Any failure is redone by typer for its message.
    if type(value) is not str:
        return _TYPER
    try:
        return coerce_cli_path(
            pathlib.Path(value),
            param.type_descriptor.parameter_info,
            path_type=pathlib.Path,
            param=param,
            ctx=ctx,
        )
    except Exception:  # noqa: BLE001 - typer raises its own error on the same input
        return _TYPER


def _path_list(value: Any, param: Any, ctx: Any) -> Any:
    # typer: a list of the items, each coerced as a Path (nargs=-1 gives a tuple).
    if type(value) not in (list, tuple):
        return _TYPER
    paths = []
    for item in value:
        path = _path(item, param, ctx)
        if path is _TYPER:
            return _TYPER
        paths.append(path)
    return paths


def _choice(choices: tuple[Any, ...], case_sensitive: bool) -> Fast:
    # typer's choice adapter is coerce_cli_choice under an `Any` pydantic schema.
    def fast(value: Any, param: Any, ctx: Any) -> Any:
        try:
            return coerce_cli_choice(value, choices=choices, case_sensitive=case_sensitive, ctx=ctx)
        except Exception:  # noqa: BLE001 - typer raises its own error on the same input
            return _TYPER

    return fast


def fast_path_for(annotation: Any, info: Any) -> Fast | None:
    """The fast coercion for a parameter typed `annotation`, or None (typer's).

    Only annotations whose typer adapter is known: no custom parser, no
    min/max/clamp, no path flags (path_type) beyond the defaults' routing.
    """
    if info.parser is not None or info.min is not None or info.max is not None or info.clamp:
        return None
    if annotation is str:
        return _str
    if annotation is bool:
        return _bool
    if annotation is int:
        return _int
    if annotation is float:
        return _float
    if info.path_type is not None:
        return None
    if annotation is pathlib.Path:
        return _path
    if get_origin(annotation) is list and get_args(annotation) == (pathlib.Path,):
        return _path_list
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _choice(tuple(annotation), bool(info.case_sensitive))
    return None


@dataclass(frozen=True)
class PlainRuntimeParam(RuntimeParam):
    """typer's runtime coercion contract, fast for proven inputs, typer's otherwise."""

    # Defaults only so that the class can be made whatever typer's fields are.
    fast: Fast | None = None
    descriptor: Any = None
    # typer's own runtime param once needed (a frozen dataclass: kept in a list).
    _typer: list[Any] = field(default_factory=list)

    def typer_runtime_param(self) -> Any:
        if not self._typer:
            self._typer.append(build_runtime_param(self.descriptor))
        return self._typer[0]

    def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
        assert self.fast is not None
        result = self.fast(value, param, ctx)
        if result is _TYPER:
            return self.typer_runtime_param().coerce(value, param=param, ctx=ctx)
        return result


def install_params(params: Iterable[Any]) -> None:
    """Give each plain parameter not yet coerced a PlainRuntimeParam."""
    if not SUPPORTED:
        return
    for param in params:
        if not isinstance(param, _TyperParameter) or param._runtime_param is not None:
            continue
        descriptor = param.type_descriptor
        if descriptor.file_annotation is not None:
            continue
        fast = fast_path_for(descriptor.annotation, descriptor.parameter_info)
        if fast is not None:
            param._runtime_param = PlainRuntimeParam(
                parameter_info=descriptor.parameter_info,
                annotation=descriptor.annotation,
                fast=fast,
                descriptor=descriptor,
            )


def install(command: Any, *, subcommands: bool = True) -> None:
    """install_params on `command`, on the help option it makes on demand and,
    for a group (unless told not to), on every command under it."""
    if not SUPPORTED:
        return
    install_params(command.params)
    # click creates --help per command on first parse (get_help_option, cached):
    # an absent flag's None would build its bool adapter, so cover it too.
    make_help_option = getattr(command, "get_help_option", None)
    if make_help_option is not None:

        def get_help_option(ctx: Any) -> Any:
            option = make_help_option(ctx)
            if option is not None:
                install_params([option])
            return option

        command.get_help_option = get_help_option
    if subcommands:
        for sub in (getattr(command, "commands", None) or {}).values():
            install(sub)
