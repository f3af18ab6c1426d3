"""`loyalty report summary | kpi | tiers | segments | offers`: what a shop owner reads."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    FormatOpt,
    OutputFormat,
    ToOpt,
    UnusedFromOpt,
    check_date,
    parse_date,
    shop_conn,
    today,
)

group = typer.Typer(
    help="Reports for the shop owner: KPIs, tiers, segments, offers and a monthly summary.\n\n"
    "Example: loyalty report kpi --from 2026-03-01 --to 2026-03-31",
    no_args_is_help=True,
)

FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="First day (YYYY-MM-DD); default: see the command.",
        callback=check_date,
    ),
]


def _period(start: str | None, end: str | None) -> tuple[dt.date | None, dt.date]:
    return parse_date(start), parse_date(end) or today()


@group.command("kpi")
def kpi(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """KPIs over [--from, --to]: customers, revenue, AOV, retention, points, liability.

    --from defaults to the first day of --to's month. Definitions: docs/reports.md.

    Example: loyalty report kpi --from 2026-03-01 --to 2026-03-31 --format json
    """
    from loyalty_cli import reports

    first, last = _period(start, end)
    with render.working("computing the KPIs ..."):
        data = reports.kpi_report(shop_conn(ctx), first or last.replace(day=1), last)
    render.render_mapping(data, fmt, title="KPIs")


@group.command("tiers")
def tiers(
    ctx: typer.Context,
    start: UnusedFromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Customers per tier on --to, with their share of all customers holding a tier.

    Example: loyalty report tiers --to 2026-03-31 --format json
    """
    from loyalty_cli import reports

    _, last = _period(start, end)
    with render.working("reading every customer's tier ..."):
        rows = reports.tier_report(shop_conn(ctx), last)
    render.render_rows(rows, fmt, ["tier", "customers", "share"], title=f"Tiers on {last}")


@group.command("segments")
def segments(
    ctx: typer.Context,
    start: UnusedFromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Members per lifecycle segment on --to (new, one_time, repeat, loyal, at_risk, lapsed).

    Example: loyalty report segments --to 2026-03-31 --format json
    """
    from loyalty_cli import reports

    _, last = _period(start, end)
    with render.working("sorting the customers into segments ..."):
        counts = reports.segment_report(shop_conn(ctx), last)
    if str(fmt) == "table":
        rows = [{"segment": k, "customers": v} for k, v in counts.items()]
        render.render_rows(rows, fmt, ["segment", "customers"], title=f"Segments on {last}")
    else:
        render.render_mapping(counts, fmt)


@group.command("offers")
def offers(
    ctx: typer.Context,
    start: UnusedFromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The personalised offer of each member on --to (first matching `offers:` rule).

    Example: loyalty report offers --to 2026-03-31
    """
    from loyalty_cli import reports

    _, last = _period(start, end)
    with render.working("choosing the offers ..."):
        rows = reports.offers(shop_conn(ctx), last)
    render.render_rows(rows, fmt, render.OFFER_COLUMNS, title=f"Offers on {last}")


@group.command("partners")
def partners(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Coalition partners: the settlement, revenue per partner, shared customers.

    --from defaults to the first day of --to's month. Definitions: docs/coalition.md.

    Example: loyalty report partners --from 2026-10-01 --to 2026-10-31
    """
    from loyalty_cli.coalition import partner_report

    first, last = _period(start, end)
    with render.working("reading the partners' figures ..."):
        data = partner_report(shop_conn(ctx), first or last.replace(day=1), last)
    if fmt == OutputFormat.json:
        typer.echo(render.to_json(data))
        return
    rows = [
        {**row, "revenue": data["revenue"].get(row["partner"]),
         "customers": data["customers"].get(row["partner"])}
        for row in data["settlement"]
    ]  # fmt: skip
    if fmt == OutputFormat.csv:
        # The table's last line as a last row: `customers` of no partner, the shared ones.
        shared = dict.fromkeys(rows[0] if rows else ("partner", "customers"))
        shared.update(partner="shared_customers", customers=data["shared_customers"])
        rows.append(shared)
    render.render_rows(rows, fmt, title=f"Partners {data['from']} .. {data['to']}")
    if fmt == OutputFormat.table:
        typer.echo(f"customers who shopped at more than one partner: {data['shared_customers']}")


@group.command("summary")
def summary(
    ctx: typer.Context,
    start: FromOpt = None,
    end: ToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The shop at a glance: members, revenue by month, tiers, segments, points, liability.

    --from defaults to the first day of the month eleven months before --to (a year of bars).

    Example: loyalty report summary --to 2026-03-31
    """
    from loyalty_cli import reports

    first, last = _period(start, end)
    with render.working("computing the summary ..."):
        result = reports.summary(shop_conn(ctx), first, last)
    render.render_summary(result.as_json(), fmt)


def register(app: typer.Typer) -> None:
    """Add `loyalty report ...` to the root app."""
    app.add_typer(group, name="report")
