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


def _file_at_schema(path, version: int) -> sqlite3.Connection:
    """A file as loyalty left it at schema `version` (its first migration steps)."""
    old = sqlite3.connect(path)
    for step in db.MIGRATIONS[:version]:
        for statement in db._statements(step):
            old.execute(statement)
    old.execute(f"PRAGMA user_version = {version}")
    return old


def test_a_new_file_is_at_the_latest_version(db_file):
    conn = db.connect(db_file)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION


def _bytes(path):
    return path.read_bytes(), sorted(p.name for p in path.parent.iterdir())


def test_a_file_from_a_newer_version_is_neither_read_nor_written(tmp_path, cli):
    path = tmp_path / "newer.db"
    db.connect(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    raw.close()
    before = _bytes(path)
    result = cli("--db", str(path), "customer", "list")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {path} was made by a newer loyalty (schema {db.SCHEMA_VERSION + 1}; this one "
        f"knows up to {db.SCHEMA_VERSION}): upgrade loyalty to use it"
    )
    assert _bytes(path) == before


def test_another_programs_database_is_left_alone(tmp_path, cli):
    path = tmp_path / "notes.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE notes (x)")
    raw.commit()
    raw.close()
    before = _bytes(path)
    result = cli("--db", str(path), "init")
    assert result.exit_code == 1
    assert "is an SQLite database of something else, not a loyalty database" in result.stderr
    assert _bytes(path) == before


def test_version_7_gives_a_refunds_positive_tax_the_amounts_sign(tmp_path):
    """A refund stored with its tax as the till wrote it (2.00 of -10.00): the line and
    the remembered score both turn to -2.00, so the next run sees the receipt as it
    scored it; the customer's cached state goes."""
    path = tmp_path / "v6.db"
    old = _file_at_schema(path, 6)
    old.executemany(
        "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, tax, "
        "import_id) VALUES (?, ?, 'C1', '2026-01-05', ?, ?, 1)",
        [("S1", 1, 1000, 200), ("R1", 1, -1000, 200), ("R1", 2, -500, -100)],
    )
    old.executemany(
        "INSERT INTO scored_receipts (transaction_id, customer_id, date, amount, tax, lines, "
        "points) VALUES (?, 'C1', '2026-01-05', ?, ?, ?, ?)",
        [("S1", 1000, 200, 1, 10), ("R1", -1500, 100, 2, -12)],
    )
    old.execute(
        "INSERT INTO run_state (customer_id, entry_id, as_of, since, timeline, state) "
        "VALUES ('C1', 1, '2026-01-31', '', '', '{}')"
    )
    old.commit()
    old.close()

    conn = db.connect(path)
    taxes = conn.execute("SELECT transaction_id, line_no, tax FROM purchases ORDER BY id")
    assert [tuple(r) for r in taxes] == [("S1", 1, 200), ("R1", 1, -200), ("R1", 2, -100)]
    scored = conn.execute("SELECT transaction_id, tax FROM scored_receipts ORDER BY 1")
    assert [tuple(r) for r in scored] == [("R1", -300), ("S1", 200)]
    assert conn.execute("SELECT COUNT(*) FROM run_state").fetchone()[0] == 0


def test_version_4_leaves_an_old_shop_without_a_customer_import_mark(tmp_path):
    """Its last run's customers are not known: customers imported after it would be
    taken as seen by a mark at the newest import (their birthdays never paid). No
    mark: the next run looks at every customer once (test_engine_bonuses)."""
    path = tmp_path / "v3.db"
    old = _file_at_schema(path, 3)
    old.execute("INSERT INTO meta (key, value) VALUES ('run.as_of', '2026-10-31')")
    old.executemany(
        "INSERT INTO imports (kind, file, sha256, started_at) VALUES ('customers', ?, ?, ?)",
        [("a.csv", "a", "2026-10-01T10:00:00"), ("b.csv", "b", "2026-11-02T10:00:00")],
    )
    old.commit()
    old.close()
    conn = db.connect(path)
    assert db.get_meta(conn, "run.last_customer_import_id") is None


def test_version_11_drops_a_customer_import_mark_an_earlier_build_set(tmp_path):
    """Builds that set the mark at the newest import when upgrading a schema-3 file
    left customers imported after its last run unpaid for good: the mark goes, so the
    next run looks at everyone once (and sets it again)."""
    path = tmp_path / "v10.db"
    old = _file_at_schema(path, 10)
    old.execute("INSERT INTO meta (key, value) VALUES ('run.last_customer_import_id', '4')")
    old.commit()
    old.close()
    conn = db.connect(path)
    assert db.get_meta(conn, "run.last_customer_import_id") is None
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 11
