"""Points of a receipt: rounding once, exact decimals, rules, min_order, pending, versions."""

from __future__ import annotations

import datetime as dt

import pytest

from engine_helpers import buy, earned, entries, go, program
from loyalty_cli import ledger


def test_rounding_once_per_receipt(conn, tmp_path):
    program(conn, tmp_path)
    buy(conn, "T1", "C1", "2026-01-05", 50, 50, 50)  # 3 lines of 0.50 at rate 1 -> 1.5 -> 1
    go(conn, "2026-01-31")
    assert earned(conn, "T1") == 1


def test_exact_decimals(conn, tmp_path):
    program(conn, tmp_path, earn="{per_currency_unit: 0.1, rounding: floor}")
    buy(conn, "T1", "C1", "2026-01-05", 7000)  # 0.1 x 70.00 = 7 exactly (a float gives 6.99..)
    go(conn, "2026-01-31")
    assert earned(conn, "T1") == 7


@pytest.mark.parametrize(
    ("rounding", "amount", "expected"),
    [
        ("floor", 1099, 10),
        ("ceil", 1001, 11),
        ("round_half_up", 1050, 11),
        ("round_half_up", 1049, 10),
    ],
)
def test_rounding_modes(conn, tmp_path, rounding, amount, expected):
    program(conn, tmp_path, earn=f"{{per_currency_unit: 1, rounding: {rounding}}}")
    buy(conn, "T1", "C1", "2026-01-05", amount)
    go(conn, "2026-01-31")
    assert earned(conn, "T1") == expected


def test_min_order_blocks_points_and_bonus(conn, tmp_path):
    program(
        conn,
        tmp_path,
        "rules:\n  - {id: always, when: {}, bonus: 5}\n",
        earn="{per_currency_unit: 1, min_order: 5.00, on: net}",
    )
    buy(conn, "T1", "C1", "2026-01-05", 550, tax=100)  # net 4.50 < 5.00: nothing
    buy(conn, "T2", "C1", "2026-01-06", 600, tax=100)  # net 5.00: 5 + bonus 5
    go(conn, "2026-01-31")
    assert earned(conn, "T1") == 0
    assert earned(conn, "T2") == 10
    assert conn.execute("SELECT COUNT(*) FROM scored_receipts").fetchone()[0] == 2


def test_multiplier_and_bonus_rules(conn, tmp_path):
    program(
        conn,
        tmp_path,
        """
        rules:
          - {id: pastry-double, when: {category: pastry}, multiplier: 2}
          - {id: launch-week, when: {date_from: 2026-06-01, date_to: 2026-06-07}, multiplier: 3}
          - {id: big-basket, when: {min_amount: 100.00}, bonus: 50}
          - {id: saturday, when: {weekday: sat, category: bread}, bonus: 7}
        """,
    )
    # 2026-06-06 is a Saturday inside launch week.
    buy(conn, "T1", "C1", "2026-06-06", (1050, "pastry"), (525, "bread"))
    # (10.50 x 2 + 5.25) x 3 = 78.75 -> 78; saturday bread bonus 7; below 100: no big-basket
    buy(conn, "T2", "C1", "2026-06-10", (10000, "shoes"))  # 100 + 50
    go(conn, "2026-06-30")
    rows = entries(conn)
    assert rows[0] == ("2026-06-06", "C1", "earn", 78, "T1", "pastry-double,launch-week")
    assert rows[1] == ("2026-06-06", "C1", "bonus", 7, "T1", "saturday")
    assert rows[2] == ("2026-06-10", "C1", "earn", 100, "T2", None)
    assert rows[3] == ("2026-06-10", "C1", "bonus", 50, "T2", "big-basket")


def test_pending_release_day(conn, tmp_path):
    program(conn, tmp_path, "pending_days: 14\n")
    buy(conn, "T1", "C1", "2026-01-05", 1000)
    go(conn, "2026-01-31")
    state = ledger.state_of(conn, "C1")
    assert state.available(dt.date(2026, 1, 18)) == 0
    assert state.pending(dt.date(2026, 1, 18)) == 10
    assert state.available(dt.date(2026, 1, 19)) == 10
    assert state.pending(dt.date(2026, 1, 19)) == 0


def test_anonymous_not_scored_and_future_waits(conn, tmp_path):
    program(conn, tmp_path)
    buy(conn, "T1", None, "2026-01-05", 1000)
    buy(conn, "T2", "C1", "2026-02-05", 1000)
    go(conn, "2026-01-31")
    assert entries(conn) == []
    go(conn, "2026-02-28")
    assert earned(conn, "T2") == 10


def test_claimed_receipt_is_scored_for_member(conn, tmp_path):
    program(conn, tmp_path)
    buy(conn, "T1", None, "2026-01-05", 1000)
    go(conn, "2026-01-31")
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('T1', 'C7', '2026-02-01')"
    )
    go(conn, "2026-02-01")
    assert entries(conn) == [("2026-01-05", "C7", "earn", 10, "T1", None)]


def test_late_receipt_uses_old_version(conn, tmp_path):
    program(conn, tmp_path, effective="2026-01-01")
    program(conn, tmp_path, name="v2.yaml", earn="{per_currency_unit: 2}", effective="2026-03-01")
    buy(conn, "T2", "C1", "2026-03-05", 1000)
    go(conn, "2026-03-31")
    buy(conn, "T1", "C1", "2026-02-05", 1000)  # arrives late, dated under version 1
    go(conn, "2026-04-01")
    rows = conn.execute(
        "SELECT source_id, points, program_version FROM ledger ORDER BY entry_id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [("T2", 20, 2), ("T1", 10, 1)]


def test_new_lines_of_scored_receipt_post_difference(conn, tmp_path):
    program(conn, tmp_path)
    buy(conn, "T1", "C1", "2026-01-05", 1050)
    go(conn, "2026-01-31")
    buy(conn, "T1", "C1", "2026-01-05", 1050)  # a second line arrives: 21.00 -> 21 in total
    go(conn, "2026-01-31")
    assert earned(conn, "T1") == 21
    assert [r[3] for r in entries(conn)] == [10, 11]


def test_a_new_line_that_meets_a_bonus_rule_posts_the_bonus_with_its_rule(conn, tmp_path):
    """90.00 then a line of 20.00: the receipt now reaches min_amount 100.00, so the
    difference is 20 earned and the rule's 50 as a `bonus` naming `big`."""
    program(conn, tmp_path, "rules:\n  - {id: big, when: {min_amount: 100.00}, bonus: 50}\n")
    buy(conn, "T1", "C1", "2026-01-05", 9000)
    go(conn, "2026-01-31")
    buy(conn, "T1", "C1", "2026-01-05", 2000)
    go(conn, "2026-01-31")
    assert [(r[2], r[3], r[5]) for r in entries(conn)] == [
        ("earn", 90, None),
        ("earn", 20, None),
        ("bonus", 50, "big"),
    ]
    buy(conn, "T1", "C1", "2026-01-05", 500)  # the bonus is paid: only the earn grows
    go(conn, "2026-01-31")
    assert [(r[2], r[3]) for r in entries(conn)][3:] == [("earn", 5)]
