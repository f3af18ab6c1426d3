"""Events (signup, newsletter, review, ...): keyed by event_id; the customer
must be known (imported before, or seen on a purchase)."""

from __future__ import annotations

from loyalty_cli.importing.kinds import KindHandler, Record
from loyalty_cli.importing.parsing import Cells, RowRejected


class EventsKind(KindHandler):
    name = "events"
    table = "events"
    columns = ("event_id", "customer_id", "type", "date")
    required = ("event_id", "customer_id", "type", "date")
    key_fields = ("event_id",)
    compare_fields = ("customer_id", "type", "date")
    insert_fields = ("event_id", "customer_id", "type", "date")
    source_type = "event"
    source_field = "event_id"

    def parse(self, cells: Cells) -> Record:
        event_id = cells.ident("event_id")
        customer = cells.ident("customer_id")
        if (
            self.conn.execute(
                "SELECT 1 FROM customers WHERE customer_id = ?", (customer,)
            ).fetchone()
            is None
        ):
            raise RowRejected("customer_id", f"unknown customer '{customer}'")
        event_type = cells.ident("type")
        date = cells.date("date")
        return {
            "event_id": event_id,
            "customer_id": customer,
            "type": event_type,
            "date": date.isoformat(),  # type: ignore[union-attr]
        }


KIND = EventsKind
