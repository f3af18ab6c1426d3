"""Attaching an anonymous receipt to a member afterwards (`loyalty claim`).

The claim is a row in `claims`; the receipt's purchase rows are not touched
(the import keeps what the till sent). The engine reads
COALESCE(claims.customer_id, purchases.customer_id), so the next `loyalty run`
scores the receipt for the member, once.

Refunds follow their receipt: an anonymous refund naming (`refund_of`) a receipt
a member holds, on its lines or by a claim, is claimed for that member too
(`attach_refunds`, after every purchases import and every claim), so the points
the receipt earned are clawed back from whoever earned them. A refund cannot be
claimed by anyone else.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from loyalty_cli import db
from loyalty_cli.errors import ConflictError, NotFoundError, UsageError
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
        receipt_date = min(r["date"] for r in rows)
        if on.isoformat() < receipt_date:
            raise UsageError(
                f"the claim's date {on} is before receipt {transaction_id}'s date "
                f"{receipt_date}: a receipt is claimed on or after the day it was made"
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
        _check_refund(conn, transaction_id, customer_id)
        require_customer(conn, customer_id)
        conn.execute(
            "INSERT INTO claims (rowid, transaction_id, customer_id, claimed_on) "
            "VALUES (?, ?, ?, ?)",
            (_next_rowid(conn), transaction_id, customer_id, on.isoformat()),
        )
        refunds = attach_refunds(conn, on)
    version = version_or_none(conn, dt.date.fromisoformat(receipt_date))
    currency = version.program.currency if version else "EUR"
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "date": receipt_date,
        "amount": format_minor(sum(r["amount"] for r in rows), currency),
        "claimed_on": on.isoformat(),
        "refunds": sorted(r for r, _, original in refunds if original == transaction_id),
    }


def receipt_owner(conn: sqlite3.Connection, transaction_id: str) -> str | None:
    """The member a receipt belongs to: the customer on its lines, else its claimer."""
    sql = f"SELECT {_OWNER.format(tid=':tid')}"
    return conn.execute(sql, {"tid": transaction_id}).fetchone()[0]


def _check_refund(conn: sqlite3.Connection, transaction_id: str, customer_id: str) -> None:
    """A refund of a receipt the shop knows goes with that receipt (see the module)."""
    for (original,) in conn.execute(
        "SELECT DISTINCT refund_of FROM purchases WHERE transaction_id = ? AND undone = 0 "
        "AND refund_of IS NOT NULL",
        (transaction_id,),
    ).fetchall():
        if not conn.execute(
            "SELECT 1 FROM purchases WHERE transaction_id = ? AND undone = 0", (original,)
        ).fetchone():
            continue  # a receipt from before the shop's data: claimed like any other
        owner = receipt_owner(conn, original)
        if owner is None:
            raise ConflictError(
                f"receipt {transaction_id} refunds {original}, which no member holds; "
                f"claim {original} and its refunds go with it"
            )
        if owner != customer_id:
            raise ConflictError(
                f"receipt {transaction_id} refunds {original}, which belongs to customer {owner}"
            )


def attach_refunds(conn: sqlite3.Connection, on: dt.date) -> list[tuple[str, str, str]]:
    """Keep every anonymous refund of a receipt a member holds claimed for that member:
    claim the unclaimed ones (dated `on`), and let go of a refund's claim while the
    refund is not scored yet and its receipt has changed hands (an undo, a corrected
    import), so that the next call claims it for the new holder. Returns the
    (refund, member, receipt) claims made. Driven from the anonymous refunds' own
    small index (CROSS JOIN keeps that order: the planner would rather walk every
    purchase), so it costs milliseconds on a million lines.

    First, a receipt's claim lapses when its receipt, not scored for the claimer
    (its import undone), comes back from the till naming a customer on a line: the
    till's customer holds it, as `claim` itself already says."""
    conn.execute(
        """
        DELETE FROM claims
        WHERE refund_of IS NULL
          AND NOT EXISTS (SELECT 1 FROM scored_receipts s
                          WHERE s.transaction_id = claims.transaction_id)
          AND EXISTS (SELECT 1 FROM purchases p WHERE p.transaction_id = claims.transaction_id
                      AND p.undone = 0 AND p.customer_id IS NOT NULL)
        """
    )
    conn.execute(
        f"""
        DELETE FROM claims
        WHERE refund_of IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM scored_receipts s
                          WHERE s.transaction_id = claims.transaction_id)
          AND customer_id IS NOT ({_OWNER.format(tid="claims.refund_of")})
        """
    )
    rows = conn.execute(
        """
        SELECT r.transaction_id, MIN(COALESCE(o.customer_id, c.customer_id)), r.refund_of
        FROM purchases r INDEXED BY purchases_anon_refund
        CROSS JOIN purchases o ON o.transaction_id = r.refund_of AND o.undone = 0
        LEFT JOIN claims c ON c.transaction_id = o.transaction_id
        WHERE r.refund_of IS NOT NULL AND r.customer_id IS NULL AND r.undone = 0
          AND COALESCE(o.customer_id, c.customer_id) IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM claims x WHERE x.transaction_id = r.transaction_id)
          AND NOT EXISTS (SELECT 1 FROM purchases m WHERE m.transaction_id = r.transaction_id
                          AND m.undone = 0 AND m.customer_id IS NOT NULL)
        GROUP BY r.transaction_id
        """
    ).fetchall()
    first = _next_rowid(conn)
    conn.executemany(
        "INSERT INTO claims (rowid, transaction_id, customer_id, claimed_on, refund_of) "
        "VALUES (?, ?, ?, ?, ?)",
        [
            (first + i, tid, owner, on.isoformat(), original)
            for i, (tid, owner, original) in enumerate(rows)
        ],
    )
    return [(tid, owner, original) for tid, owner, original in rows]


def _next_rowid(conn: sqlite3.Connection) -> int:
    """A rowid above every claim the last run has seen. The run finds new claims by
    rowid (engine.run, `run.last_claim_rowid`), and SQLite would hand out a deleted
    (lapsed) claim's rowid again: a claim made then would never be scored."""
    (highest,) = conn.execute("SELECT MAX(rowid) FROM claims").fetchone()
    seen = db.get_meta(conn, "run.last_claim_rowid", "0") or "0"
    return max(highest or 0, int(seen)) + 1


# The member holding receipt {tid} now: a customer on its lines, else its claimer.
_OWNER = (
    "COALESCE((SELECT p.customer_id FROM purchases p WHERE p.transaction_id = {tid} "
    "AND p.undone = 0 AND p.customer_id IS NOT NULL LIMIT 1), "
    "(SELECT o.customer_id FROM claims o WHERE o.transaction_id = {tid}))"
)
