"""Operations on the database file itself: check, backup, and the nightly lock.

* `run_check` / `check_database`: SQLite's own integrity check plus the
  ledger's invariants (balance = sum of entries as replayed, no lot below zero
  or above its points, every entry's source and target lot exist, kinds valid),
  and that every stored run state a run would start from agrees with the
  ledger it summarises (its lots, debt and balance as replayed).
* `backup_database`: a consistent copy through SQLite's online backup API, so
  it can run while imports or a nightly write (WAL: readers never block).
* `hold_lock`: an advisory lock row in `locks`, so two nightlies (or a nightly
  and an import that asks for the lock) never run at once. A lock whose
  holder process is gone from this host is stale and taken over.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loyalty_cli import db
from loyalty_cli.errors import ConflictError, LockedError, UsageError
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

# --- check ---------------------------------------------------------------------

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


# --- backup --------------------------------------------------------------------


@dataclass(frozen=True)
class BackupResult:
    source: str
    file: str
    bytes: int

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file, "bytes": self.bytes}


def backup_database(conn: sqlite3.Connection, dest: Path, *, force: bool = False) -> BackupResult:
    """Copy the database to `dest` while others may be writing.

    The online backup API copies one consistent snapshot. The copy is written
    to a temporary file next to `dest` and renamed into place, so an existing
    backup is only replaced (with force) by a complete new one. The copy is a
    single self-contained file (journal mode DELETE, no -wal beside it).
    """
    if not str(dest).strip():
        raise UsageError("an empty file name; name the backup file")
    dest = Path(dest)
    source = conn.execute("PRAGMA database_list").fetchone()[2]
    if dest.is_dir():
        raise UsageError("is a directory; name a file in it", file=str(dest))
    if source and any(
        dest.absolute() == Path(source + side).absolute() for side in ("-wal", "-shm", "-journal")
    ):
        raise UsageError(
            "is a file SQLite keeps beside the database; choose another", file=str(dest)
        )
    if source and dest.exists() and os.path.samefile(source, dest):
        raise UsageError("is the database itself; choose another file", file=str(dest))
    if dest.exists() and not force:
        raise ConflictError("already exists; use --force to overwrite it", file=str(dest))
    if not dest.parent.is_dir():
        raise UsageError("the directory does not exist", file=str(dest))
    _remove_stale_copies(dest)
    tmp = dest.with_name(f"{_TMP_PREFIX.format(dest.name)}{os.getpid()}")
    try:
        target = sqlite3.connect(tmp)
        try:
            conn.backup(target)
            # A lock held now (the nightly during which this runs) is this host's
            # process's: in a restored copy it would stop every nightly until cleared.
            target.execute("DELETE FROM locks")
            target.commit()
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return BackupResult(source, str(dest), dest.stat().st_size)


# The half-made copy beside the backup file, named for the process writing it.
_TMP_PREFIX = ".{}.tmp-"


def _remove_stale_copies(dest: Path) -> None:
    """Half-made copies of `dest` left by a backup that was killed: each is as big
    as the database, and nothing else would ever remove them."""
    prefix = _TMP_PREFIX.format(dest.name)
    for leftover in dest.parent.glob(glob.escape(prefix) + "*"):
        pid = leftover.name[len(prefix) :]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            with suppress(OSError):
                leftover.unlink()


# --- lock ----------------------------------------------------------------------

LOCK_NAME = "nightly"
# Locks this process holds now: a row naming our own pid that is not in here
# was left by an earlier process that had the same pid (pids are reused,
# e.g. after a reboot) and is stale.
_held: set[tuple[str, str]] = set()
_held_guard = threading.Lock()


@dataclass(frozen=True)
class LockHolder:
    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        if self is _BUSY:
            return (
                "the database stayed busy: another command without the lock (a run, "
                "a redeem) kept writing"
            )
        words = self.command.split()
        label = words[1] if len(words) > 1 and words[0] == "loyalty" else LOCK_NAME
        return (
            f"another {label} (pid {self.pid} on {self.host}, `{self.command}`) "
            f"holds the lock since {self.since}"
        )


_BUSY = LockHolder(0, "", "", "")  # nobody holds the lock, but the write lock was not free


def _utc_now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _db_key(conn: sqlite3.Connection, name: str) -> tuple[str, str]:
    return (conn.execute("PRAGMA database_list").fetchone()[2] or "", name)


@contextmanager
def hold_lock(
    conn: sqlite3.Connection,
    command: str,
    *,
    name: str = LOCK_NAME,
    wait: float = 600.0,
    poll: float = 0.5,
) -> Iterator[LockHolder]:
    """Hold the advisory lock `name` for the duration of the block.

    Waits up to `wait` seconds (polling every `poll`) while another live
    process holds it, then raises LockedError naming the holder. The row is
    deleted in `finally`; after a kill -9 it stays, and the next acquirer on
    the same host sees the dead pid and takes it over.
    """
    me = LockHolder(os.getpid(), socket.gethostname(), command, _utc_now())
    key = _db_key(conn, name)
    deadline = time.monotonic() + max(wait, 0.0)
    # Set just before our INSERT can commit: an exception (SIGTERM turned into
    # SystemExit) between that commit and the `yield` must still release.
    tried: list[bool] = []
    try:
        while True:
            left = deadline - time.monotonic()
            holder = _try_acquire(conn, name, me, key, tried, max(left, poll))
            if holder is None:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockedError(f"{holder.describe()}; gave up after waiting {wait:g} s (--wait)")
            time.sleep(min(poll, left))
        yield me
    finally:
        if tried:
            # The row goes first: until it is gone, another thread of this process
            # must still see the lock as held here, not as a stale row of its pid.
            try:
                with db.transaction(conn):
                    conn.execute(
                        "DELETE FROM locks WHERE name = ? AND pid = ? AND host = ? AND since = ?",
                        (name, me.pid, me.host, me.since),
                    )
            finally:
                with _held_guard:
                    _held.discard(key)


def _try_acquire(
    conn: sqlite3.Connection,
    name: str,
    me: LockHolder,
    key: tuple[str, str],
    tried: list[bool],
    patience: float,
) -> LockHolder | None:
    """Take the lock in one short write transaction; return the live holder if
    someone else has it.

    The holder is read first, outside any write transaction (a reader never
    waits in WAL mode): the holder of the nightly lock is usually inside a long
    write transaction itself, and asking for the write lock would wait on that
    instead of on `--wait`. The write itself waits at most `patience` seconds;
    a database kept busy by a command without the lock (a redeem, a run) is
    reported as such."""
    with _held_guard:
        holder = _holder(conn, name)
        if key in _held:  # another thread of this process holds it
            return holder or me
        if holder is not None and not _is_stale(holder, me):
            return holder
        try:
            with _busy_timeout(conn, patience):
                return _acquire(conn, name, me, key, tried)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            return _holder(conn, name) or _BUSY


def _holder(conn: sqlite3.Connection, name: str) -> LockHolder | None:
    row = conn.execute(
        "SELECT pid, host, command, since FROM locks WHERE name = ?", (name,)
    ).fetchone()
    return LockHolder(*row) if row else None


@contextmanager
def _busy_timeout(conn: sqlite3.Connection, seconds: float) -> Iterator[None]:
    conn.execute(f"PRAGMA busy_timeout = {int(min(seconds, db.BUSY_TIMEOUT_MS / 1000) * 1000)}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout = {db.BUSY_TIMEOUT_MS}")


def _acquire(
    conn: sqlite3.Connection, name: str, me: LockHolder, key: tuple[str, str], tried: list[bool]
) -> LockHolder | None:
    """The write: take the row unless a live holder has it (checked again, under
    the write lock). The caller holds _held_guard."""
    with db.transaction(conn):
        holder = _holder(conn, name)
        if holder is not None:
            if not _is_stale(holder, me):
                return holder
            conn.execute("DELETE FROM locks WHERE name = ?", (name,))
        tried.append(True)
        conn.execute(
            "INSERT INTO locks (name, pid, host, command, since) VALUES (?, ?, ?, ?, ?)",
            (name, me.pid, me.host, me.command, me.since),
        )
    _held.add(key)
    return None


def _is_stale(holder: LockHolder, me: LockHolder) -> bool:
    """Stale = held on this host by a process that no longer runs. A lock held
    from another host is never judged (we cannot see its processes)."""
    if holder.host != me.host:
        return False
    if holder.pid == me.pid:
        return True  # our pid, but not held by us (see _held): an earlier life
    return not pid_alive(holder.pid, holder.since)


def pid_alive(pid: int, since: str | None = None) -> bool:
    """Is process `pid` running (and, where /proc tells, started before `since`,
    so a reused pid of an unrelated later process does not keep a lock alive)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    stat = _proc_stat(pid)
    if stat is None:
        return True
    state, started = stat
    if state in ("Z", "X"):
        return False  # a zombie: it has exited, only not yet reaped
    if since is not None and started is not None:
        try:
            taken = dt.datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            return True
        # A process that started after the lock was taken cannot be its holder.
        return started <= taken.timestamp() + 2
    return True


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    """(state, start time as a Unix timestamp) from /proc, or None off Linux."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
        ticks = os.sysconf("SC_CLK_TCK")
        return fields[0], btime + int(fields[19]) / ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None
