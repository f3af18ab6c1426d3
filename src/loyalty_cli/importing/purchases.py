"""Purchases: one row per receipt line, keyed by (transaction_id, line_no)."""

from __future__ import annotations

import datetime as dt
import sqlite3
from typing import Any

from loyalty_cli import money
from loyalty_cli.importing.kinds import ImportContext, KindHandler, Record
from loyalty_cli.importing.parsing import Cells, RowRejected

_MONEY = ("amount", "tax")


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

    def __init__(self, ctx: ImportContext) -> None:
        super().__init__(ctx)
        # transaction_id -> (customer_id, date, line) of the batch's receipts
        self.receipts: dict[str, tuple[str | None, str, int]] = {}

    def parse(self, cells: Cells) -> Record:
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
        tax = cells.amount("tax", required=False) or 0
        store = cells.text("store")
        if d.partner_stores is not None and (store or "") not in d.partner_stores:
            raise RowRejected("store", f"store '{store or ''}' belongs to no partner")
        return {
            "transaction_id": tid,
            "line_no": line_no,
            "customer_id": customer,
            "date": date.isoformat(),  # type: ignore[union-attr]
            "amount": amount,
            "tax": tax,
            "sku": cells.text("sku"),
            "category": cells.text("category"),
            "quantity": cells.number("quantity"),
            "store": store,
            "currency": currency,
            "refund_of": cells.ident("refund_of", required=False),
        }

    def show(self, field: str, value: Any) -> str:
        if field in _MONEY and isinstance(value, int):
            return money.format_minor(value, self.ctx.dialect.currency)
        return super().show(field, value)

    def check_new(self, record: Record, line: int) -> None:
        """All lines of a receipt agree on customer_id and date."""
        tid = record["transaction_id"]
        seen = self.receipts.get(tid)
        other: dict[str, str | None] | None = None
        if seen is not None:
            where = f"line {seen[2]} of this file"
            other = {"customer_id": seen[0], "date": seen[1]}
        else:
            row = self.conn.execute(
                "SELECT customer_id, date, import_id FROM purchases "
                "WHERE transaction_id = ? AND undone = 0 LIMIT 1",
                (tid,),
            ).fetchone()
            if row is not None:
                where = self.where(row[2]).removeprefix("by ")
                other = {"customer_id": row[0], "date": row[1]}
        if other is not None:
            for f in ("customer_id", "date"):
                if other[f] != record[f]:
                    raise RowRejected(
                        f,
                        f"conflict: receipt '{tid}' has {f} {self.show(f, other[f])} "
                        f"on another line ({where}), this row has {self.show(f, record[f])}",
                    )
        self.receipts[tid] = (record["customer_id"], record["date"], line)

    def flush(self) -> None:
        super().flush()
        self.receipts.clear()

    def write(self, records: list[Record]) -> None:
        super().write(records)
        # A purchase naming an unknown customer makes the customer known.
        ids = {r["customer_id"] for r in records if r["customer_id"] is not None}
        self.conn.executemany(
            "INSERT OR IGNORE INTO customers (customer_id, import_id) VALUES (?, ?)",
            [(c, self.ctx.import_id) for c in sorted(ids)],
        )

    @classmethod
    def undo(cls, conn: sqlite3.Connection, import_id: int, on: dt.date, note: str) -> int:
        """Also forget the scoring of receipts left with no line, and withdraw
        the open punch-card vouchers they had earned."""
        ids = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT transaction_id FROM purchases WHERE import_id = ? AND undone = 0",
                (import_id,),
            )
        ]
        count = super().undo(conn, import_id, on, note)
        from loyalty_cli.engine.run import forget_receipts

        forget_receipts(conn, ids)
        conn.executemany(
            "UPDATE vouchers SET status = 'withdrawn', closed_on = ? "
            "WHERE transaction_id = ? AND status = 'open'",
            [(on.isoformat(), tid) for tid in ids],
        )
        return count


KIND = PurchasesKind
