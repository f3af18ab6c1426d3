"""`loyalty simulate FILE`: the shop's own history under a proposed program."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    FormatOpt,
    FromOpt,
    OutputFormat,
    check_date,
    echo_json,
    parse_date,
    shop_conn,
)

SimToOpt = Annotated[
    str | None,
    typer.Option(
        "--to",
        help="Last day (YYYY-MM-DD); default today (the last run's as-of if later).",
        callback=check_date,
    ),
]


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)


def simulate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The proposed program YAML.")],
    date_from: FromOpt = None,
    date_to: SimToOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Replay the stored history under a proposed program, side by side with the current one.

    Nothing in the database changes: the replay runs on a copy in memory.
    --to defaults to today (the as-of date of the last run when that is later).

    Example: loyalty simulate programs/cashback.yaml --from 2026-06-01 --to 2026-06-30
    """
    from loyalty_cli.simulate import simulate as run_simulation

    with render.working(f"replaying the history under {file} ..."):
        result = run_simulation(shop_conn(ctx), file, parse_date(date_from), parse_date(date_to))
    if fmt is OutputFormat.json:
        echo_json(result)
    elif fmt is OutputFormat.csv:
        _csv(result)
    else:
        _table(result)


def _metrics(result: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    keys = [k for k in result["current"] if k != "tiers"]
    rows = [(k, result["current"][k], result["proposed"][k], result["delta"][k]) for k in keys]
    for tier, change in result["delta"]["tiers"].items():
        rows.append(
            (
                f"tier {tier}",
                result["current"]["tiers"].get(tier, 0),
                result["proposed"]["tiers"].get(tier, 0),
                change,
            )
        )
    return rows


def _csv(result: dict[str, Any]) -> None:

    writer = render.csv_writer()
    writer.writerow(["metric", "current", "proposed", "delta"])
    for row in _metrics(result):
        writer.writerow(["" if v is None else v for v in row])
    # What the table prints below itself: the real ledger made every redemption.
    skipped = result["redemptions_skipped"]
    writer.writerow(["redemptions_skipped", 0, skipped, skipped])
    for row in result["top_changes"]:
        writer.writerow(
            [f"balance {row['customer_id']}", row["current"], row["proposed"], row["change"]]
        )


def _table(result: dict[str, Any]) -> None:
    from rich.table import Table

    console = render.console()
    table = Table(title=f"Simulation {result['from']} .. {result['to']}")
    for column in ("metric", "current", "proposed", "delta"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, current, proposed, delta in _metrics(result):
        values = (current, proposed, delta)
        table.add_row(metric, *("-" if v is None else render.table_text(v) for v in values))
    render.print_table(table)
    if result["redemptions_skipped"]:
        console.print(
            f"{result['redemptions_skipped']} redemption(s) could not be made under the "
            "proposed program and were skipped."
        )
    if result["top_changes"]:
        movers = Table(title="Customers whose balance changes most")
        for column in ("customer_id", "current", "proposed", "change"):
            movers.add_column(column, justify="left" if column == "customer_id" else "right")
        for row in result["top_changes"]:
            movers.add_row(
                row["customer_id"], str(row["current"]), str(row["proposed"]), str(row["change"])
            )
        console.print(movers)
