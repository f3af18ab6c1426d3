"""Redemptions done at the till: redemption_id, customer_id, reward_id, date.

Keyed by redemption_id: the same row again is a duplicate, the same id with
other content a conflict. Each new row goes through the counter's own
`rewards.redeem(... redemption_id=...)`, in file order, inside the file's
transaction: a row the counter would refuse (not enough points, tier, limit,
inactive, unknown customer or reward) is a rejected row with its reason, and so
is a row dated after today (the nightly's --as-of).
`import undo` cancels the import's redemptions (points return to their lots).
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from loyalty_cli.errors import LoyaltyError, NotFoundError
from loyalty_cli.importing.kinds import KindHandler, Record
from loyalty_cli.importing.parsing import Cells, RowRejected


class RedemptionsKind(KindHandler):
    name = "redemptions"
    table = "redemptions"
    columns = ("redemption_id", "customer_id", "reward_id", "date")
    required = ("redemption_id", "customer_id", "reward_id", "date")
    key_fields = ("redemption_id",)
    compare_fields = ("customer_id", "reward_id", "date")
    insert_fields = ()
    has_undone = False  # a redemption is cancelled, never deleted

    def parse(self, cells: Cells) -> Record:
        return {
            "redemption_id": cells.ident("redemption_id"),
            "customer_id": cells.ident("customer_id"),
            "reward_id": cells.ident("reward_id"),
            "date": cells.date("date").isoformat(),  # type: ignore[union-attr]
        }

    def check_new(self, record: Record, line: int) -> None:
        # Redeem now, row by row: the next row's checks must see this one's debit.
        from loyalty_cli.rewards import redeem

        # The till cannot have served it yet, and its points would stay spendable
        # until then.
        self.not_after_today(record["date"])
        try:
            redeem(
                self.conn,
                record["customer_id"],
                record["reward_id"],
                dt.date.fromisoformat(record["date"]),
                redemption_id=record["redemption_id"],
                import_id=self.ctx.import_id,
            )
        except NotFoundError as exc:
            field = "reward_id" if "reward" in exc.message else "customer_id"
            raise RowRejected(field, exc.message) from None
        except LoyaltyError as exc:
            # Not enough points, tier, limit, inactive: the reward asked for cannot be had.
            raise RowRejected("reward_id", exc.message) from None

    def write(self, records: list[Record]) -> None:
        """Nothing left to write: check_new() redeemed each row already."""

    @classmethod
    def undo(cls, conn: sqlite3.Connection, import_id: int, on: dt.date, note: str) -> int:
        from loyalty_cli.rewards import cancel_redemption

        ids = [
            r[0]
            for r in conn.execute(
                "SELECT redemption_id FROM redemptions WHERE import_id = ? "
                "AND status != 'cancelled' ORDER BY redemption_id",
                (import_id,),
            )
        ]
        for redemption_id in ids:
            cancel_redemption(conn, redemption_id, on)
        return len(ids)


KIND = RedemptionsKind
