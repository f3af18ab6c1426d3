"""`loyalty run`: post everything due up to an as-of date, in one transaction.

A run finds the customers with new work (new or waiting receipts, claims,
events, birthdays, expiries, entries others posted since the last run), then
works through them in batches: one ordered query per table per batch, a tight
loop per customer in Python, one bulk `ledger.post` per batch.

Per customer, everything is posted in a fixed order: by date; within a day
expiries first, then receipts by transaction_id, then events by event_id,
birthdays and referral payouts. So run(D1); run(D2) posts the same entries as
run(D2) alone, and a second run with nothing new posts nothing.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import operator
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, NamedTuple

from loyalty_cli import db, ledger, workers
from loyalty_cli.engine import state as statemod
from loyalty_cli.engine import tiers as tiermod
from loyalty_cli.engine.dates import add_months, birthday_in, parse, period_key
from loyalty_cli.engine.scoring import (
    Line,
    Receipt,
    base_refund_points,
    partner_multiplier,
    proportional_clawback,
    score_receipt,
    when_plan,
)
from loyalty_cli.errors import NoProgramError
from loyalty_cli.ledger import Entry, LotState, NewEntry, Row  # noqa: F401
from loyalty_cli.program import Program, ProgramVersion, VersionTimeline, versions_timeline

BATCH = 2000  # customers per batch at most
# Start customers from the state the last run stored when it is still current
# (engine/state.py). The tests turn it off to compare with the rebuilt state.
STORED_STATE = True
# Event types the engine derives itself; rows of these types in `events` are ignored.
DERIVED_EVENTS = ("birthday", "referral")

_META_KEYS = ("purchase_id", "event_id", "claim_rowid", "entry_id", "customer_import_id")


@dataclass
class RunResult:
    run_id: int
    as_of: dt.date
    receipts: int = 0
    entries: Counter[str] = field(default_factory=Counter)
    points: Counter[str] = field(default_factory=Counter)
    vouchers: int = 0
    vouchers_withdrawn: int = 0
    # Member receipts dated before the first program version: remembered, earn nothing
    # (a program applied today over an imported history: see `program apply --effective`).
    before_program: int = 0
    program_from: dt.date | None = None  # the first version's start
    # Who the run worked on: a referrer paid late is worked on again, and a nightly's
    # runs add up to the night's customers once each.
    customer_ids: set[str] = field(default_factory=set, repr=False)

    @property
    def customers(self) -> int:
        return len(self.customer_ids)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "as_of": self.as_of.isoformat(),
            "customers": self.customers,
            "receipts": self.receipts,
            "entries": dict(sorted(self.entries.items())),
            "points": dict(sorted(self.points.items())),
            "vouchers_issued": self.vouchers,
            "vouchers_withdrawn": self.vouchers_withdrawn,
            "before_program": self.before_program,
        }


class Scored(NamedTuple):
    """A receipt as the run remembers it (table scored_receipts); a tuple: cheap to
    build for every remembered receipt of the customers a run replays."""

    transaction_id: str
    customer_id: str
    date: dt.date
    amount: int
    tax: int
    lines: int
    points: int
    tier: str | None
    version: int | None
    punches: str | None
    withdrew: str | None  # a refund's: the vouchers it withdrew (JSON; see db.py v10)


@dataclass(slots=True)
class CustomerRow:
    birthday: dt.date | None = None
    joined_on: dt.date | None = None
    referred_by: str | None = None


@dataclass(slots=True)
class Batch:
    receipts: dict[str, list[Receipt]] = field(default_factory=dict)
    scored: dict[str, list[Scored]] = field(default_factory=dict)
    entries: dict[str, list[Row]] = field(default_factory=dict)
    customers: dict[str, CustomerRow] = field(default_factory=dict)
    events: dict[str, list[tuple[str, str, dt.date]]] = field(default_factory=dict)
    referral_paid: set[str] = field(default_factory=set)
    # Referees' sales scored by earlier runs, (date, amount) by date: a referred_by
    # imported after the first qualifying one still pays, dated that sale.
    referee_sales: dict[str, list[tuple[dt.date, int]]] = field(default_factory=dict)
    # Customers starting from what the last run stored: (their last entry id, the state).
    states: dict[str, tuple[int, str]] = field(default_factory=dict)


class _Marks:
    """Where the last run stopped: high-water marks and its as-of date (in meta)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.prev_as_of = parse(db.get_meta(conn, "run.as_of"))
        self.last = {k: int(db.get_meta(conn, f"run.last_{k}", "0") or 0) for k in _META_KEYS}

    @property
    def prev_text(self) -> str:
        # '' sorts before every ISO date: "no previous run" = everything is new.
        return self.prev_as_of.isoformat() if self.prev_as_of else ""


def run(conn: sqlite3.Connection, as_of: dt.date, progress: bool = False) -> RunResult:
    """Post everything due up to `as_of`; all or nothing; idempotent."""
    timeline = versions_timeline(conn)
    if not len(timeline):
        raise NoProgramError()
    # A big run touches index pages all over the ledger: a larger page cache for
    # this connection saves re-reading them (the default is 2 MB).
    cache = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute("PRAGMA cache_size = -262144")
    # Reading the histories of the customers with new work is page look-ups all
    # over the file: memory-mapped reads spare a system call per page.
    mmap = conn.execute("PRAGMA mmap_size").fetchone()
    conn.execute("PRAGMA mmap_size = 1073741824")
    # Plain tuples: the run reads every row by position (sqlite3.Row costs per row).
    factory = conn.row_factory
    conn.row_factory = None
    try:
        return _run(conn, timeline, as_of, progress)
    finally:
        conn.row_factory = factory
        conn.execute(f"PRAGMA cache_size = {int(cache)}")
        conn.execute(f"PRAGMA mmap_size = {int(mmap[0]) if mmap else 0}")


def _run(
    conn: sqlite3.Connection, timeline: VersionTimeline, as_of: dt.date, progress: bool
) -> RunResult:
    with db.transaction(conn):
        started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        run_id = int(
            conn.execute(
                "INSERT INTO runs (as_of, started_at) VALUES (?, ?)", (as_of.isoformat(), started)
            ).lastrowid
            or 0
        )
        marks = _Marks(conn)
        highs = {
            "purchase_id": _max(conn, "SELECT MAX(id) FROM purchases"),
            "event_id": _max(conn, "SELECT MAX(id) FROM events"),
            "claim_rowid": _max(conn, "SELECT MAX(rowid) FROM claims"),
            "customer_import_id": _max(conn, "SELECT MAX(import_id) FROM imports"),
        }
        engine = _Engine(conn, timeline, as_of, marks, run_id)
        customers = _referees_first(conn, _affected(conn, as_of, marks, timeline))
        rebuild = db.set_aside_indexes(conn, _BULK_INDEXES) if _bulk(conn, marks) else []
        engine.process(customers, progress)
        for sql in rebuild:
            conn.execute(sql)
        # Scored now (or anonymous: never scored); later-dated ones wait for their run.
        conn.execute(
            "DELETE FROM rescore_receipts WHERE NOT EXISTS (SELECT 1 FROM purchases p "
            "WHERE p.transaction_id = rescore_receipts.transaction_id AND p.undone = 0 "
            "AND p.date > ?)",
            (as_of.isoformat(),),
        )
        for key, value in highs.items():
            db.set_meta(conn, f"run.last_{key}", str(max(value, marks.last[key])))
        db.set_meta(conn, "run.last_entry_id", str(_max(conn, "SELECT MAX(entry_id) FROM ledger")))
        db.set_meta(conn, "run.as_of", as_of.isoformat())
        db.set_meta(conn, "run.last_run_id", str(run_id))
        conn.execute(
            "UPDATE runs SET finished_at = ? WHERE run_id = ?",
            (dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), run_id),
        )
        return engine.result


def forget_receipts(conn: sqlite3.Connection, transaction_ids: Iterable[str], on: dt.date) -> int:
    """After `import undo` reversed all the points of these receipts: drop the memory
    of their scoring and the stored run state of every customer of theirs, and queue
    the receipts left with some active lines (a receipt split across imports) for the
    next run to score what is left of them afresh. Returns the receipts forgotten."""
    ids = list(transaction_ids)
    removed = 0
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        # Their customers' stored states counted these receipts: rebuilt next run.
        conn.execute(
            f"DELETE FROM run_state WHERE customer_id IN (SELECT customer_id FROM purchases "
            f"WHERE transaction_id IN ({marks}) UNION SELECT customer_id FROM claims "
            f"WHERE transaction_id IN ({marks}))",
            [*chunk, *chunk],
        )
        # Queued whole or not: the next run revisits their customers (rebuilt, their
        # states being gone) even when the undo reversed nothing (a receipt that
        # earned nothing), and scores what is left of a split receipt afresh,
        # knowing the cards it counted on (see _Customer._punch).
        conn.execute(
            "INSERT OR IGNORE INTO rescore_receipts (transaction_id, queued_on, customer_id, "
            "punches) SELECT DISTINCT p.transaction_id, ?, s.customer_id, s.punches "
            "FROM purchases p LEFT JOIN scored_receipts s "
            f"ON s.transaction_id = p.transaction_id WHERE p.transaction_id IN ({marks})",
            [on.isoformat(), *chunk],
        )
        removed += conn.execute(
            f"DELETE FROM scored_receipts WHERE transaction_id IN ({marks})", chunk
        ).rowcount
    return removed


def _max(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0] or 0)


# Secondary ledger indexes the run itself never reads (it reads by customer).
_BULK_INDEXES = (
    "ledger_date_kind",
    "ledger_source",
    "ledger_expires",
    "ledger_lot",
    "ledger_reversed",
)
_BULK_MIN_ROWS = 20_000


def _bulk(conn: sqlite3.Connection, marks: _Marks) -> bool:
    """A run with at least as many new purchase rows as the ledger has entries
    (the first run over an imported history)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM purchases WHERE id > ?", (marks.last["purchase_id"],)
    ).fetchone()
    new = int(row[0] or 0)
    return new >= _BULK_MIN_ROWS and new >= _max(conn, "SELECT MAX(entry_id) FROM ledger")


# --- which customers have work -------------------------------------------------


def _affected(
    conn: sqlite3.Connection, as_of: dt.date, marks: _Marks, timeline: VersionTimeline
) -> list[str]:
    day, prev = as_of.isoformat(), marks.prev_text
    found: set[str] = set()

    def add(sql: str, args: Iterable[object]) -> None:
        found.update(r[0] for r in conn.execute(sql, tuple(args)) if r[0] is not None)

    owner = (
        "SELECT DISTINCT COALESCE(c.customer_id, p.customer_id) FROM purchases p "
        "LEFT JOIN claims c ON c.transaction_id = p.transaction_id "
        "WHERE p.undone = 0 AND p.date <= ? AND "
    )
    # Rows dated after the last as-of (with no previous run: every row, so the
    # newer-rowid query would only read everything a second time).
    add(owner + "p.date > ?", (day, prev))
    if marks.prev_as_of is not None:
        add(owner + "p.id > ?", (day, marks.last["purchase_id"]))
    add(
        "SELECT c.customer_id FROM claims c WHERE c.rowid > ?",
        (marks.last["claim_rowid"],),
    )
    # The customers of receipts `import undo` forgot (rescore_receipts): what is left
    # of a receipt split across imports, and a customer whose undone receipt posted
    # no reversal (their inactivity clock may have moved back).
    add(
        "SELECT DISTINCT COALESCE(c.customer_id, p.customer_id) FROM rescore_receipts q "
        "CROSS JOIN purchases p ON p.transaction_id = q.transaction_id "
        "LEFT JOIN claims c ON c.transaction_id = p.transaction_id "
        "WHERE p.date <= ?",
        (day,),
    )
    event_sql = "SELECT DISTINCT customer_id FROM events WHERE undone = 0 AND date <= ? AND "
    add(event_sql + "id > ?", (day, marks.last["event_id"]))
    add(event_sql + "date > ?", (day, prev))
    add(
        "SELECT DISTINCT customer_id FROM ledger WHERE expires_on IS NOT NULL "
        "AND expires_on <= ? AND expires_on > ?",
        (day, prev),
    )
    # By rowid range (with DISTINCT the planner scans all of ledger_customer).
    add("SELECT customer_id FROM ledger WHERE entry_id > ?", (marks.last["entry_id"],))
    # A referee whose referred_by an import set since: their first qualifying sale
    # may have been scored already (see _Customer._earlier_sale).
    if any(v.program.referral for v in timeline):
        add(
            "SELECT customer_id FROM customers WHERE referred_by IS NOT NULL AND import_id > ?",
            (marks.last["customer_import_id"],),
        )
    # Birthdays falling in (prev, as_of], and every birthday of a customer whose
    # record an import created or changed since (imported after a birthday passed).
    if any(v.program.bonus_for("birthday") for v in timeline):
        add(
            "SELECT customer_id FROM customers WHERE birthday IS NOT NULL AND import_id > ?",
            (marks.last["customer_import_id"],),
        )
        if marks.prev_as_of is None or (as_of - marks.prev_as_of).days >= 366:
            add("SELECT customer_id FROM customers WHERE birthday IS NOT NULL", ())
        elif as_of > marks.prev_as_of:
            days: set[str] = set()
            d = marks.prev_as_of + dt.timedelta(days=1)
            while d <= as_of:
                days.add(d.strftime("%m-%d"))
                if d.month == 2 and d.day == 28:
                    days.add("02-29")
                d += dt.timedelta(days=1)
            marks_sql = ",".join("?" * len(days))
            add(
                "SELECT customer_id FROM customers WHERE birthday IS NOT NULL "
                f"AND substr(birthday, 6) IN ({marks_sql})",
                sorted(days),
            )
    # Inactivity expiries falling due in (prev, as_of].
    if any(v.program.expiry and v.program.expiry.policy == "inactivity" for v in timeline):
        rows = conn.execute(
            "SELECT customer_id, MAX(date) FROM scored_receipts WHERE amount >= 0 "
            "GROUP BY customer_id"
        )
        for cid, last in rows:
            due = _inactivity_due(timeline, dt.date.fromisoformat(last))
            if (
                due is not None
                and due <= as_of
                and (marks.prev_as_of is None or due > marks.prev_as_of)
            ):
                found.add(cid)
    return sorted(found)


def _referees_first(conn: sqlite3.Connection, customers: list[str]) -> list[str]:
    """`customers` with each referrer after the customers it referred.

    A referee's first purchase owes their referrer a payout dated that day; a
    referrer worked on later in the run takes it into their own timeline (before
    an expiry that falls after it), one worked on earlier would get it only after
    their entries of the run were posted. Otherwise the order is unchanged (a
    referral cycle is broken where it closes)."""
    wanted = set(customers)
    referees: dict[str, list[str]] = {}
    for referee, referrer in conn.execute(
        "SELECT customer_id, referred_by FROM customers WHERE referred_by IS NOT NULL "
        "AND referred_by != customer_id ORDER BY customer_id"
    ):
        if referee in wanted and referrer in wanted:
            referees.setdefault(referrer, []).append(referee)
    if not referees:
        return customers
    out: list[str] = []
    placed: set[str] = set()
    for first in customers:
        # Depth first without recursion: a customer is placed once every customer
        # they referred has been (or is already on the stack: a cycle).
        stack = [(first, iter(referees.get(first, ())))]
        on_stack = {first}
        while stack:
            cid, todo = stack[-1]
            nxt = next((r for r in todo if r not in placed and r not in on_stack), None)
            if nxt is not None:
                stack.append((nxt, iter(referees.get(nxt, ()))))
                on_stack.add(nxt)
                continue
            stack.pop()
            on_stack.discard(cid)
            if cid not in placed:
                placed.add(cid)
                out.append(cid)
    return out


def _inactivity_due(timeline: VersionTimeline, last_sale: dt.date) -> dt.date | None:
    version = timeline.get(last_sale)
    if version is None:
        return None
    expiry = version.program.expiry
    if expiry is None or expiry.policy != "inactivity":
        return None
    return add_months(last_sale, expiry.months)


# --- the engine -----------------------------------------------------------------


class _Engine:
    def __init__(
        self,
        conn: sqlite3.Connection,
        timeline: VersionTimeline,
        as_of: dt.date,
        marks: _Marks,
        run_id: int,
    ) -> None:
        self.conn = conn
        self.timeline = timeline
        self.as_of = as_of
        self.marks = marks
        self.run_id = run_id
        self.result = RunResult(run_id, as_of, program_from=next(iter(timeline)).effective_from)
        self.timeline_key = statemod.timeline_key(timeline)
        self.since, self.first_receipt = statemod.since(as_of, statemod.history_reach(timeline))
        self.next_id = _max(conn, "SELECT MAX(entry_id) FROM ledger") + 1
        self.incremental = marks.last["purchase_id"] > 0 or marks.prev_as_of is not None
        # Without an inactivity policy in any version no inactivity expiry is ever due.
        self.inactivity = any(
            v.program.expiry is not None and v.program.expiry.policy == "inactivity"
            for v in timeline
        )
        self.versions: dict[dt.date, ProgramVersion | None] = {}  # timeline.get, memoised
        # id(program) -> (program, its punch-card rewards as (reward, card, prepared filter))
        self.punch_rewards: dict[int, tuple[Program, list[tuple[Any, Any, Any]]]] = {}
        # Referral payouts owed to referrers: referrer -> [(date, referee, points, version)]
        self.referrer_due: dict[str, list[tuple[dt.date, str, int, int]]] = {}
        self.done: set[str] = set()
        # (id(program), date, pending) -> (available_on, expires_on); programs live
        # as long as the timeline, so their ids are stable for the run.
        self.lot_dates: dict[tuple[int, dt.date, bool], tuple[dt.date, dt.date | None]] = {}
        # Receipts `import undo` forgot, to be scored again: tid -> (the customer it
        # was scored for, the cards it counted on, the vouchers it had). On those
        # cards its punch was counted once already, in its place; counted again now,
        # last, it must not make a voucher of its own (see _punch). (A few rows: the
        # queue is emptied by every run.)
        self.forgotten: dict[str, tuple[str | None, set[str], set[str]]] = {}
        for tid, cid, punches, voucher in conn.execute(
            "SELECT q.transaction_id, q.customer_id, q.punches, v.voucher_id "
            "FROM rescore_receipts q LEFT JOIN vouchers v "
            "ON v.transaction_id = q.transaction_id AND v.customer_id = q.customer_id"
        ):
            _, cards, had = self.forgotten.setdefault(
                tid, (cid, {c for c in (punches or "").split(",") if c}, set())
            )
            had.update([voucher] if voucher else [])
        # Receipts an undo took back (rows of them undone), scored again now or later:
        # the refunds of theirs that stand took from the first earn (see _receipt).
        # (Read through the undone imports' rows only: purchases_import.)
        self.undone_before = set(self.forgotten) | {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT transaction_id FROM purchases WHERE import_id IN "
                "(SELECT import_id FROM imports WHERE status = 'undone' AND kind = 'purchases') "
                "AND undone = 1"
            )
        }
        # Referees whose referral was paid (read once; the run adds what it posts), so
        # batches need not look the ledger up by source.
        self.referral_paid = {
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT source_id FROM ledger WHERE source_type = 'referral'"
            )
        }

    def version_on(self, day: dt.date) -> ProgramVersion | None:
        try:
            return self.versions[day]
        except KeyError:
            found = self.versions[day] = self.timeline.get(day)
            return found

    # ---- batches
    def process(self, customers: list[str], progress: bool) -> None:
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS _batch (customer_id TEXT PRIMARY KEY)")
        self.conn.execute("CREATE TEMP TABLE IF NOT EXISTS _full (customer_id TEXT PRIMARY KEY)")
        size = _batch_size(len(customers))
        chunks = [customers[start : start + size] for start in range(0, len(customers), size)]
        # The worker is forked before the progress bar starts its thread.
        forked = len(chunks) >= _PIPELINE_MIN_BATCHES and workers.cpus() > 1
        pipeline = _Pipeline(self) if forked else None
        bar = _progress(len(customers)) if progress else None
        if pipeline is not None:
            pipeline.process(chunks, bar)
        else:
            for chunk in chunks:
                self._batch(chunk)
                if bar is not None:
                    bar(len(chunk))
            # Referrers already processed (or with nothing else to do) get their payout now.
            while late := self._late():
                self._batch(late)
        if bar is not None:
            bar(0, done=True)

    def _late(self) -> list[str]:
        return sorted(c for c in self.referrer_due if self.referrer_due[c])

    def _batch(self, chunk: list[str]) -> None:
        raw = self._fetch(chunk)
        self._write(self._compute(chunk, self._build(chunk, raw)))

    def _compute(self, chunk: list[str], data: Batch) -> _Output:
        """The Python half of a batch: every customer's new work, in order."""
        out = _Output(self)
        for cid in chunk:
            customer = _Customer(self, cid, data, out)
            customer.process()
            out.states.append(customer.saved())
            self.done.add(cid)
        return out

    def _write(self, out: _Output) -> None:
        issued, withdrawn = _write(self.conn, *out.values())
        self.result.vouchers += issued
        self.result.vouchers_withdrawn += withdrawn

    def _fetch(self, chunk: list[str]) -> _Raw:
        """The SQL half of reading a batch: the rows `_build` makes a Batch of."""
        conn, day, prev = self.conn, self.as_of.isoformat(), self.marks.prev_text
        conn.execute("DELETE FROM _batch")
        conn.executemany("INSERT INTO _batch VALUES (?)", [(c,) for c in chunk])
        last_pid = self.marks.last["purchase_id"]
        cols = (
            "p.transaction_id, p.line_no, p.date, p.amount, p.tax, p.category, p.sku, "
            "p.store, p.refund_of"
        )
        # The members' own lines (claimed receipts only when they claimed them), then
        # the lines of the receipts they claimed; a line of both is read twice.
        own = conn.execute(
            f"SELECT p.customer_id, {cols}, c.customer_id IS NOT NULL FROM _batch b CROSS "
            "JOIN purchases p ON p.customer_id = b.customer_id "
            "LEFT JOIN claims c ON c.transaction_id = p.transaction_id "
            "WHERE p.undone = 0 AND p.date <= ? AND (p.id > ? OR p.date > ? "
            "OR p.transaction_id IN (SELECT transaction_id FROM rescore_receipts)) "
            "AND (c.customer_id IS NULL OR c.customer_id = p.customer_id) "
            # A receipt's lines in line order: its store and refund_of are its first
            # line's that has one (the index alone gives them by amount). Costs
            # nothing measurable: the index has the rows sorted up to the line.
            "ORDER BY b.customer_id, p.date, p.transaction_id, p.line_no",
            (day, last_pid, prev),
        ).fetchall()
        claimed = conn.execute(
            # Driven from claims (small): left to itself the planner scans all
            # purchases through purchases_date once per batch.
            f"SELECT c.customer_id, {cols} FROM claims c "
            "CROSS JOIN _batch b ON b.customer_id = c.customer_id "
            "CROSS JOIN purchases p ON p.transaction_id = c.transaction_id AND p.undone = 0 "
            "WHERE p.date <= ? ORDER BY p.transaction_id, p.line_no",
            (day,),
        ).fetchall()
        complete: list[tuple[Any, ...]] = []
        if self.incremental:
            # Some lines of a candidate receipt may be older than the marks: read them all.
            tids = list(dict.fromkeys([r[1] for r in own] + [r[1] for r in claimed]))
            for start in range(0, len(tids), 500):
                part = tids[start : start + 500]
                marks = ",".join("?" * len(part))
                complete += conn.execute(
                    "SELECT transaction_id, amount, tax, category, sku, store, refund_of "
                    f"FROM purchases WHERE undone = 0 AND transaction_id IN ({marks}) "
                    "ORDER BY transaction_id, line_no",
                    part,
                ).fetchall()
        states = self._states(own, claimed, complete) if self.incremental and STORED_STATE else {}
        # The others' state is rebuilt from all their scored receipts and entries.
        scope = "_batch"
        if states:
            scope = "_full"
            conn.execute("DELETE FROM _full")
            conn.executemany(
                "INSERT INTO _full VALUES (?)", [(c,) for c in chunk if c not in states]
            )
        # No ORDER BY (a sort of everything read): a customer's receipts are used as a
        # set (History sorts them) and their entries are put in id order by _build.
        scored = conn.execute(
            "SELECT s.transaction_id, s.customer_id, s.date, s.amount, s.tax, s.lines, s.points, "
            f"s.tier, s.version, s.punches, s.withdrew FROM {scope} b CROSS "
            "JOIN scored_receipts s ON s.customer_id = b.customer_id"
        ).fetchall()
        entries = conn.execute(
            f"SELECT {_LEDGER_COLS} FROM {scope} b "
            "CROSS JOIN ledger l ON l.customer_id = b.customer_id"
        ).fetchall()
        # A referrer the shop does not know (a typo, a member not exported yet) is
        # paid nothing, nor is the referee: the referral waits until they are known.
        customers = conn.execute(
            "SELECT c.customer_id, c.birthday, c.joined_on, CASE WHEN EXISTS (SELECT 1 "
            "FROM customers r WHERE r.customer_id = c.referred_by) THEN c.referred_by END "
            "FROM _batch b CROSS JOIN customers c ON c.customer_id = b.customer_id"
        ).fetchall()
        # The scored sales of referees (those already paid are dropped in _build):
        # see _Customer._earlier_sale.
        referee_sales = conn.execute(
            "SELECT s.customer_id, s.date, s.amount FROM _batch b CROSS JOIN customers c "
            "ON c.customer_id = b.customer_id CROSS JOIN scored_receipts s "
            "ON s.customer_id = b.customer_id WHERE c.referred_by IS NOT NULL "
            "AND c.referred_by != c.customer_id AND s.amount > 0 AND s.date <= ? "
            "ORDER BY s.customer_id, s.date, s.transaction_id",
            (day,),
        ).fetchall()
        # New events, and a customer's events of a type whose bonus an undo took
        # back since: one the undone events kept from that once-only bonus or limit
        # is judged again (those already paid are skipped by their source).
        events = conn.execute(
            "SELECT e.event_id, e.customer_id, e.type, e.date FROM _batch b CROSS "
            "JOIN events e ON e.customer_id = b.customer_id "
            "WHERE e.undone = 0 AND e.date <= ? AND (e.id > ? OR e.date > ? OR e.type IN "
            "(SELECT paid.rule_id FROM ledger r CROSS JOIN ledger paid "
            "ON paid.source_type = r.source_type AND paid.source_id = r.source_id "
            "WHERE r.customer_id = b.customer_id AND r.entry_id > ? AND r.kind = 'reversal' "
            "AND r.source_type = 'event' AND paid.kind = 'bonus'))",
            (day, self.marks.last["event_id"], prev, self.marks.last["entry_id"]),
        ).fetchall()
        return _Raw(
            own, claimed, complete, scored, entries, customers, events, states, referee_sales
        )

    def _states(
        self,
        own: list[tuple[Any, ...]],
        claimed: list[tuple[Any, ...]],
        complete: list[tuple[Any, ...]],
    ) -> dict[str, tuple[int, str]]:
        """The batch's customers whose stored state this run can start from
        (see engine/state.py): customer -> (last entry id, stored state)."""
        conn = self.conn
        since: dict[str, str] = {}
        found: dict[str, tuple[int, str]] = {}
        for cid, entry_id, first, text in conn.execute(
            "SELECT s.customer_id, s.entry_id, s.since, s.state FROM _batch b "
            "CROSS JOIN run_state s "
            "ON s.customer_id = b.customer_id WHERE s.timeline = ? AND s.as_of <= ? "
            "AND s.entry_id = COALESCE((SELECT MAX(l.entry_id) FROM ledger l "
            "WHERE l.customer_id = b.customer_id), 0)",
            (self.timeline_key, self.as_of.isoformat()),
        ):
            found[cid] = (entry_id, text)
            since[cid] = first
        if not found:
            return found
        # A refund naming an original, or a receipt already scored (lines added to it,
        # a claimed receipt read again), is weighed against what that receipt earned,
        # and a receipt dated before `since` may need older receipts for its tier:
        # those customers are rebuilt from the ledger.
        owner: dict[str, str] = {}
        for row in chain(own, claimed):
            cid, tid = row[0], row[1]
            if cid in found:
                owner[tid] = cid
                if row[9] is not None or row[3] < since[cid]:  # refund_of, date
                    del found[cid]
        for tid, *_, refund_of in complete:
            if refund_of is not None and owner.get(tid) in found:
                del found[owner[tid]]
        # A receipt an undo took back, scored again: weighed against its refunds.
        for tid, cid in owner.items():
            if tid in self.undone_before and cid in found:
                del found[cid]
        tids = [tid for tid, cid in owner.items() if cid in found]
        for start in range(0, len(tids), 500):
            part = tids[start : start + 500]
            marks = ",".join("?" * len(part))
            for (tid,) in conn.execute(
                f"SELECT transaction_id FROM scored_receipts WHERE transaction_id IN ({marks})",
                part,
            ):
                found.pop(owner[tid], None)
        return found

    def _build(self, chunk: list[str], raw: _Raw) -> Batch:
        """The Python half of reading a batch (no database: it may run in the worker)."""
        data = Batch()
        receipts: dict[str, Receipt] = {}
        seen_lines: set[tuple[str, int]] = set()  # lines of claimed receipts
        date_of = ledger._date
        for (
            cid,
            tid,
            line_no,
            date,
            amount,
            tax,
            cat,
            sku,
            store,
            refund_of,
            claim,
        ) in raw.own:
            if claim:
                seen_lines.add((tid, line_no))
            receipt = receipts.get(tid)
            if receipt is None:
                receipt = receipts[tid] = Receipt(tid, cid, date_of(date))
            # Receipt.add, inlined: a first run reads every line of the history here.
            receipt.lines.append(Line(amount, tax, cat, sku, store, refund_of))
            receipt.amount += amount
            receipt.tax += tax
        # (A claimed receipt's lines are all anonymous: a line naming a customer
        # is refused on import, so the lines come from one query, in line order.)
        for cid, tid, line_no, date, amount, tax, cat, sku, store, refund_of in raw.claimed:
            if (tid, line_no) in seen_lines:
                continue
            seen_lines.add((tid, line_no))
            receipt = receipts.get(tid)
            if receipt is None:
                receipt = receipts[tid] = Receipt(tid, cid, date_of(date))
            receipt.add(Line(amount, tax, cat, sku, store, refund_of))
        if raw.complete:
            lines: dict[str, list[Line]] = {}
            for tid, amount, tax, cat, sku, store, refund_of in raw.complete:
                lines.setdefault(tid, []).append(Line(amount, tax, cat, sku, store, refund_of))
            for tid, found in lines.items():
                receipts[tid].set_lines(found)
        for receipt in sorted(receipts.values(), key=_receipt_order):
            data.receipts.setdefault(receipt.customer_id, []).append(receipt)

        new = tuple.__new__
        for tid, cid, date, *rest in raw.scored:
            s = new(Scored, (tid, cid, date_of(date), *rest))
            found_s = data.scored.get(cid)
            if found_s is None:
                data.scored[cid] = [s]
            else:
                found_s.append(s)

        row_from_db = ledger.row_from_db
        for row in raw.entries:
            entry = row_from_db(row)
            found_e = data.entries.get(entry.customer_id)
            if found_e is None:
                data.entries[entry.customer_id] = [entry]
            else:
                found_e.append(entry)
        for entries in data.entries.values():
            entries.sort(key=_entry_id)  # already in order when read by ledger_customer

        for cid, birthday, joined, referred in raw.customers:
            data.customers[cid] = CustomerRow(
                _date_or_none(birthday), _date_or_none(joined), referred or None
            )
        for event_id, cid, etype, date in raw.events:
            data.events.setdefault(cid, []).append((event_id, etype, dt.date.fromisoformat(date)))
        data.referral_paid = {c for c in chunk if c in self.referral_paid}
        for cid, date, amount in raw.referee_sales:
            if cid not in data.referral_paid:
                data.referee_sales.setdefault(cid, []).append((dt.date.fromisoformat(date), amount))
        data.states = raw.states
        return data


class _Raw(NamedTuple):
    """A batch as read from the database (plain rows: cheap to hand to the worker)."""

    own: list[tuple[Any, ...]]
    claimed: list[tuple[Any, ...]]
    complete: list[tuple[Any, ...]]
    scored: list[tuple[Any, ...]]
    entries: list[tuple[Any, ...]]
    customers: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    states: dict[str, tuple[int, str]]
    referee_sales: list[tuple[Any, ...]]


# --- two processes for a big run --------------------------------------------------

# From this many batches on, a run reads and writes in this process while a forked
# worker does the Python half of each batch (a first run over a long history).
_PIPELINE_MIN_BATCHES = 4
# A nightly run's few thousand customers are cut into this many batches, so that the
# worker computes while this process reads and writes (the batches of a big run are
# BATCH long); never smaller than _MIN_BATCH, so a small run stays in one process.
_PIPELINE_BATCHES = 8
_MIN_BATCH = 250


def _batch_size(customers: int) -> int:
    return min(BATCH, max(_MIN_BATCH, -(-customers // _PIPELINE_BATCHES)))


class _Pipeline:
    """Batch i+1 is read and batch i-1 written while a worker process computes batch i.

    The worker is forked after the engine is set up, so it holds the same program
    versions, marks and memory of referrals; it never touches the database. The
    engine state that crosses batches (next entry id, referral payouts due, the
    result) lives in the worker alone; the order of all writes, the ids and the
    transaction are the sequential run's. Reading batch i+1 before batch i is written
    reads nothing batch i writes: every read is of the batch's own customers (ledger,
    scored receipts, stored states), of their receipts (scored receipts by
    transaction_id) or of input tables the run does not write.
    Referrers paid late are read after everything before them is written.
    """

    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        # One pipe each way; a thread sends, so that the two processes never both
        # wait to write a large message to each other.
        their_in, self.out_pipe = workers.pipe()
        self.in_pipe, their_out = workers.pipe()
        self.worker = workers.start(
            _serve, engine, their_in, their_out, (self.out_pipe, self.in_pipe)
        )
        their_in.close()
        their_out.close()
        self.outbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.sender = threading.Thread(target=self._send_all, daemon=True)
        self.sender.start()

    def _send_all(self) -> None:
        while (message := self.outbox.get()) is not None:
            try:
                self.out_pipe.send(message)
            except OSError:
                return  # the worker is gone: the run sees it on its side of the pipe

    def process(self, chunks: list[list[str]], bar: Callable[..., None] | None) -> None:
        engine, send = self.engine, self.outbox.put
        finished = False
        try:
            written = [0, 0]  # vouchers issued, withdrawn

            def write(out: tuple[Any, ...]) -> None:
                for i, n in enumerate(_write(engine.conn, *out)):
                    written[i] += n

            send(("batch", chunks[0], engine._fetch(chunks[0])))
            for i, chunk in enumerate(chunks):
                if i + 1 < len(chunks):
                    send(("batch", chunks[i + 1], engine._fetch(chunks[i + 1])))
                write(self._answer("out"))
                if bar is not None:
                    bar(len(chunk))
            while True:
                send(("late",))
                late = self._answer("late")
                if not late:
                    break
                send(("batch", late, engine._fetch(late)))
                write(self._answer("out"))
            send(("end",))
            engine.result, engine.next_id = self._answer("end")
            engine.result.vouchers += written[0]
            engine.result.vouchers_withdrawn += written[1]
            finished = True
        finally:
            if not finished:
                self.worker.kill()
            self.outbox.put(None)
            self.sender.join()
            self.out_pipe.close()
            self.in_pipe.close()
            self.worker.join()

    def _answer(self, kind: str) -> Any:
        """The worker's next message, which must be `kind`; its failure raised here."""
        try:
            message = self.in_pipe.recv()
        except EOFError:
            raise RuntimeError("the run's worker process ended unexpectedly") from None
        if message[0] == "error":
            raise message[1]
        if message[0] != kind:
            raise RuntimeError(f"the run's worker answered {message[0]!r}, not {kind!r}")
        return message[1]


def _serve(engine: _Engine, inbox: Any, outbox: Any, parent_ends: tuple[Any, Any]) -> None:
    """The worker: build and compute the batches it is sent, in order."""
    for end in parent_ends:
        end.close()  # so that the run's ends closing reads as EOF here
    try:
        while True:
            message = inbox.recv()
            if message[0] == "batch":
                _, chunk, raw = message
                out = engine._compute(chunk, engine._build(chunk, raw))
                outbox.send(("out", out.values()))
            elif message[0] == "late":
                outbox.send(("late", engine._late()))
            else:
                outbox.send(("end", (engine.result, engine.next_id)))
                return
    except (EOFError, BrokenPipeError):
        return  # the run went away (killed or failed): nothing to answer
    except BaseException as exc:  # noqa: BLE001 - handed to the run, which raises it
        workers.send_error(outbox, exc)


_LEDGER_COLS = ", ".join(
    "l." + c
    for c in (
        "entry_id", "date", "customer_id", "kind", "points", "value", "source_type", "source_id",
        "rule_id", "program_version", "lot_id", "available_on", "expires_on", "partner", "note",
    )
)  # fmt: skip


_entry_id = operator.itemgetter(0)
_receipt_order = operator.attrgetter("date", "transaction_id")
# A Row from its 15 fields in one C call (Row(...) runs a Python __new__): hot paths.
_new = tuple.__new__
# (date, item class, key): the payload after them is not comparable.
_item_order = operator.itemgetter(0, 1, 2)


def _date_or_none(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


class _Output:
    """What a batch writes: ledger entries (ids assigned up front, queued by
    `_Customer._post`), receipts, vouchers."""

    def __init__(self, engine: _Engine) -> None:
        self.engine = engine
        self.entries: list[Row] = []
        self.first_id = engine.next_id
        self.scored: list[tuple[Any, ...]] = []
        self.tiers: list[tuple[str, str, str]] = []
        self.vouchers: list[tuple[Any, ...]] = []
        self.withdrawn: list[tuple[str, str]] = []
        self.states: list[tuple[str, int, str, str, str, str]] = []

    def values(self) -> tuple[list[tuple[Any, ...]], ...]:
        """What `_write` stores, as plain tuples (they may come from the worker)."""
        if self.entries and self.entries[0].entry_id != self.first_id:
            raise RuntimeError("ledger ids moved during a run")
        # The INSERT parameters (ISO dates): plain tuples of text and ints pickle fast.
        entries = ledger.row_values(self.entries)
        return entries, self.scored, self.tiers, self.vouchers, self.withdrawn, self.states


def _write(
    conn: sqlite3.Connection,
    entries: list[tuple[Any, ...]],
    scored: list[tuple[Any, ...]],
    tiers: list[tuple[Any, ...]],
    vouchers: list[tuple[Any, ...]],
    withdrawn: list[tuple[Any, ...]],
    states: list[tuple[Any, ...]],
) -> tuple[int, int]:
    """Store what a batch made (entries: ledger.row_values); returns the numbers of
    vouchers issued (opened: a voucher the upsert leaves as it was is not) and
    withdrawn."""
    ledger.insert_values(conn, entries)
    conn.executemany(
        "INSERT OR REPLACE INTO scored_receipts (transaction_id, customer_id, date, amount, "
        "tax, lines, points, tier, version, punches, withdrew, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        scored,
    )
    conn.executemany("INSERT OR REPLACE INTO tier_history VALUES (?, ?, ?)", tiers)
    # A voucher id is its receipt's and reward's: one withdrawn by `import undo` is
    # issued again, open, when the receipt comes back (the same file imported again),
    # unless a refund of the receipt already scored withdrew it.
    from loyalty_cli.rewards.vouchers import REFUND_SCORED

    issued = conn.executemany(
        "INSERT INTO vouchers AS v (voucher_id, customer_id, reward_id, issued, "
        "transaction_id, status, expires_on) VALUES (?, ?, ?, ?, ?, 'open', ?) "
        "ON CONFLICT (voucher_id) DO UPDATE SET customer_id = excluded.customer_id, "
        "issued = excluded.issued, status = 'open', expires_on = excluded.expires_on, "
        "closed_on = NULL, redemption_id = NULL WHERE v.status = 'withdrawn' "
        f"AND NOT {REFUND_SCORED}",
        vouchers,
    ).rowcount
    # An open voucher only: one that expired before the refund stays expired.
    cursor = conn.executemany(
        "UPDATE vouchers SET status = 'withdrawn', closed_on = ?1 "
        "WHERE voucher_id = ?2 AND status = 'open' AND (expires_on IS NULL OR expires_on > ?1)",
        withdrawn,
    )
    withdrawn_count = max(cursor.rowcount, 0)
    # An upsert rewrites the row in place (REPLACE would delete it and append a new
    # one: two more pages written per customer).
    conn.executemany(
        "INSERT INTO run_state VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE "
        "SET entry_id = excluded.entry_id, as_of = excluded.as_of, since = excluded.since, "
        "timeline = excluded.timeline, state = excluded.state",
        states,
    )
    # Only receipts whose punch issued a still-open voucher change anything.
    return max(issued, 0), withdrawn_count


# What a restored state holds for a source already paid: a stand-in entry worth
# nothing, so that membership tests see it and any sum over it adds zero.
_PAID = Row(0, dt.date.min, "", "paid", 0, 0, "")

# Item classes within a day: expiries (handled before items), receipts, events,
# birthdays, referral payouts to the referrer, a referee's sale scored before.
_RECEIPT, _EVENT, _BIRTHDAY, _REFERRER, _REFEREE = 1, 2, 3, 4, 5


class _Customer:
    """One customer's new work, processed in order against their replayed lots."""

    def __init__(self, engine: _Engine, cid: str, data: Batch, out: _Output) -> None:
        self.e = engine
        self.cid = cid
        self.out = out
        self.row = data.customers.get(cid, CustomerRow())
        self.receipts = data.receipts.get(cid, [])
        self.events = data.events.get(cid, [])
        self.referral_paid = cid in data.referral_paid
        self.referee_sales = data.referee_sales.get(cid, []) if self.row.referred_by else []
        self.by_source: dict[tuple[str, str | None], list[Row]] = {}
        self.by_lot: dict[int, list[Row]] = {}
        self.event_bonus: dict[str, list[dt.date]] = {}
        # original receipt -> the refunds that clawed points back from it (see _refund)
        self.refunds_of: dict[str, set[str]] = {}
        self.lot_version: dict[int, int | None] = {}  # lot entry id -> its program version
        self.heap: list[tuple[dt.date, int]] = []
        self.last_scored: tuple[dt.date, Program] | None = None
        saved = data.states.get(cid)
        # The last sale the stored state knew (restored only; see saved()).
        self.saved_last_sale: dt.date | None = None
        if saved is not None:
            self._restore(*saved)
            return
        entries = data.entries.get(cid, [])
        # ledger.replay(entries), the entries being in id order already.
        self.state: LotState = LotState()
        for entry in entries:
            ledger._apply(self.state, entry)
        for entry in entries:
            self._index(entry)
        self.last_entry = entries[-1].entry_id if entries else 0
        scored = data.scored.get(cid)
        if not scored:
            # A new member (every member, in a first run): nothing remembered.
            self.scored: dict[str, Scored] = {}
            self.history = tiermod.History()
            self.punches: Counter[str] = Counter()
            self.last_sale: dt.date | None = None
            self.first_activity: dt.date | None = min(e.date for e in entries) if entries else None
            self.first_fact = self.first_activity
            return
        self.scored = {s.transaction_id: s for s in scored}
        self.history = tiermod.History(
            [
                tiermod.Qualifier(s.date, s.transaction_id, s.amount, s.points)
                for s in self.scored.values()
            ]
        )
        self.punches = Counter()
        for s in self.scored.values():
            for rid in (s.punches or "").split(","):
                if rid:
                    self.punches[rid] += 1
        sales = [s.date for s in self.scored.values() if s.amount >= 0]
        self.last_sale = max(sales) if sales else None
        firsts = [s.date for s in self.scored.values()] + [e.date for e in entries]
        self.first_activity = min(firsts) if firsts else None
        # The earliest scored receipt or entry: where the next run's first_activity
        # starts (process() moves first_activity for this run's items only).
        self.first_fact = self.first_activity

    def _restore(self, last_entry: int, text: str) -> None:
        """Start from the state the last run stored (see engine/state.py). Only
        receipts never scored come (see _Engine._states), so `scored` starts empty."""
        saved = statemod.Restored(text)
        self.last_entry = last_entry
        self.state = saved.state
        self.lot_version = saved.lot_version
        self.heap = saved.heap
        for key in saved.sources:
            # Only looked up by key (paid or not): the entries themselves are not kept.
            self.by_source[key] = [_PAID]
        self.event_bonus = saved.event_bonus
        self.scored = {}
        self.history = tiermod.History(saved.history)
        self.punches = saved.punches
        self.last_sale = self.saved_last_sale = saved.last_sale
        self.first_activity = self.first_fact = saved.first_activity

    def saved(self) -> tuple[str, int, str, str, str, str]:
        """The run_state row: where this customer stands after the run."""
        # The last sale among all scored receipts: when rebuilt, `scored` holds them all
        # (a correction may have turned a sale into a refund); when restored, no earlier
        # receipt changed, so the stored one still counts.
        sales = [s.date for s in self.scored.values() if s.amount >= 0]
        if self.saved_last_sale is not None:
            sales.append(self.saved_last_sale)
        text = statemod.encode(
            self.state,
            self.lot_version,
            statemod.kept_sources(self.by_source),
            self.event_bonus,
            self.history.items,
            self.punches,
            max(sales) if sales else None,
            self.first_fact,
            self.e.first_receipt,
        )
        engine = self.e
        return (
            self.cid,
            self.last_entry,
            engine.as_of.isoformat(),
            engine.since,
            engine.timeline_key,
            text,
        )

    def _index(self, entry: Row) -> None:
        key = (entry.source_type, entry.source_id)
        if entry.kind == "reversal" and entry.source_type == "event":
            self._unpay_event(key)
        else:
            found = self.by_source.get(key)
            if found is None:
                self.by_source[key] = [entry]
            else:
                found.append(entry)
        if entry.lot_id is not None:
            self.by_lot.setdefault(entry.lot_id, []).append(entry)
            if entry.kind == "clawback" and entry.note:
                # Every claw-back of a refund naming its original says so in its note
                # (_refund), also the parts aimed at other receipts' pending lots.
                original = ledger.refunded_receipt(entry.note)
                if original is not None:
                    self.refunds_of.setdefault(original, set()).add(entry.source_id)  # type: ignore[arg-type]
        if entry.source_type == "event" and entry.kind == "bonus" and entry.rule_id:
            self.event_bonus.setdefault(entry.rule_id, []).append(entry.date)
        if entry.points > 0 and entry.kind != "redemption_reversed":  # a lot
            self.lot_version[entry.entry_id] = entry.program_version
            if entry.expires_on is not None:
                heapq.heappush(self.heap, (entry.expires_on, entry.entry_id))

    def _unpay_event(self, key: tuple[str, str | None]) -> None:
        """`import undo` took an event's bonus back (undone rows count nowhere): as if
        it was never paid, so a corrected file may bring the event again, and the
        once-per-customer rule and the limits no longer count it."""
        for earlier in self.by_source.pop(key, []):
            dates = self.event_bonus.get(earlier.rule_id or "") if earlier.kind == "bonus" else None
            if dates and earlier.date in dates:
                dates.remove(earlier.date)

    def _entry(self, **fields: Any) -> Row:
        """An entry carrying the next ledger id (ids are assigned in order)."""
        return Row(entry_id=self.e.next_id, **fields)

    def _post(self, entry: Row) -> Row:
        # _Output.post, inlined (once per entry posted).
        engine = self.e
        engine.next_id += 1
        self.out.entries.append(entry)
        if entry.source_type == "referral" and entry.source_id is not None:
            engine.referral_paid.add(entry.source_id)
        result = engine.result
        result.entries[entry.kind] += 1
        result.points[entry.kind] += entry.points
        ledger._apply(self.state, entry)
        self._index(entry)
        self.last_entry = entry.entry_id
        if self.first_fact is None or entry.date < self.first_fact:
            self.first_fact = entry.date
        return entry

    # ---- the timeline
    def process(self) -> None:
        as_of = self.e.as_of
        items: list[tuple[dt.date, int, str, Any]] = []
        same_day = {(r.date, r.transaction_id) for r in self.receipts}
        for receipt in self.receipts:
            order = receipt.transaction_id
            named = [n for n in _named(receipt) if (receipt.date, n) in same_day]
            if named:
                # A refund of a receipt of the same day comes right after it (the last
                # of them, if it names several), whatever its id: before, it found
                # nothing scored and clawed back at the base rate.
                order = f"{max(named)}\x00{order}"
            items.append((receipt.date, _RECEIPT, order, receipt))
        for event_id, etype, date in self.events:
            items.append((date, _EVENT, event_id, etype))
        for date, referee, points, version in self.e.referrer_due.pop(self.cid, []):
            items.append((date, _REFERRER, referee, (points, version)))
        if not self.referral_paid:
            # Their referred_by (or their referrer's record) came after a run scored
            # their sales: the first that qualifies pays now, dated itself, as it
            # would have when scored.
            items += [(date, _REFEREE, "", amount) for date, amount in self.referee_sales]
        # Birthdays count from the first receipt or entry (without joined_on). What
        # this run will post counts already (the next run finds it in the ledger):
        # its receipts, the referral payouts it owes, and events that earn points.
        # An event that earns nothing posts nothing and is no activity in any run.
        active = [r.date for r in self.receipts]
        active += [item[0] for item in items if item[1] == _REFERRER]
        active += [date for _, etype, date in self.events if self._earns(etype, date)]
        if active and (self.first_activity is None or min(active) < self.first_activity):
            self.first_activity = min(active)
        items.extend(self._birthdays())
        items.sort(key=_item_order)
        for date, kind, key, payload in items:
            self._expire_until(date)
            if kind == _RECEIPT:
                self._receipt(payload)
            elif kind == _EVENT:
                self._event(key, payload, date)
            elif kind == _BIRTHDAY:
                self._birthday(date, key, payload)
            elif kind == _REFERRER:
                self._referrer(date, key, *payload)
            else:
                self._earlier_sale(date, payload)
        self._expire_until(as_of)
        self.e.result.customer_ids.add(self.cid)
        if self.last_scored is not None and self.last_scored[1].tiers is not None:
            # The tier after the newest receipt scored now (tier_on() computes any date).
            day, program = self.last_scored
            level = tiermod.level_at(program, self.history, day)
            if level is not None:
                self.out.tiers.append((self.cid, day.isoformat(), level.id))

    def _earns(self, event_type: str, on: dt.date) -> bool:
        """An event of this type on this day pays a bonus (limits aside)."""
        if event_type in DERIVED_EVENTS:
            return False
        version = self.e.version_on(on)
        spec = version.program.bonus_for(event_type) if version is not None else None
        return spec is not None and spec.points > 0

    # ---- expiries
    def _expire_until(self, day: dt.date) -> None:
        heap = self.heap
        if not self.e.inactivity:
            # Fixed expiries only: the loop below with no inactivity date due.
            while heap and heap[0][0] <= day:
                expires_on, lot_id = heapq.heappop(heap)
                self._expire_lot(lot_id, expires_on)
            return
        while True:
            fixed = self.heap[0][0] if self.heap else None
            inactive = self._inactivity_due()
            if fixed is not None and fixed <= day and (inactive is None or fixed <= inactive):
                expires_on, lot_id = heapq.heappop(self.heap)
                self._expire_lot(lot_id, expires_on)
            elif inactive is not None and inactive <= day:
                self._expire_inactive(inactive)
            else:
                return

    def _expire_lot(self, lot_id: int, expires_on: dt.date) -> None:
        lot = self.state.lots.get(lot_id)
        if lot is None or lot.remaining <= 0 or lot.expires_on != expires_on:
            return
        version = self.lot_version.get(lot_id)
        left = lot.remaining
        self._post(
            _new(Row, (
                self.e.next_id, expires_on, self.cid, "expire", -left,
                -self._value(left, version, expires_on), "expiry", str(lot_id),
                None, version, lot_id, None, None, lot.partner, None,
            ))
        )  # fmt: skip

    def _inactivity_due(self) -> dt.date | None:
        if self.last_sale is None:
            return None
        due = _inactivity_due(self.e.timeline, self.last_sale)
        if due is None or ("expiry", self._inactivity_key()) in self.by_source:
            return None
        return due

    def _inactivity_key(self) -> str:
        return f"inactivity:{self.cid}:{self.last_sale}"

    def _expire_inactive(self, due: dt.date) -> None:
        points = self.state.available(due)
        version = self.e.timeline.get(self.last_sale) if self.last_sale else None
        entry = self._entry(
            date=due,
            customer_id=self.cid,
            kind="expire",
            points=-max(points, 0),
            value=-self._value(max(points, 0), version.version if version else None, due),
            source_type="expiry",
            source_id=self._inactivity_key(),
            program_version=version.version if version else None,
            note="inactivity",
        )
        if points > 0:
            self._post(entry)
        else:
            # Nothing to take: remember it was checked so it is not looked at again.
            self.by_source[("expiry", self._inactivity_key())] = []

    def _value(self, points: int, version: int | None, on: dt.date) -> int:
        pv = self.e.timeline.by_number.get(version) if version else None
        program = (pv or self.e.timeline.at(on)).program
        return ledger.points_value(points, program.point_value, program.currency)

    # ---- receipts
    def _lot_dates(
        self, program: Program, date: dt.date, pending: bool
    ) -> tuple[dt.date, dt.date | None]:
        key = (id(program), date, pending)
        cached = self.e.lot_dates.get(key)
        if cached is None:
            cached = self.e.lot_dates[key] = self._compute_lot_dates(program, date, pending)
        return cached

    def _compute_lot_dates(
        self, program: Program, date: dt.date, pending: bool
    ) -> tuple[dt.date, dt.date | None]:
        available = date + dt.timedelta(days=program.pending_days if pending else 0)
        expiry = program.expiry
        expires = (
            add_months(available, expiry.months) if expiry and expiry.policy == "fixed" else None
        )
        return available, expires

    def _receipt(self, receipt: Receipt) -> None:
        old = self.scored.get(receipt.transaction_id)
        if old is not None:
            if (
                old.lines != len(receipt.lines)
                or old.amount != receipt.amount
                or old.tax != receipt.tax
            ):
                self._rescore(receipt, old)
            return
        version = self.e.version_on(receipt.date)
        self.e.result.receipts += 1
        q = tiermod.Qualifier(receipt.date, receipt.transaction_id, receipt.amount, 0)
        if version is None:
            # Before the first program version: remembered, earns nothing.
            self.e.result.before_program += 1
            # A refund then withdraws nothing (no card yet): `[]`, not the NULL of
            # refunds scored before schema 10.
            self._remember(receipt, 0, None, None, None, "[]" if receipt.is_refund else None)
            self.history.add(q)
            return
        program = version.program
        level = tiermod.level_for_receipt(program, self.history, q)
        tier = level.id if level is not None else None
        if receipt.amount < 0:  # a refund
            withdrew: list[str] = []
            q.points = -sum(
                self._refund(part, version, level, withdrew) for part in _by_original(receipt)
            )
            self._remember(receipt, q.points, tier, version.version, None, json.dumps(withdrew))
            self.history.add(q)
            return
        score = score_receipt(program, receipt, tier, tiermod.multiplier(level))
        earn, bonuses, note = score.earn, score.bonuses, None
        q.points = earn + sum(points for _, points in bonuses) if bonuses else earn
        if receipt.transaction_id in self.e.undone_before and self.refunds_of.get(
            receipt.transaction_id
        ):
            # Scored again after an undo took it back: the refunds of it that stand
            # took their claw-back from its first scoring, which the undo spared (the
            # two net to nothing). Posted now is what is left of the new scoring after
            # the claw-backs those refunds make of it, as in a shop that never had
            # the first.
            taken = self._standing_claws(receipt, program, q.points)
            if taken > 0:
                earn, bonuses = _less(earn, bonuses, taken)
                note = f"less {taken} its standing refunds take back"
        self._post_score(receipt, version, earn, score.rule_ids, bonuses, score.partner, note)
        self.history.add(q)
        punches = self._punch(receipt, program, tier)
        self._remember(receipt, q.points, tier, version.version, punches)
        if self.last_sale is None or receipt.date > self.last_sale:
            self.last_sale = receipt.date
        if not self.referral_paid and self.row.referred_by:
            self._referee(receipt, version)
        self.last_scored = (receipt.date, program)

    def _post_score(
        self,
        receipt: Receipt,
        version: ProgramVersion,
        earn: int,
        rule_ids: list[str],
        bonuses: list[tuple[str, int]],
        partner: str | None,
        note: str | None = None,
    ) -> None:
        program = version.program
        dates = self.e.lot_dates.get((id(program), receipt.date, True))
        available, expires = dates or self._lot_dates(program, receipt.date, pending=True)
        pv, cur = program.point_value, program.currency
        date, tid, number = receipt.date, receipt.transaction_id, version.version
        # Row fields in table order (see ledger.Row); entry_id is the next id.
        if earn > 0:
            self._post(
                _new(Row, (
                    self.e.next_id, date, self.cid, "earn", earn,
                    ledger.points_value(earn, pv, cur), "purchase", tid,
                    ",".join(rule_ids) or None, number, None, available, expires, partner, note,
                ))
            )  # fmt: skip
        for rule_id, points in bonuses:
            self._post(
                _new(Row, (
                    self.e.next_id, date, self.cid, "bonus", points,
                    ledger.points_value(points, pv, cur), "purchase", tid,
                    rule_id, number, None, available, expires, partner, None,
                ))
            )  # fmt: skip

    def _standing_claws(self, receipt: Receipt, program: Program, points: int) -> int:
        """What the scored refunds of `receipt` (refund_of it, not undone) take back
        of `points`, in their order, as `_refund` takes back a receipt's points."""
        net = program.earn.on == "net"
        original = receipt.amount - receipt.tax if net else receipt.amount
        refunds = [
            self.scored[r] for r in self.refunds_of[receipt.transaction_id] if r in self.scored
        ]
        taken = 0
        for refund in sorted(refunds, key=lambda r: (r.date, r.transaction_id)):
            refunded = -(refund.amount - refund.tax if net else refund.amount)
            taken += min(
                max(points - taken, 0),
                proportional_clawback(points, refunded, original, program.earn.rounding),
            )
        return taken

    def _refunds_took(self, tid: str, without: str | None = None) -> int:
        """Points the refunds of receipt `tid` (but `without`) took back from it, net of
        undone ones. A refund that names no other receipt counts all it took: a first
        line of it that named none (or `tid` unknown then) took at the base rate."""
        total = 0
        for refund in self.refunds_of.get(tid, ()):
            if refund == without:
                continue
            took = [(e.kind, e.points, e.note) for e in self.by_source[("purchase", refund)]]
            named = {ledger.refunded_receipt(note) for kind, _, note in took if kind == "clawback"}
            total += ledger.refund_took(took, tid, every=named <= {tid, None})
        return total

    def _remember(
        self,
        receipt: Receipt,
        points: int,
        tier: str | None,
        version: int | None,
        punches: str | None,
        withdrew: str | None = None,
    ) -> None:
        s = Scored(
            receipt.transaction_id,
            self.cid,
            receipt.date,
            receipt.amount,
            receipt.tax,
            len(receipt.lines),
            points,
            tier,
            version,
            punches,
            withdrew,
        )
        self.scored[receipt.transaction_id] = s
        if self.first_fact is None or receipt.date < self.first_fact:
            self.first_fact = receipt.date
        self.out.scored.append(
            (
                s.transaction_id,
                s.customer_id,
                ledger._iso(s.date),
                s.amount,
                s.tax,
                s.lines,
                s.points,
                s.tier,
                s.version,
                s.punches,
                s.withdrew,
                self.e.run_id,
            )
        )

    def _rescore(self, receipt: Receipt, old: Scored) -> None:
        """Lines arrived for a scored receipt: score all active lines by the version
        that scored it (a version applied later does not rewrite it), post the
        difference; a punch card the receipt now matches counts it."""
        self.e.result.receipts += 1
        points, punches, withdrew = old.points, old.punches, old.withdrew
        version = self.e.timeline.by_number[old.version] if old.version is not None else None
        if version is not None and old.amount >= 0 and not receipt.is_refund:
            program = version.program
            level = program.level(old.tier) if old.tier else None
            score = score_receipt(program, receipt, old.tier, tiermod.multiplier(level))
            posted = sum(
                e.points
                for e in self.by_source.get(("purchase", receipt.transaction_id), [])
                if e.kind in ("earn", "bonus", "reversal")
                or (e.kind == "clawback" and e.note == "receipt corrected")
            )
            diff = score.total - posted
            if diff > 0:
                earn, bonuses = self._more(receipt.transaction_id, diff, score.bonuses)
                self._post_score(receipt, version, earn, score.rule_ids, bonuses, score.partner)
            elif diff < 0:
                lots = self._lots_of(receipt.transaction_id)
                self._post(
                    self._entry(
                        date=receipt.date,
                        customer_id=self.cid,
                        kind="clawback",
                        points=diff,
                        value=-ledger.points_value(-diff, program.point_value, program.currency),
                        source_type="purchase",
                        source_id=receipt.transaction_id,
                        program_version=version.version,
                        lot_id=lots[0].entry_id if lots else None,
                        partner=score.partner,
                        note="receipt corrected",
                    )
                )
            points = score.total
            punches = self._punch(receipt, program, old.tier, old.punches)
        elif version is not None and old.amount < 0 and receipt.is_refund:
            taken, withdrew = self._rescore_refund(receipt, old, version)
            points -= taken
        self._remember(receipt, points, old.tier, old.version, punches, withdrew)
        for q in self.history.items:
            if q.transaction_id == receipt.transaction_id:
                q.amount, q.points = receipt.amount, points

    def _rescore_refund(
        self, receipt: Receipt, old: Scored, version: ProgramVersion
    ) -> tuple[int, str | None]:
        """Lines came for a refund scored before: it takes back what the whole refund
        takes, at the tier and by the version it was scored at, less what it took
        then, and withdraws the vouchers its new lines return. (The points taken now,
        the vouchers it withdrew as stored.)"""
        level = version.program.level(old.tier) if old.tier else None
        found: list[str] = []
        taken = sum(
            self._refund(part, version, level, found, receipt) for part in _by_original(receipt)
        )
        if old.withdrew is None:
            return taken, None  # scored before schema 10: counts as withdrawing all
        return taken, json.dumps(list(dict.fromkeys(json.loads(old.withdrew) + found)))

    def _more(
        self, tid: str, diff: int, bonuses: list[tuple[str, int]]
    ) -> tuple[int, list[tuple[str, int]]]:
        """The `diff` more points a corrected receipt earns, as the bonus rules it now
        meets beyond what they paid (each a `bonus` entry with its rule, so `explain`
        names it) and the rest as `earn`; all as `earn` if the parts do not add up."""
        paid: dict[str, int] = {}
        for e in self.by_source.get(("purchase", tid), []):
            if e.kind == "bonus" and e.rule_id:
                paid[e.rule_id] = paid.get(e.rule_id, 0) + e.points
        now = dict(bonuses)
        deltas = [(rule, points - paid.get(rule, 0)) for rule, points in bonuses]
        if any(rule not in now for rule in paid) or any(d < 0 for _, d in deltas):
            return diff, []
        extra = [(rule, d) for rule, d in deltas if d > 0]
        earn = diff - sum(d for _, d in extra)
        return (earn, extra) if earn >= 0 else (diff, [])

    def _lots_of(self, tid: str) -> list[Row]:
        """The receipt's lots, earn first: those of its current scoring (an import
        undo's reversal emptied the lots before it; the receipt imported again
        earned new ones, which a claw-back must aim at)."""
        lots: list[Row] = []
        for e in self.by_source.get(("purchase", tid), []):
            if e.kind == "reversal":
                lots = []
            elif e.kind in ("earn", "bonus") and e.points > 0:
                lots.append(e)
        return sorted(lots, key=lambda e: (e.kind != "earn", e.entry_id))

    # ---- refunds
    def _refund(
        self,
        receipt: Receipt,
        version: ProgramVersion,
        level: Any,
        withdrew: list[str],
        whole: Receipt | None = None,
    ) -> int:
        """Post the claw-back of a refund (one original's part of it) and withdraw the
        vouchers it returns a counted line of (their ids added to `withdrew`); the
        points taken back now. `whole`: lines came for this refund, scored before,
        which takes back what all of it takes less what it took then."""
        program = version.program
        original = self.scored.get(receipt.refund_of or "")
        # What this refund took for this part when scored before (0 the first time):
        # all it took when it names one receipt at most (the receipt may have been
        # unknown then, at the base rate, or known, by its note), else by the notes.
        mine = 0
        if whole is not None:
            took = [
                (e.kind, e.points, e.note)
                for e in self.by_source.get(("purchase", receipt.transaction_id), [])
            ]
            mine = ledger.refund_took(
                took,
                receipt.refund_of if original is not None else None,
                every=len(_named(whole)) <= 1,
            )
            if (
                original is None
                and receipt.refund_of
                and ledger.refund_took(took, receipt.refund_of)
            ):
                # It took from its receipt, gone since (an undo): the refund stays netted
                # with it, as when all its lines came before the undo. Its new lines
                # still count for that receipt's vouchers.
                withdrew += _would_withdraw(receipt, program)
                return 0
        lot_id = None
        of = None  # the receipt the points are taken back for, named in the note
        partner, _ = partner_multiplier(program, receipt.store)
        # A claw-back of a known receipt is that receipt's version's arithmetic,
        # so it carries that version (and its point value).
        made_by = version.version
        own: set[int] = set()
        if original is not None and original.amount >= 0 and original.version is not None:
            oprog = self.e.timeline.by_number[original.version].program
            made_by, program = original.version, oprog
            tid = of = original.transaction_id
            lots = self._lots_of(tid)
            own = {e.entry_id for e in lots}
            # The receipt's points as last scored (a correction, or an import undone
            # and made again, leaves lots that no longer count).
            earned = original.points
            # What earlier refunds of this receipt took back, whichever lots paid it
            # (their own receipt's, or others' pending lots), net of undone refunds.
            # Counted by the lots instead, a part paid by another lot was missed and
            # a refund without refund_of that took from this receipt's lot was counted.
            clawed = self._refunds_took(tid, without=receipt.transaction_id)
            net = oprog.earn.on == "net"
            original_amount = original.amount - original.tax if net else original.amount
            refunded = -(receipt.amount - receipt.tax if net else receipt.amount)
            claw = min(
                max(earned - clawed, 0),
                proportional_clawback(earned, refunded, original_amount, oprog.earn.rounding),
            )
            if lots:
                lot_id = lots[0].entry_id
                partner = lots[0].partner
            withdrew += self._withdraw_vouchers(original, receipt, oprog)
        elif original is not None and original.amount >= 0:
            # The original is dated before the first program version: it earned
            # nothing, so there is nothing to take back.
            claw = 0
        else:
            claw = base_refund_points(program, receipt, tiermod.multiplier(level))
            if receipt.refund_of:
                # A receipt this customer's run does not know (undone, another
                # member's): its vouchers this refund would withdraw, by the cards of
                # the version in force, so that none comes back open beside it.
                withdrew += _would_withdraw(receipt, program)
        # A late line of a refund scored before: the rest of what the whole refund takes.
        claw = max(claw - mine, 0)
        if claw > 0:
            value = ledger.points_value(claw, program.point_value, program.currency)
            note = f"{ledger.REFUND_OF}{of}" if of is not None else "refund"
            # Inside the return window the points to take back may still be pending
            # (the receipt's bonus lot; all of them for a refund without refund_of):
            # those parts are aimed at the pending lots, one entry each. Left to the
            # first entry they would be a debt beside lots that later expire in full.
            # Every part is the refunded receipt's partner's (the one whose store
            # took the refund without refund_of): it funded the points taken back,
            # whichever lots they come out of.
            parts = ledger.pending_parts(self.state, claw, receipt.date, lot_id, own)
            pieces = [(claw - sum(n for _, n in parts), lot_id, note)] + [
                (n, pid, f"{note}{ledger.STILL_PENDING}") for pid, n in parts
            ]
            left = value
            for i, (n, aimed, text) in enumerate(pieces):
                if n <= 0:
                    continue
                money = left if i == len(pieces) - 1 else ledger.share(value, n, claw)
                left -= money
                self._post(
                    self._entry(
                        date=receipt.date,
                        customer_id=self.cid,
                        kind="clawback",
                        points=-n,
                        value=-money,
                        source_type="purchase",
                        source_id=receipt.transaction_id,
                        rule_id=None,
                        program_version=made_by,
                        lot_id=aimed,
                        partner=partner,
                        note=text,
                    )
                )
        return claw

    # ---- punch cards
    def _punch(
        self, receipt: Receipt, program: Program, tier: str | None, already: str | None = None
    ) -> str | None:
        """Count the receipt on the punch cards it matches (at its tier), issuing a
        voucher on every Nth; the card ids it counts on. `already`: the cards it
        counted on when scored before lines were added, not counted again."""
        cached = self.e.punch_rewards.get(id(program))
        if cached is None or cached[0] is not program:
            cards = [
                (r, r.punch_card, when_plan(program, r.punch_card.when))
                for r in program.rewards
                if r.punch_card is not None
            ]
            cached = self.e.punch_rewards[id(program)] = (program, cards)
        if not cached[1]:
            return None
        punched = [rid for rid in (already or "").split(",") if rid]
        basis = receipt.basis_amount(program.earn.on)
        for reward, card, when in cached[1]:
            if reward.id in punched or not reward.is_active(receipt.date):
                continue
            if not when.matches(receipt, basis, tier):
                continue
            if when.lines:
                # when.line_matches over the lines, inlined (once per receipt and card).
                cats, skus = when.categories, when.skus
                for line in receipt.lines:
                    if (cats is None or line.category in cats) and (
                        skus is None or line.sku in skus
                    ):
                        break
                else:
                    continue
            punched.append(reward.id)
            self.punches[reward.id] += 1
            voucher_id = f"V{receipt.transaction_id}-{reward.id}"
            before = self.e.forgotten.get(receipt.transaction_id)
            if before is not None and before[0] == self.cid and reward.id in before[1]:
                # Counted on this card for this customer before: its voucher, if any.
                issue = voucher_id in before[2]
            else:
                issue = self.punches[reward.id] % card.every == 0
            if issue:
                expires = (
                    receipt.date + dt.timedelta(days=reward.voucher_days)
                    if reward.voucher_days
                    else None
                )
                self.out.vouchers.append(
                    (
                        voucher_id,
                        self.cid,
                        reward.id,
                        receipt.date.isoformat(),
                        receipt.transaction_id,
                        expires.isoformat() if expires else None,
                    )
                )
        return ",".join(punched) or None

    def _withdraw_vouchers(self, original: Scored, refund: Receipt, program: Program) -> list[str]:
        """Withdraw the vouchers of the cards `original` counted on (under `program`,
        the version that scored it) that `refund` returns a counted line of: the shoes
        of a receipt with a coffee leave the coffee card's voucher alone. A refund line
        that does not say its category (or sku) may be the counted one, so it counts as
        one. The ids of the vouchers withdrawn (an open one only is closed: _write)."""
        cards = {r.id: r.punch_card for r in program.rewards if r.punch_card is not None}
        withdrawn = []
        for rid in (original.punches or "").split(","):
            if rid and _returns_counted_line(refund, program, cards.get(rid)):
                vid = f"V{original.transaction_id}-{rid}"
                self.out.withdrawn.append((refund.date.isoformat(), vid))
                withdrawn.append(vid)
        return withdrawn

    # ---- events and birthdays
    def _event(self, event_id: str, etype: str, date: dt.date) -> None:
        if etype in DERIVED_EVENTS or ("event", event_id) in self.by_source:
            return
        version = self.e.timeline.get(date)
        spec = version.program.bonus_for(etype) if version else None
        if version is None or spec is None or spec.points <= 0:
            return
        earlier = self.event_bonus.get(etype, [])
        if spec.once and earlier:
            return
        if spec.limit is not None:
            key = period_key(date, spec.limit.per)
            if sum(1 for d in earlier if period_key(d, spec.limit.per) == key) >= spec.limit.count:
                return
        self._bonus(date, version, spec.points, "event", event_id, etype)

    def _bonus(
        self,
        date: dt.date,
        version: ProgramVersion,
        points: int,
        source_type: str,
        source_id: str,
        rule_id: str,
        note: str | None = None,
    ) -> None:
        program = version.program
        available, expires = self._lot_dates(program, date, pending=False)
        self._post(
            self._entry(
                date=date,
                customer_id=self.cid,
                kind="bonus",
                points=points,
                value=ledger.points_value(points, program.point_value, program.currency),
                source_type=source_type,
                source_id=source_id,
                rule_id=rule_id,
                program_version=version.version,
                available_on=available,
                expires_on=expires,
                note=note,
            )
        )

    def _birthdays(self) -> list[tuple[dt.date, int, str, Any]]:
        birthday = self.row.birthday
        start = self.row.joined_on or self.first_activity
        if birthday is None or start is None:
            return []
        out = []
        for year in range(max(start.year, birthday.year), self.e.as_of.year + 1):
            day = birthday_in(year, birthday)
            if day < start or day > self.e.as_of:
                continue
            source_id = f"birthday:{self.cid}:{year}"
            if ("event", source_id) not in self.by_source:
                out.append((day, _BIRTHDAY, source_id, None))
        return out

    def _birthday(self, date: dt.date, source_id: str, _: Any) -> None:
        version = self.e.timeline.get(date)
        spec = version.program.bonus_for("birthday") if version else None
        if version is None or spec is None or spec.points <= 0:
            return
        self._bonus(date, version, spec.points, "event", source_id, "birthday")

    # ---- referrals
    def _referee(self, receipt: Receipt | _Sale, version: ProgramVersion) -> None:
        referrer = self.row.referred_by
        referral = version.program.referral
        if self.referral_paid or not referrer or referrer == self.cid or referral is None:
            return
        if receipt.amount < version.program.minor(referral.min_first_purchase):
            return
        if referral.referee <= 0 and referral.referrer <= 0:
            # Nothing to pay: no entry would tell a later run the referral was used, so
            # it is not used (a later version that pays still can).
            return
        self.referral_paid = True
        if referral.referee > 0:
            self._bonus(
                receipt.date,
                version,
                referral.referee,
                "referral",
                self.cid,
                "referral",
                note=f"referred by {referrer}",
            )
        if referral.referrer > 0:
            self.e.referrer_due.setdefault(referrer, []).append(
                (receipt.date, self.cid, referral.referrer, version.version)
            )
        if referral.referee <= 0:
            # Mark it paid on the referee's side too (nothing posted for them).
            self.by_source[("referral", self.cid)] = []

    def _earlier_sale(self, date: dt.date, amount: int) -> None:
        """A sale an earlier run scored, looked at again for the referral only."""
        version = self.e.version_on(date)
        if version is not None and not self.referral_paid:
            self._referee(_Sale(date, amount), version)

    def _referrer(self, date: dt.date, referee: str, points: int, version_no: int) -> None:
        version = self.e.timeline.by_number[version_no]
        self._bonus(
            date, version, points, "referral", referee, "referral", note=f"referred {referee}"
        )


def _less(
    earn: int, bonuses: list[tuple[str, int]], taken: int
) -> tuple[int, list[tuple[str, int]]]:
    """A receipt's earn and bonus points less `taken`, from the earn first."""
    cut = min(earn, taken)
    earn, taken = earn - cut, taken - cut
    kept = []
    for rule, points in bonuses:
        cut = min(points, taken)
        taken -= cut
        if points > cut:
            kept.append((rule, points - cut))
    return earn, kept


class _Sale(NamedTuple):
    """What `_referee` reads of a receipt."""

    date: dt.date
    amount: int


def _returns_counted_line(refund: Receipt, program: Program, card: Any) -> bool:
    """Whether a returned line (a negative amount) of `refund` may be one the punch
    card counted: any when the card looks at no category or sku (or is no longer
    known), else one whose category and sku each match the card or are not given."""
    returned = [line for line in refund.lines if line.amount < 0]
    if not returned:
        return False
    if card is None:
        return True
    when = when_plan(program, card.when)
    if not when.lines:
        return True
    cats, skus = when.categories, when.skus
    return any(
        (cats is None or line.category is None or line.category in cats)
        and (skus is None or line.sku is None or line.sku in skus)
        for line in returned
    )


def _would_withdraw(refund: Receipt, program: Program) -> list[str]:
    """The voucher ids of `refund.refund_of` on the cards of `program` that the
    refund returns a counted line of (see _returns_counted_line)."""
    return [
        f"V{refund.refund_of}-{r.id}"
        for r in program.rewards
        if r.punch_card is not None and _returns_counted_line(refund, program, r.punch_card)
    ]


def _named(refund: Receipt) -> list[str]:
    """The receipts a refund's lines name, in id order (the lines come in no order)."""
    return sorted({line.refund_of for line in refund.lines if line.refund_of})


def _by_original(refund: Receipt) -> list[Receipt]:
    """A refund's lines per receipt they name: a till may take back items of two
    sales in one return, and each sale gives back what its own lines earned. Lines
    naming none go with the first named in id order."""
    named = _named(refund)
    if len(named) < 2:
        return [refund]
    parts = {
        name: Receipt(refund.transaction_id, refund.customer_id, refund.date) for name in named
    }
    for line in refund.lines:
        parts[line.refund_of or named[0]].add(line)
    return [part for part in parts.values() if part.amount < 0]


def _progress(total: int) -> Callable[..., None]:
    """A Rich progress bar on stderr (only on a terminal)."""
    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("Scoring", total=total)
    bar.start()

    def advance(n: int, done: bool = False) -> None:
        bar.advance(task, n)
        if done:
            bar.stop()

    return advance
