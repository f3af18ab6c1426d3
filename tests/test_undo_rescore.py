"""`import undo` after `run`: points reversed, receipts forgotten, re-import scores once."""

import datetime as dt

from loyalty_cli import ledger
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
