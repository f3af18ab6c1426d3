"""The root `loyalty` command: global options, error translation, groups."""

from __future__ import annotations

import os
import sqlite3
import sys
import traceback
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from loyalty_cli import __version__
from loyalty_cli.errors import LoyaltyError


class LoyaltyGroup(TyperGroup):
    """Turns library errors into one plain sentence on stderr and an exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        # Usage errors (bad date, unknown command) as plain click text ("Error: ..." on
        # one line), not a Rich panel that wraps the sentence and draws box characters
        # into logs and pipes. --help keeps its Rich layout (format_help is separate).
        from typer import rich_utils
        from typer.core import _main

        if os.environ.get("NO_COLOR"):
            # --help on a terminal: Rich keeps bold under NO_COLOR; no escape codes at all.
            rich_utils.COLOR_SYSTEM = None
        kwargs.pop("rich_markup_mode", None)
        return _main(self, *args, rich_markup_mode=None, **kwargs)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LoyaltyError as exc:
            _fail(ctx, str(exc), exc.exit_code)
        except sqlite3.DatabaseError as exc:
            # Name the file: "database error" alone does not say which --db was meant.
            from loyalty_cli.db import db_path

            _fail(ctx, f"{db_path((ctx.obj or {}).get('db'))}: database error: {exc}", 1)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit,
                typer.Exit, typer.Abort, typer.TyperException):  # fmt: skip
            # typer >= 0.16 vendors click: its Exit/Abort/BadParameter are not click's.
            raise
        except BrokenPipeError:
            # `loyalty export ledger | head`: the reader left; click's main exits quietly.
            raise
        except KeyboardInterrupt:
            _fail(ctx, "interrupted; nothing was changed by the unfinished step", 130)
        except Exception as exc:  # noqa: BLE001 - the edge: never a traceback by default
            _fail(ctx, f"internal error: {exc.__class__.__name__}: {exc} (rerun with --debug)", 1)
        return None


def _fail(ctx: click.Context, message: str, code: int) -> None:
    if (ctx.obj or {}).get("debug"):
        traceback.print_exc()
    # One sentence on one line, whatever text the message quotes.
    click.echo("Error: " + " ".join(message.split("\n")).replace("\r", " "), err=True)
    ctx.exit(code)


app = typer.Typer(
    cls=LoyaltyGroup,
    help="A loyalty-program engine for small shops: YAML program, CSV imports, "
    "an exact points ledger over SQLite.\n\nExample: loyalty --db shop.db customer show C001",
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


def _register() -> None:
    from loyalty_cli.cli import (
        customer,
        customer_list,
        export,
        imports,
        ops,
        program,
        report,
        rewards,
        run,
        setup,
        simulate,
    )

    for module in (
        setup,
        program,
        imports,
        run,
        customer,
        customer_list,
        rewards,
        report,
        export,
        simulate,
        ops,
    ):
        module.register(app)


_register()


def main() -> None:
    if os.environ.get("NO_COLOR") == "":
        os.environ.pop("NO_COLOR")
    sys.exit(app())
