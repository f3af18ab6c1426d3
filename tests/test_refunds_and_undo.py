"""Refunds and `import undo` agree on what a refund took back for its receipt:
the claw-backs of the refunds naming it, whichever lots paid them, net of undo.
Each case is one member (C1) and imports made and undone in order."""

from __future__ import annotations

import datetime as dt
from itertools import count
from pathlib import Path

import pytest

from loyalty_cli import ledger
from loyalty_cli.engine.run import run
from loyalty_cli.importing import import_files, undo_import
from loyalty_cli.program import apply_program
from loyalty_cli.rewards import redeem

PROGRAM = """\
program: T
currency: EUR
effective_from: 2025-01-01
earn: {per_currency_unit: 1, rounding: floor}
pending_days: 14
rewards:
  - {id: coffee, name: Coffee, cost: 100, value: 3.50}
"""


class Shop:
    def __init__(self, conn, folder: Path, extra: str = "") -> None:
        self.conn, self.folder, self.n = conn, folder, count()
        (folder / "p.yaml").write_text(PROGRAM + extra)
        apply_program(conn, folder / "p.yaml")

    def rows(self, *rows: str) -> int:
        """Import purchase rows 'tid,date,amount,refund_of[,line_no]'; the import id."""
        path = self.folder / f"f{next(self.n)}.csv"
        lines = [r if r.count(",") >= 4 else r + ",1" for r in rows]
        lines = [r if r.count(",") == 5 else r + "," for r in lines]
        body = "".join(f"{r.split(',')[0]},C1,{r.split(',', 1)[1]}\n" for r in lines)
        path.write_text(
            "transaction_id,customer_id,date,amount,refund_of,line_no,category\n" + body
        )
        [result] = import_files(self.conn, "purchases", [path])
        assert result.rejected == 0
        return result.import_id

    def run(self, day: str) -> None:
        run(self.conn, dt.date.fromisoformat(day))

    def undo(self, import_id: int, day: str) -> None:
        undo_import(self.conn, import_id, dt.date.fromisoformat(day))

    def balance(self) -> int:
        return ledger.balance(self.conn, "C1")

    def took(self, refund: str) -> int:
        return -self.conn.execute(
            "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE kind = 'clawback' AND source_id = ?",
            (refund,),
        ).fetchone()[0]


@pytest.fixture(params=["by customer", "one pass"])
def shop(conn, tmp_path, request, monkeypatch) -> Shop:
    # An undo reads the refunds of a few customers by customer, of many in one pass.
    if request.param == "one pass":
        monkeypatch.setattr(ledger, "_FEW_CUSTOMERS", 0)
    return Shop(conn, tmp_path)


def test_undoing_a_receipt_spares_what_its_refund_took_from_another_lot(shop):
    # T1's 100 bought a coffee; its refund U1 took 100 from T2's pending lot. T1
    # and U1 net to nothing, so undoing T1 reverses nothing: C1 keeps T2's 0.
    t1 = shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-19")
    redeem(shop.conn, "C1", "coffee", dt.date(2026, 1, 20))
    shop.rows("T2,2026-02-01,100.00,", "U1,2026-02-02,-100.00,T1")
    shop.run("2026-02-02")
    shop.undo(t1, "2026-02-03")
    assert shop.balance() == 0


def test_undoing_the_receipt_whose_lot_paid_another_receipts_refund(shop):
    # Same history; T2 is undone instead: U1's 100 were T1's, so T2's 100 go.
    shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-19")
    redeem(shop.conn, "C1", "coffee", dt.date(2026, 1, 20))
    t2 = shop.rows("T2,2026-02-01,100.00,")
    shop.rows("U1,2026-02-02,-100.00,T1")
    shop.run("2026-02-02")
    shop.undo(t2, "2026-02-03")
    assert shop.balance() == -100


def test_a_refund_without_refund_of_does_not_shrink_a_receipts_undo(shop):
    # U0 names no receipt: it took 40 at the base rate (from T1's pending lot).
    # Without T1, C1 is left with U0's -40, as with no pending days.
    t1 = shop.rows("T1,2026-01-01,100.00,")
    shop.rows("U0,2026-01-02,-40.00,")
    shop.run("2026-01-31")
    shop.undo(t1, "2026-02-01")
    assert shop.balance() == -40


def test_undoing_a_refund_then_its_receipt_leaves_nothing(shop):
    t1 = shop.rows("T1,2026-01-01,100.00,")
    u1 = shop.rows("U1,2026-01-10,-100.00,T1")
    shop.run("2026-01-31")
    shop.undo(u1, "2026-02-01")
    shop.undo(t1, "2026-02-02")
    assert shop.balance() == 0


def test_a_refund_imported_again_for_another_receipt_no_longer_counts_for_the_first(shop):
    shop.rows("T1,2026-01-01,100.00,", "T2,2026-01-01,100.00,")
    u1 = shop.rows("U1,2026-01-05,-100.00,T1")
    shop.run("2026-01-06")
    shop.undo(u1, "2026-01-07")
    shop.rows("U1,2026-01-05,-100.00,T2")
    shop.run("2026-01-08")
    shop.rows("U2,2026-01-10,-100.00,T1")
    shop.run("2026-01-31")
    assert shop.took("U2") == 100
    assert shop.balance() == 0


def test_a_receipt_imported_again_after_an_undo_is_taken_back_once(shop):
    t1 = shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-05")
    shop.undo(t1, "2026-01-06")
    shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-07")
    shop.rows("U1,2026-01-10,-100.00,T1")
    shop.run("2026-01-31")
    assert shop.took("U1") == 100
    assert shop.balance() == 0


def test_a_corrected_receipt_is_taken_back_as_corrected(shop):
    # T1 was 100.00, then a second line of -40.00 corrected it to 60 points.
    shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-05")
    shop.rows("T1,2026-01-01,-40.00,,2")
    shop.run("2026-01-06")
    shop.rows("U1,2026-01-10,-60.00,T1")
    shop.run("2026-01-31")
    assert shop.took("U1") == 60
    assert shop.balance() == 0


def test_undoing_a_receipt_and_its_refund_in_one_import_leaves_nothing(shop):
    both = shop.rows("T1,2026-01-01,100.00,", "U1,2026-01-10,-40.00,T1")
    shop.run("2026-01-31")
    shop.undo(both, "2026-02-01")
    assert shop.balance() == 0


def test_a_refund_of_a_receipt_imported_again_takes_from_its_new_lot(shop):
    # T1's first lot was emptied by the undo; U1 (after the return window) takes
    # from T1's new lot, not first-in-first-out from T0's.
    shop.rows("T0,2026-01-01,100.00,")
    t1 = shop.rows("T1,2026-01-02,100.00,")
    shop.run("2026-01-05")
    shop.undo(t1, "2026-01-06")
    shop.rows("T1,2026-01-02,100.00,")
    shop.rows("U1,2026-01-20,-50.00,T1")
    shop.run("2026-01-31")
    aimed = shop.conn.execute(
        "SELECT l.source_id, l.entry_id > r.entry_id FROM ledger c "
        "JOIN ledger l ON l.entry_id = c.lot_id "
        "JOIN ledger r ON r.kind = 'reversal' AND r.source_id = 'T1' "
        "WHERE c.kind = 'clawback'"
    ).fetchall()
    assert [tuple(r) for r in aimed] == [("T1", 1)]  # T1's lot made after the undo
    assert shop.balance() == 150


@pytest.mark.parametrize(("refund", "left"), [("-30.00", 0), ("-10.00", 20)])
def test_a_receipt_scored_again_after_an_undo_keeps_what_its_refund_took(shop, refund, left):
    """T1's late line is undone: T1 is scored again from its first line. The refund
    U1 that stands took its points from T1's first earn, which the undo could not
    reverse: the new earn is net of it, as in a shop that never had the late line
    (a fully refunded receipt got its 30 points back)."""
    shop.rows("T1,2026-01-05,30.00,")
    shop.run("2026-01-05")
    shop.rows(f"U1,2026-01-06,{refund},T1")
    shop.run("2026-01-06")
    late = shop.rows("T1,2026-01-05,10.00,,2")
    shop.run("2026-01-07")
    shop.undo(late, "2026-01-08")
    shop.run("2026-02-28")
    assert shop.balance() == left
    shop.run("2026-03-01")  # and only once
    assert shop.balance() == left


@pytest.mark.parametrize("run_between", [False, True])
def test_a_refunded_receipt_imported_again_after_its_undo_earns_net_of_the_refund(
    shop, run_between
):
    t1 = shop.rows("T1,2026-01-05,30.00,")
    shop.rows("U1,2026-01-06,-30.00,T1")
    shop.run("2026-01-06")
    shop.undo(t1, "2026-01-07")
    if run_between:
        shop.run("2026-01-08")
    shop.rows("T1,2026-01-05,30.00,")
    shop.run("2026-01-31")
    assert shop.balance() == 0  # T1 and its refund U1, as in a fresh shop


def test_a_spent_receipt_refunded_in_full_earns_nothing_when_imported_again(shop):
    """The receipt's lot was spent, so its refund's claw-back is aimed at no lot; it
    still stands against the receipt, which earned 100 again after its undo."""
    t1 = shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-16")
    redeem(shop.conn, "C1", "coffee", dt.date(2026, 1, 16))
    shop.rows("U1,2026-01-17,-100.00,T1")
    shop.run("2026-01-17")
    assert shop.balance() == -100
    shop.undo(t1, "2026-01-18")
    shop.rows("T1,2026-01-01,100.00,")
    shop.run("2026-01-31")
    assert shop.balance() == -100  # the coffee stays paid for by points taken back


RULES = """rules:
  - {id: big-basket, when: {min_amount: 100.00}, bonus: 50}
  - {id: pastry-double, when: {category: pastry}, multiplier: 2}
"""


@pytest.mark.parametrize(
    ("first", "again", "refund", "left"),
    [
        # 100 + the 50 bonus, all taken back by a full refund: nothing comes back.
        ("T1,2026-01-05,100.00,,1,bread", "T1,2026-01-05,100.00,,1,bread", "-100.00", 0),
        # 60 as pastry (10.00 refunded took 20); corrected to bread: 30 less 10.
        ("T1,2026-01-05,30.00,,1,pastry", "T1,2026-01-05,30.00,,1,bread", "-10.00", 20),
        # And the other way: 30 as bread (10 taken); corrected to pastry: 60 less 20.
        ("T1,2026-01-05,30.00,,1,bread", "T1,2026-01-05,30.00,,1,pastry", "-10.00", 40),
    ],
)
def test_a_corrected_receipt_earns_what_a_fresh_shop_gives_it_beside_its_refund(
    conn, tmp_path, first, again, refund, left
):
    """The standing refund's claw-back of the receipt as now scored, not the one it
    made of the first scoring: a bonus came back whole, a changed rate was off."""
    shop = Shop(conn, tmp_path, RULES)
    t1 = shop.rows(first)
    shop.run("2026-01-05")
    shop.rows(f"U1,2026-01-06,{refund},T1")
    shop.run("2026-01-06")
    shop.undo(t1, "2026-01-07")
    shop.rows(again)
    shop.run("2026-02-28")
    assert shop.balance() == left


def test_undoing_a_receipt_then_its_refund_gives_nothing_back(shop):
    """The receipt's undo spared what the refund took (the two netted to nothing);
    the refund's undo then gave those points back, from a receipt that is gone.
    The other order already left nothing."""
    t1 = shop.rows("T1,2026-01-01,30.00,")
    u1 = shop.rows("U1,2026-01-10,-10.00,T1")
    shop.run("2026-01-31")
    shop.undo(t1, "2026-02-01")
    shop.undo(u1, "2026-02-02")
    assert shop.balance() == 0
    shop.rows("T1,2026-01-01,30.00,")  # and the receipt again: as a fresh shop
    shop.run("2026-02-28")
    assert shop.balance() == 30


def test_a_refund_undone_before_its_receipt_imported_again_is_scored_gives_nothing_back(shop):
    """T1 undone, imported again, then its refund undone before any run: T1 is not
    scored again yet (it will be, in full: the refund is gone), so the refund's
    undo gave back what it took of the first T1 too: 40 for a 30.00 receipt."""
    t1 = shop.rows("T1,2026-01-05,30.00,")
    u1 = shop.rows("U1,2026-01-06,-10.00,T1")
    shop.run("2026-01-31")
    shop.undo(t1, "2026-02-01")
    shop.rows("T1,2026-01-05,30.00,")
    shop.undo(u1, "2026-02-02")
    shop.run("2026-02-28")
    assert shop.balance() == 30


def test_undoing_a_refund_of_two_partners_receipts_withholds_the_gone_ones_part(conn, tmp_path):
    """U1 took 10 of T1 (cafe) and 20 of T2 (bakery); T1 is undone first. Undoing U1
    gives the bakery its 20 back and the cafe nothing (the withheld part came off
    whichever partner sorted first)."""
    program = PROGRAM + (
        "partners:\n  - {id: zcafe, name: Cafe, stores: [S1]}\n"
        "  - {id: abakery, name: Bakery, stores: [B1]}\n"
    )
    (tmp_path / "p.yaml").write_text(program)
    apply_program(conn, tmp_path / "p.yaml")
    head = "transaction_id,line_no,customer_id,date,amount,store,refund_of\n"
    files = [
        "T1,1,C1,2026-01-05,30.00,S1,\n",
        "T2,1,C1,2026-01-05,40.00,B1,\n",
        "U1,1,C1,2026-01-10,-10.00,S1,T1\nU1,2,C1,2026-01-10,-20.00,B1,T2\n",
    ]
    ids = []
    for n, body in enumerate(files):
        path = tmp_path / f"f{n}.csv"
        path.write_text(head + body)
        ids.append(import_files(conn, "purchases", [path])[0].import_id)
    run(conn, dt.date(2026, 1, 31))
    undo_import(conn, ids[0], dt.date(2026, 2, 1))
    undo_import(conn, ids[2], dt.date(2026, 2, 2))
    by_partner = dict(
        conn.execute("SELECT partner, SUM(points) FROM ledger GROUP BY partner").fetchall()
    )
    assert by_partner == {"abakery": 40, "zcafe": 0}
