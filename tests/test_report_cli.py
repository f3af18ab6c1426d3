"""report tiers | segments | offers | summary and customer list: library and CLI agree."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest

from loyalty_cli import program, reports

PROGRAM = """\
program: Test shop
currency: EUR
point_value: 0.01
earn: {per_currency_unit: 1}
tiers:
  basis: spend
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 300}
    - {id: gold, min: 1000}
rewards:
  - {id: coffee, name: Free coffee, cost: 100, value: 3.50}
offers:
  - {id: welcome, segment: new, text: "Welcome! 5 % off {category}"}
"""
D = dt.date(2026, 3, 31)


def buy(conn, tx, cid, day, amount, category=None):
    conn.execute(
        "INSERT INTO purchases (transaction_id, customer_id, date, amount, category, import_id) "
        "VALUES (?, ?, ?, ?, ?, 1)",
        (tx, cid, day, amount, category),
    )


@pytest.fixture
def shop(conn, tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM)
    program.apply_program(conn, path)
    conn.execute("INSERT INTO customers (customer_id, name) VALUES ('A', 'Anna'), ('Z', 'Zoe')")
    buy(conn, "T1", "A", "2026-03-20", 2000, "cake")  # new
    buy(conn, "T2", "B", "2025-01-10", 1000)  # lapsed
    buy(conn, "T3", "C", "2025-10-01", 1000)  # one_time
    buy(conn, "T4", "C", "2025-09-01", 1000)  # ... two: gap 30, last 181 days ago: at_risk
    buy(conn, "T5", None, "2026-03-21", 1500)  # anonymous
    # Tiers from the engine's history table (fallback) or the tier engine.
    conn.executemany(
        "INSERT INTO tier_history (customer_id, date, tier) VALUES (?, ?, ?)",
        [
            ("A", "2026-03-20", "bronze"),
            ("C", "2025-09-01", "bronze"),
            ("C", "2025-10-01", "silver"),
        ],
    )
    conn.execute(
        "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, value, "
        "status, created_at) VALUES ('R1', 'C', 'coffee', '2026-03-02', 100, 350, 'active', 'x')"
    )
    return conn


def ok(result):
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_report_segments_json_has_all_six_keys(shop, cli):
    expected = {"new": 1, "one_time": 0, "repeat": 0, "loyal": 0, "at_risk": 1, "lapsed": 1}
    assert reports.segment_report(shop, D) == expected
    got = ok(cli("report", "segments", "--to", "2026-03-31", "--format", "json"))
    assert got == expected and list(got) == list(expected)


def test_report_tiers(shop, cli):
    got = ok(cli("report", "tiers", "--to", "2026-03-31", "--format", "json"))
    assert got == reports.tier_report(shop, D)
    by_tier = {r["tier"]: (r["customers"], r["share"]) for r in got}
    # Only the engine knows tiers once it has scored; the history fallback gives A, C.
    if sum(n for n, _ in by_tier.values()):
        assert abs(sum(s for _, s in by_tier.values()) - 1) < 0.001
    assert [r["tier"] for r in got][:3] == ["bronze", "silver", "gold"]


def test_report_tiers_share_is_null_when_nobody_holds_a_tier(conn, cli, tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM.replace("{id: bronze, min: 0}", "{id: bronze, min: 10}"))
    program.apply_program(conn, path)
    got = ok(cli("report", "tiers", "--to", "2026-03-31", "--format", "json"))
    assert got == [
        {"tier": "bronze", "customers": 0, "share": None},
        {"tier": "silver", "customers": 0, "share": None},
        {"tier": "gold", "customers": 0, "share": None},
    ]


def test_customer_list_filters_and_json(shop, cli):
    rows = ok(cli("customer", "list", "--as-of", "2026-03-31", "--format", "json"))
    assert [r["customer_id"] for r in rows] == ["A", "B", "C", "Z"]
    assert rows[0] == {
        "customer_id": "A",
        "name": "Anna",
        "tier": reports.tiers_on(shop, D).get("A"),
        "segment": "new",
        "available": 0,
        "pending": 0,
    }
    assert rows[3]["segment"] is None  # Zoe never bought anything
    at_risk = ok(cli("customer", "list", "--segment", "at_risk", "--as-of", "2026-03-31",
                     "-f", "json"))  # fmt: skip
    assert [r["customer_id"] for r in at_risk] == ["C"]
    bad = cli("customer", "list", "--segment", "vip")
    assert bad.exit_code == 2
    assert bad.stderr.startswith("Error: --segment: unknown segment 'vip'")


def test_report_offers_uses_text_with_category(shop, cli):
    got = ok(cli("report", "offers", "--to", "2026-03-31", "--format", "json"))
    assert got == [
        {"customer_id": "A", "name": "Anna", "email": None, "segment": "new",
         "offer_id": "welcome", "detail": "Welcome! 5 % off cake"},
    ]  # fmt: skip


def test_summary_json_and_table(shop, cli):
    got = ok(cli("report", "summary", "--from", "2026-02-01", "--to", "2026-03-31", "-f", "json"))
    assert got == reports.summary(shop, dt.date(2026, 2, 1), D).as_json()
    assert got["members"] == 4  # A, B, C, Z
    assert got["revenue_by_month"] == [
        {"month": "2026-02", "members": "0.00", "non_members": "0.00"},
        {"month": "2026-03", "members": "20.00", "non_members": "15.00"},
    ]
    assert got["segments"]["at_risk"] == 1
    assert got["top_rewards"] == [
        {"reward_id": "coffee", "redemptions": 1, "points": 100, "value": "3.50"}
    ]
    table = cli("report", "summary", "--from", "2026-02-01", "--to", "2026-03-31")
    assert table.exit_code == 0, table.stderr
    assert "Net revenue by month" in table.stdout and "█" in table.stdout
    csv_out = cli("report", "summary", "--to", "2026-03-31", "-f", "csv")
    assert csv_out.stdout.splitlines()[0] == "section,key,value"


def test_reports_without_program_fail_clearly(cli):
    result = cli("report", "kpi", "--from", "2026-03-01", "--to", "2026-03-31")
    assert result.exit_code == 1
    assert "no program applied yet" in result.stderr


def test_help_texts_have_examples(cli):
    for args in (["report", "kpi"], ["export", "journal"], ["customer", "list"]):
        out = cli(*args, "--help")
        assert out.exit_code == 0 and "Example: loyalty" in out.stdout


WHOLE_SHOP_COMMANDS = [
    ["report", "kpi"],
    ["report", "tiers"],
    ["report", "segments"],
    ["report", "offers"],
    ["report", "summary"],
    ["customer", "list"],
    ["rewards", "eligible"],
    ["export", "ledger"],
    ["export", "balances"],
    ["export", "journal"],
    ["export", "redemptions"],
    ["export", "offers"],
    ["export", "rfm"],
    ["check"],
]


@pytest.mark.parametrize("command", WHOLE_SHOP_COMMANDS, ids=" ".join)
def test_a_command_over_the_whole_shop_shows_a_spinner_while_it_works(
    shop, cli, monkeypatch, command
):
    """Seconds on a big shop: a spinner on the terminal (render.working draws it only
    there), stopped before the output is printed."""
    from contextlib import contextmanager

    from loyalty_cli import render

    spinning: list[str] = []
    printed_while_spinning: list[bool] = []

    @contextmanager
    def working(text):
        spinning.append(text)
        try:
            yield
        finally:
            spinning.append("stopped")

    monkeypatch.setattr(render, "working", working)
    real_rows = render.render_rows

    def rows(*args, **kwargs):
        printed_while_spinning.append(spinning[-1] != "stopped")
        return real_rows(*args, **kwargs)

    monkeypatch.setattr(render, "render_rows", rows)
    dated = {"report": ["--to", "2026-03-31"], "export": ["--to", "2026-03-31"], "check": []}
    result = cli(*command, *dated.get(command[0], ["--as-of", "2026-03-31"]))
    assert result.exit_code in (0, 1), result.stderr
    assert len(spinning) == 2 and spinning[0].endswith("...") and spinning[1] == "stopped"
    # A table printed while the spinner turns would be drawn through it.
    assert not any(printed_while_spinning)


def test_a_member_met_only_on_a_later_receipt_is_not_listed_before_it(conn, tmp_path, write):
    """The import of purchases adds a bare customer row for an id it meets; as of an
    earlier date that member is not one yet (the customers file's rows always are)."""
    from loyalty_cli.importing import import_files

    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM)
    program.apply_program(conn, path, effective=dt.date(2025, 1, 1))
    import_files(conn, "customers", [write("c.csv", "customer_id,name\nC1,One\nC3,Three\n")])
    rows = "transaction_id,customer_id,date,amount\nT1,C1,2025-01-10,10.00\nT2,C2,2025-03-01,5.00\n"
    import_files(conn, "purchases", [write("p.csv", rows)])
    assert sorted(reports.known_customers(conn, dt.date(2025, 2, 1))) == ["C1", "C3"]
    assert sorted(reports.known_customers(conn, dt.date(2025, 3, 1))) == ["C1", "C2", "C3"]
    listed = [r["customer_id"] for r in reports.customer_list(conn, dt.date(2025, 2, 1))]
    assert listed == ["C1", "C3"]


def test_an_id_only_row_of_the_customers_file_makes_a_member_whatever_the_order(
    conn, tmp_path, write
):
    # Z was first met on a receipt; the customers file names it (no other field):
    # from then on Z is a member from the start, as if the file had come first.
    from loyalty_cli.importing import import_files

    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM)
    program.apply_program(conn, path, effective=dt.date(2025, 1, 1))
    rows = "transaction_id,customer_id,date,amount\nT1,Z,2025-05-01,10.00\n"
    import_files(conn, "purchases", [write("p.csv", rows)])
    [result] = import_files(conn, "customers", [write("c.csv", "customer_id,name\nZ,\nX,\n")])
    assert (result.inserted, result.duplicates) == (2, 0)
    assert sorted(reports.known_customers(conn, dt.date(2025, 4, 1))) == ["X", "Z"]
    [again] = import_files(conn, "customers", [write("c2.csv", "customer_id,name\nZ,\n")])
    assert (again.inserted, again.duplicates) == (0, 1)


def test_reports_taken_on_one_day_say_their_from_is_not_used(cli):
    for args in (["report", "tiers"], ["report", "segments"], ["report", "offers"],
                 ["export", "balances"], ["export", "offers"], ["export", "rfm"]):  # fmt: skip
        out = cli(*args, "--help")
        assert "Not used: this is taken as of --to" in " ".join(out.stdout.split()), args
    assert "Not used" not in cli("report", "kpi", "--help").stdout


def test_the_summary_chart_fits_a_narrow_terminal(shop, monkeypatch):
    import io

    from loyalty_cli import render
    from loyalty_cli.reports import summary

    data = summary(shop, None, dt.date(2026, 3, 31)).as_json()
    out = io.StringIO()
    monkeypatch.setenv("COLUMNS", "60")
    render.render_summary(data, "table", out)
    chart = out.getvalue().split("Net revenue by month")[1].split("╰")[0].splitlines()[1:]
    assert max(len(line) for line in chart) <= 60
    # Two lines a month (members, non-members), none wrapped onto a line of its own.
    assert len(chart) == 2 * len(data["revenue_by_month"])


def test_summary_csv_holds_every_figure_of_the_json(shop, cli):
    args = ("report", "summary", "--from", "2026-02-01", "--to", "2026-03-31")
    got = ok(cli(*args, "-f", "json"))
    rows = list(csv.reader(io.StringIO(cli(*args, "-f", "csv").stdout)))[1:]
    coffee = {(section, value) for section, key, value in rows if key == "coffee"}
    assert coffee == {("top_rewards", "1"), ("top_rewards_points", "100"),
                      ("top_rewards_value", "3.50")}  # fmt: skip
    shares = {key: value for section, key, value in rows if section == "tiers_share"}
    assert shares == {t["tier"]: str(t["share"]) if t["share"] is not None else ""
                      for t in got["tiers"]}  # fmt: skip
