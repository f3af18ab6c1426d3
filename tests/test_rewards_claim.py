"""A claimed anonymous receipt is scored for the member by the next run, once."""

from __future__ import annotations

from test_rewards_support import apply, customer


def test_claim_then_run_scores_the_receipt_once(conn, tmp_path, cli, write):
    apply(conn, tmp_path)
    customer(conn, "C1")
    receipts = write(
        "day.csv",
        """
        transaction_id,customer_id,date,amount
        T1,,2026-03-01,42.00
        T2,C1,2026-03-01,10.00
        """,
    )
    assert cli("import", "purchases", str(receipts)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-02").exit_code == 0
    earned = "SELECT source_id, points FROM ledger WHERE kind = 'earn' ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(earned)] == [("T2", 10)]

    result = cli("claim", "T1", "C1", "--date", "2026-03-05")
    assert result.exit_code == 0, result.stderr
    for _ in range(2):
        assert cli("run", "--as-of", "2026-03-05").exit_code == 0
    assert [tuple(r) for r in conn.execute(earned)] == [("T2", 10), ("T1", 42)]
