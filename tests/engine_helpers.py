"""Helpers for the engine tests: a program from YAML text, rows inserted with SQL."""

from __future__ import annotations

import datetime as dt
import sqlite3
import textwrap
from pathlib import Path

from loyalty_cli import db, ledger
from loyalty_cli.engine.run import run
from loyalty_cli.program import apply_program

BASE = """
program: Test
currency: EUR
point_value: 0.01
earn: {earn}
"""
EARN = "{per_currency_unit: 1, rounding: floor}"


def program(
    conn: sqlite3.Connection,
    tmp_path: Path,
    text: str = "",
    effective: str | None = None,
    name: str = "p.yaml",
    earn: str = EARN,
) -> None:
    path = tmp_path / name
    path.write_text(textwrap.dedent(BASE).replace("{earn}", earn) + textwrap.dedent(text))
    apply_program(
        conn,
        path,
        effective=dt.date.fromisoformat(effective) if effective else None,
        today=dt.date(2026, 1, 1),
    )


_next_id = {"import": 0}


def buy(
    conn: sqlite3.Connection,
    tid: str,
    customer: str | None,
    date: str,
    *lines: object,
    tax: int = 0,
    refund_of: str | None = None,
    store: str | None = None,
) -> None:
    """buy(conn, "T1", "C1", "2026-01-05", 1000) or lines as (amount, category[, sku]) tuples."""
    with db.transaction(conn):
        existing = conn.execute(
            "SELECT COALESCE(MAX(line_no), 0) FROM purchases WHERE transaction_id = ?", (tid,)
        ).fetchone()[0]
        for i, line in enumerate(lines, start=existing + 1):
            amount, category, sku = (
                (line, None, None) if isinstance(line, int) else (*line, None, None)[:3]
            )
            conn.execute(
                "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, tax, "
                "sku, category, store, refund_of, import_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (tid, i, customer, date, amount, tax, sku, category, store, refund_of),
            )


def customer(
    conn: sqlite3.Connection,
    cid: str,
    birthday: str | None = None,
    joined_on: str | None = None,
    referred_by: str | None = None,
    name: str | None = None,
) -> None:
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO customers (customer_id, name, birthday, joined_on, referred_by) "
            "VALUES (?, ?, ?, ?, ?)",
            (cid, name or f"Customer {cid}", birthday, joined_on, referred_by),
        )


def event(conn: sqlite3.Connection, event_id: str, cid: str, etype: str, date: str) -> None:
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO events (event_id, customer_id, type, date, import_id) "
            "VALUES (?, ?, ?, ?, 1)",
            (event_id, cid, etype, date),
        )


def go(conn: sqlite3.Connection, as_of: str):
    return run(conn, dt.date.fromisoformat(as_of))


def entries(conn: sqlite3.Connection, cid: str | None = None) -> list[tuple]:
    """(date, customer, kind, points, source_id, rule_id) in posting order."""
    sql = "SELECT date, customer_id, kind, points, source_id, rule_id FROM ledger"
    args: tuple = ()
    if cid:
        sql += " WHERE customer_id = ?"
        args = (cid,)
    return [tuple(r) for r in conn.execute(sql + " ORDER BY entry_id", args)]


def points(conn: sqlite3.Connection, cid: str) -> int:
    return ledger.balance(conn, cid)


def earned(conn: sqlite3.Connection, tid: str) -> int:
    return conn.execute(
        "SELECT COALESCE(SUM(points), 0) FROM ledger "
        "WHERE source_type = 'purchase' AND source_id = ?",
        (tid,),
    ).fetchone()[0]


def fail_after_first_write(monkeypatch) -> None:
    """The run raises right after writing its first batch (a crash mid-run)."""
    from loyalty_cli.engine import output

    real = output.write

    def boom(*args):
        real(*args)
        raise RuntimeError("killed")

    monkeypatch.setattr(output, "write", boom)
