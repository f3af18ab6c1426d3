"""Members without a receipt hold the lowest level when its min is 0, everywhere."""

import datetime as dt
import json

from loyalty_cli.engine.run import run
from loyalty_cli.importing import import_files
from loyalty_cli.program import apply_program

PROGRAM = """
program: T
currency: EUR
earn: {per_currency_unit: 1, rounding: floor}
tiers:
  basis: spend
  window: lifetime
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 100}
"""


def test_member_without_receipts_is_bronze_in_list_report_and_statement(conn, write, cli):
    apply_program(conn, write("p.yaml", PROGRAM))
    import_files(conn, "customers", [write("c.csv", "customer_id,name\nC1,Ann\nC2,Bo\n")])
    import_files(
        conn,
        "purchases",
        [write("p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-01-02,150.00\n")],
    )
    run(conn, dt.date(2026, 1, 31))
    listing = json.loads(cli("customer", "list", "--as-of", "2026-01-31", "-f", "json").stdout)
    assert {row["customer_id"]: row["tier"] for row in listing} == {"C1": "silver", "C2": "bronze"}
    tiers = json.loads(cli("report", "tiers", "--to", "2026-01-31", "-f", "json").stdout)
    assert tiers == [
        {"tier": "bronze", "customers": 1, "share": 0.5},
        {"tier": "silver", "customers": 1, "share": 0.5},
    ]
    show = json.loads(cli("customer", "show", "C2", "--as-of", "2026-01-31", "-f", "json").stdout)
    assert show["tier"] == "bronze"


def test_unknown_tier_filter_is_a_usage_error(conn, write, cli):
    apply_program(conn, write("p.yaml", PROGRAM))
    result = cli("customer", "list", "--tier", "gold")
    assert result.exit_code == 2
    assert "unknown tier 'gold'; the tiers are bronze, silver" in result.stderr
