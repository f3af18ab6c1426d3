"""Segments: each boundary on a small hand-made shop."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from loyalty_cli import segments
from loyalty_cli.segments import SegmentRules, classify, median_gap

D = dt.date(2026, 6, 30)
RULES = SegmentRules()


def days_before(*ns: int) -> list[dt.date]:
    return [D - dt.timedelta(days=n) for n in ns]


def add(conn, tx, cid, day, amount, line=1):
    conn.execute(
        "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, import_id) "
        "VALUES (?, ?, ?, ?, ?, 1)",
        (tx, line, cid, day.isoformat() if isinstance(day, dt.date) else day, amount),
    )


def test_new_boundary_30_days_is_new_31_is_not():
    assert classify(days_before(30), D, RULES) == "new"
    assert classify(days_before(31), D, RULES) == "one_time"


def test_lapsed_boundary():
    assert classify(days_before(365), D, RULES) == "one_time"
    assert classify(days_before(366), D, RULES) == "lapsed"


def test_lapsed_wins_over_everything():
    assert classify(days_before(400, 401, 402, 403, 404), D, RULES) == "lapsed"


def test_new_wins_over_loyal():
    assert classify(days_before(1, 2, 3, 4), D, RULES) == "new"


def test_at_risk_uses_max_of_factor_gap_and_floor():
    # gap 20 -> limit max(40, 30) = 40: 40 days since last is not at risk, 41 is.
    assert classify(days_before(80, 60, 40), D, RULES) == "repeat"
    assert classify(days_before(81, 61, 41), D, RULES) == "at_risk"
    # gap 5 -> limit max(10, 30) = 30: floor decides.
    assert classify(days_before(40, 35, 30), D, RULES) == "repeat"
    assert classify(days_before(41, 36, 31), D, RULES) == "at_risk"


def test_at_risk_with_all_receipts_on_one_day_uses_floor():
    assert classify(days_before(31, 31), D, RULES) == "at_risk"
    assert classify(days_before(40, 40), D, RULES) == "at_risk"


def test_loyal_counts_last_365_days_half_open():
    # 4 receipts in (D-365, D]; the one 365 days ago falls outside.
    assert classify(days_before(100, 75, 50, 25), D, RULES) == "loyal"
    assert classify(days_before(365, 75, 50, 25), D, RULES) == "repeat"
    assert classify(days_before(364, 75, 50, 25), D, RULES) == "loyal"


def test_one_time_and_repeat():
    assert classify(days_before(100), D, RULES) == "one_time"
    assert classify(days_before(100, 50), D, RULES) == "repeat"
    assert classify([], D, RULES) is None


def test_median_gap_is_exact():
    assert median_gap(days_before(10, 9, 6)) == Decimal("2")  # gaps 1, 3
    assert median_gap(days_before(10, 10)) is None
    assert median_gap(days_before(10, 9, 6, 6, 1)) == Decimal("3")  # gaps 1, 3, 5


def test_segments_from_database_count_sale_receipts_only(conn):
    add(conn, "T1", "A", D - dt.timedelta(days=100), 1000)
    add(conn, "T2", "A", D - dt.timedelta(days=50), -500)  # a refund receipt: not a visit
    add(conn, "T3", "B", D - dt.timedelta(days=5), 1000)
    add(conn, "T4", "B", D + dt.timedelta(days=1), 1000)  # after D: ignored
    add(conn, "T5", None, D - dt.timedelta(days=90), 1000)  # anonymous
    add(conn, "T6", None, D - dt.timedelta(days=200), 1000)  # claimed by A below
    add(conn, "T7", "C", D - dt.timedelta(days=10), 1000, line=1)
    add(conn, "T7", "C", D - dt.timedelta(days=10), -1500, line=2)  # net negative receipt
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('T6', 'A', '2026-06-01')"
    )
    assert segments.segments_for_all(conn, D) == {"A": "repeat", "B": "new"}
    assert segments.segment_of(conn, "A", D) == "repeat"
    assert segments.segment_of(conn, "B", D) == "new"
    assert segments.segment_of(conn, "C", D) is None
    assert segments.segment_of(conn, "nobody", D) is None
    counts = segments.segment_counts(conn, D)
    assert counts == {"new": 1, "one_time": 0, "repeat": 1, "loyal": 0, "at_risk": 0, "lapsed": 0}


def test_undone_rows_count_nowhere(conn):
    add(conn, "T1", "A", D - dt.timedelta(days=3), 1000)
    conn.execute("UPDATE purchases SET undone = 1")
    assert segments.segment_of(conn, "A", D) is None


@pytest.mark.parametrize(("n", "expected"), [(30, "new"), (31, "one_time")])
def test_segment_of_boundary_in_db(conn, n, expected):
    add(conn, "T1", "A", D - dt.timedelta(days=n), 1000)
    assert segments.segment_of(conn, "A", D) == expected


def test_thresholds_come_from_the_program(conn, tmp_path):
    from loyalty_cli import program

    path = tmp_path / "p.yaml"
    path.write_text(
        "program: P\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "segments: {new_days: 10, lapsed_days: 100}\n"
    )
    program.apply_program(conn, path)
    assert segments.rules_for(conn, D).new_days == 10
    add(conn, "T1", "A", D - dt.timedelta(days=11), 1000)
    add(conn, "T2", "B", D - dt.timedelta(days=101), 1000)
    assert segments.segments_for_all(conn, D) == {"A": "one_time", "B": "lapsed"}


def test_segments_of_all_members_count_claims_and_whole_receipts(conn):
    # A: two sale receipts a year apart, plus a receipt whose refund line makes
    # it negative (not a sale): one_time would be wrong, repeat is right.
    add(conn, "A1", "A", D - dt.timedelta(days=300), 1000)
    add(conn, "A2", "A", D - dt.timedelta(days=200), 500)
    add(conn, "A2", "A", D - dt.timedelta(days=200), -900, line=2)
    add(conn, "A3", "A", D - dt.timedelta(days=20), 700)
    # B: only a claimed receipt (anonymous rows), 10 days ago: new.
    add(conn, "B1", None, D - dt.timedelta(days=10), 400)
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) VALUES ('B1', 'B', ?)",
        (D.isoformat(),),
    )
    # C: one sale after the as-of date only: no segment.
    add(conn, "C1", "C", D + dt.timedelta(days=1), 400)
    assert segments.segments_for_all(conn, D) == {"A": "repeat", "B": "new"}
    assert segments.segment_of(conn, "A", D) == "repeat"
