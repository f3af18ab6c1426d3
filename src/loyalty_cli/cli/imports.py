"""`loyalty import ...`: CSV imports, their list, rejected rows and undo.

Thin: parse options, call one function of `loyalty_cli.importing`, render.
Another kind's command is one call: `add_kind_command(import_app, "balances", HELP)`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    DateOpt,
    FormatOpt,
    OutputFormat,
    check_seconds,
    echo_json,
    parse_date,
)
from loyalty_cli.cli.common import get_conn as _get_conn
from loyalty_cli.cli.common import shop_conn as _shop_conn

if TYPE_CHECKING:
    from loyalty_cli.importing import ImportResult

import_app = typer.Typer(
    help="Import CSV files (purchases, customers, events, redemptions, balances), list "
    "imports, show rejected rows, undo an import."
    "\n\nExample: loyalty import purchases sample_data/purchases.csv",
    no_args_is_help=True,
)

_IMPORT_KEYS = ("import_id", "file", "rows", "inserted", "duplicates", "rejected", "skipped_file")
_REJECT_KEYS = ("import_id", "file", "line", "field", "reason", "raw")
_LIST_KEYS = (
    "import_id", "kind", "file", "status", "started_at", "rows", "inserted",
    "duplicates", "rejected", "undone_on",
)  # fmt: skip

_HELP = {
    "purchases": "Import purchase rows (one per receipt line): transaction_id, customer_id, "
    "date, amount; optional line_no, sku, category, quantity, store, currency, tax, refund_of."
    "\n\nExample: loyalty import purchases sample_data/purchases.csv --quiet",
    "customers": "Import customers: customer_id; optional name, email, birthday, joined_on, "
    "referred_by. An existing customer is updated (non-empty values win)."
    "\n\nExample: loyalty import customers sample_data/customers.csv",
    "events": "Import events (signup, newsletter, review, ...): event_id, customer_id, "
    "type, date.\n\nExample: loyalty import events sample_data/events.csv --format json",
}


def _not_a_dir(ctx: typer.Context, param: typer.CallbackParam, value: list[Path]) -> list[Path]:
    """A folder given as a CSV file: say so (the importer would call it "no such file")."""
    for path in value or []:
        if path.is_dir():
            raise typer.BadParameter(
                f"{path}: is a directory, not a CSV file", ctx=ctx, param=param
            )
    return value


def add_kind_command(group: typer.Typer, kind: str, help_text: str) -> None:
    """Register `loyalty import KIND FILE... [options]` for a kind of the framework."""

    def command(
        ctx: typer.Context,
        files: Annotated[
            list[Path],
            typer.Argument(help="CSV files, each imported on its own.", callback=_not_a_dir),
        ],
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Check everything, write nothing.")
        ] = False,
        strict: Annotated[
            bool, typer.Option("--strict", help="A rejected row fails the whole file (exit 1).")
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="Print nothing on success (for cron).")
        ] = False,
        fmt: FormatOpt = OutputFormat.table,
        delimiter: Annotated[
            str | None, typer.Option("--delimiter", help="Field separator: , ; | or tab.")
        ] = None,
        decimal: Annotated[
            str | None, typer.Option("--decimal", help="Decimal separator: . or ,")
        ] = None,
        date_format: Annotated[
            str | None, typer.Option("--date-format", help="strftime format, e.g. %d.%m.%Y")
        ] = None,
        encoding: Annotated[
            str | None, typer.Option("--encoding", help="e.g. utf-8-sig (default), latin-1")
        ] = None,
        columns: Annotated[
            str | None,
            typer.Option("--columns", help='Header names: "amount=Summa,date=Pvm".'),
        ] = None,
        wait: Annotated[
            float,
            typer.Option(
                "--wait",
                callback=check_seconds,
                help="Seconds to wait while a nightly runs (default 600).",
                show_default=False,
            ),
        ] = 600.0,
    ) -> None:
        from contextlib import nullcontext

        from loyalty_cli.errors import LoyaltyError
        from loyalty_cli.importing import DialectOverrides, import_files
        from loyalty_cli.importing.dialect import parse_columns
        from loyalty_cli.lock import hold_lock

        overrides = DialectOverrides(
            delimiter=delimiter,
            decimal=decimal,
            date_format=date_format,
            encoding=encoding,
            columns=parse_columns(columns),
        )
        results: list[ImportResult] = []
        conn = _get_conn(ctx)
        # The nightly's lock: an import by hand waits for a running nightly (and a
        # nightly for it); a dry run writes nothing and does not wait.
        described = f"loyalty import {kind} " + " ".join(str(f) for f in files)
        lock = nullcontext() if dry_run else hold_lock(conn, described, wait=wait)
        try:
            with lock:
                import_files(
                    conn,
                    kind,
                    files,
                    dry_run=dry_run,
                    strict=strict,
                    overrides=overrides,
                    progress=sys.stderr.isatty() and not quiet,
                    on_result=results.append,
                )
        except LoyaltyError:
            # The files before the failing one stay imported: say so, then fail.
            if results:
                _render_results(results, fmt, quiet, fail_on_rejects=False)
            raise
        _render_results(results, fmt, quiet)

    command.__doc__ = help_text
    group.command(kind, help=help_text)(command)


def _render_results(
    results: list[ImportResult], fmt: OutputFormat, quiet: bool, fail_on_rejects: bool = True
) -> None:
    if fmt is OutputFormat.json:
        echo_json([r.as_json() for r in results])
    elif fmt is OutputFormat.csv:
        _write_csv(_IMPORT_KEYS, [r.as_json() for r in results])
    elif not quiet:
        for r in results:
            typer.echo(_summary(r))
    for r in results:
        for note in r.notes:
            typer.echo(render.visible(f"Warning: {r.file}: {note}"), err=True)
    rejected = [r for r in results if r.rejected]
    for r in rejected:
        if r.dry_run:
            if not quiet:
                for rej in r.sample:
                    where = f"{rej['file']}:{rej['line']}: " + (
                        f"{rej['field']}: " if rej["field"] else ""
                    )
                    typer.echo(render.visible(f"  {where}{rej['reason']}"), err=True)
            typer.echo(f"Warning: {_rows(r.rejected)} would be rejected in {r.file}", err=True)
        else:
            typer.echo(
                f"Warning: {_rows(r.rejected)} rejected in {r.file}; "
                f"see `loyalty import rejects --import {r.import_id}`",
                err=True,
            )
    if rejected and fail_on_rejects:
        raise typer.Exit(3)


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _summary(r: ImportResult) -> str:
    if r.skipped_file and r.import_id is None:  # a dry run's copy of one of its files
        return f"{r.file}: dry run: would be skipped, the same content as a file before it"
    if r.skipped_file:
        return (
            f"{r.file}: skipped, already imported (import {r.import_id}; to import it "
            f"again, `loyalty import undo {r.import_id}` first)"
        )
    dup = f"{r.duplicates} duplicate" + ("" if r.duplicates == 1 else "s")
    if r.dry_run:
        return (
            f"{r.file}: dry run: {_rows(r.rows)}, {r.inserted} to insert, {dup}, "
            f"{r.rejected} rejected (nothing written)"
        )
    return (
        f"{r.file}: {_rows(r.rows)}, {r.inserted} inserted, {dup}, {r.rejected} rejected "
        f"(import {r.import_id})"
    )


def _write_csv(keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    writer = render.csv_writer()
    writer.writerow(keys)
    for row in rows:
        writer.writerow(["" if row[k] is None else _csv_cell(row[k]) for k in keys])


def _csv_cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value  # never a spreadsheet formula
    return value


def _render_rows(
    keys: tuple[str, ...], rows: list[dict[str, Any]], fmt: OutputFormat, title: str
) -> None:
    if fmt is OutputFormat.json:
        echo_json([{k: row[k] for k in keys} for row in rows])
    elif fmt is OutputFormat.csv:
        _write_csv(keys, rows)
    elif not rows:
        typer.echo(f"No {title.lower()}.")
    else:
        render.render_rows(rows, "table", list(keys), title)


@import_app.command("list")
def list_command(ctx: typer.Context, fmt: FormatOpt = OutputFormat.table) -> None:
    """Imports so far, oldest first, with their counts and status.

    Example: loyalty import list --format json
    """
    from loyalty_cli.importing import list_imports

    _render_rows(_LIST_KEYS, list_imports(_shop_conn(ctx)), fmt, "Imports")


@import_app.command("rejects")
def rejects_command(
    ctx: typer.Context,
    import_id: Annotated[
        int | None, typer.Option("--import", help="Only the rows of this import.")
    ] = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Rows that were rejected, with file, line, field and reason.

    Example: loyalty import rejects --import 3
    """
    from loyalty_cli.importing import list_rejects

    _render_rows(_REJECT_KEYS, list_rejects(_shop_conn(ctx), import_id), fmt, "Rejected rows")


@import_app.command("undo")
def undo_command(
    ctx: typer.Context,
    import_id: Annotated[int, typer.Argument(help="The import to undo (see `import list`).")],
    date: DateOpt = None,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Undo an import: its rows stay for audit but count nowhere, and the points
    they earned are reversed by `reversal` entries dated --date (default today).

    Example: loyalty import undo 3 --date 2026-11-02
    """
    from loyalty_cli.importing import undo_import
    from loyalty_cli.rewards import posting_date

    conn = _shop_conn(ctx)
    result = undo_import(conn, import_id, posting_date(conn, parse_date(date)))
    if fmt is OutputFormat.json:
        echo_json(result.as_json())
    elif fmt is OutputFormat.csv:
        _write_csv(tuple(result.as_json()), [result.as_json()])
    else:
        done = {
            # Customer rows stay: receipts, events and the ledger name them.
            "customers": "the customer records stay (receipts and events name them); "
            "there were no points to reverse.",
            "redemptions": f"{render.count(result.rows, 'redemption')} cancelled, their "
            "points returned.",
        }.get(result.kind, f"{_rows(result.rows)} marked undone, their points reversed.")
        typer.echo(
            f"Import {result.import_id} ({result.kind}, {result.file}) undone on "
            f"{result.undone_on.isoformat()}: {done}"
        )
    if (note := result.sharing_note()) is not None:
        typer.echo(render.visible(f"Note: {note}"), err=True)


for _kind in ("purchases", "customers", "events"):
    add_kind_command(import_app, _kind, _HELP[_kind])

# Counter kinds (rewards engineer): each row goes through rewards.redeem / adjust.
add_kind_command(
    import_app,
    "redemptions",
    "Import redemptions done at the till: redemption_id, customer_id, reward_id, date. "
    "Each row is checked like `loyalty redeem` (points, tier, limit, dates); a row that "
    "fails is rejected with its reason.\n\nExample: loyalty import redemptions till.csv",
)
add_kind_command(
    import_app,
    "balances",
    "Import opening balances from another system: customer_id, points, date; optional "
    "expires_on. Each row becomes an adjust entry (source balance); `import undo` reverses "
    "them.\n\nExample: loyalty import balances old-system.csv",
)


def register(app: typer.Typer) -> None:
    """Add the `import` group to the root app."""
    app.add_typer(import_app, name="import")
