"""Lifecycle segments of members as of a date (see docs/reports.md).

A customer's segment is derived from their SALE receipts dated on or before
the as-of date (a receipt is one transaction_id; a sale is a receipt whose total
is >= 0; its customer is the claim's customer, else the row's). The first
segment that matches, in the order lapsed, new, at_risk, loyal, one_time,
repeat, wins. Everything is read in one set-based query; the per-customer rule
is a pure function so the statement and the reports can never disagree.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from decimal import Decimal

SEGMENTS = ("new", "one_time", "repeat", "loyal", "at_risk", "lapsed")


@dataclass(frozen=True)
class SegmentRules:
    """Thresholds (the program's `segments:`; these are the defaults)."""

    new_days: int = 30
    at_risk_factor: Decimal = Decimal(2)
    at_risk_min_days: int = 30
    lapsed_days: int = 365
    loyal_receipts: int = 4
    loyal_days: int = 365

    @classmethod
    def from_program(cls, program: object | None) -> SegmentRules:
        seg = getattr(program, "segments", None)
        if seg is None:
            return cls()
        return cls(
            new_days=int(seg.new_days),
            at_risk_factor=Decimal(seg.at_risk_factor),
            at_risk_min_days=int(seg.at_risk_min_days),
            lapsed_days=int(seg.lapsed_days),
            loyal_receipts=int(seg.loyal_receipts),
            loyal_days=int(getattr(seg, "loyal_days", 365)),
        )


# One row per sale receipt of a member: (customer, receipt date). Rows dated
# after the as-of date are left out before grouping; undone rows count nowhere.
SALE_RECEIPTS_SQL = """
    SELECT cid, date FROM (
        SELECT COALESCE(MAX(c.customer_id), MAX(p.customer_id)) AS cid,
               MIN(p.date) AS date, SUM(p.amount) AS total
        FROM purchases p LEFT JOIN claims c ON c.transaction_id = p.transaction_id
        WHERE p.undone = 0 AND p.date <= :to
        GROUP BY p.transaction_id
    ) WHERE cid IS NOT NULL AND total >= 0
"""


def median_gap(days: list[dt.date]) -> Decimal | None:
    """Median of the day gaps between consecutive distinct days (None with one day).

    Same value as statistics.median, kept exact (a half day stays 0.5).
    """
    distinct = sorted(set(days))
    gaps = sorted((b - a).days for a, b in zip(distinct, distinct[1:], strict=False))
    if not gaps:
        return None
    mid = len(gaps) // 2
    if len(gaps) % 2:
        return Decimal(gaps[mid])
    return Decimal(gaps[mid - 1] + gaps[mid]) / 2


def classify(receipt_days: list[dt.date], as_of: dt.date, rules: SegmentRules) -> str | None:
    """Segment of one customer from the dates of their sale receipts (one per receipt).

    Dates after `as_of` must already be left out. None without any receipt.
    """
    if not receipt_days:
        return None
    first, last = min(receipt_days), max(receipt_days)
    since_last = (as_of - last).days
    count = len(receipt_days)
    if since_last > rules.lapsed_days:
        return "lapsed"
    if (as_of - first).days <= rules.new_days:
        return "new"
    if count >= 2:
        gap = median_gap(receipt_days)
        # With every receipt on one day there is no gap: the floor alone decides.
        limit = Decimal(rules.at_risk_min_days)
        if gap is not None:
            limit = max(rules.at_risk_factor * gap, limit)
        if since_last > limit:
            return "at_risk"
    window_start = as_of - dt.timedelta(days=rules.loyal_days)
    if sum(1 for d in receipt_days if d > window_start) >= rules.loyal_receipts:
        return "loyal"
    if count == 1:
        return "one_time"
    return "repeat"


def rules_for(conn: sqlite3.Connection, as_of: dt.date | None = None) -> SegmentRules:
    """Thresholds of the program in force on as_of (before the first version: the first
    version; without any program: the documented defaults)."""
    from loyalty_cli.program import list_versions, version_in_force

    version = version_in_force(conn, as_of or dt.date.today())
    if version is None:
        versions = list_versions(conn)
        if not versions:
            return SegmentRules()
        version = min(versions, key=lambda v: (v.effective_from, v.version))
    return SegmentRules.from_program(version.program)


def receipt_days_by_customer(
    conn: sqlite3.Connection, as_of: dt.date, customer_id: str | None = None
) -> dict[str, list[dt.date]]:
    """Customer -> dates of their sale receipts dated <= as_of (one date per receipt)."""
    params: dict[str, object] = {"to": as_of.isoformat()}
    if customer_id is None:
        return _all_receipt_days(conn, params)
    sql = SALE_RECEIPTS_SQL
    if customer_id is not None:
        # Narrow to the customer's own rows and the receipts claimed for them.
        sql = sql.replace(
            "WHERE p.undone = 0",
            "WHERE p.undone = 0 AND p.transaction_id IN ("
            " SELECT transaction_id FROM purchases WHERE customer_id = :cid"
            " UNION SELECT transaction_id FROM claims WHERE customer_id = :cid)",
        )
        sql += " AND cid = :cid"
        params["cid"] = customer_id
    out: dict[str, list[dt.date]] = {}
    for cid, day in conn.execute(sql, params):
        out.setdefault(cid, []).append(dt.date.fromisoformat(day))
    return out


# The same receipts for every member at once. Unclaimed receipts are read from
# the covering purchases_member index, grouped in index order (no sort of a
# million rows): the import makes all lines of a receipt share its customer and
# date, so (customer, date, receipt) is the receipt. Claimed receipts (few) are
# grouped as in SALE_RECEIPTS_SQL.
_UNCLAIMED_SALES_SQL = """
    SELECT customer_id, date FROM purchases {hint}
    WHERE undone = 0 AND customer_id IS NOT NULL AND date <= :to
      AND transaction_id NOT IN (SELECT transaction_id FROM claims)
    GROUP BY customer_id, date, transaction_id HAVING SUM(amount) >= 0
"""
_CLAIMED_SALES_SQL = """
    SELECT cid, date FROM (
        SELECT MAX(c.customer_id) AS cid, MIN(p.date) AS date, SUM(p.amount) AS total
        FROM claims c JOIN purchases p ON p.transaction_id = c.transaction_id
        WHERE p.undone = 0 AND p.date <= :to
        GROUP BY c.transaction_id
    ) WHERE total >= 0
"""


def _all_receipt_days(
    conn: sqlite3.Connection, params: dict[str, object]
) -> dict[str, list[dt.date]]:
    # Rows straight from the covering member index, already in (customer, date) order.
    hint = "INDEXED BY purchases_member"
    cur = conn.cursor()
    cur.row_factory = None  # plain tuples: half a million rows
    days: dict[str, dt.date] = {}  # one date object per distinct day
    out: dict[str, list[dt.date]] = {}
    for sql in (_UNCLAIMED_SALES_SQL.format(hint=hint), _CLAIMED_SALES_SQL):
        for cid, day in cur.execute(sql, params):
            date = days.get(day)
            if date is None:
                date = days[day] = dt.date.fromisoformat(day)
            found = out.get(cid)
            if found is None:
                out[cid] = [date]
            else:
                found.append(date)
    return out


def segments_for_all(
    conn: sqlite3.Connection, as_of: dt.date, rules: SegmentRules | None = None
) -> dict[str, str]:
    """Customer id -> segment as of `as_of`, for every member with a sale receipt."""
    rules = rules or rules_for(conn, as_of)
    days = receipt_days_by_customer(conn, as_of)
    out: dict[str, str] = {}
    for cid, receipt_days in days.items():
        seg = classify(receipt_days, as_of, rules)
        if seg is not None:
            out[cid] = seg
    return out


def segment_of(
    conn: sqlite3.Connection,
    customer_id: str,
    as_of: dt.date,
    rules: SegmentRules | None = None,
) -> str | None:
    """One customer's segment as of `as_of` (None without sale receipts)."""
    rules = rules or rules_for(conn, as_of)
    days = receipt_days_by_customer(conn, as_of, customer_id)
    return classify(days.get(customer_id, []), as_of, rules)


def segment_counts(
    conn: sqlite3.Connection, as_of: dt.date, rules: SegmentRules | None = None
) -> dict[str, int]:
    """`report segments`: all six keys, always."""
    counts = dict.fromkeys(SEGMENTS, 0)
    for seg in segments_for_all(conn, as_of, rules).values():
        counts[seg] += 1
    return counts
