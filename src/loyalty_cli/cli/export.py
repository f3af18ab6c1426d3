"""`loyalty export ledger | balances | journal | redemptions | offers | rfm`: CSV files."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from loyalty_cli.cli.common import (
    ToOpt,
    UnusedFromOpt,
    check_date,
    parse_date,
    shop_conn,
    today,
)

if TYPE_CHECKING:
    from loyalty_cli.exports import Export

group = typer.Typer(
    help="CSV exports for the accountant and for analysis (UTF-8, dates ISO, money with a "
    "dot).\n\nExample: loyalty export journal --from 2026-01-01 --to 2026-03-31 -o journal.csv",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str | None, typer.Option("--from", help="First day (YYYY-MM-DD).", callback=check_date)
]


def _check_by(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """--by on an export whose rows are not periods: checked as the journal checks it."""
    if value is not None and value not in ("day", "month") and not ctx.resilient_parsing:
        from loyalty_cli.errors import UsageError

        raise UsageError(f"must be day or month, not '{value}'", field="--by")
    return value


def _unused_by(rows: str) -> typer.models.OptionInfo:
    """The synopsis gives every export `--by day|month`; only the journal's rows are
    periods. The others accept it (as balances accept --from) and say why it changes
    nothing."""
    return typer.Option(
        "--by", help=f"Not used: {rows} (accepted like the journal's --by).", callback=_check_by
    )


ByEntryOpt = Annotated[str | None, _unused_by("one row per entry")]
ByRedemptionOpt = Annotated[str | None, _unused_by("one row per redemption")]
ByMemberOpt = Annotated[str | None, _unused_by("one row per member, as of --to")]
ByPartnerOpt = Annotated[
    str | None,
    _unused_by("one row per partner for all of [--from, --to]; run it once per month for months"),
]


def _check_output(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
    """Refuse an -o path that cannot be written before any query runs (exit 2, one sentence)."""
    if value is None or ctx.resilient_parsing:
        return value
    if value == "-":
        return None  # the usual name of stdout
    if not value.strip():
        raise typer.BadParameter("an empty file name", ctx=ctx, param=param)
    path = Path(value)
    if path.is_dir():
        raise typer.BadParameter(f"{value}: is a directory, not a file", ctx=ctx, param=param)
    if not path.parent.is_dir():
        raise typer.BadParameter(
            f"{value}: the folder {path.parent} does not exist", ctx=ctx, param=param
        )
    return value


def _check_format(ctx: typer.Context, param: typer.CallbackParam, value: str) -> str:
    if value not in ("csv", "json"):
        raise typer.BadParameter(
            f"'{value}' is not csv or json (exports are files, not tables)", ctx=ctx, param=param
        )
    return value


ExportFormatOpt = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        help="csv (the default: the documented header) or json (a list of objects).",
        callback=_check_format,
    ),
]

OutOpt = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        help="Write to this file instead of stdout (`-` is stdout).",
        callback=_check_output,
    ),
]


def _write(make: Callable[[], Export], output: str | None, fmt: str, what: str) -> None:
    """Build the export, then write it; on a terminal a spinner runs meanwhile (while
    writing too, unless the rows go to that terminal)."""
    from loyalty_cli import exports, render

    with render.working(f"exporting {what} ..."):
        export = make()
        if output is not None or not sys.stdout.isatty():
            exports.write(export, output, fmt)
            return
    exports.write(export, output, fmt)


@group.command("ledger")
def ledger(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    by: ByEntryOpt = None,
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """Every ledger entry dated in [--from, --to] (no --from: from the beginning).

    Example: loyalty export ledger --from 2026-03-01 --to 2026-03-31 -o ledger.csv
    """
    from loyalty_cli import exports

    last = parse_date(end) or today()
    _write(
        lambda: exports.ledger_export(shop_conn(ctx), parse_date(start), last),
        output,
        fmt,
        "the ledger",
    )


@group.command("balances")
def balances(
    ctx: typer.Context,
    start: UnusedFromOpt = None,
    end: ToOpt = None,
    by: ByMemberOpt = None,
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """Each member's tier, available and pending points and their value on --to.

    Example: loyalty export balances --to 2026-03-31 -o balances.csv
    """
    from loyalty_cli import exports

    _write(
        lambda: exports.balances_export(shop_conn(ctx), parse_date(end) or today()),
        output,
        fmt,
        "the balances",
    )


@group.command("journal")
def journal(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    by: Annotated[str, typer.Option("--by", help="One row per day or month.")] = "month",
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """The points journal: opening, movements, closing points, value and liability per period.

    Periods are contiguous over [--from, --to] (no --from: the first ledger date); each
    closing is the next opening.

    Example: loyalty export journal --from 2026-01-01 --to 2026-03-31 --by month
    """
    from loyalty_cli import exports

    _write(
        lambda: exports.journal_export(
            shop_conn(ctx), parse_date(start), parse_date(end) or today(), by=by
        ),
        output,
        fmt,
        "the journal",
    )


@group.command("settlement")
def settlement(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    by: ByPartnerOpt = None,
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """Coalition settlement over [--from, --to]: what each partner owes or is owed.

    One row per partner (partner, points_issued, value_issued, points_redeemed,
    value_redeemed, net = value_issued - value_redeemed), then `coalition` (bonuses
    and rewards no partner funds or serves, when any) and `pool`, whose net makes
    the column sum to zero. --from defaults to the first day of --to's month (a
    settlement is monthly); --to to today. Definitions: docs/coalition.md.

    Example: loyalty export settlement --from 2026-10-01 --to 2026-10-31 -o settlement.csv
    """
    from loyalty_cli.coalition import settlement_export

    last = parse_date(end) or today()
    first = parse_date(start) or last.replace(day=1)
    _write(lambda: settlement_export(shop_conn(ctx), first, last), output, fmt, "the settlement")


@group.command("redemptions")
def redemptions(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    by: ByRedemptionOpt = None,
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """Every redemption (and used punch-card voucher) dated in [--from, --to].

    Example: loyalty export redemptions --from 2026-03-01 --to 2026-03-31
    """
    from loyalty_cli import exports

    last = parse_date(end) or today()
    _write(
        lambda: exports.redemptions_export(shop_conn(ctx), parse_date(start), last),
        output,
        fmt,
        "the redemptions",
    )


@group.command("offers")
def offers(
    ctx: typer.Context,
    start: UnusedFromOpt = None,
    end: ToOpt = None,
    by: ByMemberOpt = None,
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """Each member's personalised offer on --to, for a mailing.

    Example: loyalty export offers --to 2026-03-31 -o offers.csv
    """
    from loyalty_cli import exports

    _write(
        lambda: exports.offers_export(shop_conn(ctx), parse_date(end) or today()),
        output,
        fmt,
        "the offers",
    )


@group.command("rfm")
def rfm(
    ctx: typer.Context,
    start: UnusedFromOpt = None,
    end: ToOpt = None,
    by: ByMemberOpt = None,
    output: OutOpt = None,
    fmt: ExportFormatOpt = "csv",
) -> None:
    """frequency, recency, T, monetary_value per member on --to (lifetimes / pymc-marketing).

    Example: loyalty export rfm --to 2026-03-31 -o rfm.csv
    """
    from loyalty_cli import exports

    _write(
        lambda: exports.rfm_export(shop_conn(ctx), parse_date(end) or today()),
        output,
        fmt,
        "the RFM table",
    )


def register(app: typer.Typer) -> None:
    """Add `loyalty export ...` to the root app."""
    app.add_typer(group, name="export")
