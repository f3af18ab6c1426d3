"""The kind framework: what every importable kind declares, and the registry.

A kind subclasses `KindHandler` (see the package docstring). The framework
calls, per row, `parse(cells)` then `accept(record, line)`; `accept` decides
new / duplicate / conflict against the rows already stored (including the
earlier batches of this same file, which are in the database inside the
file's transaction) and the rows waiting in the current batch. `flush()`
writes the batch with `write(records)`.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sqlite3
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

from loyalty_cli.errors import UsageError
from loyalty_cli.importing.dialect import Dialect
from loyalty_cli.importing.parsing import Cells, RowRejected

# Kinds the CLI knows, each a module of this package defining KIND.
KIND_MODULES = ("purchases", "customers", "events", "redemptions", "balances")

# A kind's parsed row: column -> value (purchases: a tuple in its insert order).
Record = Any


@dataclass
class ImportContext:
    conn: sqlite3.Connection
    import_id: int
    dialect: Dialect
    file: str
    today: dt.date


class KindHandler:
    """Base class of a kind. Subclasses set the ClassVars and `parse`."""

    name: ClassVar[str]
    table: ClassVar[str]
    columns: ClassVar[tuple[str, ...]]  # every standard column the kind reads
    required: ClassVar[tuple[str, ...]]  # columns that must be in the header
    key_fields: ClassVar[tuple[str, ...]]
    compare_fields: ClassVar[tuple[str, ...]]  # "same content" for a duplicate
    insert_fields: ClassVar[tuple[str, ...]]  # written by the default write()
    has_undone: ClassVar[bool] = True  # table has an `undone` flag
    source_type: ClassVar[str | None] = None  # ledger source type reversed by undo
    source_field: ClassVar[str | None] = None  # column holding the ledger source id
    batch_size: ClassVar[int] = 2000
    # Rows parsed ahead and handed to `prepare` before they are accepted one
    # by one (1: parse and accept each row in turn). Only for kinds whose
    # `parse` does not read the database.
    chunk_rows: ClassVar[int] = 1

    def __init__(self, ctx: ImportContext) -> None:
        self.ctx = ctx
        self.conn = ctx.conn
        self._today = ctx.today.isoformat()
        self.batch: list[Record] = []
        self.pending: dict[Hashable, tuple[Record, int]] = {}
        keys = " AND ".join(f"{f} = ?" for f in self.key_fields)
        live = " AND undone = 0" if self.has_undone else ""
        cols = ", ".join(self.compare_fields)
        self._find_sql = f"SELECT {cols}, import_id FROM {self.table} WHERE {keys}{live} LIMIT 1"

    def not_after_today(self, day: str, why: str = "") -> None:
        """A row dated after today (the nightly's --as-of) is a mistyped year: a
        reject, with `why` said after it."""
        if day > self._today:
            raise RowRejected("date", f"{day} is after {self._today}: a date to come{why}")

    @classmethod
    def check_shop(cls, conn: sqlite3.Connection) -> None:
        """Raise when the shop cannot take rows of this kind at all (before any file
        is read)."""

    # -- to implement -------------------------------------------------------
    def parse(self, cells: Cells) -> Record:
        """Cells -> a record of database-ready values; RowRejected when bad."""
        raise NotImplementedError

    # -- hooks with defaults ------------------------------------------------
    def use_columns(self, index: dict[str, int]) -> None:
        """The file's standard column -> position map, once, before its rows."""

    def parse_fields(self, row: list[str]) -> Record | None:
        """A fast path of `parse` on a well-shaped row's cells: the record, or
        None to let `parse` decide (and word any rejection)."""
        return None

    def key(self, record: Record) -> Hashable:
        return tuple(record[f] for f in self.key_fields)

    def describe_key(self, record: Record) -> str:
        return " ".join(f"{f} {self.show(f, record[f])}" for f in self.key_fields)

    def show(self, field: str, value: Any) -> str:
        """A stored value as a person reads it (money kinds override)."""
        return "empty" if value is None else f"'{value}'"

    def find_existing(self, record: Record) -> tuple[Record, int] | None:
        row = self.conn.execute(
            self._find_sql, tuple(record[f] for f in self.key_fields)
        ).fetchone()
        if row is None:
            return None
        return {f: row[i] for i, f in enumerate(self.compare_fields)}, row[-1]

    def prepare(self, records: list[Record]) -> None:
        """Called with the parsed records of a chunk (see `chunk_rows`) before
        `accept` sees them in file order: a kind can look up their keys at once."""

    def begin(self, size: int) -> None:
        """Called once inside the file's transaction before its first row
        (`size`: the file's bytes), e.g. to prepare a bulk load."""

    def finish(self) -> None:
        """Called once inside the file's transaction after the last batch is written."""

    def where(self, import_id: int | None) -> str:
        if import_id is None:
            return "made at the counter"  # a redemption by `loyalty redeem`
        if import_id == self.ctx.import_id:
            return "imported by an earlier line of this file"
        return f"imported by import {import_id}"

    def accept(self, record: Record, line: int) -> bool:
        """True: new row (queued); False: duplicate. RowRejected: conflict."""
        key = self.key(record)
        old: Record | None = None
        if key in self.pending:
            old, old_line = self.pending[key]
            where = f"imported by line {old_line} of this file"
        else:
            found = self.find_existing(record)
            if found is not None:
                old, where = found[0], self.where(found[1])
        if old is not None:
            self.check_same(record, old, where)
            return False
        self.check_new(record, line)
        self.queue(key, record, line)
        return True

    def check_same(self, record: Record, old: Record, where: str) -> None:
        """A row whose key is taken must repeat the stored row (a duplicate)."""
        for f in self.compare_fields:
            if old[f] != record[f]:
                raise self.conflict(record, f, where, old[f], record[f])

    def conflict(self, record: Record, f: str, where: str, old: Any, new: Any) -> RowRejected:
        """The rejection of a row whose key is taken by a row with another `f`."""
        return RowRejected(
            f,
            f"conflict: {self.describe_key(record)} was {where} "
            f"with {f} {self.show(f, old)}, this row has {self.show(f, new)}",
        )

    def queue(self, key: Hashable, record: Record, line: int) -> None:
        """A new row: into the batch (written when the batch is full)."""
        self.pending[key] = (record, line)
        self.batch.append(record)
        if len(self.batch) >= self.batch_size:
            self.flush()

    def check_new(self, record: Record, line: int) -> None:
        """Extra checks for a row about to be inserted (receipts agree, ...)."""

    def flush(self) -> None:
        if self.batch:
            self.write(self.batch)
        self.batch = []
        self.pending.clear()

    def write(self, records: list[Record]) -> None:
        fields = (*self.insert_fields, "import_id")
        sql = (
            f"INSERT INTO {self.table} ({', '.join(fields)}) "
            f"VALUES ({', '.join('?' * len(fields))})"
        )
        iid = self.ctx.import_id
        self.conn.executemany(sql, [(*(r[f] for f in self.insert_fields), iid) for r in records])

    @classmethod
    def last_posted(cls, conn: sqlite3.Connection, import_id: int) -> str | None:
        """The date (ISO) of the latest ledger entry the import's live rows made
        (entries of their sources after the last reversal of each: an earlier import
        of the same ids, undone, made the ones before), or took from their lots (a
        refund's claw-back, an expiry): the reversal nets against all of them, so it
        may not be dated before any."""
        if cls.source_type is None or cls.source_field is None:
            return None
        return conn.execute(
            "WITH own AS (SELECT l.entry_id, l.date, l.points FROM ledger l "
            "WHERE l.source_type = ? AND l.source_id IN "
            f"(SELECT {cls.source_field} FROM {cls.table} WHERE import_id = ? AND undone = 0) "
            "AND l.entry_id > COALESCE((SELECT MAX(r.entry_id) FROM ledger r "
            "WHERE r.source_type = l.source_type AND r.source_id = l.source_id "
            "AND r.kind = 'reversal'), 0)) "
            "SELECT MAX(d) FROM (SELECT date AS d FROM own UNION ALL "
            "SELECT x.date FROM ledger x WHERE x.lot_id IN "
            "(SELECT entry_id FROM own WHERE points > 0))",
            (cls.source_type, import_id),
        ).fetchone()[0]

    @classmethod
    def undo(cls, conn: sqlite3.Connection, import_id: int, on: dt.date, note: str) -> int:
        """Mark the import's rows undone and reverse their points. Returns the
        number of rows undone. Called inside the undo transaction."""
        if not cls.has_undone:
            return 0
        ids: list[str] = []
        if cls.source_type is not None and cls.source_field is not None:
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT DISTINCT {cls.source_field} FROM {cls.table} "
                    "WHERE import_id = ? AND undone = 0",
                    (import_id,),
                )
            ]
        count = conn.execute(
            f"UPDATE {cls.table} SET undone = 1 WHERE import_id = ? AND undone = 0", (import_id,)
        ).rowcount
        if ids:
            from loyalty_cli import ledger

            ledger.reverse_sources(conn, cls.source_type, ids, on, note)  # type: ignore[arg-type]
        return count


def get_kind(name: str) -> type[KindHandler]:
    """The handler class of a kind ("purchases", ...)."""
    if name not in KIND_MODULES:
        raise UsageError(f"unknown import kind '{name}'; use one of {', '.join(KIND_MODULES)}")
    module_name = f"loyalty_cli.importing.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise UsageError(f"importing {name} is not available in this version") from None
        raise
    return module.KIND
