"""Shared set-up for the rewards/redeem/race tests: a program and earn lots."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

from loyalty_cli import db, ledger, program

PROGRAM = """
program: Counter Cafe
currency: EUR
point_value: 0.01
earn: {per_currency_unit: 1}
expiry: {policy: fixed, months: 12}
tiers:
  basis: spend
  levels:
    - {id: bronze, name: Bronze, min: 0}
    - {id: silver, name: Silver, min: 300}
    - {id: gold, name: Gold, min: 1000}
rewards:
  - {id: coffee, name: Free coffee, cost: 100, value: 3.50}
  - {id: ten-off, name: 10 EUR off, cost: 500, value: 10.00, min_tier: silver,
     limit: {count: 1, per: month}, active: {from: 2026-01-01, to: 2026-12-31}}
  - {id: tenth-coffee, name: 10th coffee free, value: 3.50,
     punch_card: {every: 10, when: {category: coffee}}}
"""

D = dt.date(2026, 3, 10)


def apply(conn, tmp_path: Path, text: str = PROGRAM) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    program.apply_program(conn, path, effective=dt.date(2026, 1, 1))


def customer(conn, customer_id: str, name: str | None = None) -> None:
    with db.transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO customers (customer_id, name) VALUES (?, ?)",
            (customer_id, name or customer_id),
        )


def earn(
    conn,
    customer_id: str,
    points: int,
    on: dt.date,
    expires_on: dt.date | None = None,
    source_id: str | None = None,
) -> int:
    customer(conn, customer_id)
    with db.transaction(conn):
        (entry_id,) = ledger.post(
            conn,
            [
                ledger.NewEntry(
                    date=on,
                    customer_id=customer_id,
                    kind="earn",
                    points=points,
                    source_type="purchase",
                    source_id=source_id or f"T-{customer_id}-{on}-{points}",
                    program_version=1,
                    available_on=on,
                    expires_on=expires_on,
                )
            ],
        )
    return entry_id


SPEND = {"bronze": 0, "silver": 30000, "gold": 100000}


def set_tier(conn, customer_id: str, tier: str, on: dt.date) -> None:
    """Give a customer a tier from `on`: a scored receipt of the level's spend
    (what the engine derives tiers from) and the tier_history row."""
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO tier_history (customer_id, date, tier) VALUES (?, ?, ?)",
            (customer_id, on.isoformat(), tier),
        )
        has_scored = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'scored_receipts'"
        ).fetchone()
        if has_scored:
            conn.execute(
                "INSERT INTO scored_receipts (transaction_id, customer_id, date, amount, points) "
                "VALUES (?, ?, ?, ?, 0)",
                (f"TIER-{customer_id}-{on}", customer_id, on.isoformat(), SPEND[tier]),
            )


def voucher(
    conn,
    voucher_id: str,
    customer_id: str,
    issued: dt.date,
    reward_id: str = "tenth-coffee",
    expires_on: dt.date | None = None,
    status: str = "open",
) -> None:
    customer(conn, customer_id)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO vouchers (voucher_id, customer_id, reward_id, issued, status, expires_on) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (
                voucher_id,
                customer_id,
                reward_id,
                issued.isoformat(),
                status,
                expires_on.isoformat() if expires_on else None,
            ),
        )
