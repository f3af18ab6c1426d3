"""`loyalty customer list`: every member with tier, segment and points (added onto
the `customer` group defined in cli/customer.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import AsOfOpt, FormatOpt, OutputFormat, date_or_today, shop_conn
from loyalty_cli.cli.customer import customer_app

LIST_COLUMNS = ["customer_id", "name", "tier", "segment", "available", "pending"]


@customer_app.command("list")
def list_cmd(
    ctx: typer.Context,
    segment: Annotated[
        str | None,
        typer.Option(
            "--segment", help="Only this segment: new, one_time, repeat, loyal, at_risk, lapsed."
        ),
    ] = None,
    tier: Annotated[str | None, typer.Option("--tier", help="Only this tier id.")] = None,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Members with their tier, segment and available and pending points on --as-of.

    JSON: a list of {customer_id, name, tier, segment, available, pending}.

    Example: loyalty customer list --segment at_risk --as-of 2026-06-30 --format csv
    """
    from loyalty_cli import reports

    day = date_or_today(as_of)
    with render.working("reading every customer ..."):
        rows = reports.customer_list(shop_conn(ctx), day, segment=segment, tier=tier)
    render.render_rows(rows, fmt, LIST_COLUMNS, title=f"Customers on {day}")


def register(app: typer.Typer) -> None:
    """`customer list` is registered on customer_app at import; nothing to add here."""
