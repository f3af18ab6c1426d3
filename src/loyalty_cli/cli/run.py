"""`loyalty run`: post everything due up to a date (the nightly step)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import AsOfOpt, date_or_today, shop_conn, warn_if_ahead


def run_cmd(
    ctx: typer.Context,
    as_of: AsOfOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success.")] = False,
) -> None:
    """Score new purchases and events, release and expire points, pay birthdays and
    referrals, issue punch-card vouchers: everything due up to --as-of (default today).

    One transaction: a crash leaves the ledger as before. Safe to run again:
    a second run with nothing new posts nothing.

    Example: loyalty run --as-of 2026-06-30 --quiet
    """
    from loyalty_cli.engine.run import run

    day = date_or_today(as_of)
    conn = shop_conn(ctx)
    result = run(conn, day, progress=not quiet and sys.stderr.isatty())
    warn_if_ahead(day)
    if quiet:
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.entries.items())) or "nothing new"
    typer.echo(
        f"Run {result.run_id} as of {day}: {render.count(result.receipts, 'receipt')}, "
        f"{render.count(result.customers, 'customer')}; entries: {counts}"
        + (f"; vouchers issued {result.vouchers}" if result.vouchers else "")
    )
    if result.before_program:
        typer.echo(
            f"Note: {render.count(result.before_program, 'receipt')} "
            f"{'is' if result.before_program == 1 else 'are'} dated before the program's first "
            f"version ({result.program_from}) and earn nothing; to score "
            f"{'it' if result.before_program == 1 else 'them'}, apply the "
            "program with --effective on an earlier date "
            "(`loyalty program apply FILE --effective DATE`).",
            err=True,
        )


def register(app: typer.Typer) -> None:
    """Add `loyalty run` to the root app."""
    app.command("run")(run_cmd)
