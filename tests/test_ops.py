"""`loyalty check`, `loyalty backup` and the nightly lock (checks.py, backup.py, lock.py)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loyalty_cli import db, ledger
from loyalty_cli.backup import backup_database
from loyalty_cli.checks import check_database, run_check
from loyalty_cli.errors import LockedError
from loyalty_cli.ledger import NewEntry
from loyalty_cli.lock import hold_lock, pid_alive

D = dt.date(2026, 3, 1)


def _purchase(conn: sqlite3.Connection, txn: str, customer: str, amount: int = 1000) -> None:
    conn.execute(
        "INSERT INTO purchases (transaction_id, customer_id, date, amount, import_id) "
        "VALUES (?, ?, ?, ?, 1)",
        (txn, customer, D.isoformat(), amount),
    )


def _clean_ledger(conn: sqlite3.Connection) -> None:
    """Two customers, earns from real purchases, a redemption, an expiry."""
    with db.transaction(conn):
        _purchase(conn, "T1", "C1")
        _purchase(conn, "T2", "C2")
        conn.execute(
            "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, "
            "value, created_at) VALUES ('R1', 'C1', 'coffee', ?, 4, 350, 'now')",
            (D.isoformat(),),
        )
        ledger.post(
            conn,
            [
                NewEntry(D, "C1", "earn", 10, "purchase", "T1", available_on=D),
                NewEntry(D, "C2", "earn", 20, "purchase", "T2", available_on=D),
                NewEntry(D, "C1", "redeem", -4, "redemption", "R1"),
            ],
        )
        ledger.post(conn, [NewEntry(D, "C1", "expire", -6, "expiry", None, lot_id=1)])
        conn.executemany(
            "INSERT INTO scored_receipts (transaction_id, customer_id, date, amount, points) "
            "VALUES (?, ?, ?, 1000, ?)",
            [("T1", "C1", D.isoformat(), 10), ("T2", "C2", D.isoformat(), 20)],
        )


# --- check ---------------------------------------------------------------------


def test_check_passes_on_a_clean_database(conn, cli):
    _clean_ledger(conn)
    assert check_database(conn) == []
    result = cli("check")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "ok: 4 entries, 2 customers checked\n"


def test_check_passes_on_an_empty_database(cli):
    assert cli("init").exit_code == 0
    result = cli("check")
    assert result.exit_code == 0
    assert result.stdout == "ok: 0 entries, 0 customers checked\n"


@pytest.mark.parametrize(
    "command", [("check",), ("backup", "copy.db"), ("nightly", "--inbox", ".")]
)
def test_the_cron_commands_refuse_a_database_that_is_not_there(cli, db_file, command):
    """A mistyped --db: no new, empty shop checked as ok, backed up or imported into."""
    result = cli(*command)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {db_file}: no such database (create one with `loyalty init`, or check "
        "--db and LOYALTY_DB)"
    )
    assert not db_file.exists()


def test_check_finds_a_lot_of_another_customer_and_a_missing_lot(conn, cli):
    _clean_ledger(conn)
    with db.transaction(conn):
        # An expire for C2 aimed at C1's lot, and one aimed at a lot that never existed.
        ledger.post(conn, [NewEntry(D, "C2", "expire", -5, "expiry", None, lot_id=1)])
        ledger.post(conn, [NewEntry(D, "C2", "expire", -1, "expiry", None, lot_id=999)])
    findings = check_database(conn)
    assert [f.code for f in findings] == ["lot_id", "lot_id"]
    result = cli("check")
    assert result.exit_code == 1
    assert result.stdout == (
        "entry 5 (customer C2, expire): lot_id 1 belongs to customer C1\n"
        "entry 6 (customer C2, expire): lot_id 999 does not exist\n"
    )
    assert result.stderr == "Error: check found 2 problems in 6 entries, 2 customers\n"


def test_check_finds_an_entry_whose_source_is_missing(conn):
    _clean_ledger(conn)
    with db.transaction(conn):
        ledger.post(conn, [NewEntry(D, "C3", "earn", 7, "purchase", "T404")])
        ledger.post(conn, [NewEntry(D, "C3", "redeem", -7, "redemption", "R404")])
    messages = [f.message for f in check_database(conn)]
    assert messages == [
        "entry 5 (customer C3, earn): purchase T404 is not in purchases",
        "entry 6 (customer C3, redeem): redemption R404 is not in redemptions",
    ]


def test_check_finds_an_entry_of_the_wrong_sign_and_an_unknown_source_type(conn):
    """An earn of -5 takes from the customer's lots like a redemption: the replay
    agrees with the sums, so only its sign (and its receipt's scoring) shows it.
    Both passed as ok."""
    _clean_ledger(conn)
    with db.transaction(conn):
        conn.execute("UPDATE ledger SET points = -5 WHERE entry_id = 2")
        conn.execute("UPDATE ledger SET source_type = 'bogus' WHERE entry_id = 1")
    assert [(f.code, f.message) for f in check_database(conn)] == [
        ("sign", "entry 2 (customer C2): earn of -5 points"),
        ("source", "entry 1 (customer C1, earn): unknown source type 'bogus'"),
        ("receipt", "customer C1: receipt T1 has entries of 0 points; it was scored at 10"),
        ("receipt", "customer C2: receipt T2 has entries of -5 points; it was scored at 20"),
    ]


def test_check_counts_undone_purchases_as_existing_sources(conn):
    _clean_ledger(conn)
    with db.transaction(conn):
        conn.execute("UPDATE purchases SET undone = 1 WHERE transaction_id = 'T2'")
        ledger.reverse_sources(conn, "purchase", ["T2"], D, "import 1 undone")
        # As `import undo` does (engine.run.forget_receipts).
        conn.execute("DELETE FROM scored_receipts WHERE transaction_id = 'T2'")
    assert check_database(conn) == []


def test_check_finds_a_negative_lot_and_a_pointless_target(conn):
    _clean_ledger(conn)
    with db.transaction(conn):
        # lot_id aimed at the redeem entry (not a lot).
        ledger.post(conn, [NewEntry(D, "C1", "clawback", -1, "purchase", "T1", lot_id=3)])
    assert [f.message for f in check_database(conn)] == [
        "entry 5 (customer C1, clawback): lot_id 3 is not a lot (-4 points)",
        "customer C1: receipt T1 has entries of 9 points; it was scored at 10",
    ]


def test_check_finds_expiries_that_take_more_than_their_lot_holds(conn):
    """C2's lot 2 has 20 points; expire entries aimed at it take 18 + 5. The replay
    alone would only show debt."""
    _clean_ledger(conn)
    with db.transaction(conn):
        ledger.post(conn, [NewEntry(D, "C2", "expire", -18, "expiry", "2", lot_id=2)])
        ledger.post(conn, [NewEntry(D, "C2", "expire", -5, "expiry", "2", lot_id=2)])
    assert [(f.code, f.entry_id, f.message) for f in check_database(conn)] == [
        ("lot", 2, "customer C2: expire entries aimed at lot 2 take 23 points; it has only 20")
    ]


def test_check_json_output(conn, cli):
    import json

    _clean_ledger(conn)
    with db.transaction(conn):
        ledger.post(conn, [NewEntry(D, "C2", "expire", -5, "expiry", None, lot_id=1)])
    result = cli("check", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["entries"] == 5 and doc["customers"] == 2
    assert doc["findings"] == [
        {
            "code": "lot_id",
            "entry_id": 5,
            "customer_id": "C2",
            "message": "entry 5 (customer C2, expire): lot_id 1 belongs to customer C1",
        }
    ]


RUN_PROGRAM = """
program: Test
currency: EUR
earn: {per_currency_unit: 1, rounding: floor}
expiry: {policy: fixed, months: 1}
"""


def _run_shop(conn, write) -> None:
    """A real run: C1 has two lots (one expired by the run date), C2 one."""
    from loyalty_cli.engine.run import run
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program

    apply_program(conn, write("p.yaml", RUN_PROGRAM))
    csv = write(
        "p.csv",
        """
        transaction_id,customer_id,date,amount
        T1,C1,2026-01-05,12.00
        T2,C1,2026-03-01,30.00
        T3,C2,2026-03-02,7.00
        """,
    )
    import_files(conn, "purchases", [csv])
    run(conn, dt.date(2026, 3, 10))


def test_check_compares_each_stored_run_state_with_the_ledger(conn, write):
    _run_shop(conn, write)
    assert check_database(conn) == []
    lot = conn.execute(
        "SELECT json_extract(state, '$.lots[0][0]') FROM run_state WHERE customer_id = 'C1'"
    ).fetchone()[0]
    # A state whose lot holds other points than the ledger says: found, named.
    conn.execute(
        "UPDATE run_state SET state = json_set(state, '$.lots[0][5]', 29) WHERE customer_id = 'C1'"
    )
    conn.execute(
        "UPDATE run_state SET state = json_set(state, '$.balance', 99) WHERE customer_id = 'C2'"
    )
    found = check_database(conn)
    assert [(f.code, f.customer_id) for f in found] == [("run_state", "C1"), ("run_state", "C2")]
    assert f"says lot {lot} holds 29 points, the ledger 30;" in found[0].message
    assert "debt 0 and balance 99, the ledger 0 and 7" in found[1].message
    # Out of date (a later entry): the next run rebuilds it, nothing to report.
    ledger.post(conn, [NewEntry(D, "C1", "adjust", 5, "adjustment", None)])
    assert [f.customer_id for f in check_database(conn)] == ["C2"]
    conn.execute("DELETE FROM run_state WHERE customer_id = 'C2'")
    assert check_database(conn) == []


def test_check_compares_a_stored_lots_dates_and_names_a_few_differences(conn, write):
    """A state's lot that expires on another day than its ledger entry says would
    make the next run expire it on the wrong day."""
    _run_shop(conn, write)
    lot, expires = conn.execute(
        "SELECT json_extract(state, '$.lots[0][0]'), json_extract(state, '$.lots[0][3]') "
        "FROM run_state WHERE customer_id = 'C1'"
    ).fetchone()
    conn.execute(
        "UPDATE run_state SET state = json_set(state, '$.lots[0][3]', ?) WHERE customer_id = 'C1'",
        (expires + 30,),
    )
    (found,) = check_database(conn)
    assert found.message.startswith(
        f"customer C1: the stored run state says lot {lot} expires 2026-05-01, "
        "the ledger 2026-04-01; it is a cache"
    )
    # Every field of the lot wrong, and a lot the ledger does not have: three
    # differences named, the other two counted.
    conn.execute(
        "UPDATE run_state SET state = json_set(state, '$.lots[0]', "
        "json_array(?, 0, 1, NULL, 50, 40, NULL, 1), '$.lots[1]', "
        "json_array(99, 0, 1, NULL, 5, 5, NULL, 1)) WHERE customer_id = 'C1'",
        (lot,),
    )
    (found,) = check_database(conn)
    assert (
        f"says lot {lot} has 50 points, the ledger 30; lot {lot} holds 40 points, the "
        f"ledger 30; lot {lot} is usable from 0001-01-01, the ledger 2026-03-01; "
        "2 more differences; it is a cache"
    ) in found.message


def test_check_finds_a_deleted_earn_once_the_run_states_are_gone(conn, write, cli):
    """The run states are a cache anyone may clear; the scored receipts still say
    what each receipt earned, so a deleted or altered earn is found."""
    _run_shop(conn, write)
    conn.execute("DELETE FROM run_state")
    conn.execute("DELETE FROM ledger WHERE source_id = 'T2'")
    conn.execute("UPDATE ledger SET points = 13 WHERE source_id = 'T3'")
    result = cli("check")
    assert result.exit_code == 1
    assert result.stdout == (
        "customer C1: receipt T2 has entries of 0 points; it was scored at 30\n"
        "customer C2: receipt T3 has entries of 13 points; it was scored at 7\n"
    )


def test_check_finds_a_redemption_whose_entries_are_missing_or_misplaced(conn):
    _clean_ledger(conn)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, "
            "value, status, created_at) VALUES ('R2', 'C2', 'coffee', ?, 5, 350, "
            "'cancelled', 'now')",
            (D.isoformat(),),
        )
        ledger.post(conn, [NewEntry(D, "C2", "redeem", -5, "redemption", "R2")])
    assert [f.message for f in check_database(conn)] == [
        "customer C2: redemption R2 (cancelled) has entries of -5 points; it should have 0"
    ]
    with db.transaction(conn):
        ledger.post(conn, [NewEntry(D, "C2", "redemption_reversed", 5, "redemption", "R2")])
        conn.execute("UPDATE ledger SET customer_id = 'C2' WHERE source_id = 'R1'")
    assert [f.message for f in check_database(conn) if f.code == "redemption"] == [
        "customer C1: redemption R1 (active) has entries of 0 points; it should have -4",
        "customer C2: redemption R1 (of another customer) has entries of -4 points; "
        "it should have 0",
    ]


def test_check_leaves_states_of_an_older_layout_alone(conn, write):
    """A state in an older layout (another meaning of its numbers) is never read
    again, so it is not compared either."""
    _run_shop(conn, write)
    conn.execute(
        "UPDATE run_state SET state = json_set(state, '$.balance', 99), "
        "timeline = '2;' || substr(timeline, instr(timeline, ';') + 1) WHERE customer_id = 'C1'"
    )
    assert check_database(conn) == []
    conn.execute(
        "UPDATE run_state SET timeline = ? || substr(timeline, instr(timeline, ';')) "
        "WHERE customer_id = 'C1'",
        (str(db.RUN_STATE_FORMAT),),
    )
    assert [f.customer_id for f in check_database(conn)] == ["C1"]


def test_check_finds_an_unreadable_state_and_one_without_entries(conn, write):
    _run_shop(conn, write)
    conn.execute("UPDATE run_state SET state = '{' WHERE customer_id = 'C2'")
    conn.execute(
        "INSERT INTO run_state SELECT 'C9', 0, as_of, since, timeline, state FROM run_state "
        "WHERE customer_id = 'C1'"
    )
    found = check_database(conn)
    assert [(f.code, f.customer_id) for f in found] == [("run_state", "C2"), ("run_state", "C9")]
    assert "the stored run state cannot be read" in found[0].message


def test_run_check_sees_one_snapshot(conn, db_file):
    _clean_ledger(conn)
    report = run_check(conn)
    assert report.ok and report.entries == 4 and report.customers == 2


# --- backup --------------------------------------------------------------------


def _dump(path: Path) -> list[tuple]:
    other = sqlite3.connect(path)
    try:
        return other.execute(
            "SELECT entry_id, customer_id, kind, points FROM ledger ORDER BY 1"
        ).fetchall()
    finally:
        other.close()


def test_check_finds_a_redemption_that_overdrew_the_points(conn, cli):
    """C1 has 10 points; a redeem entry of 30 leaves 24 owed: redemptions never
    make the balance negative (a claw-back may)."""
    _clean_ledger(conn)
    with db.transaction(conn):
        conn.execute("UPDATE ledger SET points = -30 WHERE entry_id = 3")
        conn.execute("UPDATE redemptions SET points = 30 WHERE redemption_id = 'R1'")
        ledger.post(conn, [NewEntry(D, "C2", "clawback", -25, "purchase", "T2", lot_id=2)])
        conn.execute("UPDATE scored_receipts SET points = -5 WHERE transaction_id = 'T2'")
    assert [(f.code, f.entry_id, f.message) for f in check_database(conn)] == [
        (
            "redeem",
            3,
            "customer C1: redemption R1 (entry 3, 2026-03-01) took 20 points more than "
            "were available",
        )
    ]
    assert cli("check").exit_code == 1


def test_check_names_an_unreadable_cell_and_goes_on(conn, cli):
    _clean_ledger(conn)
    with db.transaction(conn):
        conn.execute("UPDATE ledger SET date = '2027-!1-15' WHERE entry_id = 2")
    result = cli("check")
    assert result.exit_code == 1
    assert "ledger entry 2 cannot be read: Invalid isoformat string: '2027-!1-15'" in result.stdout
    assert "internal error" not in result.stderr


def test_check_reports_a_database_too_broken_to_read(conn, db_file):
    """A ledger page whose header is garbage: one finding per problem, no crash."""
    _clean_ledger(conn)
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'ledger'").fetchone()[0]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(db_file, "r+b") as fh:
        fh.seek((root - 1) * size)
        fh.write(b"\xff" * 12)
    broken = db.connect(db_file)
    try:
        findings = run_check(broken).findings
    finally:
        broken.close()
    assert findings and all(f.code == "integrity" for f in findings)
    assert any("malformed" in f.message or "btree" in f.message.lower() for f in findings)


def test_backup_refuses_a_directory_a_side_file_and_drops_held_locks(conn, cli, tmp_path):
    _clean_ledger(conn)
    source = conn.execute("PRAGMA database_list").fetchone()[2]
    result = cli("backup", tmp_path)
    assert (result.exit_code, result.stderr) == (
        2,
        f"Error: {tmp_path}: is a directory; name a file in it\n",
    )
    result = cli("backup", source + "-wal", "--force")
    assert result.exit_code == 2
    assert "is a file SQLite keeps beside the database" in result.stderr
    assert cli("backup", "").exit_code == 2
    with hold_lock(conn, "nightly", wait=0):
        assert cli("backup", tmp_path / "copy.db").exit_code == 0
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 0
    copy.close()


def test_backup_copy_opens_and_has_the_same_rows(conn, cli, tmp_path):
    _clean_ledger(conn)
    target = tmp_path / "copy.db"
    result = cli("backup", target)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(f"backup: {conn.execute('PRAGMA database_list').fetchone()[2]}")
    assert _dump(target) == _dump(tmp_path / "loyalty.db")
    assert len(_dump(target)) == 4
    # A single self-contained file: no WAL to carry along.
    copy = sqlite3.connect(target)
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    copy.close()


def test_backup_onto_the_database_itself_says_so_first(conn, cli, tmp_path):
    source = conn.execute("PRAGMA database_list").fetchone()[2]
    for extra in ((), ("--force",)):
        result = cli("backup", source, *extra)
        assert (result.exit_code, result.stderr) == (
            2,
            f"Error: {source}: is the database itself; choose another file\n",
        )


def test_backup_refuses_to_overwrite_without_force(conn, cli, tmp_path):
    target = tmp_path / "copy.db"
    target.write_bytes(b"precious")
    result = cli("backup", target)
    assert result.exit_code == 1
    assert result.stderr == f"Error: {target}: already exists; use --force to overwrite it\n"
    assert target.read_bytes() == b"precious"
    _clean_ledger(conn)
    result = cli("backup", target, "--force")
    assert result.exit_code == 0, result.stderr
    assert len(_dump(target)) == 4
    assert sorted(p.name for p in tmp_path.iterdir() if "copy" in p.name) == ["copy.db"]


def test_backup_removes_the_half_made_copy_of_a_killed_backup(conn, cli, tmp_path):
    """A backup killed mid-copy leaves its temporary file, as big as the database;
    the next backup to that name removes it, but not one a live backup is writing."""
    _clean_ledger(conn)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = tmp_path / f".copy.db.tmp-{int(gone.stdout)}"
    dead.write_bytes(b"half a database")
    journal = tmp_path / f".copy.db.tmp-{int(gone.stdout)}-journal"
    journal.write_bytes(b"its rollback journal")
    wal = tmp_path / f".copy.db.tmp-{int(gone.stdout)}-wal"
    wal.write_bytes(b"its write-ahead log")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".copy.db.tmp-{writer.pid}"
        live.write_bytes(b"being written")
        other = tmp_path / ".other.db.tmp-1"
        other.write_bytes(b"not ours")
        stray = tmp_path / ".copy.db.tmp-99999999999"  # no pid: os.kill overflowed on it
        stray.write_bytes(b"someone else's")
        result = cli("backup", tmp_path / "copy.db")
        assert result.exit_code == 0, result.stderr
        assert not dead.exists() and not journal.exists() and not wal.exists()
        assert live.exists() and other.exists() and stray.exists()
    finally:
        writer.kill()
        writer.wait()


def test_backup_while_another_writer_holds_a_transaction(conn, db_file, tmp_path):
    _clean_ledger(conn)
    writer = db.connect(db_file)
    try:
        writer.execute("BEGIN IMMEDIATE")
        ledger.post(writer, [NewEntry(D, "C9", "adjust", 5, "manual")])
        started = time.monotonic()
        backup_database(conn, tmp_path / "snap.db")
        assert time.monotonic() - started < 5  # did not wait for the writer
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert len(_dump(tmp_path / "snap.db")) == 4  # the uncommitted entry is not in it
    assert len(_dump(db_file)) == 5


# --- lock ----------------------------------------------------------------------


def _lock_rows(conn: sqlite3.Connection) -> list[tuple]:
    return [tuple(r) for r in conn.execute("SELECT name, pid, host, command FROM locks")]


def test_lock_is_held_inside_and_released_after(conn):
    with hold_lock(conn, "loyalty nightly", wait=0) as me:
        assert _lock_rows(conn) == [("nightly", os.getpid(), socket.gethostname(), me.command)]
    assert _lock_rows(conn) == []


def test_lock_is_released_when_the_block_fails(conn):
    with pytest.raises(RuntimeError), hold_lock(conn, "loyalty nightly", wait=0):
        raise RuntimeError("boom")
    assert _lock_rows(conn) == []


def test_second_acquirer_waits_then_fails_naming_the_holder(conn, db_file):
    other = db.connect(db_file)
    try:
        with hold_lock(conn, "loyalty nightly --inbox /srv/in", wait=0) as me:
            started = time.monotonic()
            with (
                pytest.raises(LockedError) as info,
                hold_lock(other, "loyalty nightly", wait=0.3, poll=0.05),
            ):
                pass
            assert time.monotonic() - started >= 0.3
        assert str(info.value) == (
            f"another nightly (pid {os.getpid()} on {socket.gethostname()}, "
            f"`loyalty nightly --inbox /srv/in`) holds the lock since {me.since}; "
            "gave up after waiting 0.3 s (--wait)"
        )
        assert info.value.exit_code == 1
    finally:
        other.close()


def test_wait_bounds_the_wait_while_the_holder_is_inside_a_long_transaction(conn, db_file):
    """The holder (another process) keeps a write transaction open, as a nightly
    importing a big file does: the second acquirer still gives up after --wait,
    naming it, instead of waiting on SQLite's busy timeout."""
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sys, time\n"
            "from loyalty_cli import db, lock\n"
            "conn = db.connect(sys.argv[1])\n"
            "with lock.hold_lock(conn, 'loyalty nightly --inbox /srv/in', wait=0):\n"
            "    conn.execute('BEGIN IMMEDIATE')\n"
            "    print('holding', flush=True)\n"
            "    time.sleep(30)\n"
        ), str(db_file)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
        started = time.monotonic()
        with pytest.raises(LockedError) as info, hold_lock(conn, "loyalty import", wait=1):
            pass
        assert time.monotonic() - started < 5
        assert f"(pid {holder.pid} on " in str(info.value)
        assert "gave up after waiting 1 s (--wait)" in str(info.value)
    finally:
        holder.kill()
        holder.wait()


def test_a_busy_database_without_a_lock_holder_is_named_as_such(conn, db_file):
    writer = db.connect(db_file)
    try:
        writer.execute("BEGIN IMMEDIATE")  # a redeem's transaction, say: no lock row
        started = time.monotonic()
        with pytest.raises(LockedError) as info, hold_lock(conn, "loyalty nightly", wait=0.5):
            pass
        assert time.monotonic() - started < 5
        assert str(info.value).startswith("the database stayed busy: another command")
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_second_acquirer_gets_the_lock_when_the_first_lets_go(conn, db_file):
    got = threading.Event()

    def second() -> None:
        other = db.connect(db_file)
        try:
            with hold_lock(other, "loyalty nightly", wait=10, poll=0.05):
                got.set()
        finally:
            other.close()

    with hold_lock(conn, "loyalty nightly", wait=0):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        assert not got.is_set()
    thread.join(10)
    assert got.is_set()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_lock_of_a_dead_process_is_taken_over(conn):
    dead = _dead_pid()
    assert not pid_alive(dead)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO locks VALUES ('nightly', ?, ?, 'loyalty nightly', '2026-11-23T02:00:03Z')",
            (dead, socket.gethostname()),
        )
    with hold_lock(conn, "loyalty nightly", wait=0):
        assert _lock_rows(conn)[0][1] == os.getpid()
    assert _lock_rows(conn) == []


def test_lock_of_a_reused_pid_started_later_is_stale(conn):
    # The pid is alive, but its process started after the lock was taken.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(sleeper.pid)
        assert not pid_alive(sleeper.pid, "2020-01-01T00:00:00Z")
        with db.transaction(conn):
            conn.execute(
                "INSERT INTO locks VALUES ('nightly', ?, ?, 'loyalty nightly', "
                "'2020-01-01T00:00:00Z')",
                (sleeper.pid, socket.gethostname()),
            )
        with hold_lock(conn, "loyalty nightly", wait=0):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_of_a_live_process_is_not_taken_over(conn):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        since = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
        with db.transaction(conn):
            conn.execute(
                "INSERT INTO locks VALUES ('nightly', ?, ?, 'loyalty import purchases x.csv', ?)",
                (sleeper.pid, socket.gethostname(), since.strftime("%Y-%m-%dT%H:%M:%SZ")),
            )
        with (
            pytest.raises(LockedError, match=r"^another import \(pid \d+ on "),
            hold_lock(conn, "loyalty nightly", wait=0),
        ):
            pass
    finally:
        sleeper.kill()
        sleeper.wait()


def test_lock_held_from_another_host_is_never_judged_stale(conn):
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO locks VALUES ('nightly', ?, 'elsewhere', 'loyalty nightly', "
            "'2026-11-23T02:00:03Z')",
            (_dead_pid(),),
        )
    with (
        pytest.raises(LockedError, match="on elsewhere, `loyalty nightly`"),
        hold_lock(conn, "loyalty nightly", wait=0),
    ):
        pass


def test_lock_naming_our_own_pid_but_not_held_is_from_an_earlier_life(conn):
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO locks VALUES ('nightly', ?, ?, 'loyalty nightly', '2026-11-20T02:00:03Z')",
            (os.getpid(), socket.gethostname()),
        )
    with hold_lock(conn, "loyalty nightly", wait=0) as me:
        assert me.since != "2026-11-20T02:00:03Z"


@pytest.mark.parametrize(
    "command",
    [
        ("customer", "show", "C1"),
        ("customer", "explain", "C1"),
        ("customer", "list"),
        ("rewards", "eligible"),
        ("redeem", "C1", "coffee"),
        ("adjust", "C1", "5", "--reason", "typo"),
        ("report", "kpi"),
        ("report", "segments"),
        ("export", "ledger", "-o", "ledger.csv"),
        ("export", "rfm"),
        ("import", "list"),
        ("import", "rejects"),
        ("import", "undo", "1"),
        ("program", "show"),
        ("program", "versions"),
        ("run",),
    ],
)
def test_a_mistyped_db_is_not_created_by_the_commands_that_need_a_shop(
    cli, db_file, tmp_path, monkeypatch, command
):
    """Before, these left an empty database file behind at the mistyped path."""
    monkeypatch.chdir(tmp_path)
    result = cli(*command)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: no program applied yet: there is no database at {db_file}; run `loyalty "
        "program apply FILE` first, or check --db and LOYALTY_DB"
    )
    assert not db_file.exists()
    assert not (tmp_path / "ledger.csv").exists()


def test_the_commands_that_set_a_shop_up_still_create_the_database(cli, db_file, write):
    program = write("p.yaml", "program: P\ncurrency: EUR\nearn: {per_currency_unit: 1}\n")
    diff = cli("program", "diff", str(program))
    assert diff.stdout == "no program in force yet: everything is new\n"
    assert not db_file.exists()  # a comparison changes nothing
    assert cli("program", "apply", str(program)).exit_code == 0
    assert db_file.exists()


def test_check_and_backup_refuse_a_zero_byte_database(runner, tmp_path):
    from loyalty_cli.cli.app import app

    empty = tmp_path / "zero.db"
    empty.write_bytes(b"")
    (tmp_path / "p.csv").write_text("transaction_id,customer_id,date,amount\nT1,C1,2026-01-01,1\n")
    # The cron commands, and every command that reads or changes a shop: one look-up
    # at the counter wrote a fresh schema into it, and `check` then said ok.
    for args in (
        ["check"], ["backup", str(tmp_path / "copy.db")], ["customer", "show", "C1"],
        ["customer", "list"], ["report", "kpi"], ["export", "ledger"], ["run"],
        ["redeem", "C1", "coffee"], ["import", "list"],
        ["import", "purchases", str(tmp_path / "p.csv")],
        ["program", "diff", "programs/boutique.yaml"],
    ):  # fmt: skip
        result = runner.invoke(app, ["--db", str(empty), *args])
        assert result.exit_code == 1, args
        assert "the file is empty, not a shop's database" in result.stderr
    assert empty.read_bytes() == b""  # nothing written into it
    # What sets a shop up may write it there (an explicit choice of that file).
    assert runner.invoke(app, ["--db", str(empty), "init"]).exit_code == 0
