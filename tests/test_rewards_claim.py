"""A claimed anonymous receipt is scored for the member by the next run, once."""

from __future__ import annotations

import datetime as dt
import json

from loyalty_cli import ledger
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

    early = cli("claim", "T1", "C1", "--date", "2026-02-28")
    assert (early.exit_code, early.stderr) == (
        2,
        "Error: the claim's date 2026-02-28 is before receipt T1's date 2026-03-01: a "
        "receipt is claimed on or after the day it was made\n",
    )
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
    result = cli("claim", "T1", "C1", "--date", "2026-03-05")
    assert result.exit_code == 0, result.stderr
    for _ in range(2):
        assert cli("run", "--as-of", "2026-03-05").exit_code == 0
    assert [tuple(r) for r in conn.execute(earned)] == [("T2", 10), ("T1", 42)]


CLAWED = "SELECT customer_id, source_id, points FROM ledger WHERE kind = 'clawback' ORDER BY 2"


def test_an_anonymous_refund_of_a_members_receipt_claws_back_from_that_member(
    conn, tmp_path, cli, write
):
    """Returned without the card: the refund names the receipt, in this file or an
    earlier one, and the points come off the member who earned them."""
    apply(conn, tmp_path)
    customer(conn, "C1")
    first = write(
        "day1.csv",
        """
        transaction_id,customer_id,date,amount,refund_of
        T1,C1,2026-03-01,100.00,
        R1,,2026-03-02,-40.00,T1
        T2,C1,2026-03-01,50.00,
        """,
    )
    later = write(
        "day2.csv",
        """
        transaction_id,customer_id,date,amount,refund_of
        R2,,2026-03-03,-50.00,T2
        R9,,2026-03-03,-5.00,UNKNOWN
        """,
    )
    assert cli("import", "purchases", str(first)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-02").exit_code == 0
    assert cli("import", "purchases", str(later)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-05").exit_code == 0
    assert [tuple(r) for r in conn.execute(CLAWED)] == [("C1", "R1", -40), ("C1", "R2", -50)]
    assert cli("claim", "R1", "C2").exit_code == 1  # already the member's


def test_a_claimed_receipt_takes_its_refunds_and_nobody_else_can_claim_them(
    conn, tmp_path, cli, write
):
    apply(conn, tmp_path)
    customer(conn, "C1")
    customer(conn, "C2")
    day = write(
        "day.csv",
        """
        transaction_id,customer_id,date,amount,refund_of
        T1,,2026-03-01,100.00,
        R1,,2026-03-02,-40.00,T1
        """,
    )
    assert cli("import", "purchases", str(day)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-03").exit_code == 0
    refused = cli("claim", "R1", "C2")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == (
        "Error: receipt R1 refunds T1, which no member holds; claim T1 and its refunds go with it"
    )
    claimed = cli("claim", "T1", "C1", "--date", "2026-03-04", "--format", "json")
    assert claimed.exit_code == 0, claimed.stderr
    assert json.loads(claimed.stdout)["refunds"] == ["R1"]
    assert cli("run", "--as-of", "2026-03-04").exit_code == 0
    assert [tuple(r) for r in conn.execute(CLAWED)] == [("C1", "R1", -40)]
    assert cli("claim", "R1", "C2").exit_code == 1
    # A refund arriving after the claim follows the receipt too.
    late = write(
        "late.csv", "transaction_id,customer_id,date,amount,refund_of\nR2,,2026-03-05,-10.00,T1\n"
    )
    assert cli("import", "purchases", str(late)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-06").exit_code == 0
    assert [tuple(r) for r in conn.execute(CLAWED)] == [("C1", "R1", -40), ("C1", "R2", -10)]


def test_a_refund_of_another_members_receipt_cannot_be_claimed(conn, tmp_path, cli):
    """Rows written before refunds followed their receipt (no import since): the
    claim of the refund by someone else is refused, by the member's own works."""
    apply(conn, tmp_path)
    customer(conn, "C1")
    customer(conn, "C2")
    conn.executemany(
        "INSERT INTO purchases (transaction_id, customer_id, date, amount, refund_of, "
        "import_id) VALUES (?, ?, ?, ?, ?, 1)",
        [("T1", "C1", "2026-03-01", 10000, None), ("R1", None, "2026-03-02", -4000, "T1")],
    )
    refused = cli("claim", "R1", "C2")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "Error: receipt R1 refunds T1, which belongs to customer C1"
    assert cli("claim", "R1", "C1").exit_code == 0
    assert cli("run", "--as-of", "2026-03-05").exit_code == 0
    assert [tuple(r) for r in conn.execute(CLAWED)] == [("C1", "R1", -40)]


def _undo_shop(cli, conn, tmp_path, write, run_between: bool):
    apply(conn, tmp_path)
    customer(conn, "C1")
    customer(conn, "C2")
    head = "transaction_id,customer_id,date,amount,refund_of\n"
    wrong = write("wrong.csv", head + "T1,C1,2026-03-01,100.00,\n")
    refund = write("refund.csv", head + "R1,,2026-03-05,-40.00,T1\n")
    fixed = write("fixed.csv", head + "T1,C2,2026-03-01,100.00,\n")
    assert cli("import", "purchases", str(wrong)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-02").exit_code == 0
    assert cli("import", "purchases", str(refund)).exit_code == 0
    if run_between:
        assert cli("run", "--as-of", "2026-03-05").exit_code == 0
    wrong_id = conn.execute("SELECT MIN(import_id) FROM purchases").fetchone()[0]
    assert cli("import", "undo", str(wrong_id), "--date", "2026-03-06").exit_code == 0
    assert cli("import", "purchases", str(fixed)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-10").exit_code == 0
    return {c: ledger.balance(conn, c) for c in ("C1", "C2")}


def test_a_refund_not_scored_yet_follows_its_receipt_to_the_right_member(
    conn, tmp_path, cli, write
):
    """T1 was booked to C1 by mistake, undone and imported again for C2: the refund
    R1 (anonymous, not scored yet) now claws back from C2."""
    assert _undo_shop(cli, conn, tmp_path, write, run_between=False) == {"C1": 0, "C2": 60}
    assert (
        conn.execute("SELECT customer_id FROM claims WHERE transaction_id = 'R1'").fetchone()[0]
        == "C2"
    )


def test_undo_does_not_take_back_what_a_refund_already_clawed_back(conn, tmp_path, cli, write):
    """R1 had clawed 40 of T1's 100 back from C1 before T1 was undone: the undo
    reverses the 60 left, so C1 ends at 0 (not -40). R1 stays scored for C1."""
    assert _undo_shop(cli, conn, tmp_path, write, run_between=True) == {"C1": 0, "C2": 100}


def test_claim_lists_only_the_refunds_of_the_receipt_it_claims(conn, tmp_path, cli):
    """A refund left unattached by an older release is attached by the next claim,
    but only the claimed receipt's own refunds are listed."""
    apply(conn, tmp_path)
    customer(conn, "C1")
    conn.executemany(
        "INSERT INTO purchases (transaction_id, customer_id, date, amount, refund_of, "
        "import_id) VALUES (?, ?, ?, ?, ?, 1)",
        [
            ("T1", "C1", "2026-03-01", 10000, None),
            ("R1", None, "2026-03-02", -4000, "T1"),
            ("T5", None, "2026-03-02", 2000, None),
        ],
    )
    claimed = cli("claim", "T5", "C1", "--format", "json")
    assert claimed.exit_code == 0, claimed.stderr
    assert json.loads(claimed.stdout)["refunds"] == []
    assert (
        conn.execute("SELECT customer_id FROM claims WHERE transaction_id = 'R1'").fetchone()[0]
        == "C1"
    )


def test_a_claim_lapses_when_the_till_sends_its_receipt_again_with_a_customer(
    conn, tmp_path, cli, write
):
    apply(conn, tmp_path)
    customer(conn, "J")
    customer(conn, "B")
    anonymous = write("a.csv", "transaction_id,customer_id,date,amount\nX1,,2026-03-01,40.00\n")
    named = write("b.csv", "transaction_id,customer_id,date,amount\nX1,B,2026-03-01,40.00\n")
    assert cli("import", "purchases", anonymous).exit_code == 0
    assert cli("claim", "X1", "J", "--date", "2026-03-02").exit_code == 0
    assert cli("run", "--as-of", "2026-03-10").exit_code == 0
    (iid,) = conn.execute("SELECT import_id FROM imports WHERE file LIKE '%a.csv'").fetchone()
    assert cli("import", "undo", str(iid), "--date", "2026-03-10").exit_code == 0
    assert cli("import", "purchases", named).exit_code == 0
    assert cli("run", "--as-of", "2026-03-31").exit_code == 0
    assert ledger.state_of(conn, "J").available(dt.date(2026, 3, 31)) == 0
    assert ledger.state_of(conn, "B").available(dt.date(2026, 3, 31)) == 40
    refused = cli("claim", "X1", "J")
    assert refused.stderr == "Error: receipt X1 already belongs to customer B\n"


def test_a_claim_made_after_a_lapsed_one_is_scored(conn, tmp_path, cli, write):
    """The lapsed claim's rowid is not handed out again (the run finds new claims
    by rowid: one reusing it would never be scored)."""
    apply(conn, tmp_path)
    for cid in ("M1", "M2"):
        customer(conn, cid)
    head = "transaction_id,customer_id,date,amount\n"
    first = write("a1.csv", head + "T1,,2026-03-01,10.00\nT2,,2026-03-01,25.00\n")
    again = write("a2.csv", head + "T1,M2,2026-03-01,10.00\nT2,,2026-03-01,25.00\n")
    assert cli("import", "purchases", first).exit_code == 0
    assert cli("claim", "T1", "M1", "--date", "2026-03-02").exit_code == 0
    assert cli("run", "--as-of", "2026-03-10").exit_code == 0
    (iid,) = conn.execute("SELECT import_id FROM imports WHERE file LIKE '%a1.csv'").fetchone()
    assert cli("import", "undo", str(iid), "--date", "2026-03-10").exit_code == 0
    assert cli("import", "purchases", again).exit_code == 0
    assert conn.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # lapsed
    assert cli("run", "--as-of", "2026-03-12").exit_code == 0
    assert cli("claim", "T2", "M1", "--date", "2026-03-12").exit_code == 0
    assert cli("run", "--as-of", "2026-03-20").exit_code == 0
    assert ledger.state_of(conn, "M1").available(dt.date(2026, 3, 20)) == 25
    assert ledger.state_of(conn, "M2").available(dt.date(2026, 3, 20)) == 10
