"""Attaching an anonymous receipt to a member afterwards (`loyalty claim`).

The claim is a row in `claims`; the receipt's purchase rows are not touched
(the import keeps what the till sent). The engine reads
COALESCE(claims.customer_id, purchases.customer_id), so the next `loyalty run`
scores the receipt for the member, once.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from loyalty_cli import db
from loyalty_cli.errors import ConflictError, NotFoundError
from loyalty_cli.money import format_minor
from loyalty_cli.rewards.common import require_customer, version_or_none


def claim(
    conn: sqlite3.Connection, transaction_id: str, customer_id: str, on: dt.date
) -> dict[str, Any]:
    """Attach receipt `transaction_id` (all rows anonymous) to `customer_id`."""
    with db.transaction(conn):
        rows = conn.execute(
            "SELECT customer_id, date, amount FROM purchases "
            "WHERE transaction_id = ? AND undone = 0",
            (transaction_id,),
        ).fetchall()
        if not rows:
            raise NotFoundError(f"unknown transaction {transaction_id}")
        owners = sorted({r["customer_id"] for r in rows if r["customer_id"]})
        if owners:
            raise ConflictError(
                f"receipt {transaction_id} already belongs to customer {', '.join(owners)}"
            )
        earlier = conn.execute(
            "SELECT customer_id, claimed_on FROM claims WHERE transaction_id = ?",
            (transaction_id,),
        ).fetchone()
        if earlier is not None:
            raise ConflictError(
                f"receipt {transaction_id} was already claimed by {earlier['customer_id']} "
                f"on {earlier['claimed_on']}"
            )
        require_customer(conn, customer_id)
        conn.execute(
            "INSERT INTO claims (transaction_id, customer_id, claimed_on) VALUES (?, ?, ?)",
            (transaction_id, customer_id, on.isoformat()),
        )
    receipt_date = min(r["date"] for r in rows)
    version = version_or_none(conn, dt.date.fromisoformat(receipt_date))
    currency = version.program.currency if version else "EUR"
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "date": receipt_date,
        "amount": format_minor(sum(r["amount"] for r in rows), currency),
        "claimed_on": on.isoformat(),
    }
