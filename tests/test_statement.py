"""`customer show` and `customer explain`: library and CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from engine_helpers import buy, customer, go, program
from loyalty_cli.engine.statement import customer_statement, explain
from loyalty_cli.errors import NotFoundError
from loyalty_cli.importing import import_files, undo_import

PROGRAM = """
pending_days: 14
expiry: {policy: fixed, months: 12}
tiers:
  basis: spend
  levels:
    - {id: bronze, name: Bronze, min: 0}
    - {id: silver, name: Silver, min: 300, multiplier: 1.5}
rewards:
  - {id: coffee, name: Free coffee, cost: 100, value: 3.50}
"""


@pytest.fixture
def shop(conn, tmp_path):
    program(conn, tmp_path, PROGRAM)
    customer(conn, "C1", name="Aino")
    buy(conn, "T1", "C1", "2026-01-05", 15000)  # 150, available 2026-01-19
    buy(conn, "T2", "C1", "2026-01-20", 5000)  # 50, pending until 2026-02-03
    go(conn, "2026-01-31")
    return conn


def test_statement_document(shop):
    data = customer_statement(shop, "C1", dt.date(2026, 1, 25))
    assert data["customer_id"] == "C1"
    assert data["name"] == "Aino"
    assert data["tier"] == "bronze"
    assert data["points"] == {"available": 150, "pending": 50, "total": 200}
    assert data["qualifying"] == "200.00"
    assert data["next_tier"] == {"id": "silver", "remaining": "100.00"}
    assert data["expiring"] == [  # last usable days, pending lots included
        {"date": "2027-01-18", "points": 150},
        {"date": "2027-02-02", "points": 50},
    ]
    assert data["eligible_rewards"] == ["coffee"]
    assert data["vouchers"] == []
    assert list(data) == [
        "customer_id", "name", "tier", "segment", "points", "qualifying", "next_tier",
        "expiring", "eligible_rewards", "vouchers",
    ]  # fmt: skip


def test_statement_without_tiers_and_top_tier(conn, tmp_path):
    program(conn, tmp_path)
    buy(conn, "T1", "C2", "2026-01-05", 1000)
    go(conn, "2026-01-31")
    data = customer_statement(conn, "C2", dt.date(2026, 1, 31))
    assert (data["tier"], data["qualifying"], data["next_tier"], data["name"]) == (
        None,
        None,
        None,
        None,
    )
    assert data["expiring"] == []


def test_unknown_customer(shop):
    with pytest.raises(NotFoundError, match="unknown customer 'NOPE'"):
        customer_statement(shop, "NOPE", dt.date(2026, 1, 31))
    with pytest.raises(NotFoundError):
        explain(shop, "NOPE")


def test_explain_running_balance(shop):
    rows = explain(shop, "C1")
    assert [(r["kind"], r["points"], r["balance"], r["source"]) for r in rows] == [
        ("earn", 150, 150, "purchase:T1"),
        ("earn", 50, 200, "purchase:T2"),
    ]
    assert rows[0]["version"] == 1 and rows[0]["expires_on"] == "2027-01-19"
    # What the kind alone does not say: the receipt's amount and the tier it earned at.
    assert rows[0]["note"] == "receipt 150.00 EUR, tier bronze"


def test_explain_says_which_import_undo_took_an_earns_receipt(conn, tmp_path):
    """An undo forgets the receipt's scoring, which the earn's note was read from:
    the note was empty, or the next import's receipt. Each earn names its own undo."""
    program(conn, tmp_path, PROGRAM)
    (tmp_path / "p.csv").write_text(
        "transaction_id,customer_id,date,amount\nU1,C1,2026-01-05,20.00\n"
    )
    (tmp_path / "q.csv").write_text(
        "transaction_id,customer_id,date,amount\nU1,C1,2026-01-05,25.00\n"
    )
    for name, day in (("p.csv", "2026-02-01"), ("q.csv", "2026-02-03")):
        [done] = import_files(conn, "purchases", [tmp_path / name])
        go(conn, "2026-01-31")
        undo_import(conn, done.import_id, dt.date.fromisoformat(day))
    [last] = import_files(conn, "purchases", [tmp_path / "p.csv"])
    go(conn, "2026-02-05")
    rows = explain(conn, "C1")
    assert [(r["kind"], r["points"], r["note"]) for r in rows] == [
        ("earn", 20, "receipt undone with import 1"),
        ("reversal", -20, "import 1 undone"),
        ("earn", 25, "receipt undone with import 2"),
        ("reversal", -25, "import 2 undone"),
        ("earn", 20, "receipt 20.00 EUR, tier bronze"),
    ]
    assert last.import_id == 3


def test_explain_names_the_undo_of_a_spent_earn_beside_its_bonus_lot(conn, tmp_path):
    """The undo aims a reversal only at the lots still holding points (here the
    bonus): the spent earn is its receipt's too."""
    from loyalty_cli.rewards import redeem

    program(
        conn, tmp_path, PROGRAM + "rules:\n  - {id: big, when: {min_amount: 100.00}, bonus: 50}\n"
    )
    (tmp_path / "p.csv").write_text(
        "transaction_id,customer_id,date,amount\nT1,C1,2026-01-05,100.00\n"
    )
    [done] = import_files(conn, "purchases", [tmp_path / "p.csv"])
    go(conn, "2026-01-25")
    redeem(conn, "C1", "coffee", dt.date(2026, 1, 26))
    undo_import(conn, done.import_id, dt.date(2026, 1, 27))
    notes = {(r["kind"], r["points"]): r["note"] for r in explain(conn, "C1")}
    assert notes[("earn", 100)] == notes[("bonus", 50)] == "receipt undone with import 1"


def test_cli_show_json_and_table(cli, shop):
    result = cli("customer", "show", "C1", "--as-of", "2026-01-25", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["points"]["available"] == 150
    table = cli("customer", "show", "C1", "--as-of", "2026-01-25")
    assert table.exit_code == 0
    assert "150 points available" in table.stdout and "100.00 EUR to Silver" in table.stdout
    # The cashier reads names and types ids: the reward's id stands beside its name.
    assert "Tier Bronze" in table.stdout and "Can have: Free coffee (coffee)" in table.stdout
    csv = cli("customer", "show", "C1", "--as-of", "2026-01-25", "--format", "csv")
    assert csv.stdout.splitlines()[0].startswith("customer_id,name,tier,segment,available")


def test_cli_unknown_customer_exit_1(cli, shop):
    result = cli("customer", "show", "NOPE")
    assert result.exit_code == 1
    assert result.stderr == "Error: unknown customer 'NOPE'\n"
    result = cli("customer", "explain", "NOPE")
    assert result.exit_code == 1


def test_cli_explain_formats(cli, shop):
    data = json.loads(cli("customer", "explain", "C1", "--format", "json").stdout)
    assert [r["balance"] for r in data] == [150, 200]
    csv = cli("customer", "explain", "C1", "--format", "csv").stdout.splitlines()
    assert csv[0] == (
        "entry_id,date,kind,points,balance,source,rule,version,available_on,expires_on,note"
    )
    assert len(csv) == 3
    table = cli("customer", "explain", "C1")
    assert "purchase:T1" in table.stdout


def test_the_counter_panel_says_how_many_more_points_expire_later(conn, tmp_path, cli):
    program(conn, tmp_path, "expiry: {policy: fixed, months: 12}\n")
    customer(conn, "C9")
    for month in range(1, 6):  # five lots, five expiry dates
        buy(conn, f"T{month}", "C9", f"2026-0{month}-10", 1000 * month)
    go(conn, "2026-06-01")
    result = cli("customer", "show", "C9", "--as-of", "2026-06-01")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "10 points usable until 2027-01-09" in text
    assert "30 points usable until 2027-03-09" in text
    assert "90 more points in 2 later lots" in text  # 40 + 50


def test_names_and_ids_print_as_written_not_as_rich_markup_or_emoji(conn, tmp_path, cli):
    program(conn, tmp_path)
    customer(conn, "K1", name="[/bold] Ann :birthday:")
    customer(conn, "[/]", name="[red]Bob")
    buy(conn, "T1", "K1", "2026-03-05", 2000)
    buy(conn, "T2", "[/]", "2026-03-05", 1000)
    go(conn, "2026-03-10")
    show = cli("customer", "show", "K1", "--as-of", "2026-03-10")
    assert show.exit_code == 0, show.stderr
    assert "[/bold] Ann :birthday:" in show.stdout
    other = cli("customer", "show", "[/]", "--as-of", "2026-03-10")
    assert other.exit_code == 0 and "[/] · [red]Bob" in other.stdout
    listing = cli("customer", "list", "--as-of", "2026-03-10")
    assert listing.exit_code == 0, listing.stderr
    assert "[red]Bob" in listing.stdout and "[/bold] Ann :birthday:" in listing.stdout
    explain = cli("customer", "explain", "K1")
    assert explain.exit_code == 0 and "purchase:T1" in explain.stdout


@pytest.mark.parametrize(
    ("basis", "say"), [("receipts", "1 receipt to Silver"), ("points", "149 points to Silver")]
)
def test_the_panel_names_what_the_next_tier_counts(cli, conn, tmp_path, basis, say):
    text = PROGRAM.replace("basis: spend", f"basis: {basis}").replace("min: 300", "min: 2")
    program(
        conn, tmp_path, text.replace("min: 2,", "min: 150," if basis == "points" else "min: 2,")
    )
    customer(conn, "C1", name="Aino")
    buy(conn, "T1", "C1", "2026-01-05", 100)  # 1 point, one receipt
    go(conn, "2026-01-31")
    table = cli("customer", "show", "C1", "--as-of", "2026-01-25").stdout
    assert say in table
    assert "1 point usable until 2027-01-18" in table


def test_the_panel_says_how_far_to_the_first_tier_before_one(cli, conn, tmp_path):
    """Below the lowest level (min above 0) the panel had no tier line at all,
    though the JSON says what is left to reach it."""
    program(conn, tmp_path, PROGRAM.replace("min: 0}", "min: 50}"))
    customer(conn, "C1", name="Aino")
    buy(conn, "T1", "C1", "2026-01-05", 1000)
    go(conn, "2026-01-31")
    table = cli("customer", "show", "C1", "--as-of", "2026-01-25").stdout
    assert "Tier none yet   40.00 EUR to Bronze" in table


def test_explain_names_the_expiries_no_run_has_posted(cli, conn, tmp_path):
    program(conn, tmp_path, PROGRAM)
    customer(conn, "C1", name="Aino")
    buy(conn, "T1", "C1", "2025-01-05", 15000)  # 150, available 2025-01-19
    go(conn, "2025-02-01")  # no run since: the lot expired on 2026-01-19 unposted
    shown = json.loads(cli("customer", "show", "C1", "--format", "json").stdout)
    assert shown["points"]["total"] == 0
    table = cli("customer", "explain", "C1").stdout
    assert "Not posted yet: 150 points expired on 2026-01-19 (no run has posted that)" in table
    rows = json.loads(cli("customer", "explain", "C1", "--format", "json").stdout)
    assert [r["kind"] for r in rows] == ["earn"]  # the JSON is the ledger as it is
    go(conn, "2026-02-01")
    assert "Not posted yet" not in cli("customer", "explain", "C1").stdout
    rows = json.loads(cli("customer", "explain", "C1", "--format", "json").stdout)
    assert (rows[-1]["kind"], rows[-1]["note"]) == ("expire", "the lot of 2025-01-05 (purchase:T1)")


def test_the_panel_keeps_a_long_name_whole_into_a_pipe(cli, conn, tmp_path):
    program(conn, tmp_path, PROGRAM)
    name = "Maximilian Alexander Bartholomew Fitzgerald-Worthington von Hohenzollern the Third"
    customer(conn, "C1", name=name)
    out = cli("customer", "show", "C1", "--as-of", "2026-01-25").stdout
    assert f"C1 · {name}" in out
