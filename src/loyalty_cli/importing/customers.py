"""Customers: keyed by customer_id; an existing customer is updated (upsert),
non-empty new values win and empty cells keep what is stored."""

from __future__ import annotations

from loyalty_cli.importing.kinds import KindHandler, Record
from loyalty_cli.importing.parsing import Cells, RowRejected

_FIELDS = ("name", "email", "birthday", "joined_on", "referred_by")
_RUN_READS = ("birthday", "joined_on", "referred_by")  # the fields `loyalty run` reads


class CustomersKind(KindHandler):
    name = "customers"
    table = "customers"
    columns = ("customer_id", *_FIELDS)
    required = ("customer_id",)
    key_fields = ("customer_id",)
    compare_fields = _FIELDS
    insert_fields = ("customer_id", *_FIELDS)
    has_undone = False  # master data: undo marks the import only (docs/csv-formats.md)

    def parse(self, cells: Cells) -> Record:
        cid = cells.ident("customer_id")
        email = cells.text("email")
        if email is not None:
            local, at, domain = email.partition("@")
            if not at or not local or not domain or " " in email:
                raise RowRejected("email", f"'{email}' is not an e-mail address")
        birthday = cells.date("birthday", required=False)
        joined = cells.date("joined_on", required=False)
        referred_by = cells.ident("referred_by", required=False)
        if referred_by is not None and referred_by == cid:
            raise RowRejected("referred_by", "a customer cannot refer themselves")
        return {
            "customer_id": cid,
            "name": cells.text("name"),
            "email": email,
            "birthday": birthday.isoformat() if birthday else None,
            "joined_on": joined.isoformat() if joined else None,
            "referred_by": referred_by,
        }

    def accept(self, record: Record, line: int) -> bool:
        """Upsert: a row that changes nothing is a duplicate; else it is written."""
        key = record["customer_id"]
        queued = self.pending.get(key)
        bare = False  # a row a purchase (or balance) made: this file makes it a member's
        if queued is not None:
            old = queued[0]
        else:
            found = self.find_existing(record)
            old = found[0] if found is not None else None
            bare = (
                found is not None
                and not self._from_customers(found[1])
                and all(found[0][f] is None for f in _FIELDS)
            )
        if old is None:
            self.pending[key] = (record, line)
            self.batch.append(record)
        else:
            merged = {f: record[f] if record[f] is not None else old[f] for f in _FIELDS}
            if all(merged[f] == old[f] for f in _FIELDS) and not bare:
                return False
            if queued is not None:
                queued[0].update(merged)  # the queued row is written merged
                return True
            self.pending[key] = (record, line)
            self.batch.append(record)
        if len(self.batch) >= self.batch_size:
            self.flush()
        return True

    def begin(self, size: int) -> None:
        super().begin(size)
        self._kinds: dict[int, bool] = {}  # import id -> a customers import's

    def _from_customers(self, import_id: int | None) -> bool:
        """Whether the stored row is a customers file's (or was made by hand)."""
        if import_id is None:
            return True
        kinds = self._kinds
        if import_id not in kinds:
            row = self.conn.execute(
                "SELECT kind FROM imports WHERE import_id = ?", (import_id,)
            ).fetchone()
            kinds[import_id] = row is None or row[0] == "customers"
        return kinds[import_id]

    def write(self, records: list[Record]) -> None:
        # import_id: the import that created the customer or last changed a field the
        # run reads (a run looks again at the birthdays of those customers). A nightly
        # full customer export that changes nothing for them leaves them alone.
        changed = " OR ".join(
            f"(excluded.{f} IS NOT NULL AND excluded.{f} IS NOT customers.{f})" for f in _RUN_READS
        )
        # A row a purchase or balance import made becomes this file's (a member from
        # the customers file counts from the start, not from the day the id was seen).
        bare = " AND ".join(f"customers.{f} IS NULL" for f in _FIELDS)
        changed += (
            f" OR ({bare} AND customers.import_id IN "
            "(SELECT import_id FROM imports WHERE kind != 'customers'))"
        )
        updates = ", ".join(
            [
                *(f"{f} = COALESCE(excluded.{f}, customers.{f})" for f in _FIELDS),
                f"import_id = CASE WHEN {changed} THEN excluded.import_id "
                "ELSE customers.import_id END",
            ]
        )
        fields = ("customer_id", *_FIELDS, "import_id")
        self.conn.executemany(
            f"INSERT INTO customers ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))}) "
            f"ON CONFLICT (customer_id) DO UPDATE SET {updates}",
            [(*(r[f] for f in fields[:-1]), self.ctx.import_id) for r in records],
        )


KIND = CustomersKind
