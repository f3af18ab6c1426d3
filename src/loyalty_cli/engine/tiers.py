"""Tier qualification: which level a customer holds at a moment.

The qualifying value is taken from the customer's receipts in the window
(rolling N days at D covers (D - N, D]; calendar_year; lifetime):
spend = Σ receipt amounts (refunds negative, on their own date), points =
points earned on purchases net of claw-backs, receipts = sale receipts.
A receipt earns at the level of the strictly earlier receipts (order: date,
transaction_id); with `same_receipt` the crossing receipt earns at the new
level. With retain_days R the customer keeps the highest level qualified for
at any moment in the last R days.
"""

from __future__ import annotations

import bisect
import datetime as dt
import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from loyalty_cli.program import Level, Program, Tiers

ONE = Decimal(1)


@dataclass(slots=True)
class Qualifier:
    """One receipt as tier qualification sees it."""

    date: dt.date
    transaction_id: str
    amount: int  # minor units, negative for a refund
    points: int  # net points the receipt earned (negative: a claw-back)

    @property
    def key(self) -> tuple[dt.date, str]:
        return (self.date, self.transaction_id)


def contribution(q: Qualifier, basis: str) -> int:
    if basis == "spend":
        return q.amount
    if basis == "points":
        return q.points
    return 1 if q.amount >= 0 else 0


# (id(tiers), day) -> (tiers, first day of its window at `day`): a run asks the
# same few hundred days for every receipt. Holding `tiers` keeps its id unique.
_STARTS: dict[tuple[int, dt.date], tuple[Tiers, dt.date | None]] = {}


def _window_start(tiers: Tiers, on: dt.date) -> dt.date | None:
    hit = _STARTS.get((id(tiers), on))
    if hit is not None and hit[0] is tiers:
        return hit[1]
    if len(_STARTS) > 65536:
        _STARTS.clear()
    start = tiers.window_start(on)
    _STARTS[(id(tiers), on)] = (tiers, start)
    return start


class History:
    """A customer's receipts, sorted by (date, transaction_id), growing as a run scores."""

    def __init__(self, items: list[Qualifier] | None = None) -> None:
        self.items: list[Qualifier] = sorted(items or [], key=lambda q: q.key)
        self.keys = [q.key for q in self.items]
        self._sums: tuple[str, list[int]] | None = None

    def add(self, q: Qualifier) -> None:
        i = bisect.bisect_right(self.keys, q.key)
        self.items.insert(i, q)
        self.keys.insert(i, q.key)
        self._sums = None

    def running(self, basis: str) -> list[int]:
        """Running totals of the contributions in key order (entry i: items before i)."""
        if self._sums is None or self._sums[0] != basis:
            totals = [0]
            for q in self.items:
                totals.append(totals[-1] + contribution(q, basis))
            self._sums = (basis, totals)
        return self._sums[1]

    def value(self, tiers: Tiers, on: dt.date, before: tuple[dt.date, str] | None = None) -> int:
        """Qualifying value at `on`: receipts in the window dated <= on (and keyed < before)."""
        end = (
            bisect.bisect_left(self.keys, before)
            if before is not None
            else bisect.bisect_right(self.keys, (on, "\U0010ffff"))
        )
        start_day = _window_start(tiers, on)
        total = 0
        basis = tiers.basis
        items = self.items
        for i in range(end - 1, -1, -1):
            q = items[i]
            if start_day is not None and q.date < start_day:
                break
            total += contribution(q, basis)
        return total

    def change_days(self, tiers: Tiers, first: dt.date, last: dt.date) -> list[dt.date]:
        """Days in [first, last] on which the qualifying value may change."""
        days = {first}
        n = tiers.window_days
        for q in self.items:
            if first <= q.date <= last:
                days.add(q.date)
            if n is not None:
                leaves = q.date + dt.timedelta(days=n)
                if first <= leaves <= last:
                    days.add(leaves)
            elif (
                tiers.window == "calendar_year" and first <= dt.date(q.date.year + 1, 1, 1) <= last
            ):
                days.add(dt.date(q.date.year + 1, 1, 1))
        return sorted(days)


def _rank(program: Program, level: Level | None) -> int:
    if level is None or program.tiers is None:
        return -1
    return program.tiers.levels.index(level)


def _higher(program: Program, a: Level | None, b: Level | None) -> Level | None:
    return a if _rank(program, a) >= _rank(program, b) else b


def _retained(
    program: Program,
    history: History,
    on: dt.date,
    level: Level | None,
    until: tuple[dt.date, str] | None = None,
) -> Level | None:
    """The highest of `level` and every level qualified for at any moment of the
    last retain_days days: at the end of each day the value may have changed, and
    right after each receipt up to `until` (a receipt's key; default: all of `on`),
    so a level reached and lost within one day (a sale, then its refund) counts."""
    tiers = program.tiers
    assert tiers is not None
    if not tiers.retain_days:
        return level
    first = on - dt.timedelta(days=tiers.retain_days)
    for day in history.change_days(tiers, first, on - dt.timedelta(days=1)):
        level = _higher(program, level, program.level_for(history.value(tiers, day)))
    bound = until if until is not None else (on, "\U0010ffff")
    keys, items = history.keys, history.items
    start = bisect.bisect_left(keys, (first, ""))
    end = bisect.bisect_left(keys, bound)
    totals = history.running(tiers.basis) if end > start else []
    for i in range(start, end):
        # The value just after receipt i: the receipts up to it within its window.
        window = _window_start(tiers, items[i].date)
        low = bisect.bisect_left(keys, (window, "")) if window is not None else 0
        level = _higher(program, level, program.level_for(totals[i + 1] - totals[low]))
    return level


def level_for_receipt(program: Program, history: History, q: Qualifier) -> Level | None:
    """The level a receipt earns at (history holds the strictly earlier receipts, maybe more)."""
    tiers = program.tiers
    if tiers is None:
        return None
    before = history.value(tiers, q.date, before=q.key)
    level = _retained(program, history, q.date, program.level_for(before), until=q.key)
    if tiers.upgrade == "same_receipt":
        after = program.level_for(before + contribution(q, tiers.basis))
        level = _higher(program, level, after)
    return level


def level_at(program: Program, history: History, on: dt.date) -> Level | None:
    """The level held at the end of day `on` (what the next receipt would earn at)."""
    tiers = program.tiers
    if tiers is None:
        return None
    level = program.level_for(history.value(tiers, on))
    return _retained(program, history, on, level)


def multiplier(level: Level | None) -> Decimal:
    return level.multiplier if level is not None else ONE


# --- reading -----------------------------------------------------------------


def history_of(conn: sqlite3.Connection, customer_id: str, until: dt.date | None = None) -> History:
    """The customer's scored receipts (dated up to `until`)."""
    sql = "SELECT date, transaction_id, amount, points FROM scored_receipts WHERE customer_id = ?"
    args: list[object] = [customer_id]
    if until is not None:
        sql += " AND date <= ?"
        args.append(until.isoformat())
    rows = conn.execute(sql + " ORDER BY date, transaction_id", args).fetchall()
    return History([Qualifier(dt.date.fromisoformat(r[0]), r[1], r[2], r[3]) for r in rows])


def tier_on(conn: sqlite3.Connection, customer_id: str, on: dt.date) -> str | None:
    """The tier id a customer holds at the end of day `on` (None: no tiers in force)."""
    from loyalty_cli.program import version_in_force

    version = version_in_force(conn, on)
    if version is None or version.program.tiers is None:
        return None
    level = level_at(version.program, history_of(conn, customer_id, on), on)
    return level.id if level is not None else None


_FEW = 500  # customers looked up by id rather than by one pass over everyone


def _first_counted(tiers: Tiers | None, on: dt.date) -> str:
    """The earliest receipt date `level_at(on)` can count ('' for every receipt): the
    window's start on the first day retain_days looks back to. Reading only those
    halves the rows of a two-year history under a one-year window."""
    if tiers is None:
        return ""
    try:
        start = tiers.window_start(on - dt.timedelta(days=tiers.retain_days))
    except OverflowError:  # looking back before year 1: everything counts
        return ""
    return start.isoformat() if start is not None else ""


def tiers_on(
    conn: sqlite3.Connection, on: dt.date, customer_ids: list[str] | None = None
) -> dict[str, str | None]:
    """Tier ids of many customers at the end of day `on` (one query)."""
    from loyalty_cli.program import version_in_force

    version = version_in_force(conn, on)
    # No ORDER BY: History sorts each customer's receipts itself, and reading the
    # table in its own order beats visiting it in index order row by row.
    sql = (
        "SELECT customer_id, date, transaction_id, amount, points FROM scored_receipts "
        "WHERE date <= ? AND date >= ?"
    )
    args = (on.isoformat(), _first_counted(version.program.tiers if version else None, on))
    wanted = set(customer_ids) if customer_ids is not None else None
    if wanted is not None and len(wanted) <= _FEW:
        # A few customers (the counter): their receipts on the customer index,
        # not every scored receipt of the shop.
        marks = ", ".join("?" * len(wanted))
        rows = conn.execute(sql + f" AND customer_id IN ({marks})", (*args, *wanted))
    else:
        rows = conn.execute(sql, args)
    grouped: dict[str, list[Qualifier]] = {}
    days: dict[str, dt.date] = {}
    for cid, day, tid, amount, points in rows:
        if wanted is not None and cid not in wanted:
            continue
        date = days.get(day)
        if date is None:
            date = days[day] = dt.date.fromisoformat(day)
        grouped.setdefault(cid, []).append(Qualifier(date, tid, amount, points))
    if customer_ids is None:
        grouped = {cid: grouped[cid] for cid in sorted(grouped)}
    out: dict[str, str | None] = {cid: None for cid in (customer_ids or [])}
    if version is None or version.program.tiers is None:
        return {cid: None for cid in (customer_ids if customer_ids is not None else grouped)}
    program = version.program
    for cid in customer_ids if customer_ids is not None else grouped:
        level = level_at(program, History(grouped.get(cid, [])), on)
        out[cid] = level.id if level is not None else None
    return out
