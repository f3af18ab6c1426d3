"""The bulk path of `run` (secondary ledger indexes dropped and rebuilt) posts
exactly what the ordinary path posts, and a failure leaves the indexes in place."""

from __future__ import annotations

import pytest

from engine_helpers import buy, customer, event, fail_after_first_write, go, program
from loyalty_cli import db
from loyalty_cli.engine import run as runmod

PROGRAM = """
pending_days: 7
expiry: {policy: fixed, months: 1}
rules:
  - {id: pastry-double, when: {category: pastry}, multiplier: 2}
  - {id: big, when: {min_amount: 50.00}, bonus: 20}
bonuses:
  signup: 25
  review: {points: 10, limit: {count: 1, per: month}}
  birthday: 100
  referral: {referrer: 200, referee: 50, min_first_purchase: 20.00}
tiers:
  basis: spend
  window: {rolling_days: 60}
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 100, multiplier: 1.5}
"""

ALL_COLUMNS = (
    "SELECT date, customer_id, kind, points, value, source_type, source_id, rule_id, "
    "program_version, lot_id, available_on, expires_on, partner, note FROM ledger "
    "ORDER BY entry_id"
)


def _indexes(conn):
    rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE tbl_name = 'ledger'")
    return sorted(tuple(r) for r in rows)


def _history(conn, tmp_path):
    program(conn, tmp_path, PROGRAM)
    customer(conn, "C1", birthday="1990-02-10")
    customer(conn, "C2", referred_by="C1")
    customer(conn, "C3", referred_by="C9")
    for i in range(12):
        day = f"2026-01-{i + 2:02}"
        buy(conn, f"T{i:02}a", "C1", day, (3000, "pastry"), (1500, "bread"))
        buy(conn, f"T{i:02}b", "C2", day, 2500)
        buy(conn, f"T{i:02}c", "C3", day, 6000)
    buy(conn, "R1", "C3", "2026-01-20", -3000, refund_of="T03c")
    buy(conn, "R2", "C2", "2026-01-21", -1000)
    event(conn, "E1", "C1", "signup", "2026-01-03")
    event(conn, "E2", "C2", "review", "2026-01-04")
    event(conn, "E3", "C2", "review", "2026-01-05")


def _posted(tmp_path, monkeypatch, min_rows):
    monkeypatch.setattr(runmod, "_BULK_MIN_ROWS", min_rows)
    conn = db.connect(tmp_path / f"bulk{min_rows}.db")
    _history(conn, tmp_path)
    before = _indexes(conn)
    go(conn, "2026-02-15")
    buy(conn, "T99", "C9", "2026-02-16", 4000)
    go(conn, "2026-03-31")
    assert _indexes(conn) == before
    return [tuple(r) for r in conn.execute(ALL_COLUMNS)]


def test_bulk_run_posts_what_the_ordinary_run_posts(tmp_path, monkeypatch):
    ordinary = _posted(tmp_path, monkeypatch, 10**9)
    bulk = _posted(tmp_path, monkeypatch, 1)
    assert bulk == ordinary
    kinds = {row[2] for row in bulk}
    assert {"earn", "bonus", "clawback", "expire"} <= kinds
    assert any(row[5] == "referral" for row in bulk)


def test_bulk_failure_keeps_the_indexes(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(runmod, "_BULK_MIN_ROWS", 1)
    _history(conn, tmp_path)
    before = _indexes(conn)
    assert {name for name, _ in before} >= set(runmod._BULK_INDEXES)
    fail_after_first_write(monkeypatch)
    with pytest.raises(RuntimeError):
        go(conn, "2026-02-15")
    assert _indexes(conn) == before
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
