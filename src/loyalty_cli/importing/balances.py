"""Opening balances when moving from another system: customer_id, points, date
(optional expires_on).

Each row is posted as an `adjust` entry with source_type "balance" and
source_id "<import_id>:<line>": a lot usable from `date`, expiring on
`expires_on` when given, else under the program's fixed expiry. An unknown
customer gets a bare customers row. A row is keyed by (customer_id, date,
expires_on) among balances not undone, so re-importing an edited file skips
what is already there and a different number of points for the same lot is a
conflict. `import undo` posts `reversal` entries for the import's balances.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Hashable

from loyalty_cli import ledger
from loyalty_cli.importing.kinds import KindHandler, Record
from loyalty_cli.importing.parsing import Cells, RowRejected
from loyalty_cli.money import abbreviated

SOURCE_TYPE = "balance"


class BalancesKind(KindHandler):
    name = "balances"
    table = "ledger"  # rows live in the ledger (find_existing is overridden)
    columns = ("customer_id", "points", "date", "expires_on")
    required = ("customer_id", "points", "date")
    key_fields = ("customer_id", "date", "expires_on")
    compare_fields = ("points",)
    insert_fields = ()
    has_undone = False
    source_type = SOURCE_TYPE

    @classmethod
    def check_shop(cls, conn: sqlite3.Connection) -> None:
        """A balance is valued (point_value) and expires under the program: without
        one its entry would be worth 0.00 and never expire, whatever comes after."""
        from loyalty_cli.db import program_version_count
        from loyalty_cli.errors import NoProgramError

        if not program_version_count(conn):
            raise NoProgramError(
                "no program applied yet: an opening balance is valued and expires under "
                "the program; run `loyalty program apply FILE` first"
            )

    def parse(self, cells: Cells) -> Record:
        from loyalty_cli.rewards import lot_expiry

        customer = cells.ident("customer_id")
        text = cells.required("points")
        if not text.isascii() or not text.isdigit():
            raise RowRejected(
                "points", f"'{abbreviated(text)}' is not a whole number of 0 or more points"
            )
        # Compared as text: int() refuses a few thousand digits.
        if len(text.lstrip("0")) > len(str(ledger.MAX_ENTRY_POINTS)):
            raise RowRejected(
                "points",
                f"'{abbreviated(text)}' is more points than one opening balance may hold "
                f"({ledger.MAX_ENTRY_POINTS:,})",
            )
        date = cells.date("date")
        assert date is not None
        expires_on = cells.date("expires_on", required=False)
        if expires_on is not None and expires_on <= date:
            raise RowRejected("expires_on", f"must be after date {date.isoformat()}")
        given = expires_on is not None
        expires_on = expires_on or lot_expiry(self.conn, date)
        return {
            "customer_id": customer,
            "points": int(text.lstrip("0") or "0"),  # (zeros first: int() takes 4,300 digits)
            "date": date.isoformat(),
            "expires_on": expires_on.isoformat() if expires_on else None,
            "expiry_given": given,
        }

    def key(self, record: Record) -> Hashable:
        return (record["customer_id"], record["date"], record["expires_on"])

    def find_existing(self, record: Record) -> tuple[Record, int] | None:
        row = self.conn.execute(
            """
            SELECT l.points, l.source_id FROM ledger l
            WHERE l.source_type = ? AND l.kind = 'adjust' AND l.customer_id = ?
              AND l.date = ? AND (l.expires_on IS ? OR (? AND l.expires_on IS NULL))
              AND NOT EXISTS (SELECT 1 FROM ledger r WHERE r.source_type = l.source_type
                              AND r.source_id = l.source_id AND r.kind = 'reversal')
            ORDER BY l.entry_id LIMIT 1
            """,
            (
                SOURCE_TYPE,
                record["customer_id"],
                record["date"],
                record["expires_on"],
                # A row without expires_on is the same as one stored before its
                # expiry was worked out (no program then, or dated before the first
                # version when such lots did not expire).
                not record["expiry_given"],
            ),
        ).fetchone()
        if row is None:
            return None
        return {"points": row[0]}, int(str(row[1]).split(":")[0])

    def check_new(self, record: Record, line: int) -> None:
        # Its points would show in no statement until then.
        self.not_after_today(
            record["date"], "; date an opening balance on the day it was carried over"
        )
        record["line"] = line

    def write(self, records: list[Record]) -> None:
        from loyalty_cli.rewards import adjustment_entry

        iid = self.ctx.import_id
        self.conn.executemany(
            "INSERT OR IGNORE INTO customers (customer_id, import_id) VALUES (?, ?)",
            [(r["customer_id"], iid) for r in records],
        )
        entries = [
            adjustment_entry(
                self.conn,
                r["customer_id"],
                r["points"],
                dt.date.fromisoformat(r["date"]),
                source_type=SOURCE_TYPE,
                source_id=f"{iid}:{r['line']}",
                note=f"opening balance (import {iid}, line {r['line']})",
                expires_on=dt.date.fromisoformat(r["expires_on"]) if r["expires_on"] else None,
            )
            for r in records
            if r["points"]  # a zero balance opens nothing
        ]
        ledger.post(self.conn, entries)

    @classmethod
    def last_posted(cls, conn: sqlite3.Connection, import_id: int) -> str | None:
        # Its entries, and what took from their lots (an expiry): see KindHandler.
        return conn.execute(
            "WITH own AS (SELECT entry_id, date, points FROM ledger "
            "WHERE source_type = ? AND source_id LIKE ?) "
            "SELECT MAX(d) FROM (SELECT date AS d FROM own UNION ALL "
            "SELECT x.date FROM ledger x WHERE x.lot_id IN "
            "(SELECT entry_id FROM own WHERE points > 0))",
            (SOURCE_TYPE, f"{import_id}:%"),
        ).fetchone()[0]

    @classmethod
    def undo(cls, conn: sqlite3.Connection, import_id: int, on: dt.date, note: str) -> int:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT source_id FROM ledger WHERE source_type = ? "
                "AND source_id LIKE ? AND kind = 'adjust'",
                (SOURCE_TYPE, f"{import_id}:%"),
            )
        ]
        ledger.reverse_sources(conn, SOURCE_TYPE, ids, on, note)
        return len(ids)


KIND = BalancesKind
