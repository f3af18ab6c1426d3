"""Coalition programs: who funded the points, who served the rewards, who owes whom.

Points earned at a partner's store are funded by that partner at the program's
`point_value`; a redeemed reward is served by its partner (the coalition when
it names none) and reimbursed at `point_value` per point. For a period the
settlement is, per partner,

    net = value_issued - value_redeemed

(claw-backs and import reversals reduce issued, cancellations reduce redeemed).
A positive net is what the partner pays into the pool; a negative one is what
the pool pays the partner. The last row, `pool`, carries minus the sum of the
others, so the `net` column sums to zero: the pool holds what customers have
earned and not spent yet. Points no partner funded (event bonuses, manual
adjustments) and rewards no partner serves belong to the row `coalition`,
shown only when it has any activity.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from typing import Any

from loyalty_cli.exports import Export
from loyalty_cli.ledger import points_value
from loyalty_cli.money import format_minor
from loyalty_cli.program import Program, require_program, versions_timeline

COALITION = "coalition"
POOL = "pool"
COLUMNS = ("partner", "points_issued", "value_issued", "points_redeemed", "value_redeemed", "net")


def _issued(conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date) -> dict[str, tuple]:
    rows = conn.execute(
        f"""
        SELECT {_PARTNER} AS partner, {_PRICE_KEY}, SUM(l.points)
        FROM ledger l LEFT JOIN ledger lot ON lot.entry_id = l.lot_id
        WHERE l.kind IN ('earn', 'bonus', 'clawback', 'reversal', 'adjust')
          AND l.date BETWEEN ? AND ?
        GROUP BY 1, 2, 3
        """,
        (date_from.isoformat(), date_to.isoformat()),
    )
    return _priced(conn, rows)


def _redeemed(conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date) -> dict[str, tuple]:
    rows = conn.execute(
        f"""
        SELECT COALESCE(r.partner, l.partner, '') AS partner, {_PRICE_KEY}, -SUM(l.points)
        FROM ledger l LEFT JOIN redemptions r ON r.redemption_id = l.source_id
        WHERE l.kind IN ('redeem', 'redemption_reversed') AND l.date BETWEEN ? AND ?
        GROUP BY 1, 2, 3
        """,
        (date_from.isoformat(), date_to.isoformat()),
    )
    return _priced(conn, rows)


# Who funded an entry's points: its own partner; an entry without one takes its lot's
# (a reversal of a partner's lot), except a claw-back, which is always the refunded
# receipt's (the coalition's when NULL) whichever lot paid it, and a manual
# adjustment, the coalition's (its parts aimed at pending lots too: rewards/adjust).
_PARTNER = (
    "CASE WHEN l.kind IN ('clawback', 'adjust') THEN COALESCE(l.partner, '') "
    "ELSE COALESCE(l.partner, lot.partner, '') END"
)

# The program version whose point_value prices an entry: its own, else (a manual
# adjustment, an opening balance) the one in force on its date.
_PRICE_KEY = "l.program_version, CASE WHEN l.program_version IS NULL THEN l.date END"


def _priced(conn: sqlite3.Connection, rows: Any) -> dict[str, tuple[int, int]]:
    """{partner: (points, value)} from (partner, version, date, points) groups: each
    partner's points priced once per point_value (versions that keep it share it),
    so that a value is its points x point_value (as the journal's and the balances'
    values are), not a sum of every entry's rounded value (2 points at 0.005 are
    0.01, not 2 x 0.01)."""
    timeline = versions_timeline(conn)
    first = next(iter(timeline), None)
    currency = first.program.currency if first is not None else "EUR"
    points_at: dict[tuple[str, Decimal], int] = {}
    for partner, version_no, day, points in rows:
        version = (
            timeline.by_number.get(version_no)
            if version_no is not None
            else timeline.get(dt.date.fromisoformat(day))
        ) or first
        price = version.program.point_value if version is not None else Decimal(0)
        key = (partner or COALITION, price)
        points_at[key] = points_at.get(key, 0) + points
    out: dict[str, tuple[int, int]] = {}
    for (partner, price), points in points_at.items():
        total = out.get(partner, (0, 0))
        out[partner] = (total[0] + points, total[1] + points_value(points, price, currency))
    return out


def settlement(
    conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date
) -> list[dict[str, Any]]:
    """Rows of the settlement export (money as decimal strings), `pool` last."""
    from loyalty_cli.reports import check_period

    check_period(date_from, date_to)
    program = _program_on(conn, date_to)
    issued = _issued(conn, date_from, date_to)
    redeemed = _redeemed(conn, date_from, date_to)
    partners = [p.id for p in program.partners]
    extra = sorted((set(issued) | set(redeemed)) - set(partners) - {COALITION})
    names = [*partners, *extra]
    if COALITION in issued or COALITION in redeemed:
        names.append(COALITION)
    rows: list[dict[str, Any]] = []
    total_net = 0
    for name in names:
        points_in, value_in = issued.get(name, (0, 0))
        points_out, value_out = redeemed.get(name, (0, 0))
        net = value_in - value_out
        total_net += net
        rows.append(_row(name, points_in, value_in, points_out, value_out, net, program.currency))
    rows.append(_row(POOL, 0, 0, 0, 0, -total_net, program.currency))
    return rows


def _program_on(conn: sqlite3.Connection, day: dt.date) -> Program:
    """The program in force on `day`; before the first version, the first one (the
    ledger can hold entries dated before it: opening balances, adjustments)."""
    from loyalty_cli.rewards.common import version_for_lot

    version = version_for_lot(conn, day)
    if version is None:
        return require_program(conn, day).program  # raises: no program applied
    return version.program


def _row(name: str, p_in: int, v_in: int, p_out: int, v_out: int, net: int, cur: str) -> dict:
    return {
        "partner": name,
        "points_issued": p_in,
        "value_issued": format_minor(v_in, cur),
        "points_redeemed": p_out,
        "value_redeemed": format_minor(v_out, cur),
        "net": format_minor(net, cur),
    }


def settlement_export(conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date) -> Export:
    """The settlement as an export (exports.write renders it)."""
    rows = settlement(conn, date_from, date_to)
    return Export(list(COLUMNS), [[row[c] for c in COLUMNS] for row in rows])


def partner_report(
    conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date
) -> dict[str, Any]:
    """The settlement plus revenue per partner and customers shared between partners."""
    program = _program_on(conn, date_to)
    timeline = versions_timeline(conn)
    revenue: dict[str, int] = {}
    customers: dict[str, set[str]] = {}
    # Per receipt and store: a customer shops at a partner with a sale receipt
    # there (a refund alone does not make a customer, as in the KPIs).
    rows = conn.execute(
        """
        SELECT p.store, MIN(p.date), COALESCE(c.customer_id, p.customer_id), SUM(p.amount)
        FROM purchases p LEFT JOIN claims c ON c.transaction_id = p.transaction_id
        WHERE p.undone = 0 AND p.date BETWEEN ? AND ?
        GROUP BY p.store, p.transaction_id
        """,
        (date_from.isoformat(), date_to.isoformat()),
    )
    for store, day, customer_id, amount in rows:
        # The store's partner in the version in force on the line's date (a store
        # may change partner between versions), as for the points.
        # (before the first version: the first one's, as the settlement prices it)
        version = timeline.get(dt.date.fromisoformat(day)) or next(iter(timeline), None)
        found = version.program.partner_for_store(store) if version is not None else None
        partner = found.id if found is not None else COALITION
        revenue[partner] = revenue.get(partner, 0) + amount
        if customer_id and amount >= 0:
            customers.setdefault(customer_id, set()).add(partner)
    shared = sum(1 for partners in customers.values() if len(partners) > 1)
    rows = settlement(conn, date_from, date_to)
    # Every partner the settlement names, with or without sales in the period.
    named = sorted({r["partner"] for r in rows if r["partner"] != POOL} | set(revenue))
    return {
        "from": date_from.isoformat(),
        "to": date_to.isoformat(),
        "settlement": rows,
        "revenue": {p: format_minor(revenue.get(p, 0), program.currency) for p in named},
        "customers": {p: sum(1 for ps in customers.values() if p in ps) for p in named},
        "shared_customers": shared,
    }


def unpartnered_lines(
    conn: sqlite3.Connection, program: Program, since: dt.date, until: dt.date | None = None
) -> tuple[int, list[str]]:
    """(live purchase lines dated from `since` and before `until` (the next version's
    date: that one scores the later ones) at stores none of the program's partners
    has, those stores): rows imported before a version that dropped their store (or
    before any partners), which the import would now refuse. Nothing to say for a
    program without partners."""
    if not program.partners:
        return 0, []
    rows = conn.execute(
        "SELECT COALESCE(store, ''), COUNT(*) FROM purchases "
        "WHERE undone = 0 AND date >= ? AND date < ? GROUP BY 1",
        (since.isoformat(), until.isoformat() if until else "9999-12-31"),
    ).fetchall()
    missing = [(store, n) for store, n in rows if program.partner_for_store(store) is None]
    return sum(n for _, n in missing), sorted(store or "(none)" for store, _ in missing)


def points_by_partner(conn: sqlite3.Connection, customer_id: str, as_of: dt.date) -> dict[str, int]:
    """Net points a customer earned at each partner (for the statement)."""
    rows = conn.execute(
        f"""
        SELECT {_PARTNER} AS partner, SUM(l.points)
        FROM ledger l LEFT JOIN ledger lot ON lot.entry_id = l.lot_id
        WHERE l.customer_id = ? AND l.date <= ?
          AND l.kind IN ('earn', 'bonus', 'clawback', 'reversal', 'adjust')
        GROUP BY 1 ORDER BY 1
        """,
        (customer_id, as_of.isoformat()),
    )
    return {partner or COALITION: points for partner, points in rows}
