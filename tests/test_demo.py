"""`loyalty demo` builds the sample shop and the coalition and shows them."""

import sqlite3


def test_demo_builds_both_shops(cli, db_file):
    result = cli("demo")
    assert result.exit_code == 0, result.output
    for part in ("At the counter", "Net revenue by month", "Settlement", "pool"):
        assert part in result.stdout
    conn = sqlite3.connect(db_file)
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 19944
    assert conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1
    coalition = sqlite3.connect(db_file.with_name("loyalty-coalition.db"))
    assert coalition.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] > 0


def test_demo_refuses_a_used_database(cli):
    assert cli("program", "apply", "programs/cashback.yaml").exit_code == 0
    again = cli("demo")
    assert again.exit_code == 2
    assert "empty database" in again.stderr
