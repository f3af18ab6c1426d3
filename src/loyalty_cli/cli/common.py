"""Options and helpers every command group shares.

A command parses its options, makes one library call and renders the result;
this module holds the parsing and the connection handling so the command
modules stay thin.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from enum import StrEnum
from typing import Annotated, Any

import typer

from loyalty_cli import db
from loyalty_cli.errors import NoProgramError, NotFoundError


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def parse_date(value: str | None) -> dt.date | None:
    """Typer callback: ISO date text -> date (None stays None)."""
    if value is None or isinstance(value, dt.date):
        return value
    return _date(value)


def _date(value: str, **where: Any) -> dt.date:
    from loyalty_cli.engine.dates import OUT_OF_RANGE, in_range, is_iso_date

    try:
        # Exactly YYYY-MM-DD: fromisoformat alone also reads 20260215 and 2026-W07-1.
        if not is_iso_date(value):
            raise ValueError(value)
        day = dt.date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"'{value}' is not a date; use YYYY-MM-DD", **where) from exc
    if not in_range(day):
        raise typer.BadParameter(f"'{value}' {OUT_OF_RANGE}", **where)
    return day


def check_date(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Option callback: reject a bad date at parse time, naming the option ('--as-of')."""
    if value is not None and not ctx.resilient_parsing:
        _date(value, ctx=ctx, param=param)
    return value


def check_seconds(value: float) -> float:
    """Option callback: a wait is 0 seconds or more."""
    if not value >= 0:  # NaN too
        raise typer.BadParameter(f"{value:g} seconds: give 0 or more")
    return value


FormatOpt = Annotated[
    OutputFormat,
    typer.Option("--format", "-f", help="table (default, colour on a terminal), csv or json."),
]
AsOfOpt = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="Date to look at (YYYY-MM-DD); default today.", callback=check_date
    ),
]
DateOpt = Annotated[
    str | None,
    typer.Option(
        "--date", help="Date to post on (YYYY-MM-DD); default today.", callback=check_date
    ),
]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day (YYYY-MM-DD).", callback=check_date)
]
# Reports and exports taken on one day (tiers, segments, offers, balances, rfm) accept
# --from so one command line serves every report, and say that they do not use it.
UnusedFromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Not used: this is taken as of --to (accepted like the other reports' --from).",
        callback=check_date,
    ),
]
ToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Last day, the as-of date (YYYY-MM-DD); default today.",
        callback=check_date,
    ),
]


def date_or_today(value: str | None) -> dt.date:
    return parse_date(value) or today()


def today() -> dt.date:
    return dt.date.today()


def warn_if_ahead(day: dt.date) -> None:
    """A run dated after today posts what falls due up to then (expiries dated
    ahead): the counter may not spend the points they take, while today's
    statement still shows them. Said on stderr, with --quiet too (cron mails it):
    on a nightly it is most likely a mistyped --as-of."""
    now = today()
    if day > now:
        typer.echo(
            f"Warning: --as-of {day} is after today ({now}): what falls due up to then "
            "is posted now, and the counter cannot spend points an expiry dated ahead "
            "takes, though today's statement still shows them.",
            err=True,
        )


def get_conn(
    ctx: typer.Context, *, existing: bool = False, setup: bool = False
) -> sqlite3.Connection:
    """The connection for this invocation, opened once on first use. `existing`: the
    file must be there already (the cron commands: a mistyped --db is an error, not
    a new, empty shop to check, back up or import into). A zero-byte file (a failed
    restore) is refused unless the command sets a shop up (`setup`: init, demo,
    program apply), which may as well write it there."""
    root = ctx.find_root()
    state: dict[str, Any] = root.obj
    if existing and not db_exists(ctx):
        raise NotFoundError(
            f"{db_file(ctx)}: no such database (create one with `loyalty init`, or check "
            "--db and LOYALTY_DB)"
        )
    if not setup and state.get("conn") is None and _empty_file(ctx):
        # A failed restore (`cp` of nothing) leaves a zero-byte file: checking, backing
        # up or reading it would write a fresh schema into it and call it ok.
        raise NotFoundError(
            f"{db_file(ctx)}: the file is empty, not a shop's database (a failed copy or "
            "restore?); check --db and LOYALTY_DB"
        )
    if state.get("conn") is None:
        state["conn"] = db.connect(state.get("db"))
        root.call_on_close(state["conn"].close)
    return state["conn"]


def shop_conn(ctx: typer.Context) -> sqlite3.Connection:
    """The connection for a command that reads or changes a shop already set up.
    A --db that does not exist is not created (a mistyped path would leave an empty
    file behind): nothing has been applied there, which is what the command says.
    (get_conn refuses a zero-byte file, as for every command but the set-up ones.)"""
    if not db_exists(ctx):
        raise NoProgramError(
            f"no program applied yet: there is no database at {db_file(ctx)}; run `loyalty "
            "program apply FILE` first, or check --db and LOYALTY_DB"
        )
    return get_conn(ctx, existing=True)


def db_exists(ctx: typer.Context) -> bool:
    """Whether this invocation's database is open already or its file is there."""
    state = ctx.find_root().obj
    return state.get("conn") is not None or db.db_path(state.get("db")).exists()


def _empty_file(ctx: typer.Context) -> bool:
    path = db.db_path(ctx.find_root().obj.get("db"))
    return path.is_file() and path.stat().st_size == 0


def db_file(ctx: typer.Context) -> str:
    return str(db.db_path(ctx.find_root().obj.get("db")))


def echo_json(data: Any) -> None:
    """One JSON document on stdout (dates ISO, Decimals as strings)."""
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
