"""Purchases: one row per receipt line, keyed by (transaction_id, line_no)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Hashable
from typing import Any

from loyalty_cli import db, money
from loyalty_cli.importing.kinds import ImportContext, KindHandler, Record
from loyalty_cli.importing.parsing import MAX_ID, Cells, RowRejected, parse_date

_MONEY = ("amount", "tax")
# the column positions `parse_fields` unpacks, in this order (-1: absent)
_PLAN = (
    "transaction_id", "line_no", "customer_id", "date", "amount", "sku", "category",
    "quantity", "store", "currency", "tax", "refund_of",
)  # fmt: skip
# Distinct dates, amounts, quantities and written customer ids remembered: few
# enough that memory is the same whatever the file's size.
_CACHE_MAX = 10_000
# Indexes no import reads (the keys go through purchases_key): set aside while a
# file at least as large as the stored history is loaded, rebuilt at its end.
_BULK_INDEXES = ("purchases_date", "purchases_import", "purchases_member")
_BULK_MIN_BYTES = 1 << 20
_BYTES_PER_LINE = 64  # a generous average line of a till export
_BULK_CACHE_KIB = 8 * 1024
_LOOKUP = 500  # receipt ids per lookup query


class PurchasesKind(KindHandler):
    name = "purchases"
    table = "purchases"
    columns = (
        "transaction_id", "customer_id", "date", "amount", "line_no", "sku",
        "category", "quantity", "store", "currency", "tax", "refund_of",
    )  # fmt: skip
    required = ("transaction_id", "customer_id", "date", "amount")
    key_fields = ("transaction_id", "line_no")
    compare_fields = (
        "customer_id", "date", "amount", "tax", "sku", "category", "quantity",
        "store", "currency", "refund_of",
    )  # fmt: skip
    insert_fields = ("transaction_id", "line_no", *compare_fields)
    source_type = "purchase"
    source_field = "transaction_id"
    chunk_rows = 5_000

    def __init__(self, ctx: ImportContext) -> None:
        super().__init__(ctx)
        # transaction_id -> (customer_id, date, line) of the batch's receipts
        self.receipts: dict[str, tuple[str | None, str, int]] = {}
        # The stored rows of the current chunk's receipts (see `prepare`): what
        # the per-row SELECTs of `find_existing` and `check_new` would return,
        # kept up to date as batches are written.
        self._tids: set[str] = set()
        self._known: dict[Hashable, tuple[Record, int]] = {}
        self._first: dict[str, tuple[int, str | None, str, int]] = {}
        self._plan_index: dict[str, int] | None = None
        self._plan: tuple[int, ...] = ()
        self._dates: dict[str, str] = {}
        self._quantities: dict[str, str] = {}
        self._amounts: dict[str, int] = {}
        self._stores: dict[str, Any] = {}  # ISO date -> `Dialect.stores_on` of that day
        self._first_id = 0  # purchases.id of this import's rows are above it
        self._rebuild: list[str] = []  # statements restoring the set-aside indexes

    def begin(self, size: int) -> None:
        stored = self.conn.execute("SELECT MAX(id) FROM purchases").fetchone()[0] or 0
        self._first_id = stored
        if size < _BULK_MIN_BYTES:
            return
        if size // _BYTES_PER_LINE >= stored:
            self._rebuild = db.set_aside_indexes(self.conn, _BULK_INDEXES)
            # Appending needs no large page cache, and the rebuilds' sorts are
            # bounded by it: memory stays the same whatever the file's size.
            self.conn.execute(f"PRAGMA cache_size = {-_BULK_CACHE_KIB}")

    def finish(self) -> None:
        for sql in self._rebuild:
            self.conn.execute(sql)
        self._rebuild = []
        # A purchase naming an unknown customer makes the customer known: once for
        # the whole file, not per batch (this import's rows are the ids above), in
        # the order the file first names them, as row by row.
        self.conn.execute(
            "INSERT OR IGNORE INTO customers (customer_id, import_id) "
            "SELECT customer_id, ? FROM purchases WHERE id > ? AND customer_id IS NOT NULL "
            "GROUP BY customer_id ORDER BY MIN(id)",
            (self.ctx.import_id, self._first_id),
        )
        from loyalty_cli.rewards.claim import attach_refunds

        # Refunds follow their receipt to the member who holds it (rewards/claim.py):
        # a refund in this file of an earlier receipt, or a receipt in it refunded earlier.
        attach_refunds(self.conn, self.ctx.today)

    def key(self, record: Record) -> Hashable:
        return (record[0], record[1])

    def describe_key(self, record: Record) -> str:
        return f"transaction_id '{record[0]}' line_no '{record[1]}'"

    def check_same(self, record: Record, old: Record, where: str) -> None:
        """`KindHandler.check_same` over the records' positions (the fields in
        compare order from position 2)."""
        if old[2:] == record[2:]:
            return
        for i, f in enumerate(self.compare_fields, 2):
            if old[i] != record[i]:
                raise self.conflict(record, f, where, old[i], record[i])

    def use_columns(self, index: dict[str, int]) -> None:
        self._plan = tuple(index.get(c, -1) for c in _PLAN)
        self._plan_index = index

    def parse(self, cells: Cells) -> Record:
        if cells.index is not self._plan_index:
            self.use_columns(cells.index)
        record = self.parse_fields(cells.row)
        return record if record is not None else self.parse_cells(cells)

    def parse_fields(self, row: list[str]) -> Record | None:
        """`parse_cells` for a row that passes every check, reading the cells
        directly; None for anything unusual (then `parse_cells` decides, and
        words the rejection)."""
        (
            i_tid,
            i_line,
            i_cust,
            i_date,
            i_amount,
            i_sku,
            i_cat,
            i_qty,
            i_store,
            i_cur,
            i_tax,
            i_ref,
        ) = self._plan
        amounts = self._amounts  # text -> minor units in the program's currency
        d = self.ctx.dialect
        decimal = d.decimal

        tid = row[i_tid].strip()
        # Not printable (a control character, or a rarer space): the general
        # parser decides and words it.
        if not tid or len(tid) > MAX_ID or not tid.isprintable():
            return None
        line_no = 1
        if i_line >= 0:
            text = row[i_line].strip()
            if text:
                if not (len(text) <= 9 and text.isascii() and text.isdigit()):
                    return None
                line_no = int(text)
                if line_no < 1:
                    return None
        customer = row[i_cust].strip() or None
        if customer is not None and (len(customer) > MAX_ID or not customer.isprintable()):
            return None
        text = row[i_date].strip()
        date = self._dates.get(text)
        if date is None:
            if not text:
                return None
            try:
                date = parse_date(text, d.date_format, "date").isoformat()
            except RowRejected:
                return None
            if len(self._dates) >= _CACHE_MAX:
                self._dates.clear()
            self._dates[text] = date
        currency = ((row[i_cur].strip() if i_cur >= 0 else "") or d.currency).upper()
        if d.check_currency and currency != d.currency:
            return None
        try:
            text = row[i_amount].strip()
            if not text:
                return None
            amount = amounts.get(text) if currency == d.currency else None
            if amount is None:
                amount = money.parse_minor(text, currency, decimal)
                if currency == d.currency and len(amounts) < _CACHE_MAX:
                    amounts[text] = amount  # prices recur: keep the first ones seen
            tax = 0
            if i_tax >= 0:
                text = row[i_tax].strip()
                if text:
                    tax = money.parse_minor(text, currency, decimal)
                    if tax > 0 > amount:
                        tax = -tax  # a refund's tax written as a positive share
                    if (tax < 0) != (amount < 0) or abs(tax) > abs(amount):
                        return None
        except money.AmountError:
            return None
        store = (row[i_store].strip() or None) if i_store >= 0 else None
        if d.partner_versions:
            stores = self._stores.get(date, False)
            if stores is False:
                if len(self._stores) >= _CACHE_MAX:
                    self._stores.clear()
                stores = self._stores[date] = d.stores_on(date)
            if stores is not None and (store or "") not in stores:
                return None
        quantity = None
        if i_qty >= 0:
            text = row[i_qty].strip()
            if text:
                quantity = self._quantities.get(text)
                if quantity is None:
                    try:
                        quantity = str(money.parse_decimal(text, decimal))
                    except money.AmountError:
                        return None
                    if len(self._quantities) < _CACHE_MAX:
                        self._quantities[text] = quantity
        refund_of = (row[i_ref].strip() or None) if i_ref >= 0 else None
        if refund_of is not None and (len(refund_of) > MAX_ID or not refund_of.isprintable()):
            return None
        return (
            tid,
            line_no,
            customer,
            date,
            amount,
            tax,
            (row[i_sku].strip() or None) if i_sku >= 0 else None,
            (row[i_cat].strip() or None) if i_cat >= 0 else None,
            quantity,
            store,
            currency,
            refund_of,
        )

    def parse_cells(self, cells: Cells) -> Record:
        """The row parser (the reference for `parse_fields`)."""
        d = self.ctx.dialect
        tid = cells.ident("transaction_id")
        line_no = cells.positive_int("line_no", 1)
        customer = cells.ident("customer_id", required=False)  # empty: anonymous sale
        date = cells.date("date")
        currency = (cells.text("currency") or d.currency).upper()
        if d.check_currency and currency != d.currency:
            raise RowRejected(
                "currency", f"currency '{currency}' is not the program's currency {d.currency}"
            )
        if currency != cells.fmt.currency:
            cells.fmt = type(cells.fmt)(cells.fmt.decimal, cells.fmt.date_format, currency)
        amount = cells.amount("amount")
        tax = _tax_share(cells.amount("tax", required=False) or 0, amount, self.show)
        store = cells.text("store")
        stores = d.stores_on(date.isoformat()) if date is not None else None
        if stores is not None and (store or "") not in stores:
            raise RowRejected("store", f"store '{store or ''}' belongs to no partner")
        return (
            tid,
            line_no,
            customer,
            date.isoformat(),  # type: ignore[union-attr]
            amount,
            tax,
            cells.text("sku"),
            cells.text("category"),
            cells.number("quantity"),
            store,
            currency,
            cells.ident("refund_of", required=False),
        )

    def show(self, field: str, value: Any) -> str:
        if field in _MONEY and isinstance(value, int):
            return money.format_minor(value, self.ctx.dialect.currency)
        return super().show(field, value)

    def accept(self, record: Record, line: int) -> bool:
        """`KindHandler.accept` with the chunk's lookups read in place (the
        general path per row: the same outcomes, see test_import_fast)."""
        tid = record[0]
        key = (tid, record[1])
        seen = self.pending.get(key)
        if seen is not None:
            self.check_same(record, seen[0], f"imported by line {seen[1]} of this file")
            return False
        found = self._known.get(key) if tid in self._tids else self.find_existing(record)
        if found is not None:
            self.check_same(record, found[0], self.where(found[1]))
            return False
        self.check_new(record, line)
        self.queue(key, record, line)
        return True

    def check_new(self, record: Record, line: int) -> None:
        """All lines of a receipt agree on customer_id and date."""
        tid, _, customer, date = record[:4]
        seen = self.receipts.get(tid)
        if seen is not None:
            if seen[0] != customer or seen[1] != date:
                self._receipt_conflict(record, seen[0], seen[1], f"line {seen[2]} of this file")
        else:
            row = self._first_line(tid)
            if row is not None and (row[0] != customer or row[1] != date):
                where = self.where(row[2]).removeprefix("imported by ")
                self._receipt_conflict(record, row[0], row[1], where)
        self.receipts[tid] = (customer, date, line)

    def _receipt_conflict(
        self, record: Record, customer: str | None, date: str, where: str
    ) -> None:
        for f, theirs, ours in (("customer_id", customer, record[2]), ("date", date, record[3])):
            if theirs != ours:
                raise RowRejected(
                    f,
                    f"conflict: receipt '{record[0]}' has {f} "
                    f"{self.show(f, theirs)} on another line ({where}), "
                    f"this row has {self.show(f, ours)}",
                )

    def _first_line(self, tid: str) -> tuple[str | None, str, int] | None:
        """(customer_id, date, import_id) of the receipt's stored live line with
        the lowest line_no (the one the purchases_key index finds first)."""
        if tid in self._tids:
            first = self._first.get(tid)
            return None if first is None else first[1:]
        row = self.conn.execute(
            "SELECT customer_id, date, import_id FROM purchases "
            "WHERE transaction_id = ? AND undone = 0 LIMIT 1",
            (tid,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def find_existing(self, record: Record) -> tuple[Record, int] | None:
        tid, line_no = record[0], record[1]
        if tid in self._tids:
            return self._known.get((tid, line_no))
        row = self.conn.execute(self._find_sql, (tid, line_no)).fetchone()
        return None if row is None else ((tid, line_no, *tuple(row)[:-1]), row[-1])

    def prepare(self, records: list[Record]) -> None:
        """One query for the stored live lines of every receipt in the chunk
        (instead of one or two SELECTs per row)."""
        self._tids = {r[0] for r in records}
        self._known = {}
        self._first = {}
        if not self._tids:
            return
        # Always _LOOKUP ids per query (padded with NULL, which matches no
        # row): one prepared statement for the whole file, not one per chunk
        # size, each held in the connection's statement cache.
        sql = (
            f"SELECT transaction_id, line_no, import_id, {', '.join(self.compare_fields)} "
            f"FROM purchases WHERE undone = 0 AND transaction_id IN ({', '.join('?' * _LOOKUP)})"
        )
        tids: list[str | None] = list(self._tids)
        tids += [None] * (-len(tids) % _LOOKUP)
        rows: list[Any] = []
        for at in range(0, len(tids), _LOOKUP):
            rows += self.conn.execute(sql, tids[at : at + _LOOKUP]).fetchall()
        for row in rows:
            tid, line_no, import_id, *compared = row
            self._remember(tid, line_no, (tid, line_no, *compared), import_id)

    def _remember(self, tid: str, line_no: int, old: Record, import_id: int) -> None:
        self._known[(tid, line_no)] = (old, import_id)
        first = self._first.get(tid)
        if first is None or line_no < first[0]:
            self._first[tid] = (line_no, old[2], old[3], import_id)

    def flush(self) -> None:
        super().flush()
        self.receipts.clear()

    def write(self, records: list[Record]) -> None:
        iid = int(self.ctx.import_id)
        # The records are the insert's parameters as they are (import_id: a literal).
        self.conn.executemany(
            f"INSERT INTO purchases ({', '.join(self.insert_fields)}, import_id) "
            f"VALUES ({', '.join('?' * len(self.insert_fields))}, {iid})",
            records,
        )
        known, first_lines, tids = self._known, self._first, self._tids
        for r in records:  # now stored: what a SELECT would find from here on
            tid = r[0]
            if tid in tids:
                line_no = r[1]
                known[(tid, line_no)] = (r, iid)
                first = first_lines.get(tid)
                if first is None or line_no < first[0]:
                    first_lines[tid] = (line_no, r[2], r[3], iid)

    @classmethod
    def undo(cls, conn: sqlite3.Connection, import_id: int, on: dt.date, note: str) -> int:
        """Also forget the scoring of the receipts (all their points were reversed:
        what is left of a receipt split across imports is scored afresh by the next
        run), withdraw the open punch-card vouchers they had earned, and reopen
        those its refunds had withdrawn."""
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT transaction_id FROM purchases WHERE import_id = ? AND undone = 0",
                (import_id,),
            )
        ]
        refunded = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT refund_of FROM purchases WHERE import_id = ? AND undone = 0 "
                "AND refund_of IS NOT NULL",
                (import_id,),
            )
        ]
        count = super().undo(conn, import_id, on, note)
        from loyalty_cli.engine.run import forget_receipts
        from loyalty_cli.rewards.vouchers import REFUND_SCORED

        forget_receipts(conn, ids, on)
        conn.executemany(
            "UPDATE vouchers SET status = 'withdrawn', closed_on = ? "
            "WHERE transaction_id = ? AND status = 'open'",
            [(on.isoformat(), tid) for tid in ids],
        )
        # A voucher an undone refund withdrew is open again: its receipt stands
        # (unless undone too) and no other refund of it counts.
        conn.executemany(
            "UPDATE vouchers AS v SET status = 'open', closed_on = NULL "
            "WHERE v.transaction_id = ? AND v.status = 'withdrawn' AND EXISTS (SELECT 1 "
            "FROM purchases o WHERE o.transaction_id = v.transaction_id AND o.undone = 0) "
            f"AND NOT {REFUND_SCORED}",
            [(tid,) for tid in refunded],
        )
        from loyalty_cli.rewards.claim import attach_refunds

        # A refund not scored yet lets go of the member whose receipt this was.
        attach_refunds(conn, on)
        return count


KIND = PurchasesKind


def _tax_share(tax: int, amount: int, show: Callable[[str, Any], str]) -> int:
    """The tax within a line's amount, with the amount's sign: tills write a refund's
    tax either way (-2.00 or 2.00 of a -10.00 refund), both read as -2.00. A sale's
    negative tax, or more tax than the amount (which includes it), is rejected."""
    written = tax
    if tax > 0 > amount:
        tax = -tax
    if tax < 0 <= amount:
        raise RowRejected("tax", f"tax {show('tax', written)} is negative on a sale")
    if abs(tax) > abs(amount):
        raise RowRejected(
            "tax",
            f"tax {show('tax', written)} is more than the amount {show('amount', amount)}, "
            "which includes it",
        )
    return tax
