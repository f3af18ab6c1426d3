"""`loyalty demo` builds the sample shop and the coalition and shows them."""

import sqlite3

from typer.testing import CliRunner

from loyalty_cli.cli.app import app


def test_demo_builds_both_shops(cli, db_file):
    result = cli("demo")
    assert result.exit_code == 0, result.output
    for part in ("At the counter", "Net revenue by month", "Settlement", "pool"):
        assert part in result.stdout
    # The hint shows the shop on its own day (today, every lot has long expired).
    assert result.stdout.rstrip().endswith("customer show C0154 --as-of 2026-10-31")
    conn = sqlite3.connect(db_file)
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 19939
    assert conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1
    coalition = sqlite3.connect(db_file.with_name("loyalty-coalition.db"))
    assert coalition.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] > 0


def test_demo_refuses_a_used_database(cli):
    assert cli("program", "apply", "programs/cashback.yaml").exit_code == 0
    again = cli("demo")
    assert again.exit_code == 2
    assert "empty database" in again.stderr


def test_demo_builds_the_boutique_beside_a_used_coalition_file_and_leaves_it(cli, db_file):
    # NAME-coalition.db left from an earlier demo (or holding any shop): the
    # boutique, the demo the contract names, is built; that file is not touched.
    coalition = db_file.with_name("loyalty-coalition.db")
    assert (
        CliRunner()
        .invoke(app, ["--db", str(coalition), "program", "apply", "programs/cashback.yaml"])
        .exit_code
        == 0
    )
    result = cli("demo")
    assert result.exit_code == 0, result.output
    assert "At the counter" in result.stdout and "Settlement" not in result.stdout
    assert result.stderr == (
        f"Warning: {coalition} is already there and holds a shop or another file, so the "
        "coalition demo was not built (remove that file to see it)\n"
    )
    boutique = sqlite3.connect(db_file)
    assert boutique.execute("SELECT COUNT(*) FROM program_versions").fetchone()[0] == 1
    kept = sqlite3.connect(coalition)
    assert kept.execute("SELECT name FROM program_versions").fetchall() == [
        ("Corner Shop Cashback",)
    ]
    assert kept.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0


def test_demo_builds_the_boutique_beside_a_coalition_name_holding_no_database(cli, db_file):
    coalition = db_file.with_name("loyalty-coalition.db")
    coalition.write_text("notes, not a database\n")
    result = cli("demo")
    assert result.exit_code == 0, result.output
    assert "coalition demo was not built" in result.stderr
    assert coalition.read_text() == "notes, not a database\n"
