"""The demo shop: the sample data and the boutique program, posted and shown.

`loyalty demo` builds it into a fresh database so a new user sees every part
of the product working on realistic data in one command.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from loyalty_cli.errors import UsageError

DEMO_AS_OF = dt.date(2026, 10, 31)
DEMO_PROGRAM = "boutique.yaml"


@dataclass
class DemoShop:
    """What build_demo did, for the CLI to show."""

    program_version: int
    imports: list[dict] = field(default_factory=list)
    run: dict = field(default_factory=dict)
    as_of: dt.date = DEMO_AS_OF
    sample_customers: list[str] = field(default_factory=list)


def find_repo_file(name: str, start: Path | None = None) -> Path:
    """Locate sample_data/ or programs/ : the working directory, else the source tree."""
    candidates = [Path.cwd() / name, Path(__file__).resolve().parents[2] / name]
    if start is not None:
        candidates.insert(0, start / name)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise UsageError(f"cannot find '{name}'; run `loyalty demo` from the project folder")


def build_demo(conn: sqlite3.Connection, base: Path | None = None) -> DemoShop:
    """Apply the boutique program, import the sample shop and post its points."""
    from loyalty_cli.engine.run import run
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program

    if conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0]:
        raise UsageError("the demo needs an empty database; use --db with a new file")
    programs = find_repo_file("programs", base)
    samples = find_repo_file("sample_data", base)
    version = apply_program(conn, programs / DEMO_PROGRAM, effective=dt.date(2025, 1, 1))
    shop = DemoShop(program_version=version.version)
    for kind in ("customers", "purchases", "events"):
        results = import_files(conn, kind, [samples / f"{kind}.csv"], today=DEMO_AS_OF)
        shop.imports.extend(r.as_json() for r in results)
    result = run(conn, DEMO_AS_OF)
    shop.run = result.as_json() if hasattr(result, "as_json") else dict(vars(result))
    rows = conn.execute(
        """
        SELECT customer_id, SUM(points) AS balance FROM ledger
        GROUP BY customer_id ORDER BY balance DESC, customer_id LIMIT 3
        """
    ).fetchall()
    shop.sample_customers = [row[0] for row in rows]
    return shop
