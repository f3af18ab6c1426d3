"""Expiry: month arithmetic, fixed expiry FIFO after a redemption, inactivity."""

from __future__ import annotations

import datetime as dt

from engine_helpers import buy, entries, go, points, program
from loyalty_cli import db, ledger
from loyalty_cli.engine.dates import add_months, birthday_in
from loyalty_cli.engine.statement import customer_statement


def test_add_months_clamps_to_month_end():
    assert add_months(dt.date(2026, 1, 31), 1) == dt.date(2026, 2, 28)
    assert add_months(dt.date(2028, 1, 31), 1) == dt.date(2028, 2, 29)
    assert add_months(dt.date(2026, 11, 30), 3) == dt.date(2027, 2, 28)
    assert add_months(dt.date(2026, 5, 15), 12) == dt.date(2027, 5, 15)
    assert birthday_in(2027, dt.date(2000, 2, 29)) == dt.date(2027, 2, 28)
    assert birthday_in(2028, dt.date(2000, 2, 29)) == dt.date(2028, 2, 29)


def test_fixed_expiry_fifo_after_redemption(conn, tmp_path):
    program(conn, tmp_path, "expiry: {policy: fixed, months: 12}\n")
    buy(conn, "T1", "C1", "2026-01-10", 10000)  # 100, expires 2027-01-10
    buy(conn, "T2", "C1", "2026-03-10", 5000)  # 50, expires 2027-03-10
    go(conn, "2026-05-31")
    with db.transaction(conn):
        ledger.post(
            conn, [ledger.NewEntry(dt.date(2026, 6, 1), "C1", "redeem", -120, "redemption", "R1")]
        )
    statement = customer_statement(conn, "C1", dt.date(2026, 6, 1))
    assert statement["points"] == {"available": 30, "pending": 0, "total": 30}
    assert statement["expiring"] == [{"date": "2027-03-09", "points": 30}]
    go(conn, "2027-04-01")
    assert entries(conn)[3:] == [("2027-03-10", "C1", "expire", -30, "2", None)]
    assert points(conn, "C1") == 0
    go(conn, "2027-05-01")
    assert len(entries(conn)) == 4


def test_expiry_is_dated_and_due_only_when_reached(conn, tmp_path):
    program(conn, tmp_path, "pending_days: 14\nexpiry: {policy: fixed, months: 1}\n")
    buy(conn, "T1", "C1", "2026-01-17", 1000)  # available 2026-01-31, expires 2026-02-28
    go(conn, "2026-02-27")
    assert [r[2] for r in entries(conn)] == ["earn"]
    assert customer_statement(conn, "C1", dt.date(2026, 2, 27))["expiring"] == [
        {"date": "2026-02-27", "points": 10}
    ]
    go(conn, "2026-02-28")
    assert entries(conn)[-1] == ("2026-02-28", "C1", "expire", -10, "1", None)


def test_inactivity_expiry(conn, tmp_path):
    program(conn, tmp_path, "expiry: {policy: inactivity, months: 6}\n")
    buy(conn, "T1", "C1", "2026-01-31", 10000)
    buy(conn, "A1", "C2", "2026-01-10", 1000)
    buy(conn, "A2", "C2", "2026-06-01", 1000)  # a purchase in time: due moves to 2026-12-01
    go(conn, "2026-03-01")
    assert customer_statement(conn, "C1", dt.date(2026, 7, 1))["expiring"] == [
        {"date": "2026-07-30", "points": 100}
    ]
    go(conn, "2026-08-01")
    assert entries(conn, "C1")[-1] == (
        "2026-07-31",
        "C1",
        "expire",
        -100,
        "inactivity:C1:2026-01-31",
        None,
    )
    assert points(conn, "C2") == 20
    go(conn, "2026-12-01")
    assert points(conn, "C2") == 0
    go(conn, "2026-12-31")
    assert len(entries(conn)) == 5


def test_an_inactivity_expiry_no_run_posted_yet_already_took_the_points(conn, tmp_path):
    """Between runs the counter knows the expiry fell: nothing available, nothing to
    redeem; the next run posts it in full (a redemption could have spent them)."""
    from loyalty_cli.errors import LoyaltyError
    from loyalty_cli.rewards import redeem, rewards_eligible

    program(
        conn,
        tmp_path,
        "expiry: {policy: inactivity, months: 2}\n"
        "rewards:\n  - {id: gift, name: Gift, cost: 80, value: 1.00}\n",
    )
    buy(conn, "A1", "C1", "2026-01-05", 10000)
    go(conn, "2026-01-31")
    day = dt.date(2026, 3, 10)  # the expiry fell on 2026-03-05
    statement = customer_statement(conn, "C1", day)
    assert statement["points"] == {"available": 0, "pending": 0, "total": 0}
    assert statement["eligible_rewards"] == [] and rewards_eligible(conn, "C1", day) == []
    try:
        redeem(conn, "C1", "gift", day)
    except LoyaltyError as exc:
        assert "not enough points: C1 has 0 available" in str(exc)
    else:
        raise AssertionError("redeemed expired points")
    assert customer_statement(conn, "C1", dt.date(2026, 3, 4))["points"]["available"] == 100
    go(conn, "2026-03-10")
    assert entries(conn)[-1] == (
        "2026-03-05",
        "C1",
        "expire",
        -100,
        "inactivity:C1:2026-01-05",
        None,
    )


INACTIVE_2M = (
    "expiry: {policy: inactivity, months: 2}\n"
    "rewards:\n  - {id: gift, name: Gift, cost: 80, value: 1.00}\n"
)


def test_a_claimed_sale_not_scored_yet_keeps_the_points_alive_at_the_counter(conn, tmp_path):
    from loyalty_cli.rewards.claim import claim

    program(conn, tmp_path, INACTIVE_2M)
    buy(conn, "A1", "C1", "2026-01-05", 10000)
    buy(conn, "X1", None, "2026-02-20", 1000)  # anonymous, before the expiry would fall
    go(conn, "2026-01-31")
    day = dt.date(2026, 3, 10)
    claim(conn, "X1", "C1", day)
    assert customer_statement(conn, "C1", day)["points"]["available"] == 100
    go(conn, "2026-03-10")
    assert points(conn, "C1") == 110  # no expiry: the claimed sale came in time


def test_a_sale_after_the_gap_not_run_yet_does_not_undo_the_expiry(conn, tmp_path):
    program(conn, tmp_path, INACTIVE_2M)
    buy(conn, "A1", "C1", "2026-01-05", 10000)
    go(conn, "2026-01-31")
    buy(conn, "A2", "C1", "2026-03-08", 1000)  # the points of A1 expired on 03-05
    assert customer_statement(conn, "C1", dt.date(2026, 3, 10))["points"]["available"] == 0
    go(conn, "2026-03-10")
    assert points(conn, "C1") == 10


def _counter_and_run_agree(conn, customer: str, day: str) -> int:
    """After the run, the counter's available points are the ledger's balance (no
    expiry expected that no run will post)."""
    go(conn, day)
    counter = customer_statement(conn, customer, dt.date.fromisoformat(day))["points"]
    assert counter["available"] == points(conn, customer)
    return counter["available"]


def test_a_receipt_netting_below_zero_is_no_sale_for_the_counter(conn, tmp_path):
    """A refund receipt with one positive line (+5.00, -30.00) starts no inactivity
    clock: the counter no longer expects an expiry the run never posts."""
    program(conn, tmp_path, INACTIVE_2M)
    buy(conn, "T1", "C1", "2025-01-10", 10000)
    go(conn, "2025-01-31")
    buy(conn, "T2", "C1", "2025-02-01", 500, -3000)
    go(conn, "2025-03-31")  # the expiry of T1 on 03-10 takes everything
    with db.transaction(conn):
        ledger.post(
            conn, [ledger.NewEntry(dt.date(2025, 3, 20), "C1", "adjust", 50, "manual", "a")]
        )
    assert _counter_and_run_agree(conn, "C1", "2025-04-05") == 50


def test_a_late_receipt_before_the_last_sale_starts_no_expiry_at_the_counter(conn, tmp_path):
    program(conn, tmp_path, "expiry: {policy: inactivity, months: 3}\n")
    buy(conn, "T5", "C1", "2025-07-25", 3000)
    go(conn, "2025-07-31")
    buy(conn, "T1", "C1", "2025-01-12", 10000)  # a late export, dated long before
    assert _counter_and_run_agree(conn, "C1", "2025-08-01") == 130


def _imports_each(conn, write, earn: str, months: int, *rows: str) -> list[int]:
    """An inactivity program from 2025, then each purchases row as its own import;
    the import ids."""
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program

    text = (
        f"program: T\ncurrency: EUR\nearn: {earn}\n"
        f"expiry: {{policy: inactivity, months: {months}}}\n"
    )
    apply_program(conn, write("p.yaml", text), effective=dt.date(2025, 1, 1))
    head = "transaction_id,customer_id,date,amount\n"
    return [
        import_files(conn, "purchases", [write(f"{i}.csv", head + row + "\n")])[0].import_id
        for i, row in enumerate(rows)
    ]


def test_undoing_a_sale_in_the_middle_opens_no_expiry_at_the_counter(conn, write):
    from loyalty_cli.importing import undo_import

    ids = _imports_each(
        conn, write, "{per_currency_unit: 1}", 2,
        "T1,C1,2025-11-03,100.00", "T2,C1,2025-12-02,50.00", "T3,C1,2026-01-29,30.00",
    )  # fmt: skip
    go(conn, "2026-02-15")
    undo_import(conn, ids[1], dt.date(2026, 3, 1))
    assert _counter_and_run_agree(conn, "C1", "2026-03-01") == 130


def test_undoing_a_sale_that_earned_nothing_lets_the_run_post_the_expiry(conn, write):
    """The undo reverses nothing (the sale was below min_order), yet the customer's
    inactivity clock moved back: the next run revisits them and posts the expiry
    the counter already counts."""
    from loyalty_cli.importing import undo_import

    ids = _imports_each(
        conn, write, "{per_currency_unit: 1, min_order: 5}", 3,
        "T1,C1,2026-01-10,100.00", "T2,C1,2026-03-01,1.00",
    )  # fmt: skip
    go(conn, "2026-05-01")
    assert points(conn, "C1") == 100  # T2 kept the points alive
    undo_import(conn, ids[1], dt.date(2026, 5, 2))
    assert _counter_and_run_agree(conn, "C1", "2026-05-05") == 0
    assert entries(conn, "C1")[-1][:4] == ("2026-04-10", "C1", "expire", -100)


INACTIVE = "expiry: {policy: inactivity, months: 1}\n"


def test_a_late_receipt_dated_before_a_posted_inactivity_expiry_expires_too(conn, tmp_path):
    """T0 comes after the expiry of T1's points was posted, dated before T1: the last
    sale stays T1, and its expiry takes T0's points too (they stayed for good)."""
    program(conn, tmp_path, INACTIVE)
    buy(conn, "T1", "C1", "2026-01-10", 1000)
    go(conn, "2026-03-31")
    buy(conn, "T0", "C1", "2026-01-08", 400)
    go(conn, "2026-12-01")
    expired = [(r[0], r[3], r[4]) for r in entries(conn) if r[2] == "expire"]
    assert expired == [
        ("2026-02-10", -10, "inactivity:C1:2026-01-10"),
        ("2026-02-10", -4, "inactivity:C1:2026-01-10"),
    ]
    assert points(conn, "C1") == 0


def test_a_line_added_to_the_last_sale_after_its_expiry_expires_too(conn, tmp_path):
    program(conn, tmp_path, INACTIVE)
    buy(conn, "T1", "C1", "2026-01-10", 1000)
    go(conn, "2026-03-31")
    buy(conn, "T1", "C1", "2026-01-10", 700)  # its second line, exported late
    go(conn, "2026-12-01")
    assert points(conn, "C1") == 0


def test_a_receipt_imported_again_after_its_undo_expires_again(conn, tmp_path):
    """The undo came after the inactivity expiry took its points; imported again, the
    receipt earns again and its expiry, posted already, is due again for them."""
    from loyalty_cli.importing import import_files, undo_import

    program(conn, tmp_path, INACTIVE)
    sale = tmp_path / "sa.csv"
    sale.write_text("transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,10.00\n")
    [first] = import_files(conn, "purchases", [sale])
    go(conn, "2026-03-31")
    undo_import(conn, first.import_id, dt.date(2026, 4, 1))
    import_files(conn, "purchases", [sale])
    go(conn, "2026-04-01")
    go(conn, "2026-09-30")
    assert points(conn, "C1") == 0
