"""`loyalty check`: SQLite's own integrity check plus the ledger's invariants
(balance = sum of entries as replayed, no lot below zero or above its points, every
entry's source and target lot exist, kinds and signs valid), and that every stored
run state a run would start from agrees with the ledger it summarises (its lots,
debt and balance as replayed)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loyalty_cli import db
from loyalty_cli.ledger import (
    _COLUMNS,
    KINDS,
    LotState,
    Row,
    replay,
    replay_overdrafts,
    row_from_db,
)

if TYPE_CHECKING:
    from loyalty_cli.engine.state import LotFacts


# source_type -> (table, id column): an entry naming one of these sources must
# point at a row that exists (undone rows count: they are kept for audit and
# their reversal entries still name them).
SOURCE_TABLES: dict[str, tuple[str, str]] = {
    "purchase": ("purchases", "transaction_id"),
    "event": ("events", "event_id"),
    "redemption": ("redemptions", "redemption_id"),
    "voucher": ("vouchers", "voucher_id"),
    "referral": ("customers", "customer_id"),
}
# Sources the engine derives itself and that have no row of their own: the
# yearly birthday bonus is an `event` entry with source id birthday:<customer>:<year>.
DERIVED_SOURCES = "(l.source_type = 'event' AND l.source_id LIKE 'birthday:%')"
# Every source an entry can name: the ones above, expiries (a lot or an inactivity
# date), manual adjustments and opening balances.
SOURCE_TYPES = (*SOURCE_TABLES, "expiry", "adjustment", "balance")
# The sign each kind's points must have (reversal and adjust go either way: an
# undone refund gives its claw-back back).
SIGNS = {
    "earn": 1, "bonus": 1, "redemption_reversed": 1, "redeem": -1, "expire": -1, "clawback": -1,
}  # fmt: skip


@dataclass(frozen=True)
class Finding:
    """One broken invariant. `code` is stable (for scripts), `message` is for people."""

    code: str
    message: str
    entry_id: int | None = None
    customer_id: str | None = None

    def __str__(self) -> str:
        return self.message

    def as_json(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "entry_id": self.entry_id,
            "customer_id": self.customer_id,
            "message": self.message,
        }


@dataclass
class CheckReport:
    findings: list[Finding]
    entries: int
    customers: int

    @property
    def ok(self) -> bool:
        return not self.findings

    def summary(self) -> str:
        entries = "1 entry" if self.entries == 1 else f"{self.entries} entries"
        customers = "1 customer" if self.customers == 1 else f"{self.customers} customers"
        return f"ok: {entries}, {customers} checked"

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "customers": self.customers,
            "findings": [f.as_json() for f in self.findings],
        }


def check_database(conn: sqlite3.Connection) -> list[Finding]:
    """Every broken invariant found (empty list: the database is sound)."""
    return run_check(conn).findings


def run_check(conn: sqlite3.Connection) -> CheckReport:
    """Integrity check and ledger invariants, read in one snapshot (a read
    transaction), so an import committing meanwhile cannot cause a false alarm."""
    findings: list[Finding] = []
    try:
        for (message,) in conn.execute("PRAGMA integrity_check").fetchall():
            if message != "ok":
                findings.append(Finding("integrity", f"sqlite integrity_check: {message}"))
    except sqlite3.DatabaseError as exc:  # a page too broken for the check to walk
        findings.append(Finding("integrity", f"sqlite integrity_check: {exc}"))
    try:
        return _ledger_check(conn, findings)
    except sqlite3.DatabaseError as exc:
        findings.append(Finding("integrity", f"the ledger cannot be read to the end: {exc}"))
        return CheckReport(findings, 0, 0)


def _ledger_check(conn: sqlite3.Connection, findings: list[Finding]) -> CheckReport:
    with db.transaction(conn, immediate=False):
        for row in conn.execute("PRAGMA foreign_key_check").fetchall():
            findings.append(
                Finding("foreign_key", f"{row[0]} row {row[1]}: {row[2]} row does not exist")
            )
        findings += _bad_kinds(conn)
        findings += _bad_signs(conn)
        findings += _unknown_sources(conn)
        findings += _bad_lot_ids(conn)
        findings += _overexpired_lots(conn)
        findings += _missing_sources(conn)
        findings += _unscored_receipts(conn)
        findings += _unmatched_redemptions(conn)
        replay_findings, customers = _replay_all(conn)
        findings += replay_findings
        entries = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    return CheckReport(findings, entries, customers)


def _bad_kinds(conn: sqlite3.Connection) -> list[Finding]:
    marks = ",".join("?" * len(KINDS))
    rows = conn.execute(
        f"SELECT entry_id, customer_id, kind FROM ledger WHERE kind NOT IN ({marks}) "
        "ORDER BY entry_id",
        KINDS,
    )
    return [
        Finding("kind", f"entry {e} (customer {c}): unknown kind {k!r}", e, c) for e, c, k in rows
    ]


def _bad_signs(conn: sqlite3.Connection) -> list[Finding]:
    """An entry whose points have the wrong sign for its kind (an earn of -5 would
    take from the customer's lots, and replay would not show it)."""
    cases = " OR ".join(
        f"(kind = '{kind}' AND points {'<=' if sign > 0 else '>='} 0)"
        for kind, sign in SIGNS.items()
    )
    rows = conn.execute(
        f"SELECT entry_id, customer_id, kind, points FROM ledger WHERE {cases} ORDER BY entry_id"
    )
    return [
        Finding("sign", f"entry {e} (customer {c}): {k} of {p} points", e, c) for e, c, k, p in rows
    ]


def _unknown_sources(conn: sqlite3.Connection) -> list[Finding]:
    marks = ",".join("?" * len(SOURCE_TYPES))
    rows = conn.execute(
        f"SELECT entry_id, customer_id, kind, source_type FROM ledger "
        f"WHERE source_type NOT IN ({marks}) ORDER BY entry_id",
        SOURCE_TYPES,
    )
    return [
        Finding("source", f"entry {e} (customer {c}, {k}): unknown source type {t!r}", e, c)
        for e, c, k, t in rows
    ]


def _bad_lot_ids(conn: sqlite3.Connection) -> list[Finding]:
    rows = conn.execute(
        """
        SELECT l.entry_id, l.customer_id, l.kind, l.lot_id, t.entry_id, t.customer_id, t.points
        FROM ledger l LEFT JOIN ledger t ON t.entry_id = l.lot_id
        WHERE l.lot_id IS NOT NULL
          AND (t.entry_id IS NULL OR t.customer_id != l.customer_id OR t.points <= 0)
        ORDER BY l.entry_id
        """
    )
    out = []
    for entry_id, customer, kind, lot_id, target, target_customer, target_points in rows:
        head = f"entry {entry_id} (customer {customer}, {kind}): lot_id {lot_id}"
        if target is None:
            why = "does not exist"
        elif target_customer != customer:
            why = f"belongs to customer {target_customer}"
        else:
            why = f"is not a lot ({target_points} points)"
        out.append(Finding("lot_id", f"{head} {why}", entry_id, customer))
    return out


def _overexpired_lots(conn: sqlite3.Connection) -> list[Finding]:
    """Expiries aimed at a lot that add up to more than the lot's points. An
    expire takes only what its lot still holds, so they never may; the replay
    cannot show it (it turns any excess into debt), so it is summed here."""
    rows = conn.execute(
        """
        SELECT t.entry_id, t.customer_id, t.points, -SUM(l.points)
        FROM ledger l JOIN ledger t ON t.entry_id = l.lot_id
        WHERE l.kind = 'expire' AND l.lot_id IS NOT NULL AND t.points > 0
          AND l.customer_id = t.customer_id  -- another customer's: a lot_id finding
        GROUP BY t.entry_id HAVING -SUM(l.points) > t.points
        ORDER BY t.entry_id
        """
    )
    return [
        Finding(
            "lot",
            f"customer {customer}: expire entries aimed at lot {lot} take {taken} points; "
            f"it has only {points}",
            lot,
            customer,
        )
        for lot, customer, points, taken in rows
    ]


def _missing_sources(conn: sqlite3.Connection) -> list[Finding]:
    out = []
    for source_type, (table, column) in SOURCE_TABLES.items():
        # A materialised DISTINCT subquery gets an automatic index: one pass over
        # each table instead of a scan per entry (the purchases/events key indexes
        # are partial - undone = 0 - and cannot serve "any row with this id").
        rows = conn.execute(
            f"""
            SELECT l.entry_id, l.customer_id, l.kind, l.source_id
            FROM ledger l
            LEFT JOIN (SELECT DISTINCT {column} AS id FROM {table}) s ON s.id = l.source_id
            WHERE l.source_type = ? AND s.id IS NULL AND NOT {DERIVED_SOURCES}
            ORDER BY l.entry_id
            """,
            (source_type,),
        )
        for entry_id, customer, kind, source_id in rows:
            what = "no source id" if source_id is None else f"{source_id} is not in {table}"
            out.append(
                Finding(
                    "source",
                    f"entry {entry_id} (customer {customer}, {kind}): {source_type} {what}",
                    entry_id,
                    customer,
                )
            )
    return out


def _unscored_receipts(conn: sqlite3.Connection) -> list[Finding]:
    """A receipt's entries (earn, bonus, claw-back) add up, per customer, to the
    points `scored_receipts` says it got. A deleted or altered earn passes every
    other check once the run states are cleared. Receipts an undo touched are
    left out: it reverses only what their lots still hold (a claw-back or an
    expiry may have taken the rest) and forgets their scoring."""
    rows = conn.execute(
        """
        WITH undone AS (SELECT DISTINCT transaction_id FROM purchases WHERE undone = 1)
        SELECT tx, customer_id, SUM(posted), SUM(scored) FROM (
            SELECT source_id AS tx, customer_id, points AS posted, 0 AS scored
            FROM ledger WHERE source_type = 'purchase'
            UNION ALL
            SELECT transaction_id, customer_id, 0, points FROM scored_receipts
        )
        WHERE tx NOT IN undone
        GROUP BY tx, customer_id
        -- An entry naming no receipt in purchases is a "source" finding already (the
        -- receipt has no undone row here: undone = 0 lets the key index answer).
        HAVING SUM(posted) != SUM(scored)
           AND EXISTS (SELECT 1 FROM purchases WHERE transaction_id = tx AND undone = 0)
        ORDER BY customer_id, tx
        """
    )
    return [
        Finding(
            "receipt",
            f"customer {customer}: receipt {tx} has entries of {posted} points; "
            f"it was scored at {scored}",
            customer_id=customer,
        )
        for tx, customer, posted, scored in rows
    ]


def _unmatched_redemptions(conn: sqlite3.Connection) -> list[Finding]:
    """An active redemption's entries take its points; a cancelled one's give them
    all back. A deleted redeem entry would otherwise hand the points back unseen."""
    rows = conn.execute(
        """
        SELECT rid, customer_id, SUM(posted), SUM(due), MAX(status) FROM (
            SELECT source_id AS rid, customer_id, points AS posted, 0 AS due, NULL AS status
            FROM ledger WHERE source_type = 'redemption'
            UNION ALL
            SELECT redemption_id, customer_id, 0,
                   CASE status WHEN 'active' THEN -points ELSE 0 END, status
            FROM redemptions
        )
        GROUP BY rid, customer_id
        HAVING SUM(posted) != SUM(due)
           AND EXISTS (SELECT 1 FROM redemptions WHERE redemption_id = rid)
        ORDER BY customer_id, rid
        """
    )
    return [
        Finding(
            "redemption",
            f"customer {customer}: redemption {rid} ({status or 'of another customer'}) "
            f"has entries of {posted} points; it should have {due}",
            customer_id=customer,
        )
        for rid, customer, posted, due, status in rows
    ]


def _replay_all(conn: sqlite3.Connection) -> tuple[list[Finding], int]:
    """Replay every customer's entries (streamed, one customer in memory at a
    time) and compare with what SQL sums and with their stored run state."""
    sums = dict(
        conn.execute("SELECT customer_id, SUM(points) FROM ledger GROUP BY customer_id").fetchall()
    )
    # States in an older layout are never read again (the next run that needs one
    # rebuilds it from the ledger), so they are not compared either.
    states = {
        cid: (entry_id, text)
        for cid, entry_id, text in conn.execute(
            "SELECT customer_id, entry_id, state FROM run_state WHERE timeline LIKE ?",
            (f"{db.RUN_STATE_FORMAT};%",),
        )
    }
    findings: list[Finding] = []
    customers = 0
    current: str | None = None
    batch: list[Row] = []
    rows = conn.execute(f"SELECT {_COLUMNS} FROM ledger ORDER BY customer_id, entry_id")
    for row in rows:
        try:
            entry = row_from_db(row)
        except (ValueError, TypeError) as exc:  # a damaged cell (a date 2027-!1-15)
            findings.append(
                Finding("entry", f"ledger entry {row[0]} cannot be read: {exc}", row[0])
            )
            continue
        if entry.customer_id != current:
            if current is not None:
                findings += _check_customer(current, batch, sums.get(current, 0), states)
                customers += 1
            current, batch = entry.customer_id, []
        batch.append(entry)
    if current is not None:
        findings += _check_customer(current, batch, sums.get(current, 0), states)
        customers += 1
    for cid in sorted(set(states) - set(sums)):  # a state of a customer without entries
        findings += _check_state(cid, [], replay([]), states)
    return findings, customers


def _check_customer(
    customer: str, entries: list[Row], sql_sum: int, states: dict[str, tuple[int, str]]
) -> list[Finding]:
    out = []
    try:
        state, overdrawn = replay_overdrafts(entries)
    except Exception as exc:  # noqa: BLE001 - a replay that crashes is itself a finding
        return [Finding("replay", f"customer {customer}: ledger cannot be replayed: {exc}")]
    out += _check_state(customer, entries, state, states)
    for entry, beyond in overdrawn:
        out.append(
            Finding(
                "redeem",
                f"customer {customer}: redemption {entry.source_id} (entry {entry.entry_id}, "
                f"{entry.date.isoformat()}) took {beyond} points more than were available",
                entry.entry_id,
                customer,
            )
        )
    if state.balance != sql_sum:
        out.append(
            Finding(
                "balance",
                f"customer {customer}: replayed balance {state.balance} != sum of entries "
                f"{sql_sum}",
                customer_id=customer,
            )
        )
    for lot in state.lots.values():
        if lot.remaining < 0 or lot.remaining > lot.points:
            out.append(
                Finding(
                    "lot",
                    f"customer {customer}: lot {lot.entry_id} holds {lot.remaining} of its "
                    f"{lot.points} points",
                    lot.entry_id,
                    customer,
                )
            )
    return out


def _check_state(
    customer: str, entries: list[Row], replayed: LotState, states: dict[str, tuple[int, str]]
) -> list[Finding]:
    """The customer's stored run state, if a run would start from it (it includes
    their last entry), against the replay: same lots holding the same points,
    same debt and balance. The state is a cache, so the finding says how to drop it."""
    stored = states.get(customer)
    last = entries[-1].entry_id if entries else 0
    if stored is None or stored[0] != last:
        return []  # none, or out of date: the next run rebuilds it anyway
    from loyalty_cli.engine.state import holdings, lot_facts

    try:
        kept, debt, balance = holdings(stored[1])
    except Exception as exc:  # noqa: BLE001 - an unreadable state is itself a finding
        differs = f"cannot be read ({exc})"
    else:
        held = {i: lot_facts(lot) for i, lot in replayed.lots.items() if lot.remaining > 0}
        wrong = _lot_differences(kept, held)
        if (debt, balance) != (replayed.debt, replayed.balance):
            wrong.append(
                f"debt {debt} and balance {balance}, the ledger "
                f"{replayed.debt} and {replayed.balance}"
            )
        if not wrong:
            return []
        differs = "says " + "; ".join(wrong)
    return [
        Finding(
            "run_state",
            f"customer {customer}: the stored run state {differs}; it is a cache: delete "
            "the row (DELETE FROM run_state WHERE customer_id = ...) and the next run "
            "rebuilds it",
            customer_id=customer,
        )
    ]


# A finding names this many of a state's differences, then counts the rest: a
# state can hold hundreds of lots, and one sentence should stay readable.
LOTS_NAMED = 3


def _lot_differences(kept: dict[int, LotFacts], held: dict[int, LotFacts]) -> list[str]:
    """What the stored lots say that the replayed ones do not, one phrase per lot."""
    phrases = []
    for entry_id in sorted(kept.keys() | held.keys()):
        stored, ledger = kept.get(entry_id), held.get(entry_id)
        if stored == ledger:
            continue
        if stored is None:
            phrases.append(f"no lot {entry_id}, the ledger {ledger[1]} points in it")
        elif ledger is None:
            phrases.append(f"lot {entry_id} holds {stored[1]} points, the ledger none")
        else:
            phrases += _fact_differences(entry_id, stored, ledger)
    if len(phrases) > LOTS_NAMED:
        phrases[LOTS_NAMED:] = [f"{len(phrases) - LOTS_NAMED} more differences"]
    return phrases


def _fact_differences(entry_id: int, stored: LotFacts, ledger: LotFacts) -> list[str]:
    labels = ("has {} points", "holds {} points", "is usable from {}", "expires {}")
    return [
        f"lot {entry_id} {label.format(_or_never(mine))}, the ledger {_or_never(theirs)}"
        for label, mine, theirs in zip(labels, stored, ledger, strict=True)
        if mine != theirs
    ]


def _or_never(fact: int | str | None) -> int | str:
    return "never" if fact is None else fact
