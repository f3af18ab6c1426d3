"""Exports: headers, journal continuity, rfm by hand, formula neutralising, offers."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest

from loyalty_cli import exports, ledger, program, reports
from loyalty_cli.ledger import NewEntry

PROGRAM = """\
program: Test shop
currency: EUR
point_value: 0.01
earn: {per_currency_unit: 1}
accounting: {expected_breakage: 0.2}
offers:
  - {id: winback, segment: at_risk, favourite_category: true, discount_percent: 10}
  - {id: hello, segment: new, bonus_points: 50}
"""


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


@pytest.fixture
def shop(conn, tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM)
    program.apply_program(conn, path)
    return conn


def buy(conn, tx, cid, day, amount, line=1, category=None):
    conn.execute(
        "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, category, "
        "import_id) VALUES (?, ?, ?, ?, ?, ?, 1)",
        (tx, line, cid, day, amount, category),
    )


def post(conn, day, cid, kind, points, **kw):
    kw.setdefault("source_type", "test")
    return ledger.post(
        conn, [NewEntry(date=d(day), customer_id=cid, kind=kind, points=points, **kw)]
    )[0]


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_journal_continuity_over_months(shop, cli):
    post(shop, "2025-12-15", "A", "earn", 500)  # opening 500
    post(shop, "2026-01-05", "A", "earn", 200)
    post(shop, "2026-01-10", "B", "bonus", 50)
    post(shop, "2026-01-20", "A", "clawback", -30)
    post(shop, "2026-02-03", "A", "redeem", -100, source_type="redemption", source_id="R1")
    post(shop, "2026-02-10", "A", "redemption_reversed", 100, source_type="redemption",
         source_id="R1")  # fmt: skip
    post(shop, "2026-02-12", "A", "redeem", -150, source_type="redemption", source_id="R2")
    post(shop, "2026-02-15", "A", "adjust", 10)
    post(shop, "2026-02-20", "A", "reversal", -20)
    post(shop, "2026-03-01", "A", "expire", -40)
    post(shop, "2026-05-01", "A", "earn", 999)  # after --to
    result = exports.journal_export(shop, d("2026-01-01"), d("2026-04-30"))
    assert result.header == [
        "period", "opening_points", "earned", "clawed_back", "redeemed", "redemption_reversed",
        "expired", "adjusted", "closing_points", "closing_value", "closing_liability",
    ]  # fmt: skip
    got = [[str(c) for c in row] for row in result.rows]
    assert got == [
        ["2026-01", "500", "250", "30", "0", "0", "0", "0", "720", "7.20", "5.76"],
        ["2026-02", "720", "0", "0", "250", "100", "0", "-10", "560", "5.60", "4.48"],
        ["2026-03", "560", "0", "0", "0", "0", "40", "0", "520", "5.20", "4.16"],
        ["2026-04", "520", "0", "0", "0", "0", "0", "0", "520", "5.20", "4.16"],
    ]
    for before, after in zip(result.rows, result.rows[1:], strict=False):
        assert before[8] == after[1]
    for row in result.rows:
        opening, earned, clawed, redeemed, back, expired, adjusted, closing = row[1:9]
        assert opening + earned - clawed - redeemed + back - expired + adjusted == closing
    out = cli("export", "journal", "--from", "2026-01-01", "--to", "2026-04-30")
    assert out.exit_code == 0, out.stderr
    assert rows_of(out.stdout) == [result.header, *got]


def test_journal_by_day_partial_month_and_empty_days(shop):
    post(shop, "2026-01-01", "A", "earn", 100)
    post(shop, "2026-01-05", "A", "earn", 10)
    days = exports.journal_export(shop, d("2026-01-04"), d("2026-01-06"), by="day")
    assert [(r[0], r[1], r[2], r[8]) for r in days.rows] == [
        ("2026-01-04", 100, 0, 100),
        ("2026-01-05", 100, 10, 110),
        ("2026-01-06", 110, 0, 110),
    ]
    months = exports.journal_export(shop, d("2026-01-04"), d("2026-02-10"))
    assert [(r[0], r[1], r[8]) for r in months.rows] == [
        ("2026-01", 100, 110),
        ("2026-02", 110, 110),
    ]


def test_journal_rejects_unknown_by(shop, cli):
    out = cli("export", "journal", "--from", "2026-01-01", "--to", "2026-01-31", "--by", "week")
    assert out.exit_code == 2
    assert "Error: --by: must be day or month, not 'week'" in out.stderr


@pytest.mark.parametrize(
    "name", ["ledger", "balances", "redemptions", "offers", "rfm", "settlement"]
)
def test_every_export_takes_the_synopsis_by_and_is_unchanged_by_it(shop, cli, name):
    # DESIGN's synopsis gives every export [--by day|month]; only the journal's rows
    # are periods, the others accept it (as balances accept --from) and ignore it.
    buy(shop, "T1", "A", "2026-01-05", 1000)
    post(shop, "2026-01-05", "A", "earn", 10, source_type="purchase", source_id="T1")
    args = ("export", name, "--from", "2026-01-01", "--to", "2026-01-31")
    plain = cli(*args)
    assert plain.exit_code == 0, plain.stderr
    assert len(rows_of(plain.stdout)) > 1 or name in ("redemptions", "settlement")
    for by in ("day", "month"):
        out = cli(*args, "--by", by)
        assert (out.exit_code, out.stdout) == (0, plain.stdout), out.stderr
    bad = cli(*args, "--by", "week")
    assert bad.exit_code == 2
    assert "Error: --by: must be day or month, not 'week'" in bad.stderr
    assert "Not used:" in cli("export", name, "--help").stdout


def test_rfm_hand_example(shop, cli):
    buy(shop, "T1", "A", "2026-01-01", 1000)
    buy(shop, "T2", "A", "2026-01-01", 500)  # same day: one purchase day of 15.00
    buy(shop, "T3", "A", "2026-01-11", 2000)
    buy(shop, "T4", "A", "2026-02-01", -400)  # refund and sale on one day: net 6.00
    buy(shop, "T5", "A", "2026-02-01", 1000)
    buy(shop, "T6", "B", "2026-03-01", 700)
    buy(shop, "T7", "B", "2026-03-01", 300)
    buy(shop, "T8", None, "2026-03-02", 5000)  # anonymous: not in rfm
    buy(shop, "T9", "B", "2026-04-02", 5000)  # after --to
    result = exports.rfm_export(shop, d("2026-03-31"))
    assert result.header == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    assert [[str(c) for c in r] for r in result.rows] == [
        ["A", "2", "31", "89", "13.00"],  # (20.00 + 6.00) / 2
        ["B", "0", "0", "30", "0.00"],
    ]
    out = cli("export", "rfm", "--to", "2026-03-31")
    assert rows_of(out.stdout)[1] == ["A", "2", "31", "89", "13.00"]


def test_rfm_mean_rounds_half_up(shop):
    buy(shop, "T1", "A", "2026-01-01", 100)
    buy(shop, "T2", "A", "2026-01-02", 1000)
    buy(shop, "T3", "A", "2026-01-03", 501)
    assert exports.rfm_export(shop, d("2026-01-31")).rows[0][4] == exports.from_minor(751)


def test_formula_cells_are_neutralised_numbers_are_not(shop, cli, tmp_path):
    shop.execute("INSERT INTO customers (customer_id, name, email) VALUES ('A', '=cmd', '@x')")
    buy(shop, "T1", "A", "2026-03-01", 1000)
    post(shop, "2026-03-01", "A", "adjust", -5, note="fix")
    post(shop, "2026-03-02", "-X", "earn", 7, source_type="+src")
    out = cli("export", "ledger", "--to", "2026-03-31")
    assert out.exit_code == 0, out.stderr
    rows = rows_of(out.stdout)
    assert rows[0] == [
        "entry_id", "date", "customer_id", "kind", "points", "value",
        "source_type", "source_id", "rule_id", "program_version",
    ]  # fmt: skip
    assert rows[1][:6] == ["1", "2026-03-01", "A", "adjust", "-5", "0.00"]
    assert rows[2][2] == "'-X" and rows[2][6] == "'+src"
    # -5 points stay a number, in the balances export too.
    bal = rows_of(cli("export", "balances", "--to", "2026-03-31").stdout)
    assert bal[0] == ["customer_id", "tier", "available", "pending", "value"]
    assert ["A", "", "-5", "0", "-0.05"] in bal
    # A name that is a formula gets a quote; the file form writes the same.
    target = tmp_path / "offers.csv"
    shop.execute("UPDATE purchases SET date = '2026-01-01'")
    buy(shop, "T0", "A", "2025-12-01", 1000)  # two visits, none for 89 days: at risk
    res = cli("export", "offers", "--to", "2026-03-31", "-o", str(target))
    assert res.exit_code == 0, res.stderr
    lines = rows_of(target.read_text(encoding="utf-8"))
    assert lines[0] == ["customer_id", "name", "email", "segment", "offer_id", "detail"]
    assert lines[1] == ["A", "'=cmd", "'@x", "at_risk", "winback", "10 % off"]


def test_safe_cell_rules():
    from loyalty_cli.render import safe_cell

    assert safe_cell("=1+1") == "'=1+1"
    assert safe_cell("\tx") == "'\tx" and safe_cell("\rx") == "'\rx"
    assert safe_cell("-5") == "-5" and safe_cell("-12.50") == "-12.50"
    assert safe_cell(-5) == -5 and safe_cell("Anna") == "Anna"
    assert safe_cell("-5+cmd") == "'-5+cmd"


def test_offers_favourite_category_and_first_matching_rule(shop):
    buy(shop, "T1", "A", "2025-12-01", 3000, line=1, category="tea")
    buy(shop, "T1", "A", "2025-12-01", 3000, line=2, category="coffee")  # tie: coffee by name
    buy(shop, "T2", "A", "2026-01-01", 500, category="cake")
    buy(shop, "T3", "B", "2026-03-20", 1000, category="tea")  # new
    buy(shop, "T4", "C", "2026-03-01", 1000)  # one visit 30 days ago: new as well
    buy(shop, "T5", "D", "2025-06-01", 1000)  # one_time: no offer rule
    result = exports.offers_export(shop, d("2026-03-31"))
    assert result.as_dicts() == [
        {"customer_id": "A", "name": None, "email": None, "segment": "at_risk",
         "offer_id": "winback", "detail": "10 % off coffee"},
        {"customer_id": "B", "name": None, "email": None, "segment": "new",
         "offer_id": "hello", "detail": "50 bonus points"},
        {"customer_id": "C", "name": None, "email": None, "segment": "new",
         "offer_id": "hello", "detail": "50 bonus points"},
    ]  # fmt: skip


def test_redemptions_export(shop, cli):
    shop.execute(
        "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, value, "
        "status, created_at) VALUES ('R1', 'A', 'coffee', '2026-03-05', 100, 350, 'cancelled', "
        "'now'), ('R2', 'A', 'coffee', '2026-04-05', 100, 350, 'active', 'now')"
    )
    out = cli("export", "redemptions", "--from", "2026-03-01", "--to", "2026-03-31")
    assert rows_of(out.stdout) == [
        ["redemption_id", "date", "customer_id", "reward_id", "points", "value", "status"],
        ["R1", "2026-03-05", "A", "coffee", "100", "3.50", "cancelled"],
    ]


@pytest.mark.parametrize(
    "name", ["ledger", "balances", "journal", "redemptions", "offers", "rfm", "settlement"]
)
def test_every_export_takes_format_csv_or_json(shop, cli, name):
    period = ("--from", "2026-01-01", "--to", "2026-03-31")
    plain = cli("export", name, *period)
    as_csv = cli("export", name, *period, "--format", "csv")
    assert as_csv.exit_code == 0 and as_csv.stdout == plain.stdout
    as_json = cli("export", name, *period, "-f", "json")
    assert as_json.exit_code == 0, as_json.stderr
    header, *rows = rows_of(plain.stdout)
    records = json.loads(as_json.stdout)
    assert [list(r) for r in records] == [header] * len(rows)
    assert [[_cell(v) for v in r.values()] for r in records] == rows
    table = cli("export", name, *period, "--format", "table")
    assert table.exit_code == 2 and "is not csv or json" in table.stderr


def test_output_dash_is_stdout_and_an_unwritable_file_is_one_sentence(
    shop, cli, tmp_path, monkeypatch
):
    plain = cli("export", "balances", "--to", "2026-03-31")
    dash = cli("export", "balances", "--to", "2026-03-31", "-o", "-")
    assert dash.exit_code == 0 and dash.stdout == plain.stdout
    assert not (tmp_path / "-").exists() and not Path("-").exists()
    empty = cli("export", "balances", "-o", "")
    assert empty.exit_code == 2 and "an empty file name" in empty.stderr

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", refuse)
    denied = cli("export", "balances", "--to", "2026-03-31", "-o", str(tmp_path / "b.csv"))
    assert denied.exit_code == 1
    assert denied.stderr.strip() == (
        f"Error: {tmp_path / 'b.csv'}: cannot write the export: Permission denied"
    )


def _cell(value) -> str:
    return "" if value is None else str(value)


def test_rfm_claimed_receipts_join_the_claimants_days(shop):
    buy(shop, "T1", "A", "2026-01-01", 1000)
    buy(shop, "C1", None, "2026-01-01", 500)  # claimed by A: the same day, net 15.00
    buy(shop, "C2", None, "2026-01-05", 300)  # claimed by Z, who has no own row
    buy(shop, "C2", None, "2026-01-05", 200, line=2)
    buy(shop, "T2", "A", "2026-01-21", 900)
    buy(shop, "C3", None, "2026-01-22", 800)  # anonymous, never claimed
    shop.execute(
        "INSERT INTO claims (transaction_id, customer_id, claimed_on) "
        "VALUES ('C1', 'A', '2026-01-02'), ('C2', 'Z', '2026-01-06')"
    )
    rows = [[str(c) for c in r] for r in exports.rfm_export(shop, d("2026-01-31")).rows]
    assert rows == [["A", "1", "20", "30", "9.00"], ["Z", "0", "0", "26", "0.00"]]


def test_rfm_refund_only_day_is_not_a_purchase_day(conn, write):
    from loyalty_cli.exports import rfm_export
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program

    apply_program(
        conn, write("p.yaml", "program: T\ncurrency: EUR\nearn: {per_currency_unit: 1}\n")
    )
    rows = (
        "transaction_id,customer_id,date,amount,refund_of\n"
        "T1,C2,2026-01-01,60.00,\nT2,C2,2026-01-10,-56.50,T1\nT3,C2,2026-01-20,8.00,\n"
    )
    import_files(conn, "purchases", [write("p.csv", rows)])
    [row] = rfm_export(conn, dt.date(2026, 3, 31)).rows
    assert [str(v) for v in row] == ["C2", "1", "19", "89", "8.00"]


def test_rfm_purchase_days_are_days_with_a_sale_receipt(conn, write):
    """As for the KPIs: a receipt's lines are summed first; 0.00 is a sale receipt,
    +5.00 and -20.00 on one receipt is a refund receipt."""
    from loyalty_cli.exports import rfm_export
    from loyalty_cli.importing import import_files
    from loyalty_cli.program import apply_program

    apply_program(
        conn, write("p.yaml", "program: T\ncurrency: EUR\nearn: {per_currency_unit: 1}\n")
    )
    rows = (
        "transaction_id,line_no,customer_id,date,amount\n"
        "T1,1,C1,2025-01-01,30.00\nM1,1,C1,2025-01-05,5.00\nM1,2,C1,2025-01-05,-20.00\n"
        "T2,1,C1,2025-01-20,30.00\n"
        "T4,1,C2,2025-01-03,10.00\nT5,1,C2,2025-01-17,0.00\n"
    )
    import_files(conn, "purchases", [write("p.csv", rows)])
    out = [[str(v) for v in row] for row in rfm_export(conn, dt.date(2025, 1, 31)).rows]
    assert out == [["C1", "1", "19", "30", "30.00"], ["C2", "1", "14", "28", "0.00"]]


def test_csv_and_json_to_stdout_are_utf8_whatever_the_locale(conn, tmp_path, db_file):
    import os
    import subprocess
    import sys

    from loyalty_cli.importing import import_files

    path = tmp_path / "p.yaml"
    path.write_text(
        "program: P\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "offers: [{id: hei, text: Hyvää päivää}]\n"
    )
    program.apply_program(conn, path)
    people = tmp_path / "c.csv"
    people.write_text("customer_id,name\nC1,Björn\n", encoding="utf-8")
    sale = tmp_path / "s.csv"
    sale.write_text("transaction_id,customer_id,date,amount\nT1,C1,2026-01-05,10.00\n")
    import_files(conn, "customers", [people])
    import_files(conn, "purchases", [sale])
    for encoding in ("ascii", "latin-1"):
        env = {**os.environ, "PYTHONIOENCODING": encoding}
        done = subprocess.run(
            [sys.executable, "-m", "loyalty_cli", "--db", str(db_file), "export", "offers",
             "--to", "2026-01-31"],
            capture_output=True, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "C1,Björn,,new,hei,Hyvää päivää" in done.stdout.decode("utf-8")
        listed = subprocess.run(
            [sys.executable, "-m", "loyalty_cli", "--db", str(db_file), "customer", "list",
             "--as-of", "2026-01-31", "--format", "csv"],
            capture_output=True, env=env, check=False,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        assert "C1,Björn," in listed.stdout.decode("utf-8")  # listings too, when piped


def test_a_favourite_category_tie_goes_to_the_first_in_dictionary_order(shop):
    buy(shop, "T1", "A", "2026-03-01", 2000, line=1, category="Banana")
    buy(shop, "T1", "A", "2026-03-01", 2000, line=2, category="apple")
    assert reports.favourite_categories(shop, d("2026-03-31")) == {"A": "apple"}
