"""Manual corrections (`adjust`) and opening balances (same entry, another source).

A positive adjustment is a lot usable at once (available_on = its date) and,
under fixed expiry, expires N months later (month-end clamped). A negative
one is taken like a redemption (oldest lots first) and is refused when it
would take the available balance below zero, unless allowed explicitly.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from loyalty_cli import db, ledger
from loyalty_cli.errors import ConflictError, UsageError
from loyalty_cli.rewards.common import add_months, require_customer, version_or_none


def lot_expiry(conn: sqlite3.Connection, on: dt.date) -> dt.date | None:
    """When a lot that becomes available on `on` expires (fixed expiry only)."""
    version = version_or_none(conn, on)
    expiry = version.program.expiry if version else None
    if expiry is None or expiry.policy != "fixed":
        return None
    return add_months(on, expiry.months)


def adjustment_entry(
    conn: sqlite3.Connection,
    customer_id: str,
    points: int,
    on: dt.date,
    *,
    source_type: str = "adjustment",
    source_id: str | None = None,
    note: str | None = None,
    expires_on: dt.date | None = None,
) -> ledger.NewEntry:
    """The `adjust` entry for a correction or an opening balance (not posted)."""
    version = version_or_none(conn, on)
    value = (
        ledger.points_value(points, version.program.point_value, version.program.currency)
        if version
        else 0
    )
    lot = points > 0
    return ledger.NewEntry(
        date=on,
        customer_id=customer_id,
        kind="adjust",
        points=points,
        value=value,
        source_type=source_type,
        source_id=source_id,
        program_version=version.version if version else None,
        available_on=on if lot else None,
        expires_on=(expires_on or lot_expiry(conn, on)) if lot else None,
        note=note,
    )


def adjust(
    conn: sqlite3.Connection,
    customer_id: str,
    points: int,
    reason: str,
    on: dt.date,
    allow_negative: bool = False,
) -> dict[str, Any]:
    """Post a manual `adjust` entry; returns what was posted and the balance after."""
    if points == 0:
        raise UsageError("an adjustment of 0 points changes nothing; give a non-zero POINTS")
    if not reason or not reason.strip():
        raise UsageError("say why: --reason TEXT is required")
    with db.transaction(conn):
        require_customer(conn, customer_id)
        entries = ledger.entries_for(conn, customer_id)
        available = ledger.replay(entries).available(on)
        if points < 0 and available + points < 0 and not allow_negative:
            raise ConflictError(
                f"not enough points: {customer_id} has {available} available; "
                f"adjusting by {points} would leave {available + points} "
                "(use --allow-negative to allow it)"
            )
        entry = adjustment_entry(conn, customer_id, points, on, note=reason.strip())
        (entry_id,) = ledger.post(conn, [entry])
        after = ledger.replay(ledger.entries_for(conn, customer_id)).available(on)
    return {
        "entry_id": entry_id,
        "customer_id": customer_id,
        "points": points,
        "reason": reason.strip(),
        "date": on.isoformat(),
        "expires_on": entry.expires_on.isoformat() if entry.expires_on else None,
        "available_after": after,
    }
