"""`loyalty customer show | explain` (and `customer list`, added by customer_list.py
onto `customer_app`)."""

from __future__ import annotations

import sys
from typing import Any

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    AsOfOpt,
    FormatOpt,
    OutputFormat,
    date_or_today,
    shop_conn,
    today,
)

customer_app = typer.Typer(
    help="One customer: the statement and the ledger behind it.\n\n"
    "Example: loyalty customer show C0001",
    no_args_is_help=True,
)


@customer_app.command("show")
def show_cmd(
    ctx: typer.Context,
    customer_id: str = typer.Argument(..., help="The customer id."),
    as_of: AsOfOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """The statement: points available and pending, tier and how far to the next,
    points about to expire (last usable day), rewards they can have, vouchers.

    JSON: {customer_id, name, tier, segment, points {available, pending, total},
    qualifying, next_tier {id, remaining} | null, expiring [{date, points}],
    eligible_rewards \\[ids], vouchers [{voucher_id, reward_id, issued, status}]}.

    Example: loyalty customer show C0001 --as-of 2026-06-30 --format json
    """
    from loyalty_cli.engine.statement import customer_statement, display_names, tier_unit

    day = date_or_today(as_of)
    data = customer_statement(shop_conn(ctx), customer_id, day)
    if fmt == OutputFormat.json:
        typer.echo(render.to_json(data))
    elif fmt == OutputFormat.csv:
        render.write_csv(list(_flat(data)), [list(_flat(data).values())])
    else:
        conn = shop_conn(ctx)
        _panel(data, display_names(conn, day), tier_unit(conn, day))


def _flat(data: dict[str, Any]) -> dict[str, Any]:
    nxt = data["next_tier"]
    return {
        "customer_id": data["customer_id"],
        "name": data["name"],
        "tier": data["tier"],
        "segment": data["segment"],
        "available": data["points"]["available"],
        "pending": data["points"]["pending"],
        "total": data["points"]["total"],
        "qualifying": data["qualifying"],
        "next_tier": nxt["id"] if nxt else None,
        "next_tier_remaining": nxt["remaining"] if nxt else None,
        "expiring": "; ".join(f"{x['points']} on {x['date']}" for x in data["expiring"]),
        "eligible_rewards": " ".join(data["eligible_rewards"]),
        "vouchers": " ".join(v["voucher_id"] for v in data["vouchers"] if v["status"] == "open"),
    }


def _panel(data: dict[str, Any], names: dict[str, str], unit: str | None = None) -> None:
    """A small panel a cashier reads at the counter: tiers and rewards by name, the
    reward id `redeem` takes beside it."""
    from rich.cells import cell_len
    from rich.panel import Panel
    from rich.text import Text

    def named(key: str) -> str:
        return names.get(key, key)

    def with_id(key: str) -> str:
        return f"{names[key]} ({key})" if names.get(key, key) != key else key

    pts = data["points"]
    body = Text()
    body.append(f"{pts['available']}", style="bold green")
    body.append(" point available" if pts["available"] == 1 else " points available")
    if pts["pending"]:
        body.append(f"   (+{pts['pending']} pending)")
    body.append("\n")
    if data["tier"] or data["next_tier"]:
        # Below the lowest level (its min above 0) there is no tier yet, but a way to one.
        body.append("Tier ")
        body.append(named(str(data["tier"])) if data["tier"] else "none yet", style="bold")
        if data["next_tier"]:
            nxt = data["next_tier"]
            remaining = nxt["remaining"]
            if unit in ("point", "receipt"):
                remaining = render.count(remaining, unit)
            elif unit:
                remaining = f"{remaining} {unit}"
            body.append(f"   {remaining} to {named(nxt['id'])}")
        body.append("\n")
    if data["segment"]:
        body.append(f"Segment {data['segment']}\n")
    if data.get("by_partner"):
        earned = ", ".join(f"{p} {n}" for p, n in data["by_partner"].items())
        body.append(f"Earned at: {earned}\n")
    expiring = data["expiring"]
    for item in expiring[:3]:
        points = render.count(item["points"], "point")
        body.append(f"{points} usable until {item['date']}\n", style="yellow")
    if len(expiring) > 3:
        later = render.count(sum(item["points"] for item in expiring[3:]), "more point")
        lots = render.count(len(expiring) - 3, "later lot")
        body.append(
            f"{later} in {lots} (customer show --format json lists them)\n",
            style="yellow",
        )
    rewards = data["eligible_rewards"]
    body.append(
        "Can have: " + (", ".join(map(with_id, rewards)) if rewards else "nothing yet") + "\n"
    )
    open_vouchers = [v for v in data["vouchers"] if v.get("status") == "open"]
    if open_vouchers:
        # Oldest first is what `redeem` uses; a long list would swamp the panel.
        by_reward: dict[str, list[str]] = {}
        for v in open_vouchers:
            by_reward.setdefault(v["reward_id"], []).append(v["voucher_id"])
        body.append(
            "Vouchers: "
            + ", ".join(
                f"{len(ids)} open {named(reward)} (next {ids[0]})"
                for reward, ids in by_reward.items()
            )
        )
    body.rstrip()
    title = render.visible(data["customer_id"] + (f" · {data['name']}" if data["name"] else ""))
    # Into a file or a pipe the panel takes the width it needs; on a terminal too
    # narrow for the title, the title opens the panel's text instead of being cut.
    needed = max(
        cell_len(title) + 6, max((cell_len(line) for line in body.plain.split("\n")), default=0) + 4
    )
    out = render.console() if sys.stdout.isatty() else render.console(width=max(80, needed))
    if cell_len(title) + 6 > out.width:
        body = Text.assemble((title + "\n", "bold"), body)
        title = ""
    out.print(Panel(body, title=Text(title) if title else None, expand=False))


@customer_app.command("explain")
def explain_cmd(
    ctx: typer.Context,
    customer_id: str = typer.Argument(..., help="The customer id."),
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Every ledger entry behind the balance: date, kind, points, running balance,
    source, rule and program version that made it.

    Example: loyalty customer explain C0001 --format csv
    """
    from loyalty_cli.engine.statement import EXPLAIN_COLUMNS, explain, unposted_expiries

    conn = shop_conn(ctx)
    rows = explain(conn, customer_id)
    # The counter screen is narrow: the table leaves out the lot dates and entry ids.
    columns = EXPLAIN_COLUMNS if fmt != OutputFormat.table else _TABLE_COLUMNS
    render.render_rows(rows, fmt, columns, title=f"Ledger of {customer_id}")
    if fmt == OutputFormat.table:
        # What the statement already leaves out and the ledger does not hold yet.
        due = unposted_expiries(conn, customer_id, today())
        if due:
            points = render.count(sum(d["points"] for d in due), "point")
            first, last = min(d["date"] for d in due), max(d["date"] for d in due)
            when = f"on {first}" if first == last else f"from {first} to {last}"
            typer.echo(
                f"Not posted yet: {points} expired {when} (no run has posted that); the "
                "statement leaves them out, the next run posts the expire entries."
            )


_TABLE_COLUMNS = ["date", "kind", "points", "balance", "source", "rule", "version", "note"]


def register(app: typer.Typer) -> None:
    """Add the `customer` group to the root app."""
    app.add_typer(customer_app, name="customer")
