"""Posting to and reading the append-only points ledger.

The `ledger` table only ever grows. Which lots an outgoing entry consumed is
not stored: `replay()` derives it from a customer's entries in the order they
were posted (see docs/architecture.md, "The ledger model"). Posting code asks
the same function what a lot still holds, so what is posted and what is shown
can never disagree.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, NamedTuple

from loyalty_cli.money import round_money

KINDS = (
    "earn",
    "bonus",
    "clawback",
    "redeem",
    "redemption_reversed",
    "expire",
    "adjust",
    "reversal",
)
# One hand-made entry's points either way (an adjustment, an opening balance: twelve
# digits), so that no sum of a shop's entries can leave SQLite's 64-bit integers.
MAX_ENTRY_POINTS = 10**12 - 1

# Outgoing entries aimed at one lot first (lot_id), then FIFO.
# Outgoing kinds whose lot_id aims them at a lot (a negative adjustment's parts
# that take points still pending: rewards/adjust.py).
_TARGETED = {"expire", "clawback", "reversal", "adjust"}

# The notes of a refund's claw-back entries: "refund of T1", with ", points still
# pending" on the parts aimed at pending lots. They are how a claw-back names the
# receipt it was taken back for (the entry's source is the refund itself).
REFUND_OF = "refund of "
STILL_PENDING = ", points still pending"
_UNDONE = re.compile(r"import (\d+) undone")


def undone_note(import_id: int) -> str:
    """The note of the reversals an `import undo` posts."""
    return f"import {import_id} undone"


def undone_import(note: str | None) -> int | None:
    """The import an undo reversal (by its note) undid; None for another entry."""
    found = _UNDONE.fullmatch(note or "")
    return int(found[1]) if found else None


_COLUMNS = (
    "entry_id, date, customer_id, kind, points, value, source_type, source_id, rule_id, "
    "program_version, lot_id, available_on, expires_on, partner, note"
)


@dataclass(frozen=True)
class NewEntry:
    """An entry about to be posted. Positive earn/bonus/adjust/reversal are lots."""

    date: dt.date
    customer_id: str
    kind: str
    points: int
    source_type: str
    source_id: str | None = None
    rule_id: str | None = None
    program_version: int | None = None
    lot_id: int | None = None
    available_on: dt.date | None = None
    expires_on: dt.date | None = None
    partner: str | None = None
    note: str | None = None
    value: int = 0


@dataclass(frozen=True)
class Entry(NewEntry):
    entry_id: int = 0

    @property
    def is_lot(self) -> bool:
        return self.points > 0 and self.kind not in ("redemption_reversed",)


class Row(NamedTuple):
    """An entry as the engine handles it in bulk: the ledger columns in table order,
    dates as dt.date. It reads like an `Entry` wherever replay() and _apply() look,
    and costs a fraction of one to build (a run makes hundreds of thousands)."""

    entry_id: int
    date: dt.date
    customer_id: str
    kind: str
    points: int
    value: int
    source_type: str
    source_id: str | None = None
    rule_id: str | None = None
    program_version: int | None = None
    lot_id: int | None = None
    available_on: dt.date | None = None
    expires_on: dt.date | None = None
    partner: str | None = None
    note: str | None = None

    @property
    def is_lot(self) -> bool:
        return self.points > 0 and self.kind != "redemption_reversed"


@dataclass(slots=True)
class Lot:
    entry_id: int
    date: dt.date
    available_on: dt.date
    expires_on: dt.date | None
    points: int
    remaining: int
    partner: str | None = None

    def usable_on(self, day: dt.date) -> bool:
        return self.available_on <= day and (self.expires_on is None or self.expires_on > day)

    def expired_holding(self, day: dt.date) -> bool:
        """Past its expiry on `day` and still holding points: no `expire` entry has
        taken them yet (neither available nor pending)."""
        return (
            self.remaining > 0
            and self.available_on <= day
            and self.expires_on is not None
            and self.expires_on <= day
        )


@dataclass
class LotState:
    """A customer's lots after replaying their entries."""

    lots: dict[int, Lot] = field(default_factory=dict)
    debt: int = 0
    # redemption id -> {lot entry_id: points taken}, so a cancellation gives
    # back exactly what was taken.
    taken: dict[str, dict[int, int]] = field(default_factory=dict)
    balance: int = 0
    # lot entry_id -> points `expire` entries took from it (aimed or, for an
    # inactivity expiry, oldest first): what an undo must not reverse again.
    expired_from: dict[int, int] = field(default_factory=dict)
    # lot entry_id -> the date of the inactivity expiry that took its points (in
    # posting order): points given back to it later are dead.
    died_on: dict[int, dt.date] = field(default_factory=dict)
    # [date, points] of each part of `debt` still owed, oldest first (a restored
    # state has none: its debt is undated).
    debts: list[list[Any]] = field(default_factory=list)

    def available(self, on: dt.date) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.usable_on(on)) - self.debt

    def pending(self, on: dt.date) -> int:
        return sum(lot.remaining for lot in self.lots.values() if lot.available_on > on)

    def expired_unposted(self, on: dt.date) -> list[Lot]:
        """Lots past their expiry date that still hold points (an expire is due)."""
        return [
            lot
            for lot in self.lots.values()
            if lot.remaining > 0 and lot.expires_on is not None and lot.expires_on <= on
        ]

    def expiring(self, on: dt.date) -> list[tuple[dt.date, int]]:
        """(last usable day, points) for points with a fixed expiry, soonest first."""
        by_day: dict[dt.date, int] = {}
        for lot in self.lots.values():
            if lot.remaining > 0 and lot.expires_on is not None and lot.expires_on > on:
                last_day = lot.expires_on - dt.timedelta(days=1)
                by_day[last_day] = by_day.get(last_day, 0) + lot.remaining
        return sorted(by_day.items())


def replay(entries: Iterable[Entry | Row], as_of: dt.date | None = None) -> LotState:
    """Walk one customer's entries in posting order and track every lot.

    Entries dated after `as_of` are ignored (a statement as of a past date).
    """
    state = LotState()
    for entry in sorted(entries, key=lambda e: e.entry_id):
        if as_of is not None and entry.date > as_of:
            continue
        _apply(state, entry)
    return state


def replay_overdrafts(
    entries: Iterable[Entry | Row],
) -> tuple[LotState, list[tuple[Entry | Row, int]]]:
    """`replay`, plus each redeem entry that took more than the lots held and by how
    much (posting order): a redemption never makes the balance negative, so each one
    is a broken ledger (`loyalty check`)."""
    state = LotState()
    found = []
    for entry in sorted(entries, key=lambda e: e.entry_id):
        debt = state.debt
        _apply(state, entry)
        if entry.kind == "redeem" and state.debt > debt:
            found.append((entry, state.debt - debt))
    return state, found


def _apply(state: LotState, entry: Entry | Row) -> None:
    state.balance += entry.points
    if entry.kind == "redemption_reversed":
        _give_back(state, entry)
        return
    if entry.points > 0:
        # Lot(entry_id, date, available_on, expires_on, points, remaining, partner)
        lot = Lot(
            entry.entry_id,
            entry.date,
            entry.available_on or entry.date,
            entry.expires_on,
            entry.points,
            entry.points,
            entry.partner,
        )
        lot.remaining -= _pay_debt(state, lot.remaining)
        state.lots[entry.entry_id] = lot
        return
    if entry.points == 0:
        return
    need = -entry.points
    taken: dict[int, int] = {}
    if entry.kind in _TARGETED and entry.lot_id in state.lots:
        need = _take(state.lots[entry.lot_id], need, taken)
    if need and entry.kind != "expire":
        for lot in _fifo(state, entry.date):
            need = _take(lot, need, taken)
            if not need:
                break
    if entry.kind == "expire" and entry.lot_id is None and need:
        # Inactivity expiry: every available point, oldest first.
        for lot in _fifo(state, entry.date):
            need = _take(lot, need, taken)
            if not need:
                break
    if need:
        state.debt += need
        state.debts.append([entry.date, need])
    if entry.kind == "redeem" and entry.source_id is not None:
        state.taken[entry.source_id] = taken
    elif entry.kind == "expire":
        for lot_id, amount in taken.items():
            state.expired_from[lot_id] = state.expired_from.get(lot_id, 0) + amount
        if entry.lot_id is None:
            for lot_id in taken:
                state.died_on.setdefault(lot_id, entry.date)


def _take(lot: Lot, need: int, taken: dict[int, int]) -> int:
    amount = min(lot.remaining, need)
    if amount:
        lot.remaining -= amount
        taken[lot.entry_id] = taken.get(lot.entry_id, 0) + amount
    return need - amount


def _fifo(state: LotState, on: dt.date) -> list[Lot]:
    usable = [lot for lot in state.lots.values() if lot.remaining > 0 and lot.usable_on(on)]
    return sorted(usable, key=lambda lot: (lot.available_on, lot.entry_id))


def available_after(state: LotState, on: dt.date, expired: dt.date | None) -> int:
    """`state.available(on)`, less what an inactivity expiry on `expired` takes and
    no entry records yet: every lot usable on that day (lots available later stay)."""
    if expired is None:
        return state.available(on)
    kept = [lot for lot in state.lots.values() if lot.available_on > expired]
    return sum(lot.remaining for lot in kept if lot.usable_on(on)) - state.debt


def pending_fifo(state: LotState, on: dt.date) -> list[Lot]:
    """Lots still pending on `on` that hold points, the soonest available first."""
    waiting = [lot for lot in state.lots.values() if lot.remaining > 0 and lot.available_on > on]
    return sorted(waiting, key=lambda lot: (lot.available_on, lot.entry_id))


def uncovered(state: LotState, need: int, on: dt.date) -> int:
    """What of an unaimed outgoing entry of `need` points dated `on` no lot would
    cover: replay takes from the lots available on `on`; the rest becomes debt."""
    for lot in _fifo(state, on):
        need -= min(lot.remaining, need)
        if not need:
            break
    return need


def pending_parts(state: LotState, need: int, on: dt.date) -> list[tuple[int, int]]:
    """(pending lot, points) for what of an unaimed outgoing entry of `need` points
    dated `on` the available lots would not cover, the soonest available first.
    Each part is its own entry aimed at the lot: left to one entry it would be a
    debt beside lots that later expire in full."""
    rest = uncovered(state, need, on)
    if not rest:
        return []
    lots = (lot.entry_id for lot in pending_fifo(state, on))
    return from_lots(state, lots, rest)[0]


def outgoing_parts(state: LotState, need: int, on: dt.date) -> list[tuple[int, int | None]]:
    """(points, lot) for an unaimed outgoing entry of `need` points dated `on`: what
    the available lots cover (and any debt) unaimed first, then a part aimed at each
    pending lot for what they do not (`pending_parts`). No part of 0 points."""
    parts = pending_parts(state, need, on)
    unaimed = need - sum(n for _, n in parts)
    return ([(unaimed, None)] if unaimed > 0 else []) + [(n, lot) for lot, n in parts]


def _give_back(state: LotState, entry: Entry | Row) -> None:
    """A cancelled redemption's points go back to the lots it took them from. What
    the customer owes (a claw-back since) is paid from them first, oldest lot first,
    as a new lot would pay it: otherwise the lot would hold points the balance does
    not have, and its expiry would take them a second time. Points that come back
    into a dead lot (past its expiry date, or emptied by an inactivity expiry) pay
    only what was owed while it lived (_last_payday): the cancellation expires the
    rest at once (rewards/redeem._expire_returned), so a debt that arose after the
    lot died is not paid with expired points."""
    taken = state.taken.pop(entry.source_id or "", {})
    left = entry.points
    for lot_id, amount in taken.items():
        back = min(amount, left)
        left -= back
        lot = state.lots[lot_id]
        lot.remaining += back - _pay_debt(state, back, _last_payday(state, lot, entry.date))
    if left > 0:
        # Nothing recorded to give back to (should not happen): a fresh lot.
        left -= _pay_debt(state, left)
        state.lots[entry.entry_id] = Lot(
            entry.entry_id, entry.date, entry.date, None, left, left, entry.partner
        )


def _last_payday(state: LotState, lot: Lot, on: dt.date) -> dt.date | None:
    """The last day whose debts points given back to `lot` on `on` may pay: None (any)
    for a lot alive on `on`; for a dead one, the day before its fixed expiry date, or
    before the inactivity expiry that took its points (expiries come first in a day).
    A lot an inactivity expiry found empty (the redemption had taken it all) pays
    any debt, that expiry's own claim on it included."""
    if lot.expires_on is not None and lot.expires_on <= on:
        return lot.expires_on - dt.timedelta(days=1)
    died = state.died_on.get(lot.entry_id)
    return died - dt.timedelta(days=1) if died is not None else None


def _pay_debt(state: LotState, points: int, until: dt.date | None = None) -> int:
    """Pay what the customer owes from `points` (only what was owed by `until`, when
    given), the oldest debt first; how much was paid."""
    if not state.debt:
        return 0
    debts = state.debts
    undated = state.debt - sum(owed for _, owed in debts)
    payable = state.debt
    if until is not None:
        payable -= sum(owed for day, owed in debts if day > until)
    paid = min(payable, points)
    if paid <= 0:
        return 0
    state.debt -= paid
    left = paid - min(undated, paid)
    for part in debts:
        if not left:
            break
        if until is None or part[0] <= until:
            take = min(part[1], left)
            part[1] -= take
            left -= take
    state.debts = [part for part in debts if part[1] > 0]
    return paid


# --- reading ---------------------------------------------------------------


_DATES: dict[str, dt.date] = {}
_ISO: dict[dt.date, str] = {}


def _date(text: str) -> dt.date:
    """dt.date.fromisoformat with a memo: a ledger holds few distinct dates."""
    day = _DATES.get(text)
    if day is None:
        day = _DATES[text] = dt.date.fromisoformat(text)
    return day


def _iso(day: dt.date) -> str:
    text = _ISO.get(day)
    if text is None:
        text = _ISO[day] = day.isoformat()
    return text


_new_row = tuple.__new__


def row_from_db(row: Sequence) -> Row:
    """A Row from the columns of `_COLUMNS` as SQLite returns them."""
    dates = _DATES
    day, available, expires = row[1], row[11], row[12]
    return _new_row(
        Row,
        (
            row[0],
            dates.get(day) or _date(day),
            row[2], row[3], row[4], row[5], row[6], row[7], row[8], row[9], row[10],
            (dates.get(available) or _date(available)) if available else None,
            (dates.get(expires) or _date(expires)) if expires else None,
            row[13],
            row[14],
        ),
    )  # fmt: skip


def entries_for(conn: sqlite3.Connection, customer_id: str) -> list[Row]:
    """The customer's entries in posting order."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM ledger WHERE customer_id = ? ORDER BY entry_id", (customer_id,)
    )
    return [row_from_db(r) for r in rows]


def entries_by_customer(
    conn: sqlite3.Connection, customer_ids: Iterable[str] | None = None
) -> dict[str, list[Row]]:
    """Entries grouped per customer: all customers, or the ones named."""
    out: dict[str, list[Row]] = {}
    if customer_ids is None:
        rows: Iterable = conn.execute(
            f"SELECT {_COLUMNS} FROM ledger ORDER BY customer_id, entry_id"
        )
    else:
        ids = sorted(set(customer_ids))
        rows = []
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            rows.extend(
                conn.execute(
                    f"SELECT {_COLUMNS} FROM ledger WHERE customer_id IN ({marks}) "
                    "ORDER BY customer_id, entry_id",
                    chunk,
                ).fetchall()
            )
    for row in rows:
        entry = row_from_db(row)
        out.setdefault(entry.customer_id, []).append(entry)
    return out


def state_of(conn: sqlite3.Connection, customer_id: str, as_of: dt.date | None = None) -> LotState:
    return replay(entries_for(conn, customer_id), as_of)


def balance(conn: sqlite3.Connection, customer_id: str, as_of: dt.date | None = None) -> int:
    """Sum of the customer's entries (dated up to as_of)."""
    sql = "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE customer_id = ?"
    args: list[object] = [customer_id]
    if as_of is not None:
        sql += " AND date <= ?"
        args.append(as_of.isoformat())
    return conn.execute(sql, args).fetchone()[0]


# --- posting -----------------------------------------------------------------


@lru_cache(maxsize=65536)
def points_value(points: int, point_value: Decimal, currency: str = "EUR") -> int:
    """Money value (minor units, half up) of a number of points."""
    return round_money(Decimal(points) * point_value, currency)


def post(
    conn: sqlite3.Connection, entries: Sequence[NewEntry], now: str | None = None
) -> list[int]:
    """Append entries; returns their entry ids in order.

    Call inside db.transaction(): ids are assigned from MAX(entry_id) under the
    write lock, so a bulk insert can still tell callers each new id.
    """
    if not entries:
        return []
    for e in entries:
        if e.kind not in KINDS:
            raise ValueError(f"unknown ledger kind {e.kind!r}")
    created = now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    start = conn.execute("SELECT COALESCE(MAX(entry_id), 0) FROM ledger").fetchone()[0] + 1
    ids = list(range(start, start + len(entries)))
    conn.executemany(
        f"INSERT INTO ledger ({_COLUMNS}, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                entry_id,
                e.date.isoformat(),
                e.customer_id,
                e.kind,
                e.points,
                e.value,
                e.source_type,
                e.source_id,
                e.rule_id,
                e.program_version,
                e.lot_id,
                e.available_on.isoformat() if e.available_on else None,
                e.expires_on.isoformat() if e.expires_on else None,
                e.partner,
                e.note,
                created,
            )
            for entry_id, e in zip(ids, entries, strict=True)
        ],
    )
    return ids


def post_rows(conn: sqlite3.Connection, rows: Sequence[Row], now: str | None = None) -> None:
    """Append rows whose entry ids the caller assigned (the next ids, in order), as
    `post` would append the same entries. Call inside db.transaction()."""
    insert_values(conn, row_values(rows, now))


def row_values(rows: Sequence[tuple], now: str | None = None) -> list[tuple]:
    """The INSERT parameters of `post_rows` (kinds checked): plain tuples of text and ints.
    Rows are `Row`s or tuples of the same fields."""
    kinds = set(KINDS)
    for r in rows:
        if r[3] not in kinds:
            raise ValueError(f"unknown ledger kind {r[3]!r}")
    created = now or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    iso = _iso
    return [
        (
            r[0],
            iso(r[1]),
            *r[2:11],
            iso(r[11]) if r[11] else None,
            iso(r[12]) if r[12] else None,
            r[13],
            r[14],
            created,
        )
        for r in rows
    ]


def insert_values(conn: sqlite3.Connection, values: Sequence[tuple]) -> None:
    """Insert what `row_values` made: its entry ids must be the next ones, in order."""
    if not values:
        return
    start = conn.execute("SELECT COALESCE(MAX(entry_id), 0) FROM ledger").fetchone()[0] + 1
    if values[0][0] != start or values[-1][0] != start + len(values) - 1:
        raise RuntimeError("ledger ids moved during a run")
    # row_values checked the kinds. SQLite evaluates the CHECK's IN list afresh for
    # every row of an executemany (about half the cost of the insert): skip it.
    ignoring = conn.execute("PRAGMA ignore_check_constraints").fetchone()[0]
    conn.execute("PRAGMA ignore_check_constraints = 1")
    try:
        conn.executemany(
            f"INSERT INTO ledger ({_COLUMNS}, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            values,
        )
    finally:
        conn.execute(f"PRAGMA ignore_check_constraints = {int(ignoring)}")


# Customers whose ledgers an undo replays at a time (to split reversals by lot).
_REPLAY_CHUNK = 2000


def _by_lots(
    conn: sqlite3.Connection,
    source_type: str,
    rows: list[tuple[Any, ...]],
    several: set[tuple[str, str, str | None]],
) -> list[tuple[Any, ...]]:
    """The reversals of sources with several lots split into one per lot that still
    holds points, in posting order, each up to what the lot holds as replayed now
    (the reversal is posted after every entry there is). One aimed at the first lot
    alone took the rest from the customer's oldest points, FIFO, and left the
    source's bonus lot standing. What the lots no longer hold (spent) stays with the
    first part, taken FIFO as before."""
    needed = sorted({cid for cid, _, _ in several})
    position = {cid: i for i, cid in enumerate(needed)}
    chunk: set[str] = set()
    entries: dict[str, list[Row]] = {}
    states: dict[str, LotState] = {}
    lots_of: dict[tuple[str, str | None, str | None], list[int]] = {}
    out: list[tuple[Any, ...]] = []
    for cid, sid, kept, value, lot, version, partner in rows:
        if (cid, sid, partner) not in several:
            out.append((cid, sid, kept, value, lot, version, partner))
            continue
        if cid not in chunk:
            # The rows come by customer: their entries are read a chunk at a time,
            # so an undo of a large import does not hold every customer's ledger.
            chunk = set(needed[position[cid] : position[cid] + _REPLAY_CHUNK])
            entries = entries_by_customer(conn, chunk)
            states = {c: replay(found) for c, found in entries.items()}
            lots_of = {}
            for c, found in entries.items():
                for e in found:
                    if e.is_lot and e.source_type == source_type:
                        lots_of.setdefault((c, e.source_id, e.partner), []).append(e.entry_id)
        lots = lots_of.get((cid, sid, partner), [])
        taken, rest = from_lots(states.get(cid, LotState()), lots, kept)
        parts = [list(part) for part in taken] or [[lot, 0]]
        parts[0][1] += rest
        done = 0
        for lot_id, points in parts:
            before = share(value, done, kept)
            done += points
            out.append(
                (cid, sid, points, share(value, done, kept) - before, lot_id, version, partner)
            )
    return out


def from_lots(
    state: LotState, lot_ids: Iterable[int], need: int
) -> tuple[list[tuple[int, int]], int]:
    """(lot, points) taking `need` from these lots in their order, each up to what it
    holds now; and what they do not hold."""
    parts = []
    for lot_id in lot_ids:
        lot = state.lots.get(lot_id)
        take = min(lot.remaining, need) if lot is not None else 0
        if take > 0:
            parts.append((lot_id, take))
            need -= take
    return parts, need


def share(value: int, part: int, whole: int) -> int:
    """value × part / whole, half away from zero (the money of part of a net)."""
    if part == whole or whole == 0:
        return value
    scaled = Decimal(value) * part / whole
    return int(scaled.to_integral_value(rounding=ROUND_HALF_UP))


def _given_back_lot(conn: sqlite3.Connection, on: dt.date) -> dict[str, dt.date | None]:
    """available_on and expires_on of the lot a positive reversal (the undo of a
    refund's claw-back) makes: a lot usable from the undo date that expires as an
    adjustment made that day would. Not the claw-back's own lot: when the receipt
    is undone in the same import, or the refund named several receipts, the lot's
    dates would take the points from the customer's other lots or expire them."""
    from loyalty_cli.rewards.adjust import lot_expiry

    return {"available_on": on, "expires_on": lot_expiry(conn, on)}


def _inactivity_expired(
    conn: sqlite3.Connection, source_type: str, rows: list[Any]
) -> dict[tuple[str, str], int]:
    """(customer, source) -> points every `expire` took from the source's lots, for
    the customers an inactivity expiry reached: it names no lot, so what it took
    from which lot is known only by replaying their ledger."""
    customers = sorted({row[0] for row in rows})
    if not customers:
        return {}
    reached = [
        cid
        for cid in customers
        if conn.execute(
            "SELECT 1 FROM ledger INDEXED BY ledger_customer WHERE customer_id = ? "
            "AND kind = 'expire' AND lot_id IS NULL LIMIT 1",
            (cid,),
        ).fetchone()
    ]
    wanted = {(row[0], row[1]) for row in rows}
    sources: dict[str, list[str]] = {}
    for cid, sid in wanted:
        sources.setdefault(cid, []).append(sid)
    out: dict[tuple[str, str], int] = {}
    for cid in reached:
        out.update({(cid, sid): 0 for sid in sources[cid]})
        entries = entries_for(conn, cid)
        state = replay(entries)
        for entry in entries:
            key = (cid, entry.source_id or "")
            if entry.source_type == source_type and key in wanted and entry.is_lot:
                out[key] = out.get(key, 0) + state.expired_from.get(entry.entry_id, 0)
    return out


def refunded_receipt(note: str | None) -> str | None:
    """The receipt a refund's claw-back entry was taken back for (from its note)."""
    if note is None or not note.startswith(REFUND_OF):
        return None
    return note[len(REFUND_OF) :].removesuffix(STILL_PENDING)


def refund_took(
    entries: Iterable[tuple[str, int, str | None]], original: str | None, every: bool = False
) -> int:
    """Points a refund took back for `original` (None: at the base rate, naming no
    receipt; `every`: for whatever it named): its (kind, points, note) entries in
    posting order. An undo of the refund reverses all it had posted, so a `reversal`
    starts the count again (a refund imported again after an undo, even naming
    another receipt, counts only from then on)."""
    took = 0
    for kind, points, note in entries:
        if kind == "reversal":
            took = 0
        elif kind == "clawback" and (every or refunded_receipt(note) == original):
            took -= points
    return took


# Up to this many customers an undo reads their entries one customer at a time.
_FEW_CUSTOMERS = 2000


def _refunds_took(
    conn: sqlite3.Connection, customers: Iterable[str], reversing: set[str]
) -> dict[tuple[str, str], int]:
    """(customer, original receipt) -> the points its refunds took back, net of undo,
    for these customers. A refund among the sources being `reversing` now gives its
    points back in the same undo, so it spares its receipt nothing."""
    by_refund: dict[tuple[str, str], list[tuple[str, int, str | None]]] = {}
    originals: dict[tuple[str, str], set[str]] = {}
    wanted = sorted(set(customers))
    select = (
        "SELECT customer_id, source_id, kind, points, note FROM ledger {} "
        "WHERE {} source_type = 'purchase' "
        f"AND (kind = 'reversal' OR (kind = 'clawback' AND note LIKE '{REFUND_OF}%')) "
        "ORDER BY entry_id"
    )
    rows: list[tuple[str, str, str, int, str | None]] = []
    if len(wanted) > _FEW_CUSTOMERS:  # a big undo: one pass over the ledger
        rows = conn.execute(select.format("", "")).fetchall()
    for cid in wanted if len(wanted) <= _FEW_CUSTOMERS else ():
        rows += conn.execute(
            select.format("INDEXED BY ledger_customer", "customer_id = ? AND"), (cid,)
        ).fetchall()
    for cid, refund, kind, points, note in rows:
        if refund in reversing:
            continue
        by_refund.setdefault((cid, refund), []).append((kind, points, note))
        original = refunded_receipt(note) if kind == "clawback" else None
        if original is not None:
            originals.setdefault((cid, refund), set()).add(original)
    out: dict[tuple[str, str], int] = {}
    for (cid, refund), names in originals.items():
        for original in names:
            took = refund_took(by_refund[(cid, refund)], original)
            out[(cid, original)] = out.get((cid, original), 0) + took
    return out


def _took_from_gone(
    conn: sqlite3.Connection, customer: str, refund: str, reversing: set[str]
) -> dict[str | None, int]:
    """Points refund `refund` took back, per partner, from receipts that this undo
    does not reverse and that no run has scored since they were undone (none, or
    not yet, imported again: scored again, a receipt counts the refund anew)."""
    entries = conn.execute(
        "SELECT kind, points, note, partner FROM ledger WHERE customer_id = ? AND "
        "source_type = 'purchase' AND source_id = ? ORDER BY entry_id",
        (customer, refund),
    ).fetchall()
    originals = {refunded_receipt(e[2]) for e in entries if e[0] == "clawback"}
    took: dict[str | None, int] = {}
    for original in sorted(o for o in originals if o is not None and o not in reversing):
        scored = conn.execute(
            "SELECT 1 FROM scored_receipts WHERE transaction_id = ?", (original,)
        ).fetchone()
        if scored is not None:
            continue
        for partner in {e[3] for e in entries}:
            mine = [(k, p, n) for k, p, n, part in entries if part == partner or k == "reversal"]
            took[partner] = took.get(partner, 0) + refund_took(mine, original)
    return took


def reverse_sources(
    conn: sqlite3.Connection,
    source_type: str,
    source_ids: Sequence[str],
    on: dt.date,
    note: str,
) -> int:
    """Post `reversal` entries that cancel the points these sources made.

    One entry per (customer, source) whose entries do not already net to zero,
    aimed at the source's first lot; when the source has several lots (a receipt's
    earn and a bonus rule's), one entry per lot that still holds points, each taking
    what that lot holds (_by_lots). Points an `expire` entry already took from
    the source's lots are not reversed again: they left the balance when they
    expired (reversing them too would leave the customer owing points they never
    had the use of); nor are the points this receipt's refunds took back, whichever
    lots paid them (a refund without refund_of that happened to take from its lot
    is not one of them). Points spent from the lots are reversed: the
    balance may go negative, as for a claw-back. Used by `import undo`. Returns
    the number of entries posted.
    """
    if not source_ids:
        return 0
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _rev_ids (source_id TEXT PRIMARY KEY)")
    conn.execute("DELETE FROM _rev_ids")
    conn.executemany("INSERT OR IGNORE INTO _rev_ids VALUES (?)", [(s,) for s in source_ids])
    rows = conn.execute(
        """
        SELECT l.customer_id, l.source_id, SUM(l.points), SUM(l.value),
               MIN(CASE WHEN l.points > 0 AND l.kind != 'redemption_reversed'
                        THEN l.entry_id END),
               MAX(l.program_version), l.partner,
               COUNT(CASE WHEN l.points > 0 AND l.kind != 'redemption_reversed' THEN 1 END),
               COALESCE((SELECT -SUM(x.points) FROM ledger x
                         WHERE x.kind = 'expire' AND x.lot_id IN (
                           SELECT s.entry_id FROM ledger s
                           WHERE s.source_type = l.source_type AND s.source_id = l.source_id
                             AND s.customer_id = l.customer_id AND s.points > 0
                             AND s.partner IS l.partner)), 0)
        FROM ledger l JOIN _rev_ids r ON r.source_id = l.source_id
        WHERE l.source_type = ?
        GROUP BY l.customer_id, l.source_id, l.partner
        HAVING SUM(l.points) != 0
        ORDER BY l.customer_id, l.source_id, l.partner
        """,
        (source_type,),
    ).fetchall()
    # Per partner: a refund naming receipts of two partners took back from each, and
    # each gets back what it funded. A fixed expiry took from a partner's own lots
    # (per group); what an inactivity expiry (by replay) and the receipt's refunds
    # took is known per (customer, source) and is spread over the groups in turn.
    expired_by_replay = _inactivity_expired(conn, source_type, rows)
    took = (
        _refunds_took(conn, (row[0] for row in rows), set(source_ids))
        if source_type == "purchase" and rows
        else {}
    )
    left: dict[tuple[str, str], int] = {}
    gone: dict[tuple[str, str], dict[str | None, int]] = {}
    kept_rows = []
    several: set[tuple[str, str, str | None]] = set()
    for cid, sid, net, value, lot, version, partner, lots, expired in rows:
        key = (cid, sid)
        if key not in left:
            left[key] = expired_by_replay.get(key, 0) + took.get(key, 0)
        own = 0 if key in expired_by_replay else expired
        shared = min(max(left[key], 0), max(net - own, 0))
        left[key] -= shared
        kept = net - min(max(own + shared, 0), max(net, 0))
        if kept < 0 and source_type == "purchase":
            # A refund's claw-back of a receipt undone before (not in this undo): the
            # receipt's undo spared it, so the two netted to nothing; giving it back
            # now would pay points of a receipt that is gone (each partner's part).
            if key not in gone:
                gone[key] = _took_from_gone(conn, cid, sid, set(source_ids))
            spare = min(gone[key].get(partner, 0), -kept)
            kept = kept + spare
            gone[key][partner] = gone[key].get(partner, 0) - spare
        if kept != 0:
            kept_rows.append((cid, sid, kept, share(value, kept, net), lot, version, partner))
            if kept > 0 and lots > 1:
                several.add((cid, sid, partner))
    if several:
        kept_rows = _by_lots(conn, source_type, kept_rows, several)
    new = [
        NewEntry(
            date=on,
            customer_id=customer_id,
            kind="reversal",
            points=-net,
            value=-value,
            source_type=source_type,
            source_id=source_id,
            program_version=version,
            lot_id=lot_id,
            partner=partner,
            note=note,
            **(_given_back_lot(conn, on) if net < 0 else {}),
        )
        for customer_id, source_id, net, value, lot_id, version, partner in kept_rows
    ]
    post(conn, new)
    return len(new)
