"""What a customer has, as of a date: the statement (`customer show`) and the
ledger behind it (`customer explain`)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from loyalty_cli import ledger
from loyalty_cli.engine import tiers as tiermod
from loyalty_cli.engine.dates import add_months
from loyalty_cli.errors import NotFoundError
from loyalty_cli.money import format_minor
from loyalty_cli.program import Program, version_in_force


def require_customer(conn: sqlite3.Connection, customer_id: str) -> sqlite3.Row | None:
    """The customers row (None for a member only seen on receipts or in the ledger).

    An id seen nowhere (no customers row, no receipt, no claim, no ledger entry)
    raises NotFoundError.
    """
    row = conn.execute(
        "SELECT customer_id, name, email FROM customers WHERE customer_id = ?", (customer_id,)
    ).fetchone()
    if row is not None:
        return row
    for sql in (
        "SELECT 1 FROM purchases WHERE customer_id = ? LIMIT 1",
        "SELECT 1 FROM claims WHERE customer_id = ? LIMIT 1",
        "SELECT 1 FROM ledger WHERE customer_id = ? LIMIT 1",
    ):
        if conn.execute(sql, (customer_id,)).fetchone():
            return None
    raise NotFoundError(f"unknown customer '{customer_id}'")


def _qualifying_text(program: Program, value: int) -> Any:
    if program.tiers is not None and program.tiers.basis == "spend":
        return format_minor(value, program.currency)
    return value


def customer_statement(
    conn: sqlite3.Connection, customer_id: str, as_of: dt.date
) -> dict[str, Any]:
    """The DESIGN.md `customer show` document as of `as_of`."""
    row = require_customer(conn, customer_id)
    version = version_in_force(conn, as_of)
    program = version.program if version else None
    state = ledger.state_of(conn, customer_id, as_of)
    available = ledger.available_after(state, as_of, unposted_inactivity(conn, customer_id, as_of))
    pending = state.pending(as_of)

    tier = qualifying = next_tier = None
    if program is not None and program.tiers is not None:
        history = tiermod.history_of(conn, customer_id, as_of)
        value = history.value(program.tiers, as_of)
        level = tiermod.level_at(program, history, as_of)
        tier = level.id if level else None
        qualifying = _qualifying_text(program, value)
        levels = program.tiers.levels
        index = levels.index(level) if level is not None else -1
        if index + 1 < len(levels):
            nxt = levels[index + 1]
            remaining = max(program.tier_threshold(nxt) - value, 0)
            next_tier = {"id": nxt.id, "remaining": _qualifying_text(program, remaining)}

    expiring = [{"date": day.isoformat(), "points": pts} for day, pts in state.expiring(as_of)]
    due = inactivity_expiry(conn, customer_id, as_of)
    if due is not None and available > 0 and due > as_of:
        expiring.append({"date": (due - dt.timedelta(days=1)).isoformat(), "points": available})
        expiring.sort(key=lambda x: x["date"])

    from loyalty_cli.rewards import eligible_reward_ids, vouchers_of
    from loyalty_cli.segments import segment_of

    statement = {
        "customer_id": customer_id,
        "name": row["name"] if row is not None else None,
        "tier": tier,
        "segment": segment_of(conn, customer_id, as_of),
        "points": {"available": available, "pending": pending, "total": available + pending},
        "qualifying": qualifying,
        "next_tier": next_tier,
        "expiring": expiring,
        "eligible_rewards": eligible_reward_ids(conn, customer_id, as_of),
        "vouchers": vouchers_of(conn, customer_id, as_of),
    }
    if program is not None and program.partners:
        from loyalty_cli.coalition import points_by_partner

        statement["by_partner"] = points_by_partner(conn, customer_id, as_of)
    return statement


def display_names(conn: sqlite3.Connection, on: dt.date) -> dict[str, str]:
    """Tier and reward id -> the name the program gives it on `on` (for the counter
    panel: a cashier reads "Silver", types the id)."""
    version = version_in_force(conn, on)
    if version is None:
        return {}
    program = version.program
    levels = program.tiers.levels if program.tiers is not None else []
    names = {level.id: level.name for level in levels if level.name}
    names.update({reward.id: reward.name for reward in program.rewards if reward.name})
    return names


def tier_unit(conn: sqlite3.Connection, on: dt.date) -> str | None:
    """What "N to Silver" counts on `on`: `point`, `receipt`, or the currency code
    for spend (None without tiers). The panel names it: a clerk reads a bare
    number as points."""
    version = version_in_force(conn, on)
    tiers = version.program.tiers if version else None
    if tiers is None:
        return None
    return {"points": "point", "receipts": "receipt"}.get(tiers.basis, version.program.currency)


def _run_sales(conn: sqlite3.Connection, customer_id: str, on: dt.date) -> list[dt.date] | None:
    """The sale days the next run goes through for the inactivity clock, in order
    (engine/customer.py): the last sale receipt it has scored, then the sale receipts
    (total 0 or more) it has not scored yet, the customer's own or claimed, dated
    after that one and by `on`. A sale not scored yet dated before the last scored
    one (a late export, a claimed old receipt) starts no clock of its own, nor does
    a gap an undone sale leaves behind the last scored one: the run sees neither.
    None when the runs have scored a sale after `on` (what fell by then is posted)."""
    last = _last_scored_sale(conn, customer_id)
    if last is not None and last > on.isoformat():
        return None
    unscored = (
        "AND NOT EXISTS (SELECT 1 FROM scored_receipts s "
        "WHERE s.transaction_id = p.transaction_id) "
        "GROUP BY p.transaction_id HAVING SUM(p.amount) >= 0"
    )
    days = {
        d
        for (d,) in conn.execute(
            "SELECT MIN(p.date) FROM purchases p WHERE p.customer_id = :c AND p.undone = 0 "
            f"AND p.date > :a AND p.date <= :d {unscored} "
            "UNION SELECT MIN(p.date) FROM claims k JOIN purchases p "
            "ON p.transaction_id = k.transaction_id WHERE k.customer_id = :c "
            f"AND p.undone = 0 AND p.date > :a AND p.date <= :d {unscored}",
            {"c": customer_id, "a": last or "", "d": on.isoformat()},
        )
    }
    if last is not None:
        days.add(last)
    return sorted(dt.date.fromisoformat(d) for d in days)


def unposted_inactivity(conn: sqlite3.Connection, customer_id: str, on: dt.date) -> dt.date | None:
    """The day an inactivity expiry fell on, when it is due by `on` but no run has
    posted it yet (the counter between runs): every point available then is gone,
    and a statement or a redemption must not count it. None otherwise.

    This is the expiry the next run will post, found as the run finds it: through
    `_run_sales`, an expiry falls N months after a sale when no other sale comes
    before that day (a sale on the day itself comes after it)."""
    sales = _run_sales(conn, customer_id, on) or []
    fell: tuple[dt.date, dt.date] | None = None
    for i, sale in enumerate(sales):
        due = _inactivity_due(conn, sale)
        if due is not None and due <= on and (i + 1 == len(sales) or sales[i + 1] >= due):
            fell = (sale, due)  # the latest one takes what every earlier one left
    if fell is None:
        return None
    posted = conn.execute(
        "SELECT 1 FROM ledger INDEXED BY ledger_source WHERE source_type = 'expiry' "
        "AND source_id = ? LIMIT 1",
        (f"inactivity:{customer_id}:{fell[0].isoformat()}",),
    ).fetchone()
    return None if posted else fell[1]


def counter_available(conn: sqlite3.Connection, customer_id: str, on: dt.date) -> int:
    """What the customer may spend on `on`, by every posted entry (a later-dated one
    too), less an inactivity expiry due by then that no run has posted yet."""
    state = ledger.replay(ledger.entries_for(conn, customer_id))
    return ledger.available_after(state, on, unposted_inactivity(conn, customer_id, on))


def inactivity_expiry(conn: sqlite3.Connection, customer_id: str, as_of: dt.date) -> dt.date | None:
    """The day all available points expire for inactivity (policy of the version in
    force on the last sale receipt, a sale the next run will score included), or
    None."""
    sales = _run_sales(conn, customer_id, as_of)
    if sales is None:  # the runs went past `as_of`: the last sale by then counts
        last = _last_scored_sale(conn, customer_id, as_of)
        sales = [dt.date.fromisoformat(last)] if last is not None else []
    return _inactivity_due(conn, sales[-1]) if sales else None


def _last_scored_sale(
    conn: sqlite3.Connection, customer_id: str, by: dt.date | None = None
) -> str | None:
    """The date (ISO) of the customer's latest scored sale receipt (by a date)."""
    return conn.execute(
        "SELECT MAX(date) FROM scored_receipts WHERE customer_id = ? AND amount >= 0 AND date <= ?",
        (customer_id, (by or dt.date.max).isoformat()),
    ).fetchone()[0]


def _inactivity_due(conn: sqlite3.Connection, sale: dt.date) -> dt.date | None:
    """When the points expire if no sale follows this one (policy of its version)."""
    version = version_in_force(conn, sale)
    expiry = version.program.expiry if version else None
    if expiry is None or expiry.policy != "inactivity":
        return None
    return add_months(sale, expiry.months)


EXPLAIN_COLUMNS = [
    "entry_id", "date", "kind", "points", "balance", "source", "rule", "version",
    "available_on", "expires_on", "note",
]  # fmt: skip


def unposted_expiries(
    conn: sqlite3.Connection, customer_id: str, on: dt.date
) -> list[dict[str, Any]]:
    """Expiries due by `on` that no run has posted yet, which the statement already
    leaves out: {"date", "points", "what"} per fixed-expiry lot, and one for an
    inactivity expiry. The ledger (explain) adds up to the statement with them."""
    state = ledger.state_of(conn, customer_id, on)
    out = [
        {
            "date": lot.expires_on.isoformat(),  # type: ignore[union-attr]  (filtered below)
            "points": lot.remaining,
            "what": f"the rest of the lot of {lot.date.isoformat()}",
        }
        for lot in sorted(state.lots.values(), key=lambda lot: (lot.expires_on or on, lot.entry_id))
        if lot.expired_holding(on)
    ]
    fell = unposted_inactivity(conn, customer_id, on)
    if fell is not None:
        taken = state.available(on) - ledger.available_after(state, on, fell)
        if taken > 0:
            out.append({"date": fell.isoformat(), "points": taken, "what": "inactivity"})
    return out


def explain(conn: sqlite3.Connection, customer_id: str) -> list[dict[str, Any]]:
    """Every ledger entry of the customer in posting order, with the running balance.
    Where an entry carries no note, the note says what the kind alone does not: an
    earn's receipt amount and tier, a fixed expiry's lot."""
    require_customer(conn, customer_id)
    out = []
    balance = 0
    entries = ledger.entries_for(conn, customer_id)
    by_id = {e.entry_id: e for e in entries}
    receipts = {
        tid: (amount, tier, version)
        for tid, amount, tier, version in conn.execute(
            "SELECT transaction_id, amount, tier, version FROM scored_receipts "
            "WHERE customer_id = ?",
            (customer_id,),
        )
    }
    currencies: dict[int | None, str] = {}
    taken_by = _undone_by(entries)
    for e in entries:
        balance += e.points
        source = _source_text(e)
        note = e.note or _undone_note(e, taken_by.get(e.entry_id))
        note = note or _derived_note(conn, e, by_id, receipts, currencies)
        out.append(
            {
                "entry_id": e.entry_id,
                "date": e.date.isoformat(),
                "kind": e.kind,
                "points": e.points,
                "balance": balance,
                "source": source,
                "rule": e.rule_id,
                "version": e.program_version,
                "available_on": e.available_on.isoformat() if e.available_on else None,
                "expires_on": e.expires_on.isoformat() if e.expires_on else None,
                "note": note,
            }
        )
    return out


def _undone_by(entries: list[ledger.Row]) -> dict[int, ledger.Row]:
    """Lot entry id -> the undo reversal that took its source back: each reversal
    answers for the entries of its source posted before it that no earlier
    reversal answered for. (An undo aims one reversal at each lot still holding
    points: a spent earn gets none of its own, and its receipt imported again
    posts lots an earlier undo never took.)"""
    out: dict[int, ledger.Row] = {}
    open_lots: dict[tuple[str, str | None], list[int]] = {}
    for e in entries:
        key = (e.source_type, e.source_id)
        if e.kind == "reversal":
            for lot_id in open_lots.pop(key, []):
                out[lot_id] = e
        elif e.points > 0 and e.kind in ("earn", "bonus", "adjust"):
            open_lots.setdefault(key, []).append(e.entry_id)
    return out


def _undone_note(lot: ledger.Row, reversal: ledger.Row | None) -> str | None:
    """`receipt undone with import 3` for a lot an import undo took back (its
    reversal's note is `import 3 undone`): the undo forgets a receipt's scoring and
    a receipt imported again is scored anew, so the note derived from the scoring
    would be missing or the new receipt's."""
    if reversal is None:
        return None
    import_id = ledger.undone_import(reversal.note)
    if import_id is None:
        return f"taken back by entry {reversal.entry_id}"
    what = "receipt undone" if lot.source_type == "purchase" else "undone"
    return f"{what} with import {import_id}"


def _derived_note(
    conn: sqlite3.Connection,
    e: ledger.Row,
    by_id: dict[int, Any],
    receipts: dict[str, tuple[int, str | None, int | None]],
    currencies: dict[int | None, str],
) -> str | None:
    """`receipt 8.00 EUR, tier silver` for an earn; `the lot of 2025-01-10
    (purchase:T1)` for a fixed expiry aimed at it."""
    if e.kind == "earn" and e.source_type == "purchase" and e.source_id in receipts:
        amount, tier, version = receipts[e.source_id]
        if not currencies:
            from loyalty_cli.program import versions_by_number

            currencies.update({n: v.program.currency for n, v in versions_by_number(conn).items()})
        currency = currencies.get(version) or next(iter(currencies.values()), "EUR")
        text = f"receipt {format_minor(amount, currency)} {currency}"
        return text + (f", tier {tier}" if tier else "")
    if e.kind == "expire" and e.lot_id in by_id:
        lot = by_id[e.lot_id]
        return f"the lot of {lot.date.isoformat()} ({_source_text(lot)})"
    return None


def _source_text(e: ledger.Row) -> str:
    """`purchase:T1`: an entry's source as explain shows it."""
    return e.source_type + (f":{e.source_id}" if e.source_id else "")
