"""`import undo` after `run`: points reversed, receipts forgotten, re-import scores once."""

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_cli import db, ledger
from loyalty_cli.checks import check_database
from loyalty_cli.engine.run import run
from loyalty_cli.importing import import_files, undo_import
from loyalty_cli.program import apply_program

PROGRAM = """
program: Test
currency: EUR
earn: {per_currency_unit: 1, rounding: floor}
"""


def test_undo_then_reimport_scores_the_receipts_once(conn, write):
    apply_program(conn, write("p.yaml", PROGRAM))
    csv = write(
        "day.csv",
        """
        transaction_id,customer_id,date,amount
        T1,C1,2026-03-01,12.50
        T2,C1,2026-03-02,30.00
        """,
    )
    [first] = import_files(conn, "purchases", [csv])
    run(conn, dt.date(2026, 3, 31))
    assert ledger.balance(conn, "C1") == 42

    undo_import(conn, first.import_id, dt.date(2026, 4, 1))
    assert ledger.balance(conn, "C1") == 0
    assert conn.execute("SELECT COUNT(*) FROM scored_receipts").fetchone()[0] == 0

    [again] = import_files(conn, "purchases", [csv])
    assert again.inserted == 2 and not again.skipped_file
    run(conn, dt.date(2026, 4, 1))
    run(conn, dt.date(2026, 4, 2))
    assert ledger.balance(conn, "C1") == 42
    kinds = [k for (k,) in conn.execute("SELECT kind FROM ledger ORDER BY entry_id")]
    assert kinds == ["earn", "earn", "reversal", "reversal", "earn", "earn"]


TIERED = """
program: Test
currency: EUR
earn: {per_currency_unit: 1, rounding: floor}
tiers:
  basis: spend
  window: lifetime
  levels:
    - {id: bronze, name: Bronze, min: 0}
    - {id: silver, name: Silver, min: 120, multiplier: 2}
"""


def _split_receipt(conn, write, program=PROGRAM):
    """T1 split across two files (line 1 in a.csv, line 2 in b.csv), then T2 later."""
    apply_program(conn, write("p.yaml", program))
    head = "transaction_id,line_no,customer_id,date,amount\n"
    a = write("a.csv", head + "T1,1,C1,2026-03-01,100.00\n")
    b = write("b.csv", head + "T1,2,C1,2026-03-01,50.00\nT9,1,C2,2026-03-01,20.00\n")
    c = write("c.csv", head + "T2,1,C1,2026-03-05,10.00\n")
    ids = [r.import_id for r in import_files(conn, "purchases", [a, b])]
    return ids, c


def test_undoing_part_of_a_receipt_scores_what_is_left(conn, write):
    (_, second), _ = _split_receipt(conn, write)
    run(conn, dt.date(2026, 3, 2))
    assert ledger.balance(conn, "C1") == 150
    undo_import(conn, second, dt.date(2026, 3, 3))
    assert ledger.balance(conn, "C1") == 0 and ledger.balance(conn, "C2") == 0
    queued = conn.execute(
        "SELECT transaction_id, queued_on FROM rescore_receipts ORDER BY transaction_id"
    ).fetchall()
    # T1's line 1 is scored afresh; T9 has no line left, its customer is revisited
    assert [tuple(r) for r in queued] == [("T1", "2026-03-03"), ("T9", "2026-03-03")]

    run(conn, dt.date(2026, 3, 4))
    assert ledger.balance(conn, "C1") == 100  # line 1 only
    assert ledger.balance(conn, "C2") == 0
    rows = conn.execute("SELECT date, kind, points, source_id FROM ledger ORDER BY entry_id")
    assert [tuple(r) for r in rows][-3:] == [
        ("2026-03-03", "reversal", -150, "T1"),
        ("2026-03-03", "reversal", -20, "T9"),
        ("2026-03-01", "earn", 100, "T1"),
    ]
    scored = conn.execute("SELECT amount, lines, points FROM scored_receipts").fetchall()
    assert [tuple(r) for r in scored] == [(10000, 1, 100)]
    assert conn.execute("SELECT COUNT(*) FROM rescore_receipts").fetchone()[0] == 0
    run(conn, dt.date(2026, 3, 5))
    assert ledger.balance(conn, "C1") == 100  # scored once


def test_after_a_split_undo_tiers_count_what_is_left(conn, write):
    """Lifetime spend 150 made C1 silver (x2 from the next receipt); with only
    100 left it never was: T2 earns at bronze, as in a shop that never had line 2."""
    (_, second), later = _split_receipt(conn, write, TIERED)
    run(conn, dt.date(2026, 3, 2))
    undo_import(conn, second, dt.date(2026, 3, 3))
    import_files(conn, "purchases", [later])
    run(conn, dt.date(2026, 3, 6))
    assert ledger.balance(conn, "C1") == 110
    earned = conn.execute(
        "SELECT tier, points FROM scored_receipts WHERE transaction_id = 'T2'"
    ).fetchone()
    assert tuple(earned) == ("bronze", 10)


def test_a_split_receipt_dated_after_the_run_waits_in_the_queue(conn, write):
    (_, second), _ = _split_receipt(conn, write)
    undo_import(conn, second, dt.date(2026, 2, 20))  # before any run
    run(conn, dt.date(2026, 2, 28))
    assert conn.execute("SELECT transaction_id FROM rescore_receipts").fetchone()[0] == "T1"
    run(conn, dt.date(2026, 3, 2))
    assert ledger.balance(conn, "C1") == 100
    assert conn.execute("SELECT COUNT(*) FROM rescore_receipts").fetchone()[0] == 0


def test_undoing_the_rest_of_a_split_receipt_reverses_what_it_earned_again(conn, write):
    (first, second), _ = _split_receipt(conn, write)
    run(conn, dt.date(2026, 3, 2))
    undo_import(conn, second, dt.date(2026, 3, 3))
    run(conn, dt.date(2026, 3, 4))
    undo_import(conn, first, dt.date(2026, 3, 5))
    run(conn, dt.date(2026, 3, 6))
    assert ledger.balance(conn, "C1") == 0
    assert conn.execute("SELECT COUNT(*) FROM scored_receipts").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM rescore_receipts").fetchone()[0] == 0


line_st = st.tuples(
    st.sampled_from(["C1", "C2", "C3"]),
    st.integers(0, 5),  # receipt number of that customer
    st.integers(1, 20),  # day of March
    st.integers(1, 9999),  # amount in cents
    st.booleans(),  # in the file that is undone
)


def _shop(directory: Path, files: dict[str, list[str]]) -> tuple[db.sqlite3.Connection, list]:
    conn = db.connect(directory / "shop.db")
    (directory / "p.yaml").write_text(PROGRAM)
    apply_program(conn, directory / "p.yaml")
    head = "transaction_id,line_no,customer_id,date,amount\n"
    paths = []
    for name, rows in files.items():
        path = directory / name
        path.write_text(head + "".join(rows))
        paths.append(path)
    return conn, import_files(conn, "purchases", paths)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line_st, max_size=12), run_between=st.booleans())
def test_undoing_a_file_gives_the_balances_of_never_importing_it(lines, run_between):
    """Lines of random receipts spread over two files; undoing the second (with or
    without a run in between) leaves every customer with the points of the first
    file's lines alone (flat earn rate, so no tier effect across receipts)."""
    kept: list[str] = []
    undone: list[str] = []
    date_of: dict[str, int] = {}
    for n, (cid, receipt, day, amount, second) in enumerate(lines):
        tid = f"{cid}-{receipt}"
        day = date_of.setdefault(tid, day)  # every line of a receipt has its date
        row = f"{tid},{n + 1},{cid},2026-03-{day:02},{amount // 100}.{amount % 100:02}\n"
        (undone if second else kept).append(row)
    end = dt.date(2026, 3, 31)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        conn, results = _shop(Path(a), {"a.csv": kept, "b.csv": undone})
        if run_between:
            run(conn, dt.date(2026, 3, 10))
        undo_import(conn, results[1].import_id, dt.date(2026, 3, 11))
        run(conn, end)
        run(conn, end)  # idempotent
        alone, _ = _shop(Path(b), {"a.csv": kept})
        run(alone, end)
        for cid in ("C1", "C2", "C3"):
            assert ledger.balance(conn, cid) == ledger.balance(alone, cid), cid
        scored = "SELECT transaction_id, amount, lines, points FROM scored_receipts ORDER BY 1"
        assert conn.execute(scored).fetchall() == alone.execute(scored).fetchall()
        # `loyalty check`'s invariants hold on both (no false alarm after an undo).
        assert check_database(conn) == [] and check_database(alone) == []
        conn.close()
        alone.close()


def test_undo_does_not_take_back_what_an_inactivity_expiry_already_took(conn, write):
    """The expiry names no lot: what it took from the undone receipt's lots is found
    by replaying the ledger, and not reversed a second time."""
    apply_program(conn, write("p.yaml", PROGRAM + "expiry: {policy: inactivity, months: 1}\n"))
    old = write("old.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,100.00\n")
    new = write("new.csv", "transaction_id,customer_id,date,amount\nT2,C1,2026-03-01,30.00\n")
    [first] = import_files(conn, "purchases", [old])
    import_files(conn, "purchases", [new])
    run(conn, dt.date(2026, 3, 5))
    kinds = "SELECT kind, points FROM ledger ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(kinds)] == [
        ("earn", 100),
        ("expire", -100),
        ("earn", 30),
    ]
    undo_import(conn, first.import_id, dt.date(2026, 3, 6))
    # T1's 100 points all expired on 2026-02-10: nothing is left to reverse.
    assert ledger.balance(conn, "C1") == 30
    assert conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'reversal'").fetchone()[0] == 0


def test_an_undo_may_not_be_dated_before_the_points_it_reverses(conn, write):
    """Nothing is back-dated (DESIGN.md): as a cancellation may not precede its
    redemption, an undo may not precede the entries it reverses; nothing changes."""
    import pytest

    from loyalty_cli.errors import ConflictError

    apply_program(conn, write("p.yaml", PROGRAM))
    csv = write("a.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-03-10,10.00\n")
    [first] = import_files(conn, "purchases", [csv])
    run(conn, dt.date(2026, 3, 20))
    before = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    with pytest.raises(ConflictError, match=r"posted up to 2026-03-10; .* \(2026-03-01\)"):
        undo_import(conn, first.import_id, dt.date(2026, 3, 1))
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == before
    assert conn.execute("SELECT COUNT(*) FROM purchases WHERE undone = 1").fetchone()[0] == 0
    undo_import(conn, first.import_id, dt.date(2026, 3, 10))  # the same day is fine
    assert ledger.balance(conn, "C1") == 0

    balances = write("b.csv", "customer_id,points,date\nC2,50,2026-04-05\n")
    [opening] = import_files(conn, "balances", [balances])
    with pytest.raises(ConflictError, match="posted up to 2026-04-05"):
        undo_import(conn, opening.import_id, dt.date(2026, 4, 4))
    # rows dated after the undo but never scored have nothing to reverse
    later = write("c.csv", "transaction_id,customer_id,date,amount\nT9,C1,2026-06-01,10.00\n")
    [unscored] = import_files(conn, "purchases", [later])
    undo_import(conn, unscored.import_id, dt.date(2026, 5, 1))


def test_an_undo_date_counts_only_the_undone_imports_own_entries(conn, write):
    """After undo and a corrected re-import of the same receipt, undoing the second
    import looks at its own earn, not at the first import's earn and reversal."""
    apply_program(conn, write("p.yaml", PROGRAM))
    head = "transaction_id,customer_id,date,amount\n"
    [first] = import_files(conn, "purchases", [write("a.csv", head + "T1,C1,2026-01-10,10.00\n")])
    run(conn, dt.date(2026, 1, 31))
    undo_import(conn, first.import_id, dt.date(2026, 3, 1))
    [again] = import_files(conn, "purchases", [write("b.csv", head + "T1,C1,2026-01-10,12.00\n")])
    run(conn, dt.date(2026, 3, 31))
    assert ledger.balance(conn, "C1") == 12
    undo_import(conn, again.import_id, dt.date(2026, 2, 15))
    assert ledger.balance(conn, "C1") == 0
