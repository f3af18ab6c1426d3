"""Punch-card vouchers as the counter sees them.

`loyalty run` issues vouchers (engine); here they are read and used. A voucher
expires ON its `expires_on` date, like a points lot: the last day it can be
used is the day before.
"""

from __future__ import annotations

import datetime as dt
import sqlite3


def voucher_status(row: sqlite3.Row | dict, as_of: dt.date) -> str:
    """open | used | expired | withdrawn as of a date (history-aware)."""
    status = row["status"]
    closed_on = row["closed_on"]
    if status != "open" and closed_on is not None and closed_on > as_of.isoformat():
        status = "open"  # closed after as_of: it was still open then
    if (
        status == "open"
        and row["expires_on"] is not None
        and row["expires_on"] <= as_of.isoformat()
    ):
        return "expired"
    return status


def vouchers_of(conn: sqlite3.Connection, customer_id: str, as_of: dt.date) -> list[dict]:
    """[{voucher_id, reward_id, issued, status}] issued up to as_of, oldest first."""
    rows = conn.execute(
        "SELECT voucher_id, reward_id, issued, status, expires_on, closed_on FROM vouchers "
        "WHERE customer_id = ? AND issued <= ? ORDER BY issued, voucher_id",
        (customer_id, as_of.isoformat()),
    ).fetchall()
    return [
        {
            "voucher_id": r["voucher_id"],
            "reward_id": r["reward_id"],
            "issued": r["issued"],
            "status": voucher_status(r, as_of),
        }
        for r in rows
    ]


def open_voucher_counts(
    conn: sqlite3.Connection, customer_id: str | None, on: dt.date, as_of: bool = True
) -> dict[tuple[str, str], int]:
    """(customer, reward) -> number of vouchers usable on a date. as_of: open then,
    as `voucher_status` sees it (one used or withdrawn after the date was open on
    it: a statement's view); else open now (what a redemption can take)."""
    still_open = "(status = 'open' OR closed_on > :on)" if as_of else "status = 'open'"
    sql = (
        "SELECT customer_id, reward_id, COUNT(*) FROM vouchers "
        f"WHERE {still_open} AND issued <= :on AND (expires_on IS NULL OR expires_on > :on)"
    )
    args = {"on": on.isoformat(), "c": customer_id}
    if customer_id is not None:
        sql += " AND customer_id = :c"
    sql += " GROUP BY customer_id, reward_id"
    return {(c, r): n for c, r, n in conn.execute(sql, args)}


def oldest_open_voucher(
    conn: sqlite3.Connection, customer_id: str, reward_id: str, on: dt.date
) -> str | None:
    row = conn.execute(
        "SELECT voucher_id FROM vouchers WHERE customer_id = :c AND reward_id = :r "
        "AND status = 'open' AND issued <= :on AND (expires_on IS NULL OR expires_on > :on) "
        "ORDER BY issued, voucher_id LIMIT 1",
        {"c": customer_id, "r": reward_id, "on": on.isoformat()},
    ).fetchone()
    return row[0] if row else None


# A live refund of the voucher's receipt (v.transaction_id) that a run has scored
# as withdrawing the voucher (it returned a line of the kind the card counts; one
# scored before schema version 10, `withdrew` NULL, any refund): it withdrew the
# voucher if it was open then (engine/customer.py).
REFUND_SCORED = (
    "EXISTS (SELECT 1 FROM purchases p WHERE p.refund_of = v.transaction_id "
    "AND p.undone = 0 AND EXISTS (SELECT 1 FROM scored_receipts r "
    "WHERE r.transaction_id = p.transaction_id AND (r.withdrew IS NULL OR EXISTS "
    "(SELECT 1 FROM json_each(r.withdrew) w WHERE w.value = v.voucher_id))))"
)
