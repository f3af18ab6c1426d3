"""`import redemptions` and `import balances`: checks per row, keys, undo."""

from __future__ import annotations

import datetime as dt

from conftest import load_json
from loyalty_cli import db, ledger
from loyalty_cli.importing import import_files
from loyalty_cli.ledger import NewEntry
from test_rewards_support import D, apply, customer, earn


def test_import_redemptions_checks_each_row_in_order(conn, tmp_path, cli, write):
    apply(conn, tmp_path)
    earn(conn, "C1", 150, D)
    customer(conn, "C2")
    path = write(
        "till.csv",
        """
        redemption_id,customer_id,reward_id,date
        T-1,C1,coffee,2026-03-10
        T-2,C1,coffee,2026-03-11
        T-3,C2,tea,2026-03-11
        T-4,C9,coffee,2026-03-11
        T-1,C1,coffee,2026-03-10
        """,
    )
    result = cli("import", "redemptions", str(path), "--format", "json")
    assert result.exit_code == 3
    (summary,) = load_json(result)
    assert (summary["rows"], summary["inserted"], summary["duplicates"], summary["rejected"]) == (
        5, 1, 1, 3,
    )  # fmt: skip
    rejects = load_json(cli("import", "rejects", "--format", "json"))
    assert [(r["line"], r["field"], r["reason"]) for r in rejects] == [
        (3, "reward_id", "not enough points: C1 has 50 available, free coffee costs 100"),
        (4, "reward_id", "unknown reward 'tea'; rewards are coffee, ten-off, tenth-coffee"),
        (5, "customer_id", "unknown customer 'C9'"),
    ]
    row = conn.execute("SELECT redemption_id, points, import_id FROM redemptions").fetchall()
    assert [tuple(r) for r in row] == [("T-1", 100, summary["import_id"])]
    assert ledger.state_of(conn, "C1").available(D) == 50

    # Same id, other content: a conflict; the file again: skipped as a whole.
    again = write(
        "till2.csv", "redemption_id,customer_id,reward_id,date\nT-1,C1,coffee,2026-03-12\n"
    )
    (second,) = load_json(cli("import", "redemptions", str(again), "--format", "json"))
    assert second["rejected"] == 1

    # Undo cancels the import's redemptions: the points come back.
    undo = cli("import", "undo", str(summary["import_id"]), "--date", "2026-03-12")
    assert undo.exit_code == 0, undo.stderr
    assert "redemption" in undo.stdout and "cancelled, their points returned." in undo.stdout
    assert ledger.state_of(conn, "C1").available(D) == 150
    status = conn.execute("SELECT status FROM redemptions WHERE redemption_id = 'T-1'")
    assert status.fetchone()[0] == "cancelled"

    # The cancelled redemption keeps its id: in the file again T-1 is a duplicate
    # (documented); T-2, refused the first time, now has the points.
    (third,) = load_json(cli("import", "redemptions", str(path), "--format", "json"))
    assert (third["inserted"], third["duplicates"]) == (1, 2)
    rows = conn.execute("SELECT redemption_id, status FROM redemptions ORDER BY 1")
    assert [tuple(r) for r in rows] == [("T-1", "cancelled"), ("T-2", "active")]
    assert ledger.state_of(conn, "C1").available(D) == 50


def test_a_till_row_taking_the_id_of_a_counter_redemption_says_so(conn, tmp_path, cli, write):
    apply(conn, tmp_path)
    earn(conn, "C1", 250, D)
    made = load_json(cli("redeem", "C1", "coffee", "--date", "2026-03-10", "--format", "json"))
    rid = made["redemption_id"]
    path = write(
        "till.csv", f"redemption_id,customer_id,reward_id,date\n{rid},C1,ten-off,2026-03-10\n"
    )
    assert cli("import", "redemptions", str(path)).exit_code == 3
    [reject] = load_json(cli("import", "rejects", "--format", "json"))
    assert reject["reason"] == (
        f"conflict: redemption_id '{rid}' was made at the counter with reward_id 'coffee', "
        "this row has 'ten-off'"
    )


def test_import_balances_posts_lots_and_undo_reverses_them(conn, tmp_path, cli, write):
    apply(conn, tmp_path)
    path = write(
        "old.csv",
        """
        customer_id,points,date,expires_on
        C1,300,2026-01-15,2026-06-30
        C1,200,2026-01-15,
        NEW,50,2026-01-15,
        C2,0,2026-01-15,
        C3,-5,2026-01-15,
        C4,10,2026-01-15,2026-01-01
        """,
    )
    result = cli("import", "balances", str(path), "--format", "json")
    assert result.exit_code == 3
    (summary,) = load_json(result)
    iid = summary["import_id"]
    assert (summary["inserted"], summary["rejected"]) == (4, 2)
    rejects = load_json(cli("import", "rejects", "--format", "json"))
    assert [(r["line"], r["field"]) for r in rejects] == [(6, "points"), (7, "expires_on")]
    rows = conn.execute(
        "SELECT customer_id, kind, points, source_type, source_id, available_on, expires_on "
        "FROM ledger ORDER BY entry_id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("C1", "adjust", 300, "balance", f"{iid}:2", "2026-01-15", "2026-06-30"),
        ("C1", "adjust", 200, "balance", f"{iid}:3", "2026-01-15", "2027-01-15"),
        ("NEW", "adjust", 50, "balance", f"{iid}:4", "2026-01-15", "2027-01-15"),
    ]
    assert conn.execute("SELECT 1 FROM customers WHERE customer_id = 'NEW'").fetchone()
    assert ledger.state_of(conn, "C1").available(D) == 500

    # An edited file with a row already there: a duplicate; other points: a conflict.
    edited = write(
        "old2.csv",
        "customer_id,points,date,expires_on\nC1,300,2026-01-15,2026-06-30\nNEW,60,2026-01-15,\n",
    )
    (second,) = load_json(cli("import", "balances", str(edited), "--format", "json"))
    assert (second["duplicates"], second["rejected"], second["inserted"]) == (1, 1, 0)
    conflict = load_json(cli("import", "rejects", "--import", second["import_id"], "-f", "json"))
    assert conflict[0]["reason"] == (
        "conflict: customer_id 'NEW' date '2026-01-15' expires_on '2027-01-15' was imported "
        f"by import {iid} with points '50', this row has '60'"
    )

    undo = cli("import", "undo", str(iid), "--date", "2026-03-01")
    assert undo.exit_code == 0, undo.stderr
    assert ledger.state_of(conn, "C1").available(D) == 0
    reversals = conn.execute(
        "SELECT COUNT(*), SUM(points) FROM ledger "
        "WHERE kind = 'reversal' AND source_type = 'balance'"
    ).fetchone()
    assert tuple(reversals) == (3, -550)


def test_a_balance_too_big_or_dated_to_come_is_rejected_with_its_reason(conn, tmp_path, write):
    apply(conn, tmp_path)
    path = write(
        "old.csv",
        """
        customer_id,points,date
        C1,999999999999,2026-01-15
        C2,1000000000000,2026-01-15
        C3,300,2990-01-01
        """,
    )
    [done] = import_files(conn, "balances", [path], today=dt.date(2026, 12, 7))
    assert (done.inserted, done.rejected) == (1, 2)
    reasons = conn.execute("SELECT line, field, reason FROM rejects ORDER BY line").fetchall()
    assert [tuple(r) for r in reasons] == [
        (3, "points", "'1000000000000' is more points than one opening balance may hold "
                      "(999,999,999,999)"),
        (4, "date", "2990-01-01 is after 2026-12-07: a date to come; date an opening balance "
                    "on the day it was carried over"),
    ]  # fmt: skip


def test_undoing_balances_does_not_reverse_what_already_expired(conn, tmp_path, write):
    """C1's 300 expired on 03-01 (they left the balance then): the undo reverses
    nothing of them. C2 spent 40 of 100 and the other 60 expired: the undo takes
    back the 40 spent, so C2 owes 40 (as a claw-back would). C3 spent 40 of 100
    still held: the undo takes the 100 back and C3 owes 40 too."""
    from loyalty_cli.engine.run import run
    from loyalty_cli.importing import import_files, undo_import

    apply(conn, tmp_path)
    path = write(
        "old.csv",
        """
        customer_id,points,date,expires_on
        C1,300,2026-01-15,2026-03-01
        C2,100,2026-01-15,2026-03-01
        C3,100,2026-01-15,2026-12-31
        """,
    )
    [result] = import_files(conn, "balances", [path])
    for cid in ("C2", "C3"):
        spent = NewEntry(dt.date(2026, 2, 1), cid, "adjust", -40, "adjustment", None)
        ledger.post(conn, [spent])
    run(conn, dt.date(2026, 3, 10))
    undo_import(conn, result.import_id, dt.date(2026, 3, 20))
    reversals = conn.execute(
        "SELECT customer_id, points FROM ledger WHERE kind = 'reversal' ORDER BY 1"
    ).fetchall()
    assert [tuple(r) for r in reversals] == [("C2", -40), ("C3", -100)]
    assert [ledger.balance(conn, c) for c in ("C1", "C2", "C3")] == [0, -40, -40]


def test_balances_and_adjustments_before_the_first_version_fall_under_it(
    conn, tmp_path, cli, write
):
    # The old system's cut-off day is before the program's effective_from: the
    # carried-over points are valued and expire under the program they moved into.
    apply(conn, tmp_path)  # effective 2026-01-01, fixed expiry 12 months, 0.01 per point
    path = write("old.csv", "customer_id,points,date\nQ1,100,2025-12-31\n")
    assert cli("import", "balances", str(path)).exit_code == 0
    adjusted = cli("adjust", "Q1", "5", "--reason", "carried", "--date", "2025-11-30")
    assert adjusted.exit_code == 0, adjusted.stderr
    rows = conn.execute(
        "SELECT points, value, program_version, expires_on FROM ledger ORDER BY entry_id"
    ).fetchall()
    # Their expiry clock starts when the program does (2026-01-01 + 12 months).
    assert [tuple(r) for r in rows] == [(100, 100, 1, "2027-01-01"), (5, 5, 1, "2027-01-01")]
    old = write("older.csv", "customer_id,points,date\nQ2,40,2023-05-01\n")
    assert cli("import", "balances", str(old)).exit_code == 0
    assert cli("run", "--as-of", "2026-12-31").exit_code == 0
    assert conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'expire'").fetchone()[0] == 0
    assert cli("run", "--as-of", "2027-01-01").exit_code == 0
    expired = conn.execute("SELECT SUM(points) FROM ledger WHERE kind = 'expire'").fetchone()[0]
    assert expired == -145


def test_balances_and_adjustments_wait_for_a_program(conn, cli, write):
    """Their entries are valued and expire under the program: made before one, they
    were worth 0.00 and never expired, whatever program came after."""
    customer(conn, "C1")
    row = "customer_id,points,date\nC1,100,2025-12-31\n"
    result = cli("import", "balances", str(write("b1.csv", row)))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: no program applied yet: an opening balance is valued and expires under the "
        "program; run `loyalty program apply FILE` first\n"
    )
    adjusted = cli("adjust", "C1", "5", "--reason", "x", "--date", "2025-12-31")
    assert adjusted.exit_code == 1 and "an adjustment is valued" in adjusted.stderr
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0


def test_a_balance_stored_without_expiry_is_a_duplicate_of_the_same_row(conn, tmp_path, cli, write):
    # Imported before any program by an older loyalty (no expiry to work out), then
    # again once the program is applied: the same row, not a second opening balance.
    row = "customer_id,points,date\nC1,100,2025-12-31\n"
    with db.transaction(conn):
        conn.execute("INSERT INTO imports (import_id, kind, file, sha256, started_at) "
                     "VALUES (1, 'balances', 'b1.csv', 'x', '2025-12-31T00:00:00')")  # fmt: skip
        ledger.post(conn, [NewEntry(date=dt.date(2025, 12, 31), customer_id="C1", kind="adjust",
                                    points=100, source_type="balance", source_id="1:2",
                                    available_on=dt.date(2025, 12, 31))])  # fmt: skip
    apply(conn, tmp_path)
    again = cli(
        "import", "balances", str(write("b2.csv", row + "C2,50,2025-12-31\n")), "-f", "json"
    )
    (summary,) = load_json(again)
    assert (summary["inserted"], summary["duplicates"]) == (1, 1)
    assert ledger.balance(conn, "C1") == 100
