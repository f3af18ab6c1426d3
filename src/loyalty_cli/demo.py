"""The demo shop: the sample data and the boutique program, posted and shown.

`loyalty demo` builds it into a fresh database so a new user sees every part
of the product working on realistic data in one command: imports, the nightly
run, the counter (a redemption and statements), the monthly summary, and a
coalition of three shops settling who owes whom (in a second file beside the
first, since a database holds one program).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loyalty_cli.errors import LoyaltyError, UsageError

DEMO_AS_OF = dt.date(2026, 10, 31)
DEMO_PROGRAM = "boutique.yaml"
COALITION_PROGRAM = "coalition.yaml"


@dataclass
class DemoShop:
    """What build_demo did, for the CLI to show."""

    program_version: int
    imports: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] = field(default_factory=dict)
    as_of: dt.date = DEMO_AS_OF
    redemption: dict[str, Any] | None = None
    statements: list[dict[str, Any]] = field(default_factory=list)


def find_repo_file(name: str, start: Path | None = None) -> Path:
    """Locate sample_data/ or programs/: the working directory, else the source tree."""
    candidates = [Path.cwd() / name, Path(__file__).resolve().parents[2] / name]
    if start is not None:
        candidates.insert(0, start / name)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UsageError(f"cannot find '{name}'; run `loyalty demo` from the project folder")


def require_empty(conn: sqlite3.Connection, name: str = "the database") -> None:
    """The demo writes a whole shop: only into a file that holds none yet."""
    if conn.execute("SELECT COUNT(*) FROM program_versions").fetchone()[0]:
        raise UsageError(
            f"the demo needs an empty database, and {name} already holds a shop; "
            "use --db with a new file"
        )


def build_demo(conn: sqlite3.Connection, base: Path | None = None) -> DemoShop:
    """Apply the boutique program, import the sample shop, post its points and
    serve two customers at the counter."""
    from loyalty_cli.engine.run import run
    from loyalty_cli.engine.statement import customer_statement
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program
    from loyalty_cli.rewards import redeem

    require_empty(conn)
    programs = find_repo_file("programs", base)
    samples = find_repo_file("sample_data", base)
    # The sample history starts in 2025: the program is in force from then on.
    version = apply_program(conn, programs / DEMO_PROGRAM, effective=dt.date(2025, 1, 1))
    shop = DemoShop(program_version=version.version)
    for kind in ("customers", "purchases", "events"):
        results = import_files(conn, kind, [samples / f"{kind}.csv"], today=DEMO_AS_OF)
        shop.imports.extend(r.as_json() for r in results)
    shop.run = run(conn, DEMO_AS_OF).to_dict()

    top = [
        row[0]
        for row in conn.execute(
            "SELECT customer_id FROM ledger GROUP BY customer_id "
            "ORDER BY SUM(points) DESC, customer_id LIMIT 2"
        )
    ]
    if top:
        try:
            shop.redemption = redeem(conn, top[0], "coffee", DEMO_AS_OF, ref="demo-counter-1")
        except LoyaltyError:
            shop.redemption = None
    shop.statements = [customer_statement(conn, cid, DEMO_AS_OF) for cid in top]
    return shop


def build_coalition_demo(conn: sqlite3.Connection, base: Path | None = None) -> dict[str, Any]:
    """Three shops on one card (programs/coalition.yaml): October's settlement."""
    from loyalty_cli.coalition import partner_report
    from loyalty_cli.engine.run import run
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program
    from loyalty_cli.rewards import redeem

    require_empty(conn)
    programs = find_repo_file("programs", base)
    samples = find_repo_file("sample_data", base)
    apply_program(conn, programs / COALITION_PROGRAM, effective=dt.date(2026, 1, 1))
    import_files(conn, "purchases", [samples / "purchases-coalition.csv"], today=DEMO_AS_OF)
    run(conn, DEMO_AS_OF)
    # The three richest members each take a reward from a shop they may not have earned at.
    richest = conn.execute(
        "SELECT customer_id FROM ledger GROUP BY customer_id "
        "ORDER BY SUM(points) DESC, customer_id LIMIT 3"
    ).fetchall()
    for (customer_id,), reward in zip(
        richest, ("free-bun", "free-coffee", "free-bun"), strict=False
    ):
        try:
            redeem(conn, customer_id, reward, DEMO_AS_OF, ref=f"demo-{customer_id}-{reward}")
        except LoyaltyError:
            continue
    return partner_report(conn, dt.date(2026, 10, 1), DEMO_AS_OF)
