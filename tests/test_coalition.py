"""Coalition programs: partner multipliers, store rejects, the settlement."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from loyalty_cli import db, rewards
from loyalty_cli.coalition import settlement
from loyalty_cli.engine.run import run
from loyalty_cli.engine.statement import customer_statement
from loyalty_cli.importing import import_files, list_rejects
from loyalty_cli.program import apply_program

PROGRAM = """
program: Kortteli
currency: EUR
point_value: 0.01
earn: {per_currency_unit: 1, rounding: floor}
partners:
  - {id: cafe, name: Café Aalto, stores: [S1, S2], multiplier: 1}
  - {id: bakery, name: Leipomo, stores: [B1], multiplier: 2}
  - {id: books, name: Kirjakauppa, stores: [K1], multiplier: 1}
bonuses: {signup: 50}
rewards:
  - {id: free-coffee, name: Free coffee, cost: 300, value: 3.00, partner: cafe}
  - {id: free-bun, name: Free bun, cost: 100, value: 2.00, partner: bakery}
  - {id: tote, name: Tote bag, cost: 500, value: 5.00}
"""

PURCHASES = """\
transaction_id,customer_id,date,amount,store,refund_of
T1,C1,2026-10-01,100.00,S1,
T2,C1,2026-10-02,30.00,B1,
T3,C2,2026-10-03,300.00,K1,
T4,C2,2026-10-04,45.50,S2,
T5,C1,2026-10-05,-10.00,B1,T2
T6,C3,2026-10-06,12.00,X9,
"""


@pytest.fixture
def shop(conn, write):
    apply_program(conn, write("coalition.yaml", PROGRAM))
    [result] = import_files(conn, "purchases", [write("p.csv", PURCHASES)])
    assert result.rejected == 1
    import_files(
        conn,
        "events",
        [write("e.csv", "event_id,customer_id,type,date\nE1,C1,signup,2026-10-01\n")],
    )
    run(conn, dt.date(2026, 10, 8))
    rewards.adjust(conn, "C1", 500, "moved from the old card", dt.date(2026, 10, 9))
    rewards.redeem(conn, "C1", "free-bun", dt.date(2026, 10, 10))
    tote = rewards.redeem(conn, "C1", "tote", dt.date(2026, 10, 11))
    rewards.cancel_redemption(conn, tote["redemption_id"], dt.date(2026, 10, 12))
    rewards.redeem(conn, "C2", "free-coffee", dt.date(2026, 10, 12))
    run(conn, dt.date(2026, 10, 31))
    return conn


def test_a_store_of_no_partner_is_rejected_with_its_line(shop):
    [reject] = list_rejects(shop)
    assert reject["line"] == 7
    assert reject["field"] == "store"
    assert "X9" in reject["reason"]


def test_partner_multiplier_scales_points(shop):
    points = dict(
        shop.execute(
            "SELECT source_id, SUM(points) FROM ledger WHERE source_type = 'purchase' GROUP BY 1"
        ).fetchall()
    )
    # Bakery doubles: 30.00 -> 60; its refund of 10.00 claws back 60 x 10/30 = 20.
    assert points == {"T1": 100, "T2": 60, "T3": 300, "T4": 45, "T5": -20}


def test_settlement_per_partner_and_the_pool(shop):
    rows = settlement(shop, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert rows == [
        {"partner": "cafe", "points_issued": 145, "value_issued": "1.45",
         "points_redeemed": 300, "value_redeemed": "3.00", "net": "-1.55"},
        {"partner": "bakery", "points_issued": 40, "value_issued": "0.40",
         "points_redeemed": 100, "value_redeemed": "1.00", "net": "-0.60"},
        {"partner": "books", "points_issued": 300, "value_issued": "3.00",
         "points_redeemed": 0, "value_redeemed": "0.00", "net": "3.00"},
        {"partner": "coalition", "points_issued": 550, "value_issued": "5.50",
         "points_redeemed": 0, "value_redeemed": "0.00", "net": "5.50"},
        {"partner": "pool", "points_issued": 0, "value_issued": "0.00",
         "points_redeemed": 0, "value_redeemed": "0.00", "net": "-6.35"},
    ]  # fmt: skip


def test_a_reward_of_one_partner_is_paid_with_points_from_another(shop):
    # C1 earned at the cafe first; the bakery's bun took its 100 points from that lot.
    taken = shop.execute(
        "SELECT points, partner FROM ledger WHERE customer_id = 'C1' AND kind = 'redeem'"
    ).fetchall()
    assert [tuple(r) for r in taken] == [(-100, "bakery"), (-500, None)]
    statement = customer_statement(shop, "C1", dt.date(2026, 10, 31))
    assert statement["by_partner"] == {"bakery": 40, "cafe": 100, "coalition": 550}
    assert statement["points"]["available"] == 590


def test_cli_export_settlement_csv_sums_to_zero(shop, cli):
    result = cli("export", "settlement", "--from", "2026-10-01", "--to", "2026-10-31")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "partner", "points_issued", "value_issued", "points_redeemed", "value_redeemed", "net",
    ]  # fmt: skip
    assert rows[-1]["partner"] == "pool"
    assert sum(Decimal(r["net"]) for r in rows) == 0
    report = cli("report", "partners", "--from", "2026-10-01", "--to", "2026-10-31", "-f", "json")
    data = json.loads(report.stdout)
    assert data["shared_customers"] == 2  # C1: cafe + bakery, C2: books + cafe
    assert data["revenue"]["bakery"] == "20.00"
    # Without --from, the settlement is --to's month (documented in --help and coalition.md).
    assert cli("export", "settlement", "--to", "2026-10-31").stdout == result.stdout
    november = list(
        csv.DictReader(io.StringIO(cli("export", "settlement", "--to", "2026-11-30").stdout))
    )
    assert {r["points_issued"] for r in november} == {"0"}  # October's points are not November's


def test_a_store_is_checked_against_the_partners_of_the_version_of_the_rows_date(conn, write):
    """K1 joins the scheme in June (v2): a March row at K1 is rejected, a July one
    earns at books x3. The other way round (K1 leaves in June), a late March row
    at K1 is still a partner's, scored by the version of its date."""
    head = "program: C\ncurrency: EUR\nearn: {per_currency_unit: 1, rounding: floor}\n"
    cafe = "  - {id: cafe, stores: [S1], multiplier: 1}\n"
    books = "  - {id: books, stores: [K1], multiplier: 3}\n"
    rows = write("k.csv", "transaction_id,customer_id,date,amount,store\n"
                          "A1,C1,2026-03-01,10.00,K1\nA2,C1,2026-07-01,10.00,K1\n")  # fmt: skip
    for first, later, rejected, earned in [
        (cafe, cafe + books, "A1", [("A2", 30)]),
        (cafe + books, cafe, "A2", [("A1", 30)]),
    ]:
        conn.execute("DELETE FROM program_versions")
        for table in ("purchases", "rejects", "imports", "ledger", "scored_receipts", "meta"):
            conn.execute(f"DELETE FROM {table}")
        apply_program(conn, write("v1.yaml", head + "partners:\n" + first),
                      effective=dt.date(2026, 1, 1))  # fmt: skip
        apply_program(conn, write("v2.yaml", head + "partners:\n" + later),
                      effective=dt.date(2026, 6, 1))  # fmt: skip
        [result] = import_files(conn, "purchases", [rows])
        assert result.rejected == 1
        [reject] = list_rejects(conn)
        assert reject["raw"].startswith(rejected)
        assert reject["reason"] == "store 'K1' belongs to no partner"
        run(conn, dt.date(2026, 7, 31))
        got = conn.execute("SELECT source_id, points FROM ledger ORDER BY entry_id").fetchall()
        assert [tuple(r) for r in got] == earned


def test_a_refund_alone_at_a_partner_does_not_make_a_shared_customer(shop, write, cli):
    """C2 bought at books and the cafe; C4 buys at the cafe and only refunds at the
    bakery (no refund_of): C4 is the cafe's customer, not the bakery's."""
    more = "transaction_id,customer_id,date,amount,store\n"
    more += "U1,C4,2026-10-07,20.00,S1\nU2,C4,2026-10-08,-5.00,B1\n"
    import_files(shop, "purchases", [write("more.csv", more)])
    report = cli("report", "partners", "--from", "2026-10-01", "--to", "2026-10-31", "-f", "json")
    data = json.loads(report.stdout)
    assert data["shared_customers"] == 2  # C1 and C2, not C4
    assert data["customers"]["bakery"] == 1  # C1
    assert data["revenue"]["bakery"] == "15.00"  # 30 - 10 - 5: refunds count in revenue


def _settled(conn, date_from, date_to):
    return {
        r["partner"]: (r["points_issued"], r["value_issued"], r["points_redeemed"], r["net"])
        for r in settlement(conn, date_from, date_to)
    }


def test_a_claw_back_from_pending_lots_is_the_refunded_partners(conn, write):
    """The bakery receipt's points were spent; the claw-back of its refund comes out
    of the café receipt's pending lot, but the bakery funded what is taken back."""
    apply_program(
        conn,
        write(
            "k.yaml",
            PROGRAM.replace("bonuses: {signup: 50}", "pending_days: 14").replace(
                "cost: 100, value: 2.00", "cost: 200, value: 4.00"
            ),
        ),
        effective=dt.date(2026, 1, 1),
    )
    head = "transaction_id,customer_id,date,amount,store,refund_of\n"
    import_files(conn, "purchases", [write("p1.csv", head + "T1,C1,2026-01-01,100.00,B1,\n")])
    run(conn, dt.date(2026, 1, 15))
    rewards.redeem(conn, "C1", "free-bun", dt.date(2026, 1, 15))
    import_files(
        conn,
        "purchases",
        [
            write(
                "p2.csv",
                head + "T2,C1,2026-01-16,100.00,S1,\nT3,C1,2026-01-17,-100.00,B1,T1\n",
            )
        ],
    )
    run(conn, dt.date(2026, 1, 31))
    assert _settled(conn, dt.date(2026, 1, 1), dt.date(2026, 1, 31)) == {
        "cafe": (100, "1.00", 0, "1.00"),
        "bakery": (0, "0.00", 200, "-2.00"),
        "books": (0, "0.00", 0, "0.00"),
        "pool": (0, "0.00", 0, "1.00"),
    }
    assert customer_statement(conn, "C1", dt.date(2026, 1, 31))["by_partner"] == {
        "bakery": 0,
        "cafe": 100,
    }


def _cafe_at_half_a_cent(conn, write, days: list[str], as_of: dt.date, versions: int = 1):
    """Program versions at point_value 0.005 from Jan, Feb, ...; one 1.00 café sale
    on each of `days`; run as of `as_of`."""
    cheap = PROGRAM.replace("point_value: 0.01", "point_value: 0.005")
    for n in range(versions):
        text = cheap.replace("program: Kortteli", f"program: Kortteli {n + 1}")
        apply_program(conn, write(f"v{n}.yaml", text), effective=dt.date(2026, n + 1, 1))
    rows = "".join(f"T{i},C1,{day},1.00,S1\n" for i, day in enumerate(days, 1))
    head = "transaction_id,customer_id,date,amount,store\n"
    import_files(conn, "purchases", [write("p.csv", head + rows)])
    run(conn, as_of)


def test_settlement_values_are_points_times_point_value(conn, write):
    _cafe_at_half_a_cent(
        conn, write, ["2026-01-02", "2026-01-03", "2026-01-04"], dt.date(2026, 1, 31)
    )
    settled = _settled(conn, dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    assert settled["cafe"] == (3, "0.02", 0, "0.02")  # 3 x 0.005 = 0.015, rounded once
    assert settled["pool"][-1] == "-0.02"


def test_versions_keeping_the_point_value_are_priced_together(conn, write):
    _cafe_at_half_a_cent(conn, write, ["2026-01-20", "2026-02-20"], dt.date(2026, 2, 28), 2)
    assert _settled(conn, dt.date(2026, 1, 1), dt.date(2026, 2, 28))["cafe"][:2] == (2, "0.01")


def test_a_claw_back_of_a_coalition_receipt_stays_the_coalitions(conn, write):
    """T1 was scored before partners existed (the coalition's); its refund takes
    back from the café's pending lot, yet the café's issue is untouched."""
    plain = "program: K\ncurrency: EUR\npoint_value: 0.01\npending_days: 14\n"
    plain += "earn: {per_currency_unit: 1, rounding: floor}\n"
    plain += "rewards:\n  - {id: tote, name: Tote, cost: 10, value: 1.00}\n"
    apply_program(conn, write("a.yaml", plain), effective=dt.date(2026, 1, 1))
    apply_program(
        conn,
        write("b.yaml", plain + "partners:\n  - {id: cafe, name: Cafe, stores: [S1]}\n"),
        effective=dt.date(2026, 2, 1),
    )
    head = "transaction_id,customer_id,date,amount,store,refund_of\n"
    import_files(conn, "purchases", [write("p1.csv", head + "T1,C1,2026-01-02,10.00,B1,\n")])
    run(conn, dt.date(2026, 1, 31))
    rewards.redeem(conn, "C1", "tote", dt.date(2026, 1, 31))
    rows = "T2,C1,2026-02-05,20.00,S1,\nR1,C1,2026-02-06,-10.00,S1,T1\n"
    import_files(conn, "purchases", [write("p2.csv", head + rows)])
    run(conn, dt.date(2026, 2, 28))
    settled = _settled(conn, dt.date(2026, 2, 1), dt.date(2026, 2, 28))
    assert settled["cafe"][0] == 20 and settled["coalition"][0] == -10
    statement = customer_statement(conn, "C1", dt.date(2026, 2, 28))
    assert statement["by_partner"] == {"cafe": 20, "coalition": 0}


def test_report_partners_credits_revenue_by_the_version_of_the_rows_date(conn, write, cli):
    """S2 is the cafe's until December, then the bookshop's: November's sale at S2
    is the cafe's revenue (it was all credited by the version in force on --to)."""
    head = "program: C\ncurrency: EUR\nearn: {per_currency_unit: 1}\npartners:\n"
    apply_program(conn, write("v1.yaml", head + "  - {id: cafe, stores: [S1, S2]}\n"
                              "  - {id: books, stores: [K1]}\n"),
                  effective=dt.date(2026, 1, 1))  # fmt: skip
    apply_program(conn, write("v2.yaml", head + "  - {id: cafe, stores: [S1]}\n"
                              "  - {id: books, stores: [K1, S2]}\n"),
                  effective=dt.date(2026, 12, 1))  # fmt: skip
    rows = "transaction_id,customer_id,date,amount,store\n"
    rows += "N2,M1,2026-11-15,100.00,S2\nD1,M2,2026-12-05,40.00,S2\n"
    import_files(conn, "purchases", [write("p.csv", rows)])
    report = cli("report", "partners", "--from", "2026-11-01", "--to", "2026-12-31", "-f", "json")
    data = json.loads(report.stdout)
    assert data["revenue"] == {"books": "40.00", "cafe": "100.00"}
    assert data["customers"] == {"books": 1, "cafe": 1}


def test_the_settlements_own_row_names_are_not_partner_ids(write, cli):
    """A partner `pool` or `coalition` validated, then shared the settlement's own
    rows (two `pool` rows, a merged `coalition` row)."""
    path = write(
        "res.yaml",
        "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\npartners:\n"
        "  - {id: pool, stores: [S1]}\n  - {id: coalition, stores: [S2]}\n",
    )
    result = cli("program", "validate", path)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"Error: {path}:5: partners[0].id: 'pool' is reserved: the settlement has a 'pool' "
        "row of its own",
        f"{path}:6: partners[1].id: 'coalition' is reserved: the settlement has a 'coalition' "
        "row of its own",
    ]


def test_report_partners_credits_sales_before_the_first_version_by_the_first(conn, write, cli):
    """As the settlement prices them; they went to a `coalition` revenue row."""
    head = "program: C\ncurrency: EUR\nearn: {per_currency_unit: 1}\npartners:\n"
    apply_program(conn, write("v1.yaml", head + "  - {id: cafe, stores: [S1]}\n"),
                  effective=dt.date(2026, 2, 1))  # fmt: skip
    rows = "transaction_id,customer_id,date,amount,store\nJ1,M1,2026-01-15,10.00,S1\n"
    import_files(conn, "purchases", [write("p.csv", rows)])
    report = cli("report", "partners", "--from", "2026-01-01", "--to", "2026-02-28", "-f", "json")
    assert json.loads(report.stdout)["revenue"] == {"cafe": "10.00"}


def test_the_settlement_before_the_first_version_prices_by_it(conn, write):
    apply_program(conn, write("c.yaml", PROGRAM + "effective_from: 2026-01-01\n"))
    with db.transaction(conn):
        conn.execute("INSERT INTO customers (customer_id) VALUES ('C1')")
    rewards.adjust(conn, "C1", 100, "carried over", dt.date(2025, 12, 31))
    rows = {r["partner"]: r for r in settlement(conn, dt.date(2025, 12, 1), dt.date(2025, 12, 31))}
    assert (rows["coalition"]["points_issued"], rows["coalition"]["value_issued"]) == (100, "1.00")
    assert rows["pool"]["net"] == "-1.00"


def test_report_partners_names_partners_without_sales_with_zeros(shop, cli):
    result = cli("report", "partners", "--from", "2026-10-10", "--to", "2026-10-11", "-f", "json")
    report = json.loads(result.stdout)
    assert report["revenue"]["bakery"] == "0.00" and report["customers"]["bakery"] == 0
    assert set(report["revenue"]) >= {"cafe", "bakery", "books"}


def test_apply_says_which_rows_a_version_leaves_without_a_partner(cli, write):
    v1 = PROGRAM + "effective_from: 2026-01-01\n"
    v2 = v1.replace("  - {id: books, name: Kirjakauppa, stores: [K1], multiplier: 1}\n", "")
    v2 = v2.replace("effective_from: 2026-01-01", "effective_from: 2026-10-01")
    assert cli("program", "apply", write("v1.yaml", v1), "--yes").exit_code == 0
    rows = "transaction_id,customer_id,date,amount,store\n"
    rows += "A1,C1,2026-09-20,10.00,K1\nA2,C1,2026-10-02,10.00,K1\nA3,C1,2026-10-03,5.00,S1\n"
    assert cli("import", "purchases", write("a.csv", rows)).exit_code == 0
    applied = cli("program", "apply", write("v2.yaml", v2), "--yes")
    assert applied.exit_code == 0
    assert applied.stderr.startswith(
        "note: 1 purchase line dated from 2026-10-01 on is at stores no partner of this "
        "version has (K1); the run scores it without a partner"
    )


def test_lines_a_later_version_scores_are_not_counted_against_an_earlier_one(conn, write):
    from loyalty_cli.coalition import unpartnered_lines
    from loyalty_cli.program import parse_program

    rows = "transaction_id,customer_id,date,amount,store\nA1,C1,2026-03-02,10.00,K9\n"
    rows += "A2,C1,2026-08-01,10.00,K9\n"
    import_files(conn, "purchases", [write("a.csv", rows)])
    program = parse_program(PROGRAM)
    since, until = dt.date(2026, 3, 1), dt.date(2026, 7, 1)
    assert unpartnered_lines(conn, program, since, until) == (1, ["K9"])
    assert unpartnered_lines(conn, program, since) == (2, ["K9"])


def test_partners_csv_ends_with_the_shared_customers(shop, cli):
    args = ("report", "partners", "--from", "2026-10-01", "--to", "2026-10-31")
    shared = json.loads(cli(*args, "-f", "json").stdout)["shared_customers"]
    rows = list(csv.DictReader(io.StringIO(cli(*args, "-f", "csv").stdout)))
    assert rows[-1]["partner"] == "shared_customers"
    assert rows[-1]["customers"] == str(shared) and rows[-1]["points_issued"] == ""


def test_a_negative_adjustment_of_pending_points_stays_the_coalitions(conn, write):
    """Its part aimed at the bakery's pending lot is still the coalition's own
    correction in the settlement (it was charged to the bakery through its lot)."""
    apply_program(conn, write("c.yaml", PROGRAM + "pending_days: 14\n"))
    sales = "transaction_id,customer_id,date,amount,store\nU1,C1,2026-10-01,100.00,B1\n"
    import_files(conn, "purchases", [write("u.csv", sales)])
    run(conn, dt.date(2026, 10, 2))
    rewards.adjust(conn, "C1", -100, "double scan", dt.date(2026, 10, 2), allow_negative=True)
    assert conn.execute("SELECT lot_id FROM ledger WHERE kind = 'adjust'").fetchone()[0] == 1
    settled = _settled(conn, dt.date(2026, 10, 1), dt.date(2026, 10, 31))
    assert settled["bakery"][0] == 200 and settled["coalition"][0] == -100
