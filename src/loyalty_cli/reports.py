"""What a shop owner reads: KPIs, tier and segment distributions, offers, the summary.

Every definition is written out in docs/reports.md. Everything here is
set-based SQL over the purchases and the ledger (plus one replay of the few
customers whose lots may hold expired-but-unposted points), so a report over a
million purchase lines stays fast.

Conventions: a *receipt* is one transaction_id; its customer is the claim's
customer, else the rows' customer_id (NULL = anonymous, a non-member); a *sale*
is a receipt whose total is >= 0, a refund receipt one whose total is < 0.
Undone rows count nowhere. Money is integer minor units inside, decimal strings
("450.00") in the JSON form; rates are Decimal inside, unrounded numbers (or
None) in the JSON form.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from itertools import chain
from typing import Any

from loyalty_cli import ledger, segments
from loyalty_cli.errors import NoProgramError, UsageError
from loyalty_cli.money import format_minor, round_money
from loyalty_cli.snapshots import run_side_by_side

# --- program and shared lookups ---------------------------------------------


def program_on(conn: sqlite3.Connection, on: dt.date) -> Any:
    """The Program in force on `on`; before the first version, the first one.

    NoProgramError when no program was ever applied.
    """
    from loyalty_cli.program import list_versions, version_in_force

    version = version_in_force(conn, on)
    if version is None:
        versions = list_versions(conn)
        if not versions:
            raise NoProgramError()
        version = min(versions, key=lambda v: (v.effective_from, v.version))
    return version.program


def program_or_none(conn: sqlite3.Connection, on: dt.date) -> Any | None:
    try:
        return program_on(conn, on)
    except NoProgramError:
        return None


def rate(num: int | Decimal, den: int | Decimal) -> Decimal | None:
    """num / den, unrounded (a rate is a number, not a display); None when den is 0."""
    if not den:
        return None
    return Decimal(num) / Decimal(den)


def rate_json(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def check_period(start: dt.date, end: dt.date) -> None:
    if start > end:
        raise UsageError(f"--from {start} is after --to {end}")


def tiers_on(
    conn: sqlite3.Connection, on: dt.date, customer_ids: list[str] | None = None
) -> dict[str, str]:
    """Customer -> tier id at the end of `on` (customers without a known tier left out).

    Uses the tier engine; without it (or its tables), the latest tier_history
    row dated <= on.
    """
    if customer_ids is None:
        # Every member, also those without a receipt: they sit on the lowest level
        # when its min is 0, as their statement says.
        customer_ids = sorted(known_customers(conn, on))
    try:
        from loyalty_cli.engine.tiers import tiers_on as engine_tiers_on

        found = engine_tiers_on(conn, on, customer_ids)
        return {cid: tier for cid, tier in found.items() if tier is not None}
    except (ImportError, sqlite3.OperationalError):
        pass
    rows = conn.execute(
        """
        SELECT th.customer_id, th.tier FROM tier_history th
        JOIN (SELECT customer_id, MAX(date) AS d FROM tier_history WHERE date <= ?
              GROUP BY customer_id) m
          ON m.customer_id = th.customer_id AND m.d = th.date
        """,
        (on.isoformat(),),
    )
    wanted = set(customer_ids) if customer_ids is not None else None
    return {cid: tier for cid, tier in rows if wanted is None or cid in wanted}


def known_customers(conn: sqlite3.Connection, on: dt.date | None = None) -> dict[str, dict]:
    """Members: the customers table plus any member id seen on a receipt, claim or entry.

    customer_id -> {"name", "email"}. With `on`, ids first seen after it are left out.
    Rows of the customers file always count; the bare rows an import of purchases
    (or balances) adds for an id it meets count from the day the id is seen.
    """
    day = (on or dt.date.max).isoformat()
    out: dict[str, dict] = {}
    for cid, name, email in conn.execute(
        "SELECT c.customer_id, c.name, c.email FROM customers c "
        "LEFT JOIN imports i ON i.import_id = c.import_id "
        "WHERE i.kind IS NULL OR i.kind = 'customers' OR c.name IS NOT NULL "
        "OR c.email IS NOT NULL OR c.birthday IS NOT NULL OR c.joined_on IS NOT NULL "
        "OR c.referred_by IS NOT NULL"
    ):
        out[cid] = {"name": name, "email": email}
    # Ids seen only on a receipt, claim or entry are added in that order. Each
    # list is read in index order (no sort of a million rows); what is usually
    # empty (ledger ids missing from the above) is then checked one by one.
    member_index = "INDEXED BY purchases_member"
    cur = conn.cursor()
    cur.row_factory = None
    queries = (
        # A live row dated <= on (undone rows count nowhere).
        f"SELECT DISTINCT customer_id FROM purchases {member_index} "
        "WHERE customer_id IS NOT NULL AND date <= :d AND undone = 0",
        # CROSS JOIN keeps the (small) claims table outside.
        "SELECT DISTINCT c.customer_id FROM claims c CROSS JOIN purchases p "
        "ON p.transaction_id = c.transaction_id "
        "WHERE p.undone = 0 AND p.date <= :d",
    )
    for sql in queries:
        for (cid,) in cur.execute(sql, {"d": day}):
            if cid not in out:
                out[cid] = {"name": None, "email": None}
    ledger_only = [
        cid
        for (cid,) in cur.execute(
            "SELECT DISTINCT customer_id FROM ledger INDEXED BY ledger_customer"
        ).fetchall()
        if cid not in out
    ]
    for cid in ledger_only:
        if cur.execute(
            "SELECT 1 FROM ledger WHERE customer_id = ? AND date <= ? LIMIT 1", (cid, day)
        ).fetchone():
            out[cid] = {"name": None, "email": None}
    return out


# --- receipts ------------------------------------------------------------------

_RECEIPTS = "_rpt_receipts"


def _build_receipts(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> None:
    """Temp table of the receipts with a row dated in [start, end]: (cid, date, total).

    Rows dated after `end` are left out before grouping, as everywhere; a
    receipt's date is its earliest row's.
    """
    conn.execute(f"DROP TABLE IF EXISTS temp.{_RECEIPTS}")
    conn.execute(
        f"""
        CREATE TEMP TABLE {_RECEIPTS} AS
        SELECT COALESCE(MAX(c.customer_id), MAX(p.customer_id)) AS cid,
               MIN(p.date) AS date, SUM(p.amount) AS total
        FROM purchases p LEFT JOIN claims c ON c.transaction_id = p.transaction_id
        WHERE p.undone = 0 AND p.date <= :e AND p.transaction_id IN (
            SELECT transaction_id FROM purchases
            WHERE undone = 0 AND date >= :s AND date <= :e)
        GROUP BY p.transaction_id
        """,
        {"s": start.isoformat(), "e": end.isoformat()},
    )
    conn.execute(f"CREATE INDEX temp.{_RECEIPTS}_date ON {_RECEIPTS} (date)")


def _new_customers(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> int:
    """Members whose first sale receipt dated <= end falls in [start, end].

    The members with a sale receipt in the period (from the temp table) are
    kept unless they have an earlier sale receipt: each is probed on the
    (customer_id, date) index, stopping at the first earlier sale, so the whole
    history is never grouped. All lines of a receipt share its customer and
    date (the import enforces it); a claimed receipt belongs to the claimant.
    """
    return conn.execute(
        f"""
        SELECT COUNT(*) FROM (
          SELECT DISTINCT cid FROM {_RECEIPTS}
          WHERE cid IS NOT NULL AND total >= 0 AND date >= :s AND date <= :e) a
        WHERE NOT EXISTS (
            SELECT 1 FROM purchases p INDEXED BY purchases_member
            WHERE p.customer_id = a.cid AND p.date < :s AND p.undone = 0
              AND (SELECT COALESCE(MAX(c.customer_id), MAX(q.customer_id)) = a.cid
                          AND SUM(q.amount) >= 0
                   FROM purchases q LEFT JOIN claims c ON c.transaction_id = q.transaction_id
                   WHERE q.transaction_id = p.transaction_id AND q.undone = 0
                     AND q.date <= :e))
          AND a.cid NOT IN (
            SELECT c.customer_id FROM claims c
            WHERE (SELECT MIN(q.date) < :s AND SUM(q.amount) >= 0 FROM purchases q
                   WHERE q.transaction_id = c.transaction_id AND q.undone = 0
                     AND q.date <= :e))
        """,
        {"s": start.isoformat(), "e": end.isoformat()},
    ).fetchone()[0]


def _lifetime(conn: sqlite3.Connection, end: dt.date) -> tuple[int, int]:
    """(net spend of member receipts dated <= end, members with such a receipt).

    Unclaimed receipts are read line by line from the covering index (their
    lines share one customer); claimed receipts are added per claim (CROSS JOIN
    keeps the small claims table outside: the planner would otherwise walk every
    purchase by date to probe it).
    """
    e = end.isoformat()
    spend, seen = conn.execute(
        """
        SELECT COALESCE(SUM(net), 0), COUNT(*) FROM (
          SELECT customer_id, SUM(amount) AS net FROM purchases INDEXED BY purchases_member
          WHERE undone = 0 AND customer_id IS NOT NULL AND date <= :e
            AND transaction_id NOT IN (SELECT transaction_id FROM claims)
          GROUP BY customer_id)
        """,
        {"e": e},
    ).fetchone()
    claimed, claimants = conn.execute(
        """
        SELECT COALESCE(SUM(q.amount), 0), COUNT(DISTINCT CASE WHEN NOT EXISTS (
                 SELECT 1 FROM purchases p INDEXED BY purchases_member
                 WHERE p.customer_id = c.customer_id AND p.date <= :e AND p.undone = 0
                   AND p.transaction_id NOT IN (SELECT transaction_id FROM claims))
               THEN c.customer_id END)
        FROM claims c CROSS JOIN purchases q ON q.transaction_id = c.transaction_id
        WHERE q.undone = 0 AND q.date <= :e
        """,
        {"e": e},
    ).fetchone()
    return spend + claimed, seen + claimants


# --- points --------------------------------------------------------------------


def points_flows(conn: sqlite3.Connection, start: dt.date | None, end: dt.date) -> dict[str, int]:
    """Points moved by kind in [start, end] as positive numbers (start None: all history)."""
    hint = "INDEXED BY ledger_date_kind"
    row = conn.execute(
        f"""
        SELECT
          COALESCE(SUM(CASE WHEN kind IN ('earn', 'bonus') THEN points END), 0),
          COALESCE(SUM(CASE WHEN kind = 'redeem' THEN -points END), 0),
          COALESCE(SUM(CASE WHEN kind = 'redemption_reversed' THEN points END), 0),
          COALESCE(SUM(CASE WHEN kind = 'expire' THEN -points END), 0),
          COALESCE(SUM(CASE WHEN kind = 'clawback' THEN -points END), 0),
          COALESCE(SUM(CASE WHEN kind IN ('adjust', 'reversal') THEN points END), 0)
        FROM ledger {hint} WHERE date >= ? AND date <= ?
        """,
        ((start or dt.date.min).isoformat(), end.isoformat()),
    ).fetchone()
    issued, redeem, reversed_, expired, clawed, adjusted = row
    return {
        "issued": issued,
        "redeemed": redeem - reversed_,
        "redeem": redeem,
        "redemption_reversed": reversed_,
        "expired": expired,
        "clawed_back": clawed,
        "adjusted": adjusted,
    }


def breakage(
    conn: sqlite3.Connection, program: Any, on: dt.date, unposted_expired: int = 0
) -> Decimal:
    """expected_breakage, or with `historical` expired / (expired + redeemed) up to `on`.

    `unposted_expired`: points of lots past their expiry by `on` that no run has
    expired yet; they count as expired here as they are left out of the outstanding
    points, so one report reads them one way (and a run posting them changes nothing).
    """
    accounting = getattr(program, "accounting", None)
    fixed = getattr(accounting, "breakage", Decimal(0)) if accounting is not None else Decimal(0)
    if fixed is not None:
        return Decimal(fixed)
    flows = points_flows(conn, None, on)
    expired = flows["expired"] + unposted_expired
    total = expired + flows["redeemed"]
    return Decimal(expired) / Decimal(total) if total else Decimal(0)


def liability_minor(points: int, point_value: Decimal, brk: Decimal, currency: str) -> int:
    """points x point_value x (1 - breakage), rounded half-up once to minor units."""
    return round_money(Decimal(points) * point_value * (Decimal(1) - brk), currency)


# The planner, without statistics, walks a date index row by row for a range
# covering most of the ledger (8 s on a million entries); the covering indexes
# named below read the same rows in a fraction.


def ledger_total(conn: sqlite3.Connection, on: dt.date) -> int:
    """Sum of every ledger entry dated on or before `on`."""
    hint = "INDEXED BY ledger_date_kind"
    return conn.execute(
        f"SELECT COALESCE(SUM(points), 0) FROM ledger {hint} WHERE date <= ?", (on.isoformat(),)
    ).fetchone()[0]


def outstanding_points(conn: sqlite3.Connection, on: dt.date) -> int:
    """Σ over customers of (available + pending) at the end of `on`, exactly."""
    balance, held = balance_and_unposted_expiry(conn, on)
    return balance - held


def balance_and_unposted_expiry(conn: sqlite3.Connection, on: dt.date) -> tuple[int, int]:
    """(sum of the ledger up to `on`, points still held by lots that expired on or
    before `on` without their `expire` entry yet): outstanding = the first less the
    second. Only customers whose lots might hold such points are replayed.
    """
    return ledger_total(conn, on), sum(unposted_expiry(conn, on).values())


def unposted_expiry(conn: sqlite3.Connection, on: dt.date) -> dict[str, int]:
    """Customer -> points still held by lots that expired on or before `on` without
    their `expire` entry yet (only customers holding some)."""
    # A lot past expiry holds nothing once an expire aimed at it is posted,
    # unless a cancellation gave points back, or entries dated after `on` were
    # posted before that expire (the replay as of `on` skips them, so it may
    # differ from what the poster saw). Those customers are replayed.
    candidates = sorted(_held_candidates(conn, on))
    held: dict[str, int] = {}
    if not candidates:
        return held  # (entries_by_customer of no one would read everyone)
    for cid, entries in ledger.entries_by_customer(conn, candidates).items():
        state = ledger.replay(entries, on)
        points = sum(lot.remaining for lot in state.lots.values() if lot.expired_holding(on))
        if points:
            held[cid] = points
    return held


def _held_candidates(conn: sqlite3.Connection, on: dt.date) -> set[str]:
    """Customers whose lots may hold expired points at the end of `on` (to replay)."""
    candidates = _unexpired_lot_customers(conn, on)
    candidates |= {
        cid
        for (cid,) in conn.execute(
            "SELECT DISTINCT customer_id FROM ledger INDEXED BY ledger_reversed "
            "WHERE kind = 'redemption_reversed' AND date <= ?",
            (on.isoformat(),),
        )
    }
    return candidates | _late_before_expire(conn, on)


# Lots past expiry on :d that no expire dated <= :d aims at, in entry_id order.
PAST_LOTS_WITHOUT_EXPIRE = """
    SELECT entry_id FROM ledger NOT INDEXED
    WHERE expires_on IS NOT NULL AND expires_on <= :d
    EXCEPT
    SELECT lot_id FROM ledger INDEXED BY ledger_lot
    WHERE lot_id IS NOT NULL AND kind = 'expire' AND date <= :d
    ORDER BY 1
"""


def _unexpired_lot_customers(conn: sqlite3.Connection, on: dt.date) -> set[str]:
    """Customers with a lot past expiry by `on`, usable by then, that no expire entry
    dated <= on aims at and that entries aimed at it have not emptied.

    The lots past expiry minus the lots an expire aims at: both lists come in
    entry_id order (the table itself, the ledger_lot index), so ORDER BY makes
    SQLite merge them in one pass each instead of building a set of a quarter
    of a million ids.
    """
    day = on.isoformat()
    cur = conn.cursor()
    cur.row_factory = None
    if not cur.execute(
        "SELECT 1 FROM ledger INDEXED BY ledger_expires "
        "WHERE expires_on IS NOT NULL AND expires_on <= ? LIMIT 1",
        (day,),
    ).fetchone():
        return set()  # nothing past expiry yet: skip the scan
    past = list(chain.from_iterable(cur.execute(PAST_LOTS_WITHOUT_EXPIRE, {"d": day})))
    if not past:
        return set()
    # A lot only shrinks while its customer has no redemption_reversed (those
    # customers are replayed anyway): once the outgoing entries aimed at it,
    # posted after it and dated <= on, add up to its points it is empty.
    drained = """
          AND l.points + COALESCE((
            SELECT SUM(x.points) FROM ledger x INDEXED BY ledger_lot
            WHERE x.lot_id = l.entry_id AND x.kind IN ('expire', 'clawback', 'reversal')
              AND x.points < 0 AND x.date <= ? AND x.entry_id > l.entry_id), 0) > 0
        """
    out: set[str] = set()
    ids = past
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"""
            SELECT l.customer_id FROM ledger l
            WHERE l.entry_id IN ({marks})
              AND l.points > 0 AND l.kind != 'redemption_reversed'
              AND COALESCE(l.available_on, l.date) <= ? AND l.date <= ?
              {drained}
            """,
            [*chunk, day, day, day],
        )
        out.update(cid for (cid,) in rows)
    return out


def _late_before_expire(conn: sqlite3.Connection, on: dt.date) -> set[str]:
    """Customers with an entry dated after `on` posted before their last expire dated <= on.

    That is: an expire dated <= on with a greater entry_id than the customer's
    first entry dated after `on`. Only the customers with such a late entry
    (few, unless `on` is long past) are probed, on their index from that entry on.
    """
    rows = conn.execute(
        """
        SELECT f.customer_id FROM (
          SELECT customer_id, MIN(entry_id) AS first_late FROM ledger INDEXED BY ledger_date_kind
          WHERE date > :d GROUP BY customer_id) f
        WHERE EXISTS (
          SELECT 1 FROM ledger x INDEXED BY ledger_customer
          WHERE x.customer_id = f.customer_id AND x.entry_id > f.first_late
            AND x.kind = 'expire' AND x.date <= :d)
        """,
        {"d": on.isoformat()},
    )
    return {cid for (cid,) in rows}


def balances(
    conn: sqlite3.Connection, on: dt.date, customer_ids: Iterable[str] | None = None
) -> dict[str, tuple[int, int]]:
    """Customer -> (available, pending) at the end of `on` (every customer with an entry,
    or the ones named).

    A customer with no pending lot and no expired lot that may still hold
    points (the customers `outstanding_points` replays) has available = balance
    and pending = 0: those come from one grouped scan, only the others are replayed.
    """
    ids = None if customer_ids is None else sorted(set(customer_ids))
    if ids is not None and len(ids) <= 2000:
        return _replayed_balances(conn, on, ids)
    wanted = None if ids is None else set(ids)
    cur = conn.cursor()
    cur.row_factory = None
    rows = cur.execute(
        """
        SELECT customer_id, COALESCE(SUM(CASE WHEN date <= :d THEN points END), 0),
               MAX(date <= :d AND available_on > :d)
        FROM ledger NOT INDEXED GROUP BY customer_id
        """,
        {"d": on.isoformat()},
    ).fetchall()
    replay = _held_candidates(conn, on)
    out: dict[str, tuple[int, int]] = {}
    for cid, balance, pending_lot in rows:
        if wanted is not None and cid not in wanted:
            continue
        if pending_lot or cid in replay:
            replay.add(cid)
        else:
            out[cid] = (balance, 0)
    todo = [cid for cid in replay if cid not in out and (wanted is None or cid in wanted)]
    out.update(_replayed_balances(conn, on, todo))
    return dict(sorted(out.items()))


def _replayed_balances(
    conn: sqlite3.Connection, on: dt.date, customer_ids: list[str] | None
) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for cid, entries in ledger.entries_by_customer(conn, customer_ids).items():
        state = ledger.replay(entries, on)
        out[cid] = (state.available(on), state.pending(on))
    return out


# --- KPIs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpis:
    """KPIs over [start, end]; money in minor units, rates Decimal (unrounded) or None."""

    start: dt.date
    end: dt.date
    currency: str
    active_customers: int
    new_customers: int
    revenue_net: int
    member_revenue: int
    receipts: int
    aov: int | None
    member_aov: int | None
    non_member_aov: int | None
    repeat_purchase_rate: Decimal | None
    retention_rate: Decimal | None
    clv_historical: int | None
    points_issued: int
    points_redeemed: int
    points_expired: int
    points_clawed_back: int
    redemption_rate: Decimal | None
    outstanding_points: int
    liability: int
    reward_cost: int
    reward_cost_share: Decimal | None

    def as_json(self) -> dict[str, Any]:
        """The `report kpi --format json` document (keys exactly as DESIGN.md)."""

        def money(v: int | None) -> str | None:
            return None if v is None else format_minor(v, self.currency)

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "active_customers": self.active_customers,
            "new_customers": self.new_customers,
            "revenue_net": money(self.revenue_net),
            "member_revenue": money(self.member_revenue),
            "receipts": self.receipts,
            "aov": money(self.aov),
            "member_aov": money(self.member_aov),
            "non_member_aov": money(self.non_member_aov),
            "repeat_purchase_rate": rate_json(self.repeat_purchase_rate),
            "retention_rate": rate_json(self.retention_rate),
            "clv_historical": money(self.clv_historical),
            "points_issued": self.points_issued,
            "points_redeemed": self.points_redeemed,
            "points_expired": self.points_expired,
            "points_clawed_back": self.points_clawed_back,
            "redemption_rate": rate_json(self.redemption_rate),
            "outstanding_points": self.outstanding_points,
            "liability": money(self.liability),
            "reward_cost": money(self.reward_cost),
            "reward_cost_share": rate_json(self.reward_cost_share),
        }


def _mean_minor(total: int, count: int) -> int | None:
    """total / count in minor units, half-up; None without anything to average."""
    if not count:
        return None
    return int((Decimal(total) / Decimal(count)).to_integral_value(rounding=ROUND_HALF_UP))


def _receipt_kpis(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> dict[str, int]:
    """The KPIs counted over receipts: this period's and the one before it."""
    days = (end - start).days + 1
    prev_start = start - dt.timedelta(days=days)
    prev_end = start - dt.timedelta(days=1)
    s, e, ps, pe = (d.isoformat() for d in (start, end, prev_start, prev_end))
    _build_receipts(conn, prev_start, end)
    try:
        rec = conn.execute(
            f"""
            SELECT
              COALESCE(SUM(total), 0),
              COALESCE(SUM(CASE WHEN cid IS NOT NULL THEN total END), 0),
              COUNT(CASE WHEN total >= 0 THEN 1 END),
              COALESCE(SUM(CASE WHEN total >= 0 THEN total END), 0),
              COUNT(CASE WHEN total >= 0 AND cid IS NOT NULL THEN 1 END),
              COALESCE(SUM(CASE WHEN total >= 0 AND cid IS NOT NULL THEN total END), 0),
              COUNT(DISTINCT CASE WHEN total >= 0 THEN cid END)
            FROM {_RECEIPTS} WHERE date >= ? AND date <= ?
            """,
            (s, e),
        ).fetchone()
        keys = ("revenue", "member_revenue", "n_sales", "sales", "n_member", "member_sales")
        out = dict(zip((*keys, "active"), rec, strict=True))
        out["repeaters"] = conn.execute(
            f"""
            SELECT COUNT(*) FROM (
              SELECT cid FROM {_RECEIPTS}
              WHERE cid IS NOT NULL AND total >= 0 AND date >= ? AND date <= ?
              GROUP BY cid HAVING COUNT(*) >= 2)
            """,
            (s, e),
        ).fetchone()[0]
        out["prev_active"], out["retained"] = conn.execute(
            f"""
            SELECT COUNT(*), COUNT(cur.cid) FROM
              (SELECT DISTINCT cid FROM {_RECEIPTS}
               WHERE cid IS NOT NULL AND total >= 0 AND date >= :ps AND date <= :pe) prev
            LEFT JOIN
              (SELECT DISTINCT cid FROM {_RECEIPTS}
               WHERE cid IS NOT NULL AND total >= 0 AND date >= :s AND date <= :e) cur
            ON cur.cid = prev.cid
            """,
            {"ps": ps, "pe": pe, "s": s, "e": e},
        ).fetchone()
        out["new"] = _new_customers(conn, start, end)
    finally:
        conn.execute(f"DROP TABLE IF EXISTS temp.{_RECEIPTS}")
    return out


def _history_kpis(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Lifetime spend, the period's points flows and reward cost."""
    lifetime, seen = _lifetime(conn, end)
    reward_cost = conn.execute(
        "SELECT COALESCE(SUM(value), 0) FROM redemptions "
        "WHERE status != 'cancelled' AND date >= ? AND date <= ?",
        (start.isoformat(), end.isoformat()),
    ).fetchone()[0]
    flows = points_flows(conn, start, end)
    return {"lifetime": lifetime, "seen": seen, "reward_cost": reward_cost, "flows": flows}


def _liability_kpis(conn: sqlite3.Connection, end: dt.date) -> tuple[Any, int, Decimal]:
    """(program in force, outstanding points, breakage) at `end`."""
    program = program_on(conn, end)
    balance, held = balance_and_unposted_expiry(conn, end)
    return program, balance - held, breakage(conn, program, end, unposted_expired=held)


def compute_kpis(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> Kpis:
    """All KPIs over [start, end] (see docs/reports.md for each definition).

    Three independent groups of queries, run side by side on one snapshot
    (`snapshots.run_side_by_side`); the program is parsed while they run.
    """
    check_period(start, end)
    rec, hist, (program, outstanding, brk) = run_side_by_side(
        conn,
        [
            lambda c: _receipt_kpis(c, start, end),
            lambda c: _history_kpis(c, start, end),
            lambda c: _liability_kpis(c, end),
        ],
    )
    currency = program.currency
    flows, reward_cost = hist["flows"], hist["reward_cost"]
    n_sales, n_member, sales = rec["n_sales"], rec["n_member"], rec["sales"]
    return Kpis(
        start=start,
        end=end,
        currency=currency,
        active_customers=rec["active"],
        new_customers=rec["new"],
        revenue_net=rec["revenue"],
        member_revenue=rec["member_revenue"],
        receipts=n_sales,
        aov=_mean_minor(sales, n_sales),
        member_aov=_mean_minor(rec["member_sales"], n_member),
        non_member_aov=_mean_minor(sales - rec["member_sales"], n_sales - n_member),
        repeat_purchase_rate=rate(rec["repeaters"], rec["active"]),
        retention_rate=rate(rec["retained"], rec["prev_active"]),
        clv_historical=_mean_minor(hist["lifetime"], hist["seen"]),
        points_issued=flows["issued"],
        points_redeemed=flows["redeemed"],
        points_expired=flows["expired"],
        points_clawed_back=flows["clawed_back"],
        redemption_rate=rate(flows["redeemed"], flows["issued"]),
        outstanding_points=outstanding,
        liability=liability_minor(outstanding, Decimal(program.point_value), brk, currency),
        reward_cost=reward_cost,
        # A share of no (or negative: a month of refunds) revenue is undefined.
        reward_cost_share=(
            rate(reward_cost, rec["member_revenue"]) if rec["member_revenue"] > 0 else None
        ),
    )


def kpi_report(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> dict[str, Any]:
    """`report kpi` as its JSON document."""
    return compute_kpis(conn, start, end).as_json()


# --- tiers and segments ------------------------------------------------------------


def tier_report(conn: sqlite3.Connection, on: dt.date) -> list[dict[str, Any]]:
    """`report tiers`: customers per tier at `on` and their share of customers with a tier.

    Every level of the program in force is listed (lowest first, 0 when
    empty), then any other tier id still held.
    """
    held = tiers_on(conn, on)
    counts: dict[str, int] = {}
    program = program_or_none(conn, on)
    tiers_cfg = getattr(program, "tiers", None) if program is not None else None
    for level in getattr(tiers_cfg, "levels", None) or []:
        counts[level.id] = 0
    for tier in held.values():
        counts[tier] = counts.get(tier, 0) + 1
    total = sum(counts.values())
    return [
        {"tier": tier, "customers": n, "share": rate_json(rate(n, total))}  # 0/0: null
        for tier, n in counts.items()
    ]


def segment_report(conn: sqlite3.Connection, on: dt.date) -> dict[str, int]:
    """`report segments`: members per segment at `on` (all six keys)."""
    return segments.segment_counts(conn, on)


def customer_list(
    conn: sqlite3.Connection,
    on: dt.date,
    segment: str | None = None,
    tier: str | None = None,
) -> list[dict[str, Any]]:
    """`customer list`: every member with tier, segment and balance at `on`."""
    if segment is not None and segment not in segments.SEGMENTS:
        raise UsageError(
            f"unknown segment '{segment}'; use one of {', '.join(segments.SEGMENTS)}",
            field="--segment",
        )
    levels = [
        lv.id for lv in getattr(getattr(program_or_none(conn, on), "tiers", None), "levels", [])
    ]
    if tier is not None and tier not in levels:
        known = ", ".join(levels) or "none: the program has no tiers"
        raise UsageError(f"unknown tier '{tier}'; the tiers are {known}", field="--tier")
    people = known_customers(conn, on)
    segs = segments.segments_for_all(conn, on)
    tiers = tiers_on(conn, on, sorted(people))
    ids = [
        cid
        for cid in sorted(people)
        if (segment is None or segs.get(cid) == segment)
        and (tier is None or tiers.get(cid) == tier)
    ]
    bal = balances(conn, on, ids)
    return [
        {
            "customer_id": cid,
            "name": people[cid]["name"],
            "tier": tiers.get(cid),
            "segment": segs.get(cid),
            "available": bal.get(cid, (0, 0))[0],
            "pending": bal.get(cid, (0, 0))[1],
        }
        for cid in ids
    ]


# --- offers --------------------------------------------------------------------------


def favourite_categories(conn: sqlite3.Connection, on: dt.date) -> dict[str, str]:
    """Customer -> category with the most net spend in (on − 365, on]; ties by name."""
    rows = conn.execute(
        """
        SELECT COALESCE(c.customer_id, p.customer_id) AS cid, p.category, SUM(p.amount) AS net
        FROM purchases p LEFT JOIN claims c ON c.transaction_id = p.transaction_id
        WHERE p.undone = 0 AND p.date > ? AND p.date <= ? AND p.category IS NOT NULL
              AND p.category != '' AND COALESCE(c.customer_id, p.customer_id) IS NOT NULL
        GROUP BY cid, p.category
        """,
        ((on - dt.timedelta(days=365)).isoformat(), on.isoformat()),
    )
    best: dict[str, tuple[int, str]] = {}
    for cid, category, net in rows:
        current = best.get(cid)
        if (
            current is None
            or net > current[0]
            or (net == current[0] and _alphabetical(category) < _alphabetical(current[1]))
        ):
            best[cid] = (net, category)
    # Only a category the customer actually spent on counts as a favourite.
    return {cid: cat for cid, (net, cat) in best.items() if net > 0}


def _alphabetical(text: str) -> tuple[str, str]:
    """Dictionary order: apple before Banana (case aside; then by code point)."""
    return (text.casefold(), text)


def offer_detail(offer: Any, favourite: str | None, program: Any) -> str:
    """The offer in words: "10 % off coffee", "50 bonus points", "Free coffee"."""
    text = getattr(offer, "text", None)
    if text:
        return text.replace("{category}", favourite or "your next purchase")
    parts: list[str] = []
    pct = getattr(offer, "discount_percent", None)
    if pct is not None:
        pct_text = format(Decimal(pct).normalize(), "f")
        target = favourite if getattr(offer, "favourite_category", False) and favourite else None
        parts.append(f"{pct_text} % off {target}" if target else f"{pct_text} % off")
    bonus = getattr(offer, "bonus_points", None)
    if bonus:
        parts.append(f"{bonus} bonus points")
    reward_id = getattr(offer, "reward", None)
    if reward_id:
        reward = program.reward(reward_id) if hasattr(program, "reward") else None
        parts.append(reward.name if reward is not None else reward_id)
    if not parts and getattr(offer, "favourite_category", False) and favourite:
        parts.append(f"something from {favourite}")
    return ", ".join(parts) or str(offer.id)


def offers(conn: sqlite3.Connection, on: dt.date) -> list[dict[str, Any]]:
    """Per member with a segment at `on`: the first matching `offers:` rule."""
    program = program_on(conn, on)
    rules = list(getattr(program, "offers", None) or [])
    if not rules:
        return []
    people = known_customers(conn, on)
    segs = segments.segments_for_all(conn, on, segments.SegmentRules.from_program(program))
    need_tier = any(getattr(r, "tier", None) for r in rules)
    tiers = tiers_on(conn, on) if need_tier else {}
    favs = favourite_categories(conn, on)
    out: list[dict[str, Any]] = []
    for cid in sorted(segs):
        seg = segs[cid]
        for rule in rules:
            if rule.segment is not None and rule.segment != seg:
                continue
            if getattr(rule, "tier", None) and tiers.get(cid) != rule.tier:
                continue
            person = people.get(cid, {"name": None, "email": None})
            out.append(
                {
                    "customer_id": cid,
                    "name": person["name"],
                    "email": person["email"],
                    "segment": seg,
                    "offer_id": rule.id,
                    "detail": offer_detail(rule, favs.get(cid), program),
                }
            )
            break
    return out


# --- summary ---------------------------------------------------------------------------


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def default_summary_start(end: dt.date) -> dt.date:
    """Twelve calendar months ending with the month of `end`."""
    return add_months(month_start(end), -11)


@dataclass
class Summary:
    start: dt.date
    end: dt.date
    currency: str
    members: int
    kpis: Kpis
    revenue_by_month: list[dict[str, Any]] = field(default_factory=list)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    segments: dict[str, int] = field(default_factory=dict)
    top_rewards: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        k = self.kpis

        def money(v: int) -> str:
            return format_minor(v, self.currency)

        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "members": self.members,
            "active_customers": k.active_customers,
            "new_customers": k.new_customers,
            "revenue_by_month": [
                {
                    "month": m["month"],
                    "members": money(m["members"]),
                    "non_members": money(m["non_members"]),
                }
                for m in self.revenue_by_month
            ],
            "tiers": self.tiers,
            "segments": self.segments,
            "points": {
                "issued": k.points_issued,
                "redeemed": k.points_redeemed,
                "expired": k.points_expired,
            },
            "outstanding_points": k.outstanding_points,
            "liability": money(k.liability),
            "top_rewards": [{**r, "value": money(r["value"])} for r in self.top_rewards],
        }


def revenue_by_month(conn: sqlite3.Connection, start: dt.date, end: dt.date) -> list[dict]:
    """Net revenue (minor units) of members and non-members per calendar month in [start, end]."""
    rows = conn.execute(
        """
        SELECT substr(p.date, 1, 7) AS month,
               COALESCE(SUM(CASE WHEN COALESCE(c.customer_id, p.customer_id) IS NOT NULL
                                 THEN p.amount END), 0),
               COALESCE(SUM(CASE WHEN COALESCE(c.customer_id, p.customer_id) IS NULL
                                 THEN p.amount END), 0)
        FROM purchases p LEFT JOIN claims c ON c.transaction_id = p.transaction_id
        WHERE p.undone = 0 AND p.date >= ? AND p.date <= ?
        GROUP BY month
        """,
        (start.isoformat(), end.isoformat()),
    )
    found = {month: (members, anon) for month, members, anon in rows}
    out: list[dict] = []
    month = month_start(start)
    while month <= end:
        key = month.strftime("%Y-%m")
        members, anon = found.get(key, (0, 0))
        out.append({"month": key, "members": members, "non_members": anon})
        month = add_months(month, 1)
    return out


def top_rewards(
    conn: sqlite3.Connection, start: dt.date, end: dt.date, limit: int = 5
) -> list[dict[str, Any]]:
    """Most redeemed rewards in [start, end] (cancelled ones left out)."""
    rows = conn.execute(
        """
        SELECT reward_id, COUNT(*), COALESCE(SUM(points), 0), COALESCE(SUM(value), 0)
        FROM redemptions WHERE status != 'cancelled' AND date >= ? AND date <= ?
        GROUP BY reward_id ORDER BY COUNT(*) DESC, reward_id LIMIT ?
        """,
        (start.isoformat(), end.isoformat(), limit),
    )
    return [
        {"reward_id": rid, "redemptions": n, "points": pts, "value": value}
        for rid, n, pts, value in rows
    ]


def summary(conn: sqlite3.Connection, start: dt.date | None, end: dt.date) -> Summary:
    """`report summary`: the month(s) at a glance."""
    start = start or default_summary_start(end)
    kpis = compute_kpis(conn, start, end)
    return Summary(
        start=start,
        end=end,
        currency=kpis.currency,
        members=len(known_customers(conn, end)),
        kpis=kpis,
        revenue_by_month=revenue_by_month(conn, start, end),
        tiers=tier_report(conn, end),
        segments=segment_report(conn, end),
        top_rewards=top_rewards(conn, start, end),
    )
