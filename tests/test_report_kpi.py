"""KPIs on a small hand-computed shop (every number worked out in the comments)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from loyalty_cli import ledger, program, reports, snapshots
from loyalty_cli.ledger import NewEntry

START, END = dt.date(2026, 3, 1), dt.date(2026, 3, 31)

PROGRAM = """\
program: Test shop
currency: EUR
point_value: 0.01
earn: {per_currency_unit: 1}
accounting: {expected_breakage: BREAKAGE}
"""


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def apply(conn, tmp_path, breakage: str = "0.2") -> None:
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM.replace("BREAKAGE", breakage))
    program.apply_program(conn, path)


def buy(conn, tx, cid, day, amount, line=1, undone=0, category=None):
    conn.execute(
        "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, category, "
        "import_id, undone) VALUES (?, ?, ?, ?, ?, ?, 1, ?)",
        (tx, line, cid, day, amount, category, undone),
    )


def post(conn, day, cid, kind, points, **kw):
    return ledger.post(
        conn,
        [
            NewEntry(
                date=d(day),
                customer_id=cid,
                kind=kind,
                points=points,
                source_type=kw.pop("source_type", "test"),
                **kw,
            )
        ],
    )[0]


def redemption(conn, rid, cid, day, points, value, status="active", reward="coffee"):
    conn.execute(
        "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, value, "
        "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'now')",
        (rid, cid, reward, day, points, value, status),
    )


@pytest.fixture
def shop(conn, tmp_path):
    apply(conn, tmp_path)
    buy(conn, "T1", "A", "2026-02-10", 10000)  # previous period
    buy(conn, "T2", "A", "2026-03-05", 5000)
    buy(conn, "T3", "A", "2026-03-20", 2000, line=1)
    buy(conn, "T3", "A", "2026-03-20", 1000, line=2)
    buy(conn, "T4", "B", "2026-02-15", 4000)  # previous period
    buy(conn, "T5", "B", "2026-03-10", -1000)  # refund only: B is not active
    buy(conn, "T6", "C", "2026-03-15", 8000)  # C's first sale ever: new
    buy(conn, "T7", None, "2026-03-12", 2000)  # anonymous sale
    buy(conn, "T8", None, "2026-03-25", -500)  # anonymous refund
    buy(conn, "T9", "D", "2025-12-01", 6000)  # long ago
    buy(conn, "T10", None, "2026-03-18", 4000)  # anonymous, claimed by C
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('T10', 'C', '2026-03-19')"
    )
    buy(conn, "T11", "A", "2026-03-06", 99900, undone=1)  # undone: counts nowhere
    buy(conn, "T12", "A", "2026-04-02", 7000)  # after the period
    post(conn, "2026-02-10", "A", "earn", 100)
    post(conn, "2026-03-05", "A", "earn", 50)
    post(conn, "2026-03-20", "A", "earn", 30)
    post(conn, "2026-03-15", "C", "bonus", 20)
    post(conn, "2026-03-15", "C", "earn", 120)
    post(conn, "2026-03-22", "A", "redeem", -100, source_type="redemption", source_id="R1")
    post(
        conn,
        "2026-03-25",
        "A",
        "redemption_reversed",
        100,
        source_type="redemption",
        source_id="R1",
    )
    post(conn, "2026-03-26", "A", "redeem", -50, source_type="redemption", source_id="R2")
    post(conn, "2026-02-15", "B", "earn", 40)
    post(conn, "2026-03-10", "B", "clawback", -10)
    lot = post(conn, "2025-12-01", "D", "earn", 60, expires_on=d("2026-03-01"))
    post(conn, "2026-03-01", "D", "expire", -60, lot_id=lot)
    post(conn, "2026-04-03", "A", "earn", 70)  # after the period
    redemption(conn, "R1", "A", "2026-03-22", 100, 350, status="cancelled")
    redemption(conn, "R2", "A", "2026-03-26", 50, 175)
    redemption(conn, "V1", "C", "2026-03-18", 0, 350, reward="tenth-coffee")  # punch card
    return conn


EXPECTED = {
    "from": "2026-03-01",
    "to": "2026-03-31",
    "active_customers": 2,  # A, C (B only refunded)
    "new_customers": 1,  # C
    "revenue_net": "205.00",  # 50 + 30 - 10 + 80 + 20 - 5 + 40
    "member_revenue": "190.00",  # 50 + 30 - 10 + 80 + 40
    "receipts": 5,  # T2, T3, T6, T7, T10
    "aov": "44.00",  # 220 / 5
    "member_aov": "50.00",  # 200 / 4
    "non_member_aov": "20.00",  # 20 / 1
    "repeat_purchase_rate": 1.0,  # A and C each 2 sale receipts / 2 active
    "retention_rate": 0.5,  # previous period A, B; again A
    "clv_historical": "97.50",  # (180 + 30 + 120 + 60) / 4 members seen
    "points_issued": 220,  # 50 + 30 + 20 + 120
    "points_redeemed": 50,  # 100 - 100 + 50
    "points_expired": 60,
    "points_clawed_back": 10,
    "redemption_rate": 50 / 220,  # 50 / 220
    "outstanding_points": 300,  # A 130 + B 30 + C 140
    "liability": "2.40",  # 300 * 0.01 * (1 - 0.2)
    "reward_cost": "5.25",  # R2 1.75 + V1 3.50 (R1 cancelled)
    "reward_cost_share": 5.25 / 190,  # 5.25 / 190
}


def test_every_kpi_on_the_hand_computed_shop(shop):
    assert reports.kpi_report(shop, START, END) == EXPECTED


def test_kpi_json_keys_are_exactly_the_contract(shop):
    assert list(reports.kpi_report(shop, START, END)) == list(EXPECTED)


def test_cli_kpi_json_equals_library(shop, cli):
    result = cli("report", "kpi", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == reports.kpi_report(shop, START, END)


def test_cli_kpi_table_and_csv(shop, cli):
    table = cli("report", "kpi", "--from", "2026-03-01", "--to", "2026-03-31")
    assert table.exit_code == 0, table.stderr
    assert "revenue_net" in table.stdout and "205.00" in table.stdout
    csv_out = cli("report", "kpi", "--from", "2026-03-01", "--to", "2026-03-31", "-f", "csv")
    header, row = csv_out.stdout.splitlines()
    assert header.split(",")[:3] == ["from", "to", "active_customers"]
    assert row.split(",")[:3] == ["2026-03-01", "2026-03-31", "2"]


def test_historical_breakage(conn, tmp_path):
    apply(conn, tmp_path, breakage="historical")
    lot = post(conn, "2025-12-01", "D", "earn", 60, expires_on=d("2026-03-01"))
    post(conn, "2026-03-01", "D", "expire", -60, lot_id=lot)
    post(conn, "2026-03-02", "A", "earn", 400)
    post(conn, "2026-03-03", "A", "redeem", -50, source_type="redemption", source_id="R")
    k = reports.compute_kpis(conn, START, END)
    # breakage 60 / (60 + 50); liability 350 * 0.01 * 50 / 110 = 1.5909 -> 1.59
    assert k.outstanding_points == 350
    assert reports.kpi_report(conn, START, END)["liability"] == "1.59"


def test_historical_breakage_counts_an_expiry_no_run_has_posted_yet(conn, tmp_path):
    # D's 60 expired on 2026-03-01 but no run has posted it: they are not
    # outstanding, so they count as expired in the breakage too, and posting the
    # expire entry changes neither figure.
    apply(conn, tmp_path, breakage="historical")
    lot = post(conn, "2025-12-01", "D", "earn", 60, expires_on=d("2026-03-01"))
    post(conn, "2026-03-02", "A", "earn", 400)
    post(conn, "2026-03-03", "A", "redeem", -50, source_type="redemption", source_id="R")
    before = reports.kpi_report(conn, START, END)
    assert (before["outstanding_points"], before["liability"]) == (350, "1.59")
    assert before["points_expired"] == 0
    post(conn, "2026-03-01", "D", "expire", -60, lot_id=lot)
    after = reports.kpi_report(conn, START, END)
    assert (after["outstanding_points"], after["liability"]) == (350, "1.59")


def test_no_previous_activity_gives_null_retention_and_empty_period_nulls(conn, tmp_path):
    apply(conn, tmp_path)
    buy(conn, "T1", "A", "2026-03-05", 1000)
    out = reports.kpi_report(conn, START, END)
    assert out["retention_rate"] is None
    assert out["active_customers"] == 1 and out["new_customers"] == 1
    assert out["non_member_aov"] is None
    assert out["redemption_rate"] is None
    assert out["reward_cost_share"] == 0.0
    empty = reports.kpi_report(conn, d("2027-01-01"), d("2027-01-31"))
    assert empty["aov"] is None and empty["repeat_purchase_rate"] is None
    assert empty["reward_cost_share"] is None and empty["revenue_net"] == "0.00"


def test_refund_only_customer_is_not_active_nor_new(conn, tmp_path):
    apply(conn, tmp_path)
    buy(conn, "T1", "B", "2026-03-05", -1000)
    out = reports.kpi_report(conn, START, END)
    assert out["active_customers"] == 0 and out["new_customers"] == 0
    assert out["member_revenue"] == "-10.00" and out["receipts"] == 0
    assert out["clv_historical"] == "-10.00"
    assert out["reward_cost_share"] is None  # not -0.0: no revenue to take a share of


def test_anonymous_sales_count_in_revenue_and_aov_not_customers(conn, tmp_path):
    apply(conn, tmp_path)
    buy(conn, "T1", None, "2026-03-05", 1000)
    buy(conn, "T2", None, "2026-03-06", 2001)
    out = reports.kpi_report(conn, START, END)
    assert out["active_customers"] == 0 and out["clv_historical"] is None
    assert out["revenue_net"] == "30.01" and out["member_revenue"] == "0.00"
    assert out["aov"] == "15.01"  # 30.01 / 2 = 15.005, half up
    assert out["non_member_aov"] == "15.01" and out["member_aov"] is None


def test_outstanding_excludes_expired_unposted_and_includes_pending(conn, tmp_path):
    apply(conn, tmp_path)
    # 100 points expired on 03-20 with no expire entry yet: not outstanding.
    post(conn, "2025-03-01", "A", "earn", 100, expires_on=d("2026-03-20"))
    # 40 points still pending at 03-31.
    post(conn, "2026-03-25", "A", "earn", 40, available_on=d("2026-04-08"))
    # A lot whose expiry was posted, then a cancellation gave points back to it.
    lot = post(conn, "2025-01-10", "B", "earn", 30, expires_on=d("2026-03-10"))
    post(conn, "2026-03-01", "B", "redeem", -30, source_type="redemption", source_id="R9")
    post(conn, "2026-03-10", "B", "expire", 0, lot_id=lot)
    post(
        conn, "2026-03-15", "B", "redemption_reversed", 30, source_type="redemption", source_id="R9"
    )
    # A claw-back dated after --to, posted before the lot's expire: the replay
    # as of --to skips it, so 30 points stay in the expired lot, not outstanding.
    lot_e = post(conn, "2025-03-01", "E", "earn", 100, expires_on=d("2026-03-10"))
    post(conn, "2026-04-05", "E", "clawback", -30, lot_id=lot_e)
    post(conn, "2026-03-10", "E", "expire", -70, lot_id=lot_e)
    assert reports.outstanding_points(conn, END) == 40
    # On 03-19 A's 100 are still usable; the 40 are not posted yet (dated 03-25).
    assert reports.outstanding_points(conn, d("2026-03-19")) == 100
    # The definition (a replay of every customer) agrees on every day.
    for day in ("2026-03-09", "2026-03-10", "2026-03-19", "2026-03-20", "2026-03-31"):
        total = sum(a + p for a, p in reports.balances(conn, d(day)).values())
        assert reports.outstanding_points(conn, d(day)) == total, day


def test_period_with_from_after_to_is_a_usage_error(conn, tmp_path, cli):
    apply(conn, tmp_path)
    result = cli("report", "kpi", "--from", "2026-04-01", "--to", "2026-03-01")
    assert result.exit_code == 2
    assert "Error: --from 2026-04-01 is after --to 2026-03-01" in result.stderr


def test_kpis_use_decimal_money_not_floats(shop):
    k = reports.compute_kpis(shop, START, END)
    assert k.aov == 4400 and k.liability == 240
    assert k.redemption_rate == Decimal(50) / Decimal(220)


def test_outstanding_matches_replay_when_lots_are_emptied_without_expire(conn, tmp_path):
    apply(conn, tmp_path)
    # F: a lot emptied by the claw-back aimed at it (no expire needed).
    lot_f = post(conn, "2025-01-05", "F", "earn", 50, expires_on=d("2026-03-05"))
    post(conn, "2025-02-01", "F", "clawback", -50, lot_id=lot_f)
    post(conn, "2025-06-01", "F", "earn", 20)
    # G: a claw-back larger than its lot spills FIFO into an older lot, which
    # then expires empty; a partly clawed lot still holds 15 after expiry.
    post(conn, "2025-01-01", "G", "earn", 10, expires_on=d("2026-03-02"))
    lot_g = post(conn, "2025-01-10", "G", "earn", 20, expires_on=d("2026-03-02"))
    post(conn, "2025-02-01", "G", "clawback", -30, lot_id=lot_g)
    lot_g2 = post(conn, "2025-03-01", "G", "earn", 25, expires_on=d("2026-03-12"))
    post(conn, "2025-04-01", "G", "clawback", -10, lot_id=lot_g2)
    # H: a claw-back aimed at a lot but dated after --to does not empty it then.
    lot_h = post(conn, "2025-01-01", "H", "earn", 40, expires_on=d("2026-03-03"))
    post(conn, "2026-04-02", "H", "clawback", -40, lot_id=lot_h)
    # I: debt paid by a later lot leaves it empty.
    post(conn, "2025-01-01", "I", "redeem", -5, source_type="redemption", source_id="R1")
    post(conn, "2025-01-02", "I", "earn", 5, expires_on=d("2026-03-04"))
    for day in ("2026-03-01", "2026-03-02", "2026-03-11", "2026-03-12", "2026-03-31", "2026-04-05"):
        total = sum(a + p for a, p in reports.balances(conn, d(day)).values())
        assert reports.outstanding_points(conn, d(day)) == total, day
    assert reports.outstanding_points(conn, END) == 20  # F's 20; G's 15 expired unposted


def test_new_customers_and_clv_count_claimed_receipts_and_later_rows(conn, tmp_path):
    apply(conn, tmp_path)
    # A bought before March on a receipt claimed later: not new in March.
    buy(conn, "C1", None, "2026-02-10", 1000)
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('C1', 'A', '2026-03-02')"
    )
    buy(conn, "A1", "A", "2026-03-05", 500)
    # B's only earlier receipt is a refund: B is new in March.
    buy(conn, "B0", "B", "2026-02-01", -300)
    buy(conn, "B1", "B", "2026-03-07", 800)
    # C's earlier receipt was undone: new. D's earlier sale is a two-line receipt
    # whose second line (a refund) makes it negative: not a sale, so D is new.
    buy(conn, "C0", "C", "2026-01-01", 700, undone=1)
    buy(conn, "C2", "C", "2026-03-08", 100)
    buy(conn, "D0", "D", "2026-02-02", 400)
    buy(conn, "D0", "D", "2026-02-02", -600, line=2)
    buy(conn, "D1", "D", "2026-03-09", 200)
    # E: only a claimed receipt, in March (new, and seen through the claim).
    buy(conn, "E1", None, "2026-03-10", 900)
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('E1', 'E', '2026-03-11')"
    )
    # Rows dated after --to count nowhere; F's receipt in April is not in March.
    buy(conn, "F1", "F", "2026-04-02", 5000)
    buy(conn, "G1", None, "2026-04-03", 700)
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('G1', 'G', '2026-04-04')"
    )
    out = reports.kpi_report(conn, START, END)
    assert out["active_customers"] == 5 and out["new_customers"] == 4  # B, C, D, E
    # Lifetime: A 15.00, B 5.00, C 1.00, D 0.00, E 9.00 over 5 members = 6.00.
    assert out["clv_historical"] == "6.00"
    assert out["member_revenue"] == "25.00"  # 5 + 8 + 1 + 2 + 9


def test_known_customers_from_every_source_as_of_a_day(conn, tmp_path):
    apply(conn, tmp_path)
    conn.execute("INSERT INTO customers (customer_id, name) VALUES ('K', 'Kim')")  # no activity
    buy(conn, "P1", "P", "2026-03-02", 100)  # a live row: known
    buy(conn, "U1", "U", "2026-03-02", 100, undone=1)  # only undone rows: unknown
    buy(conn, "V1", "V", "2026-03-02", 100, undone=1)  # undone, and live only after --to
    buy(conn, "V2", "V", "2026-04-02", 100)
    buy(conn, "C1", None, "2026-03-03", 100)
    conn.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('C1', 'C', '2026-03-04')"
    )  # claim only: known
    post(conn, "2026-03-05", "L", "earn", 10)  # ledger only: known
    post(conn, "2026-04-05", "M", "earn", 10)  # ledger only, after --to
    people = reports.known_customers(conn, END)
    assert sorted(people) == ["C", "K", "L", "P"]
    assert people["K"] == {"name": "Kim", "email": None}
    assert sorted(reports.known_customers(conn)) == ["C", "K", "L", "M", "P", "V"]


def test_side_by_side_and_one_after_another_agree(shop, monkeypatch):
    """The three query groups run on three snapshot connections (a file database
    on two cores) and, on one core, one after another on the caller's connection:
    the same document either way."""
    opened = []
    real_reader = snapshots._reader
    monkeypatch.setattr(snapshots.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(snapshots, "_reader", lambda *a: opened.append(1) or real_reader(*a))
    assert reports.kpi_report(shop, START, END) == EXPECTED
    assert len(opened) == 4  # the fence and three readers
    opened.clear()
    monkeypatch.setattr(snapshots.os, "cpu_count", lambda: 1)
    assert reports.kpi_report(shop, START, END) == EXPECTED
    assert opened == []


def test_kpi_inside_a_transaction_reads_its_own_writes(shop):
    """Uncommitted rows are seen only by the connection that wrote them, so a
    caller inside a transaction gets its queries run on its own connection."""
    shop.execute("BEGIN")
    buy(shop, "T13", "E", "2026-03-30", 1000)
    assert reports.kpi_report(shop, START, END)["active_customers"] == 3
    shop.execute("ROLLBACK")
    assert reports.kpi_report(shop, START, END)["active_customers"] == 2
