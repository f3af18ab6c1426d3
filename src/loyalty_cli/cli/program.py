"""`loyalty program validate | apply | show | versions | schema`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from loyalty_cli import render
from loyalty_cli.cli.common import (
    FormatOpt,
    OutputFormat,
    check_date,
    db_exists,
    echo_json,
    get_conn,
    parse_date,
    shop_conn,
    today,
)
from loyalty_cli.errors import ProgramError

if TYPE_CHECKING:
    from loyalty_cli import program as programs

group = typer.Typer(
    help="Define the loyalty program: validate and apply its YAML, show versions.\n\n"
    "Example: loyalty program apply programs/boutique.yaml",
    no_args_is_help=True,
)

FileArg = Annotated[str, typer.Argument(help="The program YAML file.", metavar="FILE")]


@group.command("validate")
def validate(file: FileArg) -> None:
    """Check a program file without applying it; lists every error with its line.

    Example: loyalty program validate programs/boutique.yaml
    """
    from loyalty_cli import program as programs

    try:
        prog = programs.load_program(file)
    except ProgramError as exc:
        errors = getattr(exc, "errors", None) or [exc]
        typer.echo(f"Error: {errors[0]}", err=True)
        for err in errors[1:]:
            typer.echo(str(err), err=True)
        raise typer.Exit(exc.exit_code) from None
    typer.echo(f"ok: {file} is a valid program ({prog.program})")


@group.command("apply")
def apply(
    ctx: typer.Context,
    file: FileArg,
    effective: Annotated[
        str | None,
        typer.Option(
            "--effective",
            help="Date the version takes effect (YYYY-MM-DD); default the file's "
            "effective_from, else the start of history for the first version and today "
            "for later ones.",
            callback=check_date,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Apply without asking (for scripts).")
    ] = False,
) -> None:
    """Store the program as a new version (the same file again changes nothing).

    Purchases are scored by the version in force on their date; posted points
    are never rewritten. On a terminal it first shows what changes against the
    version in force and asks; --yes skips the question.

    Example: loyalty program apply programs/boutique.yaml --effective 2026-07-01
    """
    from loyalty_cli import program as programs
    from loyalty_cli import programs_store

    when = parse_date(effective)
    conn = get_conn(ctx, setup=True)
    if not yes and sys.stdin.isatty() and not _kept(conn, file, when):
        changes = _changes(conn, file)
        if changes is not None:
            for line in changes or ["no changes to the rules (only the effective date)"]:
                typer.echo(f"  {line}")
            if not typer.confirm("Apply this program as a new version?"):
                typer.echo("Nothing applied.", err=True)
                raise typer.Exit(1)
    version = programs.apply_program(conn, file, effective=when, today=today())
    what = "applied" if version.created else "unchanged: already applied as"
    typer.echo(
        f"{what} program version {version.version} ({version.name}), "
        f"effective {_effective(version)}"
    )
    from loyalty_cli.coalition import unpartnered_lines

    later = [
        v.effective_from
        for v in programs.list_versions(conn)
        if v.effective_from > version.effective_from
    ]
    lines, stores = (
        unpartnered_lines(conn, version.program, version.effective_from, min(later, default=None))
        if version.created
        else (0, [])
    )
    if lines:
        them = "it" if lines == 1 else "them"
        shown = ", ".join(stores[:5]) + (", ..." if len(stores) > 5 else "")
        typer.echo(
            f"note: {render.count(lines, 'purchase line')} dated from "
            f"{version.effective_from.isoformat()} on {'is' if lines == 1 else 'are'} at "
            f"stores no partner of this version has ({shown}); the run scores {them} "
            f"without a partner, funded by the coalition (give the store to a partner, or "
            f"undo {them})",
            err=True,
        )
    posted = programs_store.posted_through(conn)
    if version.created and posted is not None and version.effective_from <= posted:
        until = min(later, default=None)
        span = (
            f"dated from {version.effective_from.isoformat()} to "
            f"{(until - dt.timedelta(days=1)).isoformat()} (a later version takes over on "
            f"{until.isoformat()})"
            if until is not None
            else f"dated since {version.effective_from.isoformat()}"
        )
        typer.echo(
            f"note: it takes effect on or before the last run's date ({posted.isoformat()}): "
            f"what was posted stays as it is; receipts imported later and {span} are "
            "scored by it",
            err=True,
        )


def _kept(conn: Any, file: str, when: dt.date | None) -> bool:
    """The same file applied already (nothing to ask about); what `apply` would
    refuse (another currency) is raised here, before the question."""
    from loyalty_cli import programs_store

    return programs_store.already_applied(conn, file, when, today()) is not None


@group.command("diff")
def diff(
    ctx: typer.Context,
    file: FileArg,
    fmt: FormatOpt = OutputFormat.table,
) -> None:
    """Say what FILE changes against the version in force today, in words.

    Rules, rates, tiers, rewards, offers and partners are matched by id, so an
    edited reward is one line naming what changed.

    Example: loyalty program diff programs/cashback.yaml
    """
    from loyalty_cli import program as programs

    # A shop not set up yet has no version to compare with; nothing is created.
    changes = _changes(get_conn(ctx), file) if db_exists(ctx) else None
    if changes is None:
        programs.load_program(file)  # still validate, so a bad file fails
        changes = ["no program in force yet: everything is new"]
    if fmt == OutputFormat.json:
        echo_json({"file": file, "changes": changes})
    elif fmt == OutputFormat.csv:
        _csv([{"change": line} for line in changes], ("change",))
    elif changes:
        for line in changes:
            typer.echo(line)
    else:
        # The effective date is not a rule: `program apply` of this file may still
        # store a new version, taking effect on another day.
        typer.echo("no changes to the rules")


def _changes(conn: Any, file: str) -> list[str] | None:
    """Changes of FILE against the version in force today; None without one."""
    from loyalty_cli import program as programs
    from loyalty_cli.program_diff import diff_programs

    proposed = programs.load_program(file)
    current = programs.current_version(conn, today())
    return None if current is None else diff_programs(current.program, proposed)


@group.command("show")
def show(
    ctx: typer.Context,
    fmt: FormatOpt = OutputFormat.table,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", help="Show the version in force on this date.", callback=check_date
        ),
    ] = None,
) -> None:
    """Show the program version in force (today, or on --as-of) and its YAML.

    Example: loyalty program show --format json
    """
    from loyalty_cli import program as programs

    version = programs.require_program(shop_conn(ctx), parse_date(as_of) or today())
    if fmt == OutputFormat.json:
        echo_json(
            {
                "version": version.version,
                "name": version.name,
                "effective_from": version.effective_from.isoformat(),
                "sha256": version.sha256,
                "applied_at": version.applied_at,
                "source_file": version.source_file,
                "program": version.program.model_dump(mode="json", by_alias=True),
            }
        )
    elif fmt == OutputFormat.csv:
        _csv([_row(version)])
    else:
        typer.echo(f"Program:   {version.name}")
        typer.echo(f"Version:   {version.version}")
        typer.echo(f"Effective: {_effective(version)}")
        typer.echo(f"Applied:   {version.applied_at} from {version.source_file}")
        typer.echo(f"SHA-256:   {version.sha256}")
        typer.echo("")
        typer.echo(version.yaml.rstrip("\n"))


@group.command("versions")
def versions(ctx: typer.Context, fmt: FormatOpt = OutputFormat.table) -> None:
    """List every applied program version; in_force marks the one in force today.

    Example: loyalty program versions --format csv
    """

    from loyalty_cli import program as programs

    conn = shop_conn(ctx)
    rows = [_row(v) for v in programs.list_versions(conn)]
    current = programs.current_version(conn, today())
    for row in rows:
        row["in_force"] = current is not None and row["version"] == current.version
    if fmt == OutputFormat.json:
        echo_json(rows)
    elif fmt == OutputFormat.csv:
        _csv(rows)
    else:
        # The table is for reading: applied date only, no hash (csv/json carry everything).
        shown = [
            {
                "version": row["version"],
                "name": row["name"],
                "effective from": row["effective_from"],
                "applied": row["applied_at"][:10],
                "source file": row["source_file"] or "",
                "in force": "yes" if row["in_force"] else "",
            }
            for row in rows
        ]
        render.render_rows(shown, "table", title="Program versions")


@group.command("schema")
def schema() -> None:
    """Print the JSON Schema of the program YAML (for editors).

    Example: loyalty program schema > program.schema.json
    """
    from loyalty_cli import program as programs

    echo_json(programs.program_schema())


def _effective(version: programs.ProgramVersion) -> str:
    from loyalty_cli import program as programs

    if version.effective_from == programs.FIRST_DAY:
        return f"{version.effective_from.isoformat()} (from the start of history)"
    return version.effective_from.isoformat()


def _row(version: programs.ProgramVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "name": version.name,
        "effective_from": version.effective_from.isoformat(),
        "applied_at": version.applied_at,
        "source_file": version.source_file,
        "sha256": version.sha256,
    }


def _csv(rows: list[dict[str, Any]], header: tuple[str, ...] | None = None) -> None:
    buf = io.StringIO()
    fields = list(rows[0]) if rows else list(header or _CSV_HEADER)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    typer.echo(buf.getvalue(), nl=False)


_CSV_HEADER = (
    "version",
    "name",
    "effective_from",
    "applied_at",
    "source_file",
    "sha256",
    "in_force",
)


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    # Spreadsheet formula neutralisation for text cells (a program name is user text).
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def register(app: typer.Typer) -> None:
    """Add the `program` group to the root app."""
    app.add_typer(group, name="program")
