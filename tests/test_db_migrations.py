"""Schema migrations: an early version-1 file is brought up to date on open."""

import sqlite3

from loyalty_cli import db


def test_a_version_1_file_without_the_report_indexes_gets_them(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    for statement in db._statements(db.SCHEMA_V1):
        old.execute(statement)
    for name in ("purchases_member", "ledger_date_kind", "ledger_lot", "ledger_reversed"):
        old.execute(f"DROP INDEX {name}")
    old.execute("CREATE INDEX purchases_customer ON purchases (customer_id, date)")
    old.execute("PRAGMA user_version = 1")
    old.commit()
    old.close()

    conn = db.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"purchases_member", "ledger_date_kind", "ledger_lot", "ledger_reversed"} <= names
    assert "purchases_customer" not in names
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert conn.execute("SELECT COUNT(*) FROM run_state").fetchone()[0] == 0


def test_a_new_file_is_at_the_latest_version(db_file):
    conn = db.connect(db_file)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
