"""Counter commands: `rewards list | eligible`, `redeem`, `redemption cancel`,
`adjust`, `claim`.

Thin: parse options, call one function of `loyalty_cli.rewards`, render.
"""

from __future__ import annotations

from typing import Annotated

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    AsOfOpt,
    DateOpt,
    FormatOpt,
    OutputFormat,
    check_date,
    date_or_today,
    parse_date,
    shop_conn,
)

rewards_app = typer.Typer(
    help="The reward catalogue and who can have what.\n\nExample: loyalty rewards eligible "
    "--customer C0001",
    no_args_is_help=True,
)
redemption_app = typer.Typer(
    help="Redemptions already made.\n\nExample: loyalty redemption cancel R000001",
    no_args_is_help=True,
)

_CATALOGUE_COLUMNS = (
    "reward_id", "name", "cost", "value", "min_tier", "limit", "active", "active_on_date",
    "punch_card", "partner", "voucher_days",
)  # fmt: skip


def _flat_reward(row: dict) -> dict:
    """Nested catalogue values as short text for a table or CSV cell."""
    out = dict(row)
    limit, active, punch = row["limit"], row["active"], row["punch_card"]
    out["limit"] = f"{limit['count']} per {limit['per']}" if limit else None
    out["active"] = f"{active['from'] or '…'} to {active['to'] or '…'}" if active else None
    if punch:
        when = ", ".join(f"{k}={render.cell_text(v)}" for k, v in punch["when"].items())
        out["punch_card"] = f"every {punch['every']}" + (f" ({when})" if when else "")
    return out


@rewards_app.command("list")
def list_cmd(
    ctx: typer.Context,
    customer: Annotated[
        str | None,
        typer.Option("--customer", help="Also say whether this customer can have each reward."),
    ] = None,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = OutputFormat.table,
):
    """The reward catalogue of the program in force: cost, value, tier, limit, dates.

    JSON: a list of {reward_id, name, cost, value, min_tier, limit {count, per},
    active {from, to}, active_on_date, punch_card {every, when}, partner, voucher_days};
    with --customer also eligible (true/false) and why_not (the reason, or null), and
    after the catalogue the punch cards a later version dropped that the customer
    still holds a voucher of.

    Example: loyalty rewards list --customer C0001 --as-of 2026-10-31
    """
    from loyalty_cli import rewards as lib

    rows = lib.list_rewards(shop_conn(ctx), date_or_today(as_of), customer)
    if fmt == OutputFormat.json:
        render.render_rows(rows, fmt)
        return
    flat = [_flat_reward(r) for r in rows]
    columns = _CATALOGUE_COLUMNS + (("eligible", "why_not") if customer is not None else ())
    if fmt == OutputFormat.table and flat:  # a terminal is narrow: leave out unused columns
        columns = tuple(c for c in columns if any(r.get(c) is not None for r in flat))
    render.render_rows(flat, fmt, columns, "Rewards")


@rewards_app.command("eligible")
def eligible_cmd(
    ctx: typer.Context,
    customer: Annotated[
        str | None, typer.Option("--customer", help="Only this customer (default: everyone).")
    ] = None,
    as_of: AsOfOpt = None,
    fmt: FormatOpt = OutputFormat.table,
):
    """Who can have which reward on a date (points, tier, limit, active dates, vouchers).

    JSON: a list of {customer_id, reward_id, cost, available}.

    Example: loyalty rewards eligible --customer C0001 --as-of 2026-10-31
    """
    from loyalty_cli import rewards as lib

    with render.working("checking every customer against every reward ..."):
        rows = lib.rewards_eligible(shop_conn(ctx), customer, date_or_today(as_of))
    render.render_rows(
        rows, fmt, ("customer_id", "reward_id", "cost", "available"), "Eligible rewards"
    )


def redeem_cmd(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    reward: Annotated[str, typer.Argument(help="Reward id (see `loyalty rewards list`).")],
    date: DateOpt = None,
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref", help="Idempotency key from the till: the same key again changes nothing."
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
):
    """Redeem a reward for a customer: points (or a punch-card voucher) are taken.

    Refused with exit 1 and the reason when the customer cannot have it (not
    enough points, tier too low, limit reached, not active, unknown reward).
    The table shows a short code the till can type.

    Example: loyalty redeem C0001 coffee --ref till1-000123
    """
    from loyalty_cli import rewards as lib

    conn = shop_conn(ctx)
    out = lib.redeem(
        conn, customer, reward, date_or_today(date), ref=ref, latest=lib.posting_limit(conn)
    )
    if fmt == OutputFormat.table:
        out = {**out, "code": lib.redemption_code(out["redemption_id"])}
    render.render_mapping(out, fmt, "Redeemed")


@redemption_app.command("cancel")
def cancel_cmd(
    ctx: typer.Context,
    redemption_id: Annotated[str, typer.Argument(metavar="ID", help="Redemption id.")],
    date: DateOpt = None,
    fmt: FormatOpt = OutputFormat.table,
):
    """Give an unused reward back: its points return to the lots they came from.

    Posts a redemption_reversed entry dated --date (default today); points
    whose lot has expired meanwhile expire again at once. A voucher reopens.

    Example: loyalty redemption cancel R000001 --date 2026-11-02
    """
    from loyalty_cli import rewards as lib

    conn = shop_conn(ctx)
    out = lib.cancel_redemption(conn, redemption_id, lib.posting_date(conn, parse_date(date)))
    render.render_mapping(out, fmt, "Cancelled")


def adjust_cmd(
    ctx: typer.Context,
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    points: Annotated[int, typer.Argument(help="Points to add, or take with a minus (-50).")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept on the entry).")],
    date: DateOpt = None,
    allow_negative: Annotated[
        bool,
        typer.Option("--allow-negative", help="Allow taking the available balance below zero."),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
):
    """A manual correction, posted as an `adjust` entry (added points usable at once).

    Example: loyalty adjust C0001 -50 --reason "double-scanned receipt 4411"
    """
    from loyalty_cli import rewards as lib

    conn = shop_conn(ctx)
    on = lib.posting_date(conn, parse_date(date))
    out = lib.adjust(conn, customer, points, reason, on, allow_negative)
    render.render_mapping(out, fmt, "Adjusted")


def claim_cmd(
    ctx: typer.Context,
    transaction: Annotated[str, typer.Argument(help="Receipt (transaction) id.")],
    customer: Annotated[str, typer.Argument(help="Customer id.")],
    date: Annotated[
        str | None,
        typer.Option(
            "--date",
            help="Day the claim is made (kept as claimed_on; the receipt earns on its own "
            "date); default today.",
            callback=check_date,
        ),
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
):
    """Attach an anonymous receipt to a member; the next `loyalty run` scores it.

    Its anonymous refunds (refund_of) go with it ("refunds" lists them).
    A refund of a receipt someone holds cannot be claimed for anyone else.

    Example: loyalty claim R000001 C0001
    """
    from loyalty_cli import rewards as lib

    conn = shop_conn(ctx)
    out = lib.claim(conn, transaction, customer, lib.posting_date(conn, parse_date(date)))
    render.render_mapping(out, fmt, "Claimed")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(rewards_app, name="rewards")
    app.add_typer(redemption_app, name="redemption")
    app.command("redeem")(redeem_cmd)
    # A negative POINTS (-50) must reach the argument, not be taken for an option.
    app.command("adjust", context_settings={"ignore_unknown_options": True})(adjust_cmd)
    app.command("claim")(claim_cmd)
