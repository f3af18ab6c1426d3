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
import operator
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from loyalty_cli import db, ledger, workers
from loyalty_cli.engine import output, pipeline
from loyalty_cli.engine import state as statemod
from loyalty_cli.engine.batch import Batch, CustomerRow, RawBatch, Scored
from loyalty_cli.engine.customer import CustomerWork, inactivity_due
from loyalty_cli.engine.dates import parse
from loyalty_cli.engine.output import Output
from loyalty_cli.engine.scoring import Line, Receipt
from loyalty_cli.errors import NoProgramError
from loyalty_cli.program import Program, ProgramVersion, VersionTimeline, versions_timeline

# Start customers from the state the last run stored when it is still current
# (engine/state.py). The tests turn it off to compare with the rebuilt state.
STORED_STATE = True

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
        engine = Engine(conn, timeline, as_of, marks, run_id)
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
        # knowing the cards it counted on (see CustomerWork._punch).
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
    # may have been scored already (see CustomerWork._earlier_sale).
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
            due = inactivity_due(timeline, dt.date.fromisoformat(last))
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


# --- the engine -----------------------------------------------------------------


class Engine:
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
        size = pipeline.batch_size(len(customers))
        chunks = [customers[start : start + size] for start in range(0, len(customers), size)]
        # The worker is forked before the progress bar starts its thread.
        forked = len(chunks) >= pipeline.PIPELINE_MIN_BATCHES and workers.cpus() > 1
        piped = pipeline.Pipeline(self) if forked else None
        bar = _progress(len(customers)) if progress else None
        if piped is not None:
            piped.process(chunks, bar)
        else:
            for chunk in chunks:
                self._batch(chunk)
                if bar is not None:
                    bar(len(chunk))
            # Referrers already processed (or with nothing else to do) get their payout now.
            while late := self.late():
                self._batch(late)
        if bar is not None:
            bar(0, done=True)

    def late(self) -> list[str]:
        return sorted(c for c in self.referrer_due if self.referrer_due[c])

    def _batch(self, chunk: list[str]) -> None:
        raw = self.fetch(chunk)
        self._write(self.compute(chunk, self.build(chunk, raw)))

    def compute(self, chunk: list[str], data: Batch) -> Output:
        """The Python half of a batch: every customer's new work, in order."""
        out = Output(self)
        for cid in chunk:
            customer = CustomerWork(self, cid, data, out)
            customer.process()
            out.states.append(customer.saved())
            self.done.add(cid)
        return out

    def _write(self, out: Output) -> None:
        issued, withdrawn = output.write(self.conn, *out.values())
        self.result.vouchers += issued
        self.result.vouchers_withdrawn += withdrawn

    def fetch(self, chunk: list[str]) -> RawBatch:
        """The SQL half of reading a batch: the rows `build` makes a Batch of."""
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
        # set (History sorts them) and their entries are put in id order by build.
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
        # The scored sales of referees (those already paid are dropped in build):
        # see CustomerWork._earlier_sale.
        referee_sales = conn.execute(
            "SELECT s.customer_id, s.date, s.amount, s.transaction_id FROM _batch b "
            "CROSS JOIN customers c "
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
        return RawBatch(
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

    def build(self, chunk: list[str], raw: RawBatch) -> Batch:
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
        for cid, date, amount, tid in raw.referee_sales:
            if cid not in data.referral_paid:
                sale = (dt.date.fromisoformat(date), amount, tid)
                data.referee_sales.setdefault(cid, []).append(sale)
        data.states = raw.states
        return data


_LEDGER_COLS = ", ".join(
    "l." + c
    for c in (
        "entry_id", "date", "customer_id", "kind", "points", "value", "source_type", "source_id",
        "rule_id", "program_version", "lot_id", "available_on", "expires_on", "partner", "note",
    )
)  # fmt: skip


_entry_id = operator.itemgetter(0)
_receipt_order = operator.attrgetter("date", "transaction_id")


def _date_or_none(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


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
