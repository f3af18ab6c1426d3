"""How fast could any Python import into loyalty's purchases table be?

    .venv/bin/python benchmarks/floor.py [--data DIR]

Times, on the benchmark's purchases.csv, the two steps no import can skip,
done as cheaply as Python allows and with no checks at all:

* reading: `csv.reader` over the file into tuples;
* writing: one `executemany` of the already-typed rows into the purchases
  table of a fresh loyalty database (WAL, as every loyalty file), with only the
  key index (`purchases_key`) that duplicate detection needs, then the commit;
  and the same insert into an in-memory database (no file, no WAL).

Their sum, against `sqlite3 .import` of the same file, is the floor under the
issue's "import <= 2.5 x sqlite3 .import" target (see README.md).
"""

from __future__ import annotations

import argparse
import csv
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
from loyalty_cli import db  # noqa: E402

INSERT = (
    "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, sku, "
    "category, store, refund_of, currency, tax, quantity, import_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'EUR', 0, NULL, 1)"
)
SECONDARY = ("purchases_date", "purchases_import", "purchases_member")


def read(path: Path) -> list[tuple[object, ...]]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = csv.reader(fh)
        next(rows)
        # transaction_id,line_no,customer_id,date,amount,sku,category,store,refund_of
        return [
            (r[0], int(r[1]), r[2] or None, r[3], int(r[4].replace(".", "")), r[5], r[6], r[7],
             r[8] or None)
            for r in rows
        ]  # fmt: skip


def insert(conn: sqlite3.Connection, rows: list[tuple[object, ...]]) -> float:
    for name in SECONDARY:
        conn.execute(f"DROP INDEX IF EXISTS {name}")
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(INSERT, rows)
    conn.execute("COMMIT")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=HERE / "data")
    path = parser.parse_args().data / "purchases.csv"
    started = time.perf_counter()
    rows = read(path)
    reading = time.perf_counter() - started
    print(f"csv.reader + int() of {len(rows):,} rows: {reading:6.2f} s")
    with tempfile.TemporaryDirectory() as tmp:
        conn = db.connect(Path(tmp) / "floor.db")
        print(f"executemany into a WAL file + commit: {insert(conn, rows):6.2f} s")
        conn.close()
    memory = sqlite3.connect(":memory:", isolation_level=None)
    for statement in db._statements(db.SCHEMA_V1):
        memory.execute(statement)
    print(f"executemany into :memory:            {insert(memory, rows):6.2f} s")


if __name__ == "__main__":
    main()
