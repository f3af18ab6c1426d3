"""What a batch of a run writes (ledger entries, scored receipts, tiers, vouchers,
stored states) and the writing of it."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from loyalty_cli import ledger
from loyalty_cli.ledger import Row

if TYPE_CHECKING:
    from loyalty_cli.engine.run import Engine


class Output:
    """What a batch writes: ledger entries (ids assigned up front, queued by
    `CustomerWork._post`), receipts, vouchers."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.entries: list[Row] = []
        self.first_id = engine.next_id
        self.scored: list[tuple[Any, ...]] = []
        self.tiers: list[tuple[str, str, str]] = []
        self.vouchers: list[tuple[Any, ...]] = []
        self.withdrawn: list[tuple[str, str]] = []
        self.states: list[tuple[str, int, str, str, str, str]] = []

    def values(self) -> tuple[list[tuple[Any, ...]], ...]:
        """What `write` stores, as plain tuples (they may come from the worker)."""
        if self.entries and self.entries[0].entry_id != self.first_id:
            raise RuntimeError("ledger ids moved during a run")
        # The INSERT parameters (ISO dates): plain tuples of text and ints pickle fast.
        entries = ledger.row_values(self.entries)
        return entries, self.scored, self.tiers, self.vouchers, self.withdrawn, self.states


def write(
    conn: sqlite3.Connection,
    entries: list[tuple[Any, ...]],
    scored: list[tuple[Any, ...]],
    tiers: list[tuple[Any, ...]],
    vouchers: list[tuple[Any, ...]],
    withdrawn: list[tuple[Any, ...]],
    states: list[tuple[Any, ...]],
) -> tuple[int, int]:
    """Store what a batch made (entries: ledger.row_values); returns the numbers of
    vouchers issued (opened: a voucher the upsert leaves as it was is not) and
    withdrawn."""
    ledger.insert_values(conn, entries)
    conn.executemany(
        "INSERT OR REPLACE INTO scored_receipts (transaction_id, customer_id, date, amount, "
        "tax, lines, points, tier, version, punches, withdrew, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        scored,
    )
    conn.executemany("INSERT OR REPLACE INTO tier_history VALUES (?, ?, ?)", tiers)
    # A voucher id is its receipt's and reward's: one withdrawn by `import undo` is
    # issued again, open, when the receipt comes back (the same file imported again),
    # unless a refund of the receipt already scored withdrew it.
    from loyalty_cli.rewards.vouchers import REFUND_SCORED

    issued = conn.executemany(
        "INSERT INTO vouchers AS v (voucher_id, customer_id, reward_id, issued, "
        "transaction_id, status, expires_on) VALUES (?, ?, ?, ?, ?, 'open', ?) "
        "ON CONFLICT (voucher_id) DO UPDATE SET customer_id = excluded.customer_id, "
        "issued = excluded.issued, status = 'open', expires_on = excluded.expires_on, "
        "closed_on = NULL, redemption_id = NULL WHERE v.status = 'withdrawn' "
        f"AND NOT {REFUND_SCORED}",
        vouchers,
    ).rowcount
    # An open voucher only: one that expired before the refund stays expired.
    cursor = conn.executemany(
        "UPDATE vouchers SET status = 'withdrawn', closed_on = ?1 "
        "WHERE voucher_id = ?2 AND status = 'open' AND (expires_on IS NULL OR expires_on > ?1)",
        withdrawn,
    )
    withdrawn_count = max(cursor.rowcount, 0)
    # An upsert rewrites the row in place (REPLACE would delete it and append a new
    # one: two more pages written per customer).
    conn.executemany(
        "INSERT INTO run_state VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO UPDATE "
        "SET entry_id = excluded.entry_id, as_of = excluded.as_of, since = excluded.since, "
        "timeline = excluded.timeline, state = excluded.state",
        states,
    )
    # Only receipts whose punch issued a still-open voucher change anything.
    return max(issued, 0), withdrawn_count
