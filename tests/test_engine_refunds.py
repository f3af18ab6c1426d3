"""Refunds: proportional claw-back, cap, without refund_of, punch-card withdrawal."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import buy, entries, go, points, program
from loyalty_cli import db
from loyalty_cli.checks import check_database
from loyalty_cli.engine.statement import customer_statement
from loyalty_cli.importing import import_files, undo_import


def test_clawback_proportional(conn, tmp_path):
    program(conn, tmp_path, "rules:\n  - {id: big, when: {min_amount: 100.00}, bonus: 50}\n")
    buy(conn, "T1", "C1", "2026-01-05", 30000)  # 300 + 50 = 350
    buy(conn, "R1", "C1", "2026-01-08", -10000, refund_of="T1")  # 350 x 100/300 = 116.67 -> 116
    go(conn, "2026-01-31")
    rows = entries(conn)
    assert rows[-1] == ("2026-01-08", "C1", "clawback", -116, "R1", None)
    lot = conn.execute("SELECT lot_id FROM ledger WHERE kind = 'clawback'").fetchone()[0]
    assert lot == 1  # the original's earn lot
    assert points(conn, "C1") == 234


def test_clawback_capped_at_what_is_left(conn, tmp_path):
    program(conn, tmp_path, earn="{per_currency_unit: 1, rounding: ceil}")
    buy(conn, "T1", "C1", "2026-01-05", 1001)  # ceil(10.01) = 11
    buy(conn, "R1", "C1", "2026-01-06", -600, refund_of="T1")  # ceil(11 x 6/10.01) = 7
    buy(conn, "R2", "C1", "2026-01-07", -401, refund_of="T1")  # ceil(4.4..) = 5, only 4 left
    go(conn, "2026-01-31")
    assert [r[3] for r in entries(conn)] == [11, -7, -4]
    assert points(conn, "C1") == 0


def test_refund_without_refund_of_base_rate_and_tier(conn, tmp_path):
    program(
        conn,
        tmp_path,
        """
        rules:
          - {id: double, when: {}, multiplier: 2}
        tiers:
          levels:
            - {id: bronze, min: 0}
            - {id: silver, min: 100, multiplier: 1.5}
        """,
    )
    buy(conn, "T1", "C1", "2026-01-05", 20000)  # 200 x 2 = 400, now silver
    buy(conn, "R1", "C1", "2026-01-06", -1000)  # 10 x 1.5 (no rules) = 15
    go(conn, "2026-01-31")
    assert entries(conn)[-1] == ("2026-01-06", "C1", "clawback", -15, "R1", None)
    assert conn.execute("SELECT lot_id FROM ledger WHERE kind = 'clawback'").fetchone()[0] is None


def test_refund_may_leave_balance_negative(conn, tmp_path):
    program(conn, tmp_path)
    buy(conn, "R1", "C1", "2026-01-06", -1000)
    go(conn, "2026-01-31")
    assert points(conn, "C1") == -10


def test_refund_withdraws_open_punch_card_voucher(conn, tmp_path):
    program(
        conn,
        tmp_path,
        """
        rewards:
          - {id: tenth-coffee, name: 3rd coffee free, value: 3.50,
             punch_card: {every: 3, when: {category: coffee}}}
        """,
    )
    buy(conn, "T1", "C1", "2026-01-01", (300, "coffee"))
    buy(conn, "T2", "C1", "2026-01-02", (300, "tea"))
    buy(conn, "T3", "C1", "2026-01-03", (300, "coffee"), (200, "cake"))
    buy(conn, "T4", "C1", "2026-01-04", (300, "coffee"))  # 3rd matching receipt: voucher
    buy(conn, "T5", "C1", "2026-01-05", (300, "coffee"))
    go(conn, "2026-01-31")
    rows = conn.execute("SELECT voucher_id, issued, status FROM vouchers").fetchall()
    assert [tuple(r) for r in rows] == [("VT4-tenth-coffee", "2026-01-04", "open")]
    buy(conn, "R4", "C1", "2026-02-01", -300, refund_of="T4")
    buy(conn, "R3", "C1", "2026-02-01", -300, refund_of="T3")  # punched, but no voucher
    assert go(conn, "2026-02-28").vouchers_withdrawn == 1
    status = conn.execute("SELECT status, closed_on FROM vouchers").fetchone()
    assert tuple(status) == ("withdrawn", "2026-02-01")


def test_clawback_carries_the_version_that_scored_the_original(conn, tmp_path):
    program(conn, tmp_path, earn="{per_currency_unit: 1, rounding: ceil}", effective="2026-01-01")
    program(
        conn,
        tmp_path,
        earn="{per_currency_unit: 1, rounding: floor}",
        effective="2026-02-01",
        name="v2.yaml",
    )
    buy(conn, "T1", "C1", "2026-01-20", 1001)  # v1: ceil(10.01) = 11
    buy(conn, "R1", "C1", "2026-02-03", -500, refund_of="T1")  # v1 rounding: ceil(5.49..) = 6
    go(conn, "2026-02-28")
    rows = conn.execute("SELECT kind, points, program_version FROM ledger ORDER BY entry_id")
    assert [tuple(r) for r in rows] == [("earn", 11, 1), ("clawback", -6, 1)]


PENDING = """
pending_days: 14
expiry: {policy: fixed, months: 12}
rules:
  - {id: big, when: {min_amount: 100.00}, bonus: 50}
"""


def test_a_refund_in_the_return_window_takes_the_pending_bonus_too(conn, tmp_path):
    """The receipt's earn and bonus lots are both pending: the claw-back takes both,
    no debt is left beside a lot that would later expire in full."""
    program(conn, tmp_path, PENDING)
    buy(conn, "T1", "C1", "2025-01-10", 10000)  # 100 + 50, pending until 2025-01-24
    buy(conn, "R1", "C1", "2025-01-12", -10000, refund_of="T1")
    go(conn, "2025-01-12")
    statement = customer_statement(conn, "C1", dt.date(2025, 1, 12))
    assert statement["points"] == {"available": 0, "pending": 0, "total": 0}
    go(conn, "2026-03-01")
    lots = "SELECT kind, points, lot_id, note FROM ledger ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(lots)] == [
        ("earn", 100, None, None),
        ("bonus", 50, None, None),
        ("clawback", -100, 1, "refund of T1"),
        ("clawback", -50, 2, "refund of T1, points still pending"),
    ]
    assert points(conn, "C1") == 0
    assert customer_statement(conn, "C1", dt.date(2025, 2, 1))["expiring"] == []


def test_a_refund_without_its_receipt_in_the_return_window_takes_pending_points(conn, tmp_path):
    program(conn, tmp_path, PENDING)
    buy(conn, "T1", "C1", "2025-01-10", 1000)  # 10, pending until 2025-01-24
    buy(conn, "R1", "C1", "2025-01-12", -500)  # no refund_of: 5 at the base rate
    go(conn, "2026-03-01")
    lots = "SELECT kind, points, lot_id FROM ledger ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(lots)] == [
        ("earn", 10, None),
        ("clawback", -5, 1),  # aimed at the pending lot
        ("expire", -5, 1),
    ]
    assert points(conn, "C1") == 0


def test_a_claw_back_beyond_every_lot_is_a_debt_paid_by_the_next_points(conn, tmp_path):
    program(conn, tmp_path, PENDING)
    buy(conn, "T1", "C1", "2025-01-10", 1000)  # 10
    buy(conn, "R1", "C1", "2025-01-12", -3000)  # 30 at the base rate: 20 more than held
    buy(conn, "T2", "C1", "2025-02-01", 5000)  # 50: 20 pay the debt, 30 left
    go(conn, "2026-03-01")
    assert [r[2:4] for r in entries(conn)] == [
        ("earn", 10),
        ("clawback", -20),  # no lot holds it: a debt
        ("clawback", -10),  # aimed at T1's pending lot
        ("earn", 50),  # pays the debt first
        ("expire", -30),
    ]
    assert points(conn, "C1") == 0


def test_a_refund_of_a_receipt_from_before_the_program_takes_nothing_back(conn, tmp_path):
    """The original earned nothing (no version was in force): min(0, ...) = 0, not
    the base rate of a refund whose original is unknown."""
    program(conn, tmp_path, effective="2026-01-11")
    buy(conn, "T1", "C1", "2026-01-10", 10000)
    buy(conn, "R1", "C1", "2026-01-12", -4000, refund_of="T1")
    result = go(conn, "2026-01-31")
    assert entries(conn) == []
    assert (result.receipts, result.before_program) == (2, 1)
    assert result.program_from == dt.date(2026, 1, 11)


def test_run_says_when_receipts_predate_the_program(cli, conn, tmp_path, write):
    program(conn, tmp_path, effective="2026-01-11")
    day = write("day.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,10.00\n")
    assert cli("import", "purchases", str(day)).exit_code == 0
    result = cli("run", "--as-of", "2026-01-31")
    assert result.exit_code == 0
    assert result.stderr == (
        "Note: 1 receipt is dated before the program's first version (2026-01-11) and "
        "earn nothing; to score it, apply the program with --effective on an earlier date "
        "(`loyalty program apply FILE --effective DATE`).\n"
    )
    assert cli("run", "--as-of", "2026-01-31", "--quiet").stderr == ""


def test_a_same_day_refund_comes_after_its_receipt_whatever_their_ids(conn, tmp_path):
    """F1 sorts before T9 but refunds it: it is scored after T9 and takes back what T9
    earned (30), not the base rate (10)."""
    program(conn, tmp_path, "rules:\n  - {id: triple, when: {category: pastry}, multiplier: 3}\n")
    buy(conn, "T9", "C1", "2025-01-10", (1000, "pastry"))
    buy(conn, "F1", "C1", "2025-01-10", (-1000, "pastry"), refund_of="T9")
    go(conn, "2025-01-31")
    assert [r[2:5] for r in entries(conn)] == [("earn", 30, "T9"), ("clawback", -30, "F1")]


STEPS = [["2026-03-31"], ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05", "2026-03-31"]]


@pytest.mark.parametrize("as_of", STEPS)
def test_refunds_take_back_at_most_what_their_receipt_earned(conn, tmp_path, as_of):
    # T1 earned 110 (its bonus lot still pending): R1 takes all of it, part of it
    # from the pending bonus lot; later refunds of T1 find nothing left.
    program(conn, tmp_path, "rules:\n  - {id: thanks, bonus: 10}\npending_days: 14\n")
    buy(conn, "T0", "C1", "2026-03-01", 1000)  # 10 + 10
    buy(conn, "T1", "C1", "2026-03-02", 10000)  # 100 + 10
    buy(conn, "R1", "C1", "2026-03-03", -10000, refund_of="T1")
    buy(conn, "R2", "C1", "2026-03-04", -5000, refund_of="T1")
    buy(conn, "R3", "C1", "2026-03-05", -5000, refund_of="T1")
    for day in as_of:
        go(conn, day)
    claws = "SELECT source_id, points, lot_id FROM ledger WHERE kind = 'clawback'"
    assert [tuple(r) for r in conn.execute(claws)] == [("R1", -100, 3), ("R1", -10, 4)]
    assert points(conn, "C1") == 20


@pytest.mark.parametrize("as_of", STEPS)
def test_a_refund_without_refund_of_is_not_counted_against_a_receipt(conn, tmp_path, as_of):
    # R0 names no receipt: what it took from T1's lot is not "T1 clawed back", so
    # the full refund of T1 still takes T1's 100 (the balance may go negative).
    program(conn, tmp_path, "pending_days: 14\n")
    buy(conn, "T1", "C1", "2026-03-01", 10000)
    buy(conn, "T2", "C1", "2026-03-02", 10000)
    buy(conn, "R0", "C1", "2026-03-03", -15000)
    buy(conn, "R1", "C1", "2026-03-04", -10000, refund_of="T1")
    for day in as_of:
        go(conn, day)
    by_refund = (
        "SELECT source_id, SUM(points) FROM ledger WHERE kind = 'clawback' GROUP BY source_id"
    )
    assert dict(conn.execute(by_refund).fetchall()) == {"R0": -150, "R1": -100}
    assert points(conn, "C1") == -50


def test_an_undone_refund_leaves_its_receipt_to_be_refunded_again(conn, tmp_path):
    program(conn, tmp_path)
    sale = tmp_path / "sale.csv"
    sale.write_text("transaction_id,customer_id,date,amount\nT1,C1,2026-03-01,100.00\n")
    import_files(conn, "purchases", [sale])
    go(conn, "2026-03-10")
    refund = tmp_path / "refund.csv"
    refund.write_text(
        "transaction_id,customer_id,date,amount,refund_of\nR1,C1,2026-03-11,-100.00,T1\n"
    )
    [result] = import_files(conn, "purchases", [refund])
    go(conn, "2026-03-12")
    undo_import(conn, result.import_id, dt.date(2026, 3, 13))
    buy(conn, "R2", "C1", "2026-03-14", -10000, refund_of="T1")
    go(conn, "2026-03-31")
    by_refund = "SELECT source_id, kind, SUM(points) FROM ledger GROUP BY source_id, kind"
    assert [tuple(r) for r in conn.execute(by_refund)] == [
        ("R1", "clawback", -100),
        ("R1", "reversal", 100),
        ("R2", "clawback", -100),
        ("T1", "earn", 100),
    ]
    assert points(conn, "C1") == 0


def test_a_refund_of_items_from_two_receipts_takes_back_from_each(conn, tmp_path):
    # One return, two lines, each naming the sale it takes back: T1 (30 points on
    # 30.00) gives back ceil(30 x 10/30) = 10, T2 (10 on 10.00) ceil(10 x 5/10) = 5.
    program(conn, tmp_path, earn="{per_currency_unit: 1, rounding: ceil}")
    buy(conn, "T1", "C1", "2026-01-05", (2500, "shoes"), (500, "socks"))
    buy(conn, "T2", "C1", "2026-01-06", 1000)
    buy(conn, "R1", "C1", "2026-01-08", -1000, refund_of="T1")
    buy(conn, "R1", "C1", "2026-01-08", -500, refund_of="T2")
    go(conn, "2026-01-31")
    claws = "SELECT points, note FROM ledger WHERE kind = 'clawback' ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(claws)] == [(-10, "refund of T1"), (-5, "refund of T2")]
    assert points(conn, "C1") == 25


@pytest.mark.parametrize("rate, corrected", [("0.1", 15), ("2", 15)])
def test_lines_added_to_a_receipt_are_scored_by_the_version_that_scored_it(
    conn, tmp_path, rate, corrected
):
    # T1 earned 10 under version 1; a version applied later, back-dated over T1's
    # date, does not rewrite it: its second line earns under version 1 too.
    program(conn, tmp_path)
    buy(conn, "T1", "C1", "2025-01-10", 1000)
    go(conn, "2025-01-31")
    later = "{per_currency_unit: " + rate + ", rounding: floor}"
    program(conn, tmp_path, effective="2025-01-01", name="v2.yaml", earn=later)
    buy(conn, "T1", "C1", "2025-01-10", 500)
    go(conn, "2025-01-31")
    rows = conn.execute("SELECT kind, points, program_version FROM ledger ORDER BY entry_id")
    assert [tuple(r) for r in rows] == [("earn", 10, 1), ("earn", corrected - 10, 1)]


@pytest.mark.parametrize("as_of", [["2026-01-31"], ["2026-01-05", "2026-01-31"]])
def test_a_refund_naming_two_receipts_one_of_the_same_day_comes_after_both(conn, tmp_path, as_of):
    # R1 names T1 and Z2, Z2 of the same day and sorting after R1: R1 waits for Z2,
    # so each part takes back from its own sale (13 of T1's 40, 20 of Z2's 20: its earn
    # lot and its bonus lot, one entry each).
    program(conn, tmp_path, "rules:\n  - {id: thanks, bonus: 10}\n")
    buy(conn, "T1", "C1", "2026-01-05", 3000)  # 30 + 10
    buy(conn, "Z2", "C1", "2026-01-08", 1000)  # 10 + 10
    buy(conn, "R1", "C1", "2026-01-08", -1000, refund_of="T1")
    buy(conn, "R1", "C1", "2026-01-08", -1000, refund_of="Z2")
    for day in as_of:
        go(conn, day)
    claws = "SELECT points, note FROM ledger WHERE kind = 'clawback' ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(claws)] == [
        (-13, "refund of T1"),
        (-10, "refund of Z2"),
        (-10, "refund of Z2"),
    ]
    assert points(conn, "C1") == 27


@pytest.mark.parametrize("late", [False, True])
def test_a_late_line_of_a_refund_takes_back_what_the_whole_refund_takes(conn, tmp_path, late):
    """A refund whose second line arrives a night later takes back, in all, what the
    refund read at once takes (rounded once); the late line took nothing before."""
    program(conn, tmp_path, "rules:\n  - {id: thanks, bonus: 10}\n")
    buy(conn, "T1", "C1", "2026-03-01", 9900)  # 99 + 10
    buy(conn, "R1", "C1", "2026-03-02", -1450, refund_of="T1")
    buy(conn, "X1", "C1", "2026-03-02", -1450)  # names no receipt: the base rate
    if late:
        go(conn, "2026-03-02")
    buy(conn, "R1", "C1", "2026-03-02", -1450, refund_of="T1")
    buy(conn, "X1", "C1", "2026-03-02", -1450)
    go(conn, "2026-03-03")
    by_refund = "SELECT source_id, SUM(points) FROM ledger WHERE kind = 'clawback' GROUP BY 1"
    # 109 x 29.00 / 99.00 = 31.9 -> 31 (15 + 15 line by line); 29.00 at 1 = 29 (14 + 14)
    assert dict(conn.execute(by_refund).fetchall()) == {"R1": -31, "X1": -29}
    scored = "SELECT transaction_id, points FROM scored_receipts WHERE amount < 0 ORDER BY 1"
    assert [tuple(r) for r in conn.execute(scored)] == [("R1", -31), ("X1", -29)]
    assert points(conn, "C1") == 109 - 31 - 29


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rounding=st.sampled_from(["floor", "ceil", "round_half_up"]),
    pending=st.sampled_from(["", "pending_days: 5\n"]),
    sales=st.lists(st.integers(100, 20000), min_size=1, max_size=3),
    refunds=st.lists(
        st.tuples(st.integers(0, 2), st.lists(st.integers(1, 8000), min_size=2, max_size=4),
                  st.integers(1, 3), st.booleans()),
        min_size=1, max_size=3,
    ),  # (sale it names, line amounts, lines read the first night, names it at all)
)  # fmt: skip
def test_refund_lines_arriving_over_two_nights_take_back_what_one_import_does(
    rounding, pending, sales, refunds
):
    text = "rules:\n  - {id: thanks, bonus: 7}\n" + pending
    taken = []
    for late in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            conn = db.connect(Path(tmp) / "shop.db")
            program(conn, Path(tmp), text, earn=f"{{per_currency_unit: 1, rounding: {rounding}}}")
            for n, amount in enumerate(sales):
                buy(conn, f"T{n}", "C1", f"2026-03-0{n + 1}", amount)
            for n, (sale, lines, first, names) in enumerate(refunds):
                of = f"T{min(sale, len(sales) - 1)}" if names else None
                buy(conn, f"R{n}", "C1", "2026-03-05", *[-a for a in lines[:first]], refund_of=of)
            if late:
                go(conn, "2026-03-05")
            for n, (sale, lines, first, names) in enumerate(refunds):
                of = f"T{min(sale, len(sales) - 1)}" if names else None
                if lines[first:]:
                    buy(conn, f"R{n}", "C1", "2026-03-05", *[-a for a in lines[first:]],
                        refund_of=of)  # fmt: skip
            go(conn, "2026-03-06")
            # In all (a refund scored before another's late line may take the share
            # the other would have taken at once: the split may differ, not the sum).
            clawed = "SELECT SUM(points) FROM ledger WHERE kind = 'clawback'"
            taken.append((conn.execute(clawed).fetchone()[0], points(conn, "C1")))
            assert check_database(conn) == []
            conn.close()
    assert taken[0] == taken[1]


def test_a_refund_scored_before_its_receipt_arrived_counts_what_it_took_when_lines_come(
    conn, tmp_path
):
    """R1's first line took 30 at the base rate (T1 unknown then); its second line
    comes with T1: R1 takes 50 of T1 in all, not 50 more."""
    program(conn, tmp_path)
    buy(conn, "R1", "C1", "2026-03-02", -3000, refund_of="T1")
    go(conn, "2026-03-02")
    buy(conn, "T1", "C1", "2026-03-01", 10000)
    buy(conn, "R1", "C1", "2026-03-02", -2000, refund_of="T1")
    go(conn, "2026-03-03")
    assert points(conn, "C1") == 100 - 50
    assert check_database(conn) == []


def test_a_late_refund_line_after_its_receipt_was_undone_takes_nothing_more(conn, tmp_path):
    """R1 took 30 of T1; T1's import is undone (the refund stays netted with it);
    R1's next line then takes nothing, as when both lines came before the undo."""
    program(conn, tmp_path)
    head = "transaction_id,line_no,customer_id,date,amount,refund_of\n"
    files = {
        "sales": "T1,1,C1,2026-03-01,100.00,\nT2,1,C1,2026-03-01,100.00,\n",
        "first": "R1,1,C1,2026-03-05,-30.00,T1\n",
        "late": "R1,2,C1,2026-03-05,-20.00,T1\n",
    }
    for name, rows in files.items():
        (tmp_path / f"{name}.csv").write_text(head + rows)
    [sales] = import_files(conn, "purchases", [tmp_path / "sales.csv"])
    import_files(conn, "purchases", [tmp_path / "first.csv"])
    go(conn, "2026-03-06")
    undo_import(conn, sales.import_id, dt.date(2026, 3, 7))
    go(conn, "2026-03-07")
    import_files(conn, "purchases", [tmp_path / "late.csv"])
    go(conn, "2026-03-08")
    assert points(conn, "C1") == 0
    assert check_database(conn) == []


def test_late_refund_lines_never_take_more_than_the_receipt_earned(conn, tmp_path):
    """R0's first line names no receipt (the base rate), its second names T1; R1
    names T1 both times. In all they take T1's 100 points, as one import does."""
    program(conn, tmp_path)
    buy(conn, "T1", "C1", "2026-03-01", 10000)
    buy(conn, "R0", "C1", "2026-03-02", -5000)
    buy(conn, "R1", "C1", "2026-03-02", -4000, refund_of="T1")
    go(conn, "2026-03-02")
    buy(conn, "R0", "C1", "2026-03-02", -1000, refund_of="T1")
    buy(conn, "R1", "C1", "2026-03-02", -500, refund_of="T1")
    go(conn, "2026-03-03")
    assert points(conn, "C1") == 0
    assert check_database(conn) == []


def test_a_refund_takes_back_the_receipts_own_lots_first_its_pending_bonus_too():
    """What the receipt earned comes back from its own lots (earn, then bonus, pending
    or not) before other receipts' points: T1's 20 expire in full on their day and
    T2's bonus lot is emptied, whether T2 earned a point or only the bonus."""
    for amount in (50, 100):
        with tempfile.TemporaryDirectory() as tmp:
            shop = db.connect(Path(tmp) / "shop.db")
            program(shop, Path(tmp), BONUS_ONLY)
            buy(shop, "T1", "C1", "2026-01-01", (2000, "a"))
            buy(shop, "T2", "C1", "2026-02-01", (amount, "b"))  # 0 or 1 earned + 10 bonus
            buy(shop, "T3", "C1", "2026-02-05", (-amount, "b"), refund_of="T2")
            go(shop, "2026-04-01")
            expired = [(r[0], r[3]) for r in entries(shop) if r[2] == "expire"]
            assert expired == [("2026-02-15", -20)], amount
            assert points(shop, "C1") == 0
            shop.close()


BONUS_ONLY = """
    rules:
      - {id: bcat, when: {category: b}, bonus: 10}
    pending_days: 14
    expiry: {policy: fixed, months: 1}
    """


def test_an_undone_receipt_whose_refund_stands_leaves_nothing(conn, tmp_path):
    """The refund took back the receipt's own lots, so the undo nets to nothing and
    no bonus lot of the gone receipt outlives the customer's other points (found by
    a review: 10 points were left, from a receipt that no longer exists)."""
    program(conn, tmp_path, BONUS_ONLY)
    head = "transaction_id,customer_id,date,amount,category,refund_of\n"
    (tmp_path / "t1.csv").write_text(head + "T1,C1,2026-01-01,20.00,a,\n")
    (tmp_path / "t2.csv").write_text(head + "T2,C1,2026-02-01,5.00,b,\n")
    (tmp_path / "t3.csv").write_text(head + "T3,C1,2026-02-05,-5.00,b,T2\n")
    import_files(conn, "purchases", [tmp_path / "t1.csv"])
    [sale] = import_files(conn, "purchases", [tmp_path / "t2.csv"])
    import_files(conn, "purchases", [tmp_path / "t3.csv"])
    go(conn, "2026-02-06")
    undo_import(conn, sale.import_id, dt.date(2026, 2, 6))
    go(conn, "2026-02-20")
    assert customer_statement(conn, "C1", dt.date(2026, 2, 20))["points"]["total"] == 0
    assert check_database(conn) == []


def test_refunds_of_a_receipt_whose_lot_expired_never_take_more_than_it_earned(conn, tmp_path):
    """The lot expired, so the first refund's claw-back is aimed at no lot; it still
    counts against the receipt (the second took 6 more: 12 for a receipt of 10)."""
    program(conn, tmp_path, "expiry: {policy: fixed, months: 1}\n")
    buy(conn, "T1", "C1", "2026-01-01", 1000)
    buy(conn, "R1", "C1", "2026-03-01", -600, refund_of="T1")
    buy(conn, "R2", "C1", "2026-03-02", -600, refund_of="T1")
    go(conn, "2026-03-05")
    claws = "SELECT source_id, points FROM ledger WHERE kind = 'clawback' ORDER BY entry_id"
    assert [tuple(r) for r in conn.execute(claws)] == [("R1", -6), ("R2", -4)]
    assert check_database(conn) == []


def test_a_refund_split_over_two_nights_names_its_pending_parts_as_one_import_does():
    notes = []
    for late in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            shop = db.connect(Path(tmp) / "shop.db")
            program(shop, Path(tmp), BONUS_ONLY)
            buy(shop, "T1", "C1", "2026-02-01", (2000, "a"))
            buy(shop, "T2", "C1", "2026-02-01", (700, "b"))  # 7 + the bonus of 10
            buy(shop, "T3", "C1", "2026-02-05", (-350, "b"), refund_of="T2")
            if late:
                go(shop, "2026-02-05")
            buy(shop, "T3", "C1", "2026-02-05", (-350, "b"), refund_of="T2")
            go(shop, "2026-04-01")
            rows = shop.execute(
                "SELECT lot_id, note, SUM(points) FROM ledger WHERE kind = 'clawback' "
                "GROUP BY 1, 2 ORDER BY 1"
            )
            notes.append([tuple(r) for r in rows])
            shop.close()
    assert (
        notes[0]
        == notes[1]
        == [
            (2, "refund of T2", -7),
            (3, "refund of T2, points still pending", -10),
        ]
    )
