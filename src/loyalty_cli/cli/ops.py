"""`loyalty nightly | check | backup`: the commands cron and the operator run.

Thin: parse options, call one function of `loyalty_cli.nightly` or
`loyalty_cli.ops`, render.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    AsOfOpt,
    FormatOpt,
    OutputFormat,
    check_seconds,
    date_or_today,
    echo_json,
    get_conn,
    warn_if_ahead,
)
from loyalty_cli.errors import LoyaltyError


class CheckFailed(LoyaltyError):
    """`check` found broken invariants (listed on stdout)."""

    exit_code = 1


def check(ctx: typer.Context, fmt: FormatOpt = OutputFormat.table) -> None:
    """Check the database: SQLite integrity and the ledger's invariants (balance =
    sum of entries, no lot below zero or above its points, every entry's source
    and lot exist). Exit 0 when sound, 1 listing each problem on its own line.

    Example: loyalty --db shop.db check
    """
    from loyalty_cli.checks import run_check

    with render.working("checking the database and the ledger ..."):
        report = run_check(get_conn(ctx, existing=True))
    if fmt is OutputFormat.json:
        echo_json(report.as_json())
    elif fmt is OutputFormat.csv:
        writer = render.csv_writer()
        writer.writerow(["code", "entry_id", "customer_id", "message"])
        for f in report.findings:
            writer.writerow([f.code, f.entry_id, f.customer_id, f.message])
    elif report.ok:
        typer.echo(report.summary())
    else:
        for finding in report.findings:
            typer.echo(finding.message)
    if not report.ok:
        n = len(report.findings)
        raise CheckFailed(
            f"check found {n} problem{'s' if n != 1 else ''} in "
            f"{report.entries} entries, {report.customers} customers"
        )


def backup(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Where to write the copy.")],
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace FILE if it exists (only once the copy is done)."),
    ] = False,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Write a consistent copy of the database to FILE, safe while imports or a
    nightly run. Refuses to overwrite an existing FILE unless --force.

    Example: loyalty --db shop.db backup backups/shop-2026-11-23.db
    """
    from loyalty_cli.backup import backup_database

    with render.working(f"copying the database to {file} ..."):
        result = backup_database(get_conn(ctx, existing=True), file, force=force)
    if fmt is OutputFormat.json:
        echo_json(result.as_json())
    else:
        typer.echo(f"backup: {result.source} -> {result.file} ({result.bytes} bytes)")


def nightly(
    ctx: typer.Context,
    inbox: Annotated[
        Path, typer.Option("--inbox", help="Directory the till's exports are dropped into.")
    ],
    as_of: AsOfOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print nothing on success (for cron).")
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait",
            callback=check_seconds,
            help="Seconds to wait for another nightly to finish (default 600).",
            show_default=False,
        ),
    ] = 600.0,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Import every new CSV file in the inbox (customers-*, then purchases, then
    events-*, then redemptions-*), move each to INBOX/done/, then run the engine.
    Exit 0 done, 3 done but rows were rejected (INBOX/done/NAME.rejects.csv),
    1 a step failed (the message names the file; it stays in the inbox).

    Example: loyalty --db shop.db nightly --inbox /srv/shop/inbox --quiet
    """
    from loyalty_cli.nightly import check_inbox
    from loyalty_cli.nightly import nightly as run_nightly

    check_inbox(inbox)  # a usage error (exit 2) before the database is looked at
    day = date_or_today(as_of)
    result = run_nightly(get_conn(ctx, existing=True), inbox, as_of=day, wait=wait, quiet=quiet)
    if result.error is None:
        warn_if_ahead(day)
    if fmt is OutputFormat.json:
        echo_json(result.as_json())
    elif fmt is OutputFormat.csv:
        writer = render.csv_writer()
        writer.writerow(["file", "kind", "inserted", "duplicates", "rejected", "skipped_file"])
        for f in result.files:
            writer.writerow([f.name, f.kind, f.inserted, f.duplicates, f.rejected, f.skipped])
    elif not quiet:
        for line in result.lines():
            typer.echo(render.visible(line))  # file names are the till's: no escapes
    for line in result.warnings():
        typer.echo(render.visible(line), err=True)
    if quiet:
        for line in result.reject_lines():
            typer.echo(render.visible(line), err=True)
    if result.error is not None:
        raise result.error
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def register(app: typer.Typer) -> None:
    """Add `nightly`, `check` and `backup` to the root app."""
    app.command("nightly")(nightly)
    app.command("check")(check)
    app.command("backup")(backup)
