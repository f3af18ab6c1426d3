"""`loyalty init` and `loyalty demo`."""

from __future__ import annotations

import shlex
import sqlite3
from pathlib import Path

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import db_file, get_conn


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)


def init(ctx: typer.Context) -> None:
    """Create (or upgrade) the database file.

    Example: loyalty --db shop.db init
    """
    from loyalty_cli.db import program_version_count

    applied = program_version_count(get_conn(ctx, setup=True))
    if applied:
        # A live shop: the usual next step would add the sample program as a new version.
        typer.echo(
            f"ok: {db_file(ctx)} is ready; it holds a shop already (program versions: {applied})"
        )
    else:
        typer.echo(
            f"ok: {db_file(ctx)} is ready; next: loyalty program apply programs/boutique.yaml"
        )


def demo(ctx: typer.Context) -> None:
    """Build a demo shop from sample_data/ and programs/, post its points and show it.

    Writes the boutique into --db, which must be a new file, and a three-shop
    coalition beside it (NAME-coalition.db) unless a file of that name holds a shop
    or is no loyalty file (it is not rebuilt). --db may come before or
    after the command name, as with every command.

    Example: loyalty demo --db demo.db
    """
    from loyalty_cli.cli.customer import _panel
    from loyalty_cli.demo import build_coalition_demo, build_demo, require_empty
    from loyalty_cli.engine.statement import display_names
    from loyalty_cli.reports import summary

    out = render.console()
    conn = get_conn(ctx, setup=True)
    path = Path(db_file(ctx))
    coalition_path = path.with_name(f"{path.stem}-coalition{path.suffix or '.db'}")
    require_empty(conn, str(path))
    # A coalition file left from an earlier demo (its boutique deleted), or any other
    # file of that name, is neither replaced nor a reason to refuse the boutique:
    # the coalition is skipped.
    coalition_conn = _new_coalition_file(coalition_path)
    with render.working("building the demo shop ..."):
        shop = build_demo(conn)
    out.rule(f"Demo Boutique in {db_file(ctx)}, as of {shop.as_of.isoformat()}")
    out.print(f"program version {shop.program_version} applied from programs/boutique.yaml")
    for item in shop.imports:
        out.print(
            f"imported {Path(item['file']).name}: {item['inserted']} rows, "
            f"{item['duplicates']} duplicates, {item['rejected']} rejected"
        )
    run = shop.run
    entries = ", ".join(f"{n} {kind}" for kind, n in run["entries"].items())
    out.print(
        f"run as of {run['as_of']}: {render.count(run['receipts'], 'receipt')} of "
        f"{render.count(run['customers'], 'customer')} "
        f"-> {entries}; {run['vouchers_issued']} punch-card vouchers"
    )
    out.rule("At the counter")
    if shop.redemption:
        r = shop.redemption
        out.print(
            f"redeem {r['customer_id']} {r['reward_id']}: {r['points']} points "
            f"({r['value']}), {r['redemption_id']}, balance after {r['balance_after']}"
        )
    names = display_names(conn, shop.as_of)
    for statement in shop.statements:
        _panel(statement, names)
    render.render_summary(summary(conn, None, shop.as_of).as_json(), "table")

    if coalition_conn is None:
        typer.echo(
            render.visible(
                f"Warning: {coalition_path} is already there and holds a shop or another "
                "file, so the coalition demo was not built (remove that file to see it)"
            ),
            err=True,
        )
    else:
        try:
            with render.working("building the coalition ..."):
                report = build_coalition_demo(coalition_conn)
        finally:
            coalition_conn.close()
        out.rule(f"Coalition: three shops, one card ({coalition_path.name})")
        render.render_rows(
            report["settlement"], "table", title="Settlement 2026-10-01 .. 2026-10-31"
        )
        out.print(f"members who shopped at more than one partner: {report['shared_customers']}")
    out.print(
        f"Next: loyalty --db {shlex.quote(str(db_file(ctx)))} customer show "
        f"{shop.statements[0]['customer_id'] if shop.statements else 'C0001'} "
        f"--as-of {shop.as_of.isoformat()}",  # the demo's day: today its lots have expired
        soft_wrap=True,  # one line, to copy as it is
    )


def _new_coalition_file(path: Path) -> sqlite3.Connection | None:
    """A connection to `path` for the coalition demo; None when the file holds a
    shop or is no loyalty file at all."""
    from loyalty_cli import db
    from loyalty_cli.demo import require_empty
    from loyalty_cli.errors import LoyaltyError

    try:
        conn = db.connect(path)
    except (LoyaltyError, sqlite3.DatabaseError):
        return None
    try:
        require_empty(conn, str(path))
    except LoyaltyError:
        conn.close()
        return None
    return conn
