"""The SQLite file: connection settings, schema and migrations.

One file holds everything. WAL mode lets readers run beside a writer; the busy
timeout makes two writers wait for each other instead of failing. The schema
version lives in `PRAGMA user_version`; `MIGRATIONS[i]` takes a database from
version i to i + 1 and runs inside one transaction.

Money columns are integer minor units, points are integers, dates are ISO
`YYYY-MM-DD` text (they sort and compare as dates).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from loyalty_cli.errors import LoyaltyError

DEFAULT_DB = "loyalty.db"
# How long a writer waits for another's transaction. The longest are a first
# import or run over years of history (minutes on a big shop); a redeem or an
# import by hand meanwhile should wait for it, not fail.
BUSY_TIMEOUT_MS = 600_000

SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT
);

-- An applied program: a version is in force from effective_from on.
CREATE TABLE program_versions (
    version        INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    effective_from TEXT NOT NULL,
    applied_at     TEXT NOT NULL,
    source_file    TEXT,
    sha256         TEXT NOT NULL,
    yaml           TEXT NOT NULL
);

-- One row per file given to `import` (kind: purchases, customers, events,
-- redemptions, balances). status: done | undone.
CREATE TABLE imports (
    import_id   INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    file        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    rows        INTEGER NOT NULL DEFAULT 0,
    inserted    INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    rejected    INTEGER NOT NULL DEFAULT 0,
    status      TEXT NOT NULL DEFAULT 'done',
    undone_on   TEXT
);
CREATE INDEX imports_sha ON imports (sha256, kind);

CREATE TABLE rejects (
    reject_id INTEGER PRIMARY KEY,
    import_id INTEGER NOT NULL REFERENCES imports (import_id),
    file      TEXT NOT NULL,
    line      INTEGER,
    field     TEXT,
    reason    TEXT NOT NULL,
    raw       TEXT
);
CREATE INDEX rejects_import ON rejects (import_id);

CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    name        TEXT,
    email       TEXT,
    birthday    TEXT,
    joined_on   TEXT,
    referred_by TEXT,
    import_id   INTEGER
);

-- One row per receipt line. amount and tax in minor units, amount includes tax,
-- negative for refunds. Undone rows stay for audit and count nowhere.
CREATE TABLE purchases (
    id             INTEGER PRIMARY KEY,
    transaction_id TEXT NOT NULL,
    line_no        INTEGER NOT NULL DEFAULT 1,
    customer_id    TEXT,
    date           TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    tax            INTEGER NOT NULL DEFAULT 0,
    sku            TEXT,
    category       TEXT,
    quantity       TEXT,
    store          TEXT,
    currency       TEXT,
    refund_of      TEXT,
    import_id      INTEGER NOT NULL,
    undone         INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX purchases_key ON purchases (transaction_id, line_no) WHERE undone = 0;
CREATE INDEX purchases_date ON purchases (date);
CREATE INDEX purchases_import ON purchases (import_id);
-- Reports: a member's lines (date, receipt, amount) read from the index alone.
CREATE INDEX purchases_member ON purchases (customer_id, date, transaction_id, amount, undone);

-- An anonymous receipt attached to a member afterwards (`loyalty claim`).
CREATE TABLE claims (
    transaction_id TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    claimed_on     TEXT NOT NULL
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    event_id    TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    type        TEXT NOT NULL,
    date        TEXT NOT NULL,
    import_id   INTEGER NOT NULL,
    undone      INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX events_key ON events (event_id) WHERE undone = 0;
CREATE INDEX events_customer ON events (customer_id, date);

-- The append-only points ledger. points are signed. Positive entries of kind
-- earn, bonus, adjust and (opening balances) adjust are *lots*: they become
-- usable on available_on and, under fixed expiry, expire on expires_on.
-- lot_id names the lot an entry is aimed at (expire, clawback, reversal);
-- which lots an entry consumed is derived by ledger.replay(), never stored.
CREATE TABLE ledger (
    entry_id        INTEGER PRIMARY KEY,
    date            TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('earn', 'bonus', 'clawback', 'redeem',
                        'redemption_reversed', 'expire', 'adjust', 'reversal')),
    points          INTEGER NOT NULL,
    value           INTEGER NOT NULL DEFAULT 0,
    source_type     TEXT NOT NULL,
    source_id       TEXT,
    rule_id         TEXT,
    program_version INTEGER,
    lot_id          INTEGER,
    available_on    TEXT,
    expires_on      TEXT,
    partner         TEXT,
    note            TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX ledger_customer ON ledger (customer_id, entry_id);
CREATE INDEX ledger_source ON ledger (source_type, source_id);
CREATE INDEX ledger_expires ON ledger (expires_on) WHERE expires_on IS NOT NULL;
-- Reports: sums by date and kind read from the index alone; the entries aimed
-- at a lot; the (rare) cancellations that give points back.
CREATE INDEX ledger_date_kind ON ledger (date, kind, points);
CREATE INDEX ledger_lot ON ledger (lot_id, kind, date, points) WHERE lot_id IS NOT NULL;
CREATE INDEX ledger_reversed ON ledger (customer_id, date) WHERE kind = 'redemption_reversed';

CREATE TABLE redemptions (
    redemption_id TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    reward_id     TEXT NOT NULL,
    date          TEXT NOT NULL,
    points        INTEGER NOT NULL,
    value         INTEGER NOT NULL,
    status        TEXT NOT NULL DEFAULT 'active',
    ref           TEXT UNIQUE,
    code          TEXT,
    balance_after INTEGER,
    voucher_id    TEXT,
    partner       TEXT,
    import_id     INTEGER,
    cancelled_on  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX redemptions_customer ON redemptions (customer_id, date);

-- Punch-card vouchers. status: open | used | expired | withdrawn.
CREATE TABLE vouchers (
    voucher_id     TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    reward_id      TEXT NOT NULL,
    issued         TEXT NOT NULL,
    transaction_id TEXT,
    status         TEXT NOT NULL DEFAULT 'open',
    expires_on     TEXT,
    closed_on      TEXT,
    redemption_id  TEXT
);
CREATE INDEX vouchers_customer ON vouchers (customer_id, issued);

-- A customer's tier from `date` on (engine-maintained history).
CREATE TABLE tier_history (
    customer_id TEXT NOT NULL,
    date        TEXT NOT NULL,
    tier        TEXT NOT NULL,
    PRIMARY KEY (customer_id, date)
);

CREATE TABLE runs (
    run_id      INTEGER PRIMARY KEY,
    as_of       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT
);

-- Engine: every member receipt `loyalty run` has scored (once), with what it
-- earned (points: earn + bonus, or minus the claw-back of a refund), the tier
-- it earned at and the program version that scored it.
CREATE TABLE scored_receipts (
    transaction_id TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    date           TEXT NOT NULL,
    amount         INTEGER NOT NULL,
    tax            INTEGER NOT NULL DEFAULT 0,
    lines          INTEGER NOT NULL DEFAULT 1,
    points         INTEGER NOT NULL,
    tier           TEXT,
    version        INTEGER,
    punches        TEXT,
    run_id         INTEGER
);
CREATE INDEX scored_receipts_customer ON scored_receipts (customer_id, date, transaction_id);

-- Advisory locks (lock.hold_lock): one row while `nightly` (or an import
-- taking the lock) runs. pid + host identify the holder so a stale row left by
-- a killed process on this host can be taken over.
CREATE TABLE locks (
    name    TEXT PRIMARY KEY,
    pid     INTEGER NOT NULL,
    host    TEXT NOT NULL,
    command TEXT NOT NULL,
    since   TEXT NOT NULL
);
"""

# Files made by early builds of version 1 lack the report indexes and still have
# two indexes that wider ones replaced. New files get all of this from
# SCHEMA_V1, so every statement is written to be a no-op there.
REPORT_INDEXES_V2 = """
CREATE INDEX IF NOT EXISTS purchases_member
    ON purchases (customer_id, date, transaction_id, amount, undone);
CREATE INDEX IF NOT EXISTS ledger_date_kind ON ledger (date, kind, points);
CREATE INDEX IF NOT EXISTS ledger_lot
    ON ledger (lot_id, kind, date, points) WHERE lot_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_reversed
    ON ledger (customer_id, date) WHERE kind = 'redemption_reversed';
DROP INDEX IF EXISTS purchases_customer;
DROP INDEX IF EXISTS ledger_date;
"""

# What `run` remembers of each customer it worked on, so the next run starts from
# there instead of re-reading their whole ledger and receipts (engine/state.py).
# Derived data, a cache: a run that finds it missing or out of date rebuilds the
# customer's state from the ledger, so deleting any row is always safe.
RUN_STATE_V3 = """
CREATE TABLE IF NOT EXISTS run_state (
    customer_id TEXT PRIMARY KEY,
    entry_id    INTEGER NOT NULL,   -- the customer's last ledger entry it includes
    as_of       TEXT NOT NULL,      -- the run that wrote it
    since       TEXT NOT NULL,      -- receipts dated before this need the full history
    timeline    TEXT NOT NULL,      -- the program versions it was made under
    state       TEXT NOT NULL       -- JSON, see engine/state.py
);
"""

# The layout and meaning of run_state.state (engine/state.py), first in its timeline
# key: a run reads only states of this format, and `check` compares only those.
RUN_STATE_FORMAT = 4

# Receipts `import undo` forgot: the undo reversed all the receipt's points and
# forgot its scoring, and the next run that reaches the receipt's date revisits its
# customer and scores what is left of it (lines of another import) afresh
# (engine/run.py), then removes it. A receipt with no line left is queued too, so
# that a customer whose undo reversed nothing is revisited.
RESCORE_V4 = """
CREATE TABLE IF NOT EXISTS rescore_receipts (
    transaction_id TEXT PRIMARY KEY,
    queued_on      TEXT NOT NULL    -- the undo's date
);
-- A run also looks at the birthdays and referrals of customers imported since the
-- last run (customers.import_id above meta run.last_customer_import_id). A shop
-- from before this version has no such mark: the next run looks at every customer
-- with a birthday or a referrer once (what is paid is not paid again), so one
-- imported after the last old run is not taken as seen.
"""

# An anonymous refund of a member's receipt (refund_of) is attached to that member
# (claims.attach_refunds); this index finds those refunds among a million lines.
ANON_REFUNDS_V5 = """
CREATE INDEX IF NOT EXISTS purchases_anon_refund ON purchases (refund_of)
    WHERE refund_of IS NOT NULL AND customer_id IS NULL;
"""

# A refund claimed for the member holding its receipt names that receipt, so the
# claim can follow the receipt when it changes hands (undo, a corrected import)
# until the refund is scored. NULL: a claim made at the counter.
CLAIMED_REFUNDS_V6 = """
ALTER TABLE claims ADD COLUMN refund_of TEXT;
"""

# A refund's tax takes the amount's sign (-2.00 of a -10.00 refund) since version 7;
# before, a till's positive refund tax was stored as written. The remembered scores
# follow, so the next run sees no change in those receipts; the states of their
# customers (a cache) are rebuilt.
REFUND_TAX_SIGN_V7 = """
DELETE FROM run_state WHERE customer_id IN (SELECT customer_id FROM scored_receipts
    WHERE transaction_id IN (SELECT transaction_id FROM purchases WHERE amount < 0 AND tax > 0));
UPDATE scored_receipts SET tax = tax - 2 * (SELECT SUM(p.tax) FROM purchases p
        WHERE p.transaction_id = scored_receipts.transaction_id AND p.amount < 0 AND p.tax > 0
          AND p.undone = 0)
    WHERE transaction_id IN (SELECT transaction_id FROM purchases
        WHERE amount < 0 AND tax > 0 AND undone = 0);
UPDATE purchases SET tax = -tax WHERE amount < 0 AND tax > 0;
"""

# The newest import when an import was undone (undone_on is the reversal's posting
# date, which may be back-dated): a later import of the same kind, up to that one,
# that counted some of its rows as duplicates held rows that are now undone, so
# its file is no longer skipped as "already imported" (importing.service._import_of).
# NULL for undos made before.
UNDONE_AFTER_V8 = """
ALTER TABLE imports ADD COLUMN undone_after INTEGER;
"""

# What a forgotten receipt had counted on (engine/run.py forget_receipts): the
# customer it was scored for and the punch cards it counted on, so the run that
# scores it again for that customer issues only the vouchers it had (its punch
# was counted once already, in its place). NULL: never scored.
RESCORE_PUNCHES_V9 = """
ALTER TABLE rescore_receipts ADD COLUMN customer_id TEXT;
ALTER TABLE rescore_receipts ADD COLUMN punches TEXT;
"""

# The punch-card vouchers a scored refund withdrew, as a JSON array of voucher ids
# (`[]`: none): a refund withdraws a card's voucher only when it returns a line of
# the kind the card counts (engine/customer.py CustomerWork._withdraw_vouchers). NULL (sales,
# and refunds scored before version 10): any scored refund of a receipt counts as
# having withdrawn its vouchers, as it did then (rewards/vouchers.REFUND_SCORED).
REFUND_WITHDREW_V10 = """
ALTER TABLE scored_receipts ADD COLUMN withdrew TEXT;
"""

# Development builds of 2026-12-06/07 upgraded a schema-3 file with the customer-import
# mark at its newest import, taking customers imported after its last run as seen
# (their birthday and referral bonuses never paid). Without the mark the next run
# looks at every customer with a birthday or a referrer once, paying only what is
# missing (the bonuses are keyed), and sets the mark again.
CUSTOMER_MARK_V11 = """
DELETE FROM meta WHERE key = 'run.last_customer_import_id';
"""

# MIGRATIONS[i] upgrades user_version i -> i + 1.
MIGRATIONS: list[str] = [
    SCHEMA_V1,
    REPORT_INDEXES_V2,
    RUN_STATE_V3,
    RESCORE_V4,
    ANON_REFUNDS_V5,
    CLAIMED_REFUNDS_V6,
    REFUND_TAX_SIGN_V7,
    UNDONE_AFTER_V8,
    RESCORE_PUNCHES_V9,
    REFUND_WITHDREW_V10,
    CUSTOMER_MARK_V11,
]
SCHEMA_VERSION = len(MIGRATIONS)


def db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """--db, else $LOYALTY_DB, else ./loyalty.db."""
    return Path(path or os.environ.get("LOYALTY_DB") or DEFAULT_DB)


def connect(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the loyalty database.

    The connection is in autocommit mode (isolation_level=None): every write
    goes through `transaction()` so the boundaries are explicit.
    """
    target = db_path(path)
    conn = sqlite3.connect(target, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        _check_ours(conn)  # before WAL mode: that would write to a file not ours
    except BaseException:
        conn.close()
        raise
    _wal(conn)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn)
    return conn


def migrate(conn: sqlite3.Connection) -> None:
    """Bring the schema to SCHEMA_VERSION, one recorded step at a time."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current >= SCHEMA_VERSION:
        return  # newer: `connect` has refused it
    with transaction(conn):
        # Re-read under the write lock: another process may have migrated.
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in range(current, SCHEMA_VERSION):
            for statement in _statements(MIGRATIONS[step]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {step + 1}")


def _wal(conn: sqlite3.Connection) -> None:
    """WAL mode. Switching needs the file to itself, and SQLite does not wait for
    that on the busy timeout: another process opening a new file at the same moment
    makes it fail at once, so it is retried within the timeout."""
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _check_ours(conn: sqlite3.Connection) -> None:
    """A database this version of loyalty can read and write, or a new one."""
    # One statement, one snapshot: a process creating the file may commit its
    # whole schema between two reads (then: tables, but user_version still 0).
    current, has_tables = conn.execute(
        "SELECT (SELECT user_version FROM pragma_user_version), "
        "EXISTS (SELECT 1 FROM sqlite_master)"
    ).fetchone()
    if current > SCHEMA_VERSION:
        # Its tables may mean what this version cannot know: no read, no write.
        raise LoyaltyError(
            f"{_file_of(conn)} was made by a newer loyalty (schema {current}; this one "
            f"knows up to {SCHEMA_VERSION}): upgrade loyalty to use it"
        )
    if current == 0 and has_tables:
        raise LoyaltyError(
            f"{_file_of(conn)} is an SQLite database of something else, not a loyalty "
            "database: give --db a new file or a loyalty one"
        )


def _file_of(conn: sqlite3.Connection) -> str:
    row = conn.execute("PRAGMA database_list").fetchone()
    return (row[2] if row is not None else "") or "the database"


def set_aside_indexes(conn: sqlite3.Connection, names: tuple[str, ...]) -> list[str]:
    """Drop the named indexes for a bulk write; returns the statements that
    rebuild them. Inserting hundreds of thousands of rows into randomly ordered
    indexes costs more than sorting them once at the end. Call it inside the
    write's transaction: a crash or rollback brings the indexes back with it."""
    rebuild = []
    for name in names:
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)
        ).fetchone()
        if row is not None and row[0]:
            conn.execute(f'DROP INDEX "{name}"')
            rebuild.append(row[0])
    return rebuild


def _statements(script: str) -> Iterator[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        if line.strip().startswith("--"):
            continue
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""


@contextmanager
def transaction(conn: sqlite3.Connection, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """One all-or-nothing unit of work. IMMEDIATE takes the write lock up front,
    so two writers queue on the busy timeout instead of deadlocking later."""
    if conn.in_transaction:
        # Nested use joins the outer transaction.
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        # SQLite may have rolled back already (a full disk, SQLITE_FULL), and a
        # failing ROLLBACK must not hide what went wrong.
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def program_version_count(conn: sqlite3.Connection) -> int:
    """How many program versions have been applied (none parsed: no pydantic needed)."""
    return conn.execute("SELECT COUNT(*) FROM program_versions").fetchone()[0]
