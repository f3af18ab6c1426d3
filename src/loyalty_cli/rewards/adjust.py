"""Manual corrections (`adjust`) and opening balances (same entry, another source).

A positive adjustment is a lot usable at once (available_on = its date) and,
under fixed expiry, expires N months later (month-end clamped). A negative
one is taken like a redemption (oldest lots first) and is refused when it
would take the available balance below zero, unless allowed explicitly.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import replace
from typing import Any

from loyalty_cli import db, ledger
from loyalty_cli.errors import ConflictError, NoProgramError, UsageError
from loyalty_cli.rewards.common import add_months, require_customer, version_for_lot


def lot_expiry(
    conn: sqlite3.Connection, on: dt.date, started: dt.date | None = None
) -> dt.date | None:
    """When a lot that becomes available on `on` expires (fixed expiry only). A lot
    dated before the first version (points carried over from the old system) starts
    its clock when the program does (`started`, default that version's date): it
    expires N months after it, not at once on the first run for a balance years old."""
    version = version_for_lot(conn, on)
    expiry = version.program.expiry if version else None
    if version is None or expiry is None or expiry.policy != "fixed":
        return None
    return add_months(max(on, started or version.effective_from), expiry.months)


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
    version = version_for_lot(conn, on)
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


def taken_parts(conn: sqlite3.Connection, entry: ledger.NewEntry) -> list[ledger.NewEntry]:
    """A negative adjustment as posted: what the available points cover (oldest lots
    first), then one entry aimed at each pending lot for what they do not (as a
    refund's claw-back is split), and only the rest as a debt. Left to one entry,
    points still pending would stay beside the debt and later expire in full."""
    state = ledger.state_of(conn, entry.customer_id)
    need = -entry.points
    pieces = ledger.outgoing_parts(state, need, entry.date)
    note = (entry.note or "").removesuffix(ledger.STILL_PENDING)
    out, left = [], entry.value
    for i, (n, lot_id) in enumerate(pieces):
        money = left if i == len(pieces) - 1 else ledger.share(entry.value, n, need)
        left -= money
        said = note if lot_id is None else f"{note}{ledger.STILL_PENDING}"
        out.append(replace(entry, points=-n, value=money, lot_id=lot_id, note=said))
    return out


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
    if abs(points) > ledger.MAX_ENTRY_POINTS:
        raise UsageError(
            f"an adjustment of {points} points is beyond what one entry may hold "
            f"({ledger.MAX_ENTRY_POINTS:,} either way)"
        )
    if not reason or not reason.strip():
        raise UsageError("say why: --reason TEXT is required")
    from loyalty_cli.engine.statement import counter_available

    with db.transaction(conn):
        require_customer(conn, customer_id)
        if not db.program_version_count(conn):
            # Its entry is valued (point_value) and expires under the program.
            raise NoProgramError(
                "no program applied yet: an adjustment is valued and expires under the "
                "program; run `loyalty program apply FILE` first"
            )
        available = counter_available(conn, customer_id, on)
        if points < 0 and available + points < 0 and not allow_negative:
            raise ConflictError(
                f"not enough points: {customer_id} has {available} available; "
                f"adjusting by {points} would leave {available + points} "
                "(use --allow-negative to allow it)"
            )
        entry = adjustment_entry(conn, customer_id, points, on, note=reason.strip())
        entries = taken_parts(conn, entry) if points < 0 else [entry]
        entry_id = ledger.post(conn, entries)[0]
        after = counter_available(conn, customer_id, on)
    return {
        "entry_id": entry_id,
        "customer_id": customer_id,
        "points": points,
        "reason": reason.strip(),
        "date": on.isoformat(),
        "expires_on": entry.expires_on.isoformat() if entry.expires_on else None,
        "available_after": after,
    }
