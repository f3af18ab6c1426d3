"""The root `loyalty` command: global options, error translation, groups.

Start-up is most of a short command's time, so nothing is built or imported
before it is needed: the command tree is lazy (`LazyCommands`: only the invoked
command or group becomes a click command; typer turns each callback's signature
into click parameters, a few ms a command), the command modules import the
library inside their callbacks, and `loyalty --help` lists the commands from
their help texts without building them. Plain option values are coerced
without pydantic (fastparams.py): typer's pydantic adapters cost ~0.3 s.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import sys
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from loyalty_cli import __version__
from loyalty_cli.cli import fastparams
from loyalty_cli.errors import LoyaltyError

if TYPE_CHECKING:
    import click


def _flags_take_no_value(display: Any) -> Any:
    """typer's help shows a type after every option, `--quiet -q <bool>` too, as if
    the flag took a value (`--quiet true` then fails): a flag shows none."""

    def display_type_rich(self: TyperOption, ctx: click.Context) -> str | None:
        if self.is_flag or self.count:
            return None
        return display(self, ctx)  # type: ignore[no-any-return]

    return display_type_rich


TyperOption.display_type_rich = _flags_take_no_value(TyperOption.display_type_rich)  # type: ignore[method-assign]

# The command modules, in the order their commands were always registered:
# `loyalty --help` lists the plain commands in this order, then the groups.
COMMAND_MODULES = (
    "setup",
    "program",
    "imports",
    "run",
    "customer",
    "customer_list",
    "rewards",
    "report",
    "export",
    "simulate",
    "ops",
)


class LoyaltyGroup(TyperGroup):
    """Turns library errors into one plain sentence on stderr and an exit code."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = LazyCommands(self)
        fastparams.install(self, subcommands=False)  # the commands: in LazyCommands

    def list_commands(self, ctx: click.Context) -> list[str]:
        # TyperGroup reads .items(), which would build every command.
        return list(self.commands)

    def format_help(self, ctx: click.Context, formatter: Any) -> None:
        # The root's help lists names and first paragraphs only: stand-ins carry those.
        commands = self.commands
        assert isinstance(commands, LazyCommands)
        self.commands = commands.summaries()
        try:
            super().format_help(ctx, formatter)
        finally:
            self.commands = commands

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Usage errors (bad date, unknown command) as plain click text ("Error: ..." on
        # one line), not a Rich panel that wraps the sentence and draws box characters
        # into logs and pipes. --help keeps its Rich layout (format_help is separate).
        from typer.core import _main

        if os.environ.get("NO_COLOR"):
            # --help on a terminal: Rich keeps bold under NO_COLOR; no escape codes at all.
            _help_without_styles()
        _usage_errors_in_one_line()
        kwargs.pop("rich_markup_mode", None)
        return _main(self, *args, rich_markup_mode=None, **kwargs)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_db(args))

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LoyaltyError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except sqlite3.DatabaseError as exc:
            # Name the file: "database error" alone does not say which --db was meant.
            from loyalty_cli.db import BUSY_TIMEOUT_MS, db_path

            where = db_path((ctx.obj or {}).get("db"))
            if "database is locked" in str(exc):
                _fail(
                    ctx,
                    f"{where}: another command kept the database locked for more than "
                    f"{BUSY_TIMEOUT_MS // 60_000} minutes; nothing was changed, try again "
                    "when it has finished",
                    1,
                )
            _fail(ctx, f"{where}: database error: {exc}", 1)
        except BrokenPipeError:
            # `loyalty export ledger | head`: the reader left; click's main exits quietly.
            raise
        except KeyboardInterrupt:
            _fail(ctx, "interrupted; nothing was changed by the unfinished step", 130)
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                _fail(ctx, _unwritable(exc), 1)
            if exc.errno == errno.EIO:  # a failing disk or device, read or written
                where = f"{exc.filename}: " if exc.filename else ""
                _fail(ctx, f"{where}input/output error (a failing disk or device)", 1)
            _fail(ctx, _internal(exc), 1)
        except Exception as exc:  # noqa: BLE001 - the edge: never a traceback by default
            if isinstance(exc, _exits()):
                raise
            _fail(ctx, _internal(exc), 1)
        return None


# Writing failed for want of room or a device, not for a bug: said as such (a
# full disk under `report kpi > out.json`).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def _internal(exc: Exception) -> str:
    return f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug)"


def hoist_db(args: list[str]) -> list[str]:
    """`--db PATH` (and `--debug`) anywhere before `--` moved to the front, where the
    global options are parsed: `loyalty demo --db demo.db` (DESIGN.md's form) is
    `loyalty --db demo.db demo`. Given twice, the later one wins, as for any option."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--db" and i + 1 < len(args):
            front.extend(args[i : i + 2])
            i += 2
            continue
        if arg.startswith("--db=") or arg == "--debug":
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest if front else list(args)


def _exits() -> tuple[type[BaseException], ...]:
    """Exceptions that end a command with their own message and exit code.

    typer >= 0.16 vendors click (its Exit/Abort/BadParameter are typer's, not
    click's); click's own are only possible once something imported click.
    """
    found: list[type[BaseException]] = [typer.Exit, typer.Abort, typer.TyperException]
    click_module = sys.modules.get("click")
    if click_module is not None:
        exceptions = click_module.exceptions
        found += [exceptions.Exit, exceptions.ClickException, exceptions.Abort]
    return tuple(found)


def _usage_errors_in_one_line() -> None:
    """A usage error is one line on stderr, `Error: <what>`, as every other error
    (DESIGN.md): click prints its usage block and a hint line first, which a cron
    mail or a log then has to be read around (`--help` is one flag away)."""
    classes = [typer.BadParameter.__mro__[1]]  # the UsageError typer raises
    click_module = sys.modules.get("click")
    if click_module is not None:
        classes.append(click_module.UsageError)
    for cls in classes:
        if getattr(cls.show, "_one_line", False):
            continue

        def show(self: Any, file: Any = None) -> None:
            # pydantic (behind typer's coercion) prefixes its reasons "Value error, ".
            message = self.format_message().replace(": Value error, ", ": ")
            (file or sys.stderr).write(f"Error: {message}\n")

        show._one_line = True  # type: ignore[attr-defined]
        cls.show = show


def _help_without_styles() -> None:
    """Help drawn by typer.rich_utils gets no colour system at all.

    rich_utils (Rich, markdown) costs more than a short command itself and is
    only needed to print help, so it is loaded lazily: the setting is applied
    to the lazy module and kept when its code finally runs.
    """
    import importlib.util

    module = sys.modules.get("typer.rich_utils")
    if module is None:
        spec = importlib.util.find_spec("typer.rich_utils")
        if spec is None or spec.loader is None:
            return
        loader = importlib.util.LazyLoader(spec.loader)
        spec.loader = loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["typer.rich_utils"] = module
        typer.rich_utils = module  # type: ignore[attr-defined]  # as an import would
        loader.exec_module(module)
    module.COLOR_SYSTEM = None


class LazyCommands(MutableMapping[str, "click.Command"]):
    """The root's commands by name: every name known up front (registration is
    cheap), each click command built by typer on first lookup."""

    def __init__(self, group: LoyaltyGroup) -> None:
        self._group = group
        self._built: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._built:
            info = _registered().get(name)
            if info is None:
                raise KeyError(name)
            command = _build(info, self._group)
            fastparams.install(command)
            self._built[name] = command
        return self._built[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._built[name] = command

    def __delitem__(self, name: str) -> None:
        raise TypeError("the loyalty commands are fixed")

    def __iter__(self) -> Iterator[str]:
        yield from _registered()
        yield from (name for name in self._built if name not in _registered())

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def summaries(self) -> dict[str, click.Command]:
        """name -> a stand-in with the name, help texts and flags the root's help reads."""
        return {
            name: self._built.get(name) or _summary(name, info)
            for name, info in _registered().items()
        }


_REGISTERED: dict[str, Any] = {}


def _registered() -> dict[str, Any]:
    """name -> typer CommandInfo or TyperInfo: plain commands first, then groups, each in
    registration order (what typer's own build of the whole tree gives)."""
    if not _REGISTERED:
        import importlib

        scratch = typer.Typer()
        for name in COMMAND_MODULES:
            importlib.import_module(f"loyalty_cli.cli.{name}").register(scratch)
        for info in scratch.registered_commands:
            _REGISTERED[_command_name(info)] = info
        for info in scratch.registered_groups:
            _REGISTERED[info.name] = info
    return _REGISTERED


def _command_name(info: Any) -> str:
    from typer.main import get_command_name

    return info.name or get_command_name(info.callback.__name__)


def _build(info: Any, group: LoyaltyGroup) -> click.Command:
    """The click command typer builds for `info` under the root (same settings)."""
    from typer.main import get_command_from_info, get_group_from_info
    from typer.models import CommandInfo

    if isinstance(info, CommandInfo):
        return get_command_from_info(
            info,
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=group.rich_markup_mode,
        )
    return get_group_from_info(
        info,
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=group.suggest_commands,
        rich_markup_mode=group.rich_markup_mode,
    )


def _summary(name: str, info: Any) -> click.Command:
    """A stand-in for the root's help: name, help, short help, hidden, deprecated, panel
    exactly as typer's build sets them, without turning signatures into parameters."""
    import inspect

    from typer.main import solve_typer_info_defaults
    from typer.models import CommandInfo

    if isinstance(info, CommandInfo):
        help_text = (
            inspect.getdoc(info.callback) if info.help is None else inspect.cleandoc(info.help)
        )
    else:
        info = solve_typer_info_defaults(info)
        help_text = info.help
    return TyperCommand(
        name=name,
        help=help_text,
        short_help=info.short_help,
        hidden=info.hidden,
        deprecated=info.deprecated,
        rich_help_panel=info.rich_help_panel,
    )


def _fail(ctx: click.Context, message: str, code: int) -> None:
    if (ctx.obj or {}).get("debug"):
        import traceback

        traceback.print_exc()
    # One sentence on one line, whatever text the message quotes.
    from loyalty_cli.render import visible

    one_line = " ".join(message.split("\n")).replace("\r", " ")
    _say("Error: " + visible(one_line))
    ctx.exit(code)


def _say(line: str) -> None:
    """A line on stderr; when stderr itself cannot take it (a full disk under
    `2> log`), the exit code alone tells."""
    with contextlib.suppress(OSError):
        typer.echo(line, err=True)


app = typer.Typer(
    cls=LoyaltyGroup,
    help="A loyalty-program engine for small shops: YAML program, CSV imports, "
    "an exact points ledger over SQLite.\n\nExample: loyalty --db shop.db customer show C0001",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"loyalty {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="LOYALTY_DB", help="SQLite file (default ./loyalty.db)."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Keep the points of a shop's loyalty program."""
    ctx.obj = {"db": db, "debug": debug, "conn": None}


def main() -> None:
    if os.environ.get("NO_COLOR") == "":
        os.environ.pop("NO_COLOR")
    _closed_streams_to_devnull()
    _utf8_when_piped()
    code: Any = 0
    try:
        app()
    except SystemExit as done:
        code = done.code
    except OSError as exc:  # raised before any command ran: --version into a full disk
        if not isinstance(exc, BrokenPipeError) and exc.errno not in {*_NO_ROOM, errno.EIO}:
            raise
        code = _output_failed(exc, 0)
    sys.exit(_flushed(code))


def _closed_streams_to_devnull() -> None:
    """A command started with a standard stream closed (`>&-` in a crontab) runs
    as with /dev/null there: Python leaves such a stream None, which every write
    and the encoding set-up below would fail on. Opened in fd order, each gets
    its own number back."""
    for name, mode in (("stdin", "r"), ("stdout", "w"), ("stderr", "w")):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, mode, encoding="utf-8"))  # noqa: SIM115


def _flushed(code: Any) -> Any:
    """`code`, or 1 when what is still buffered for stdout cannot be written (a
    full disk): said in one sentence, not as Python's note at shutdown."""
    try:
        sys.stdout.flush()
    except OSError as exc:
        return _output_failed(exc, code)
    return code


def _output_failed(exc: OSError, code: Any) -> Any:
    # The shutdown's own flush would fail again: what is left goes nowhere.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if isinstance(exc, BrokenPipeError):
        return code  # the reader left (`| head`): nothing to report
    _say(f"Error: {_unwritable(exc)}")
    return 1


def _unwritable(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}cannot write the output: {exc.strerror or exc}"


def _utf8_when_piped() -> None:
    """Into a file or a pipe, CSV and JSON are UTF-8 whatever the locale (an ASCII
    locale failed on a name like Björn); a terminal keeps its own encoding."""
    from loyalty_cli import render

    for stream in (sys.stdout, sys.stderr):
        if not stream.isatty():
            render.utf8(stream)
