"""`loyalty init` and `loyalty demo`."""

from __future__ import annotations

import typer
from rich.console import Console

from loyalty_cli.cli.common import db_file, get_conn


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("demo")(demo)


def init(ctx: typer.Context) -> None:
    """Create (or upgrade) the database file.

    Example: loyalty --db shop.db init
    """
    get_conn(ctx)
    typer.echo(f"ok: {db_file(ctx)} is ready; next: loyalty program apply programs/boutique.yaml")


def demo(ctx: typer.Context) -> None:
    """Build a demo shop from sample_data/ and programs/boutique.yaml, and show it.

    Example: loyalty --db demo.db demo
    """
    from loyalty_cli.demo import build_demo

    console = Console()
    conn = get_conn(ctx)
    shop = build_demo(conn)
    console.print(f"[bold]Demo shop[/bold] in {db_file(ctx)}, as of {shop.as_of.isoformat()}")
    console.print(f"program version {shop.program_version} applied (programs/boutique.yaml)")
    for item in shop.imports:
        console.print(
            f"imported {item['file']}: {item['inserted']} rows, "
            f"{item['duplicates']} duplicates, {item['rejected']} rejected"
        )
    console.print(f"run: {shop.run}")
