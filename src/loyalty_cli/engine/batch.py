"""What a run reads for a batch of customers: their new receipts, the receipts it
remembers, their ledger entries, customer rows, events and stored states."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from loyalty_cli.engine.scoring import Receipt
from loyalty_cli.ledger import Row


class Scored(NamedTuple):
    """A receipt as the run remembers it (table scored_receipts); a tuple: cheap to
    build for every remembered receipt of the customers a run replays."""

    transaction_id: str
    customer_id: str
    date: dt.date
    amount: int
    tax: int
    lines: int
    points: int
    tier: str | None
    version: int | None
    punches: str | None
    withdrew: str | None  # a refund's: the vouchers it withdrew (JSON; see db.py v10)


@dataclass(slots=True)
class CustomerRow:
    birthday: dt.date | None = None
    joined_on: dt.date | None = None
    referred_by: str | None = None


@dataclass(slots=True)
class Batch:
    receipts: dict[str, list[Receipt]] = field(default_factory=dict)
    scored: dict[str, list[Scored]] = field(default_factory=dict)
    entries: dict[str, list[Row]] = field(default_factory=dict)
    customers: dict[str, CustomerRow] = field(default_factory=dict)
    events: dict[str, list[tuple[str, str, dt.date]]] = field(default_factory=dict)
    referral_paid: set[str] = field(default_factory=set)
    # Referees' sales scored by earlier runs, (date, amount, transaction_id) by date: a
    # referred_by imported after the first qualifying one still pays, dated that sale.
    referee_sales: dict[str, list[tuple[dt.date, int, str]]] = field(default_factory=dict)
    # Customers starting from what the last run stored: (their last entry id, the state).
    states: dict[str, tuple[int, str]] = field(default_factory=dict)


class RawBatch(NamedTuple):
    """A batch as read from the database (plain rows: cheap to hand to the worker)."""

    own: list[tuple[Any, ...]]
    claimed: list[tuple[Any, ...]]
    complete: list[tuple[Any, ...]]
    scored: list[tuple[Any, ...]]
    entries: list[tuple[Any, ...]]
    customers: list[tuple[Any, ...]]
    events: list[tuple[Any, ...]]
    states: dict[str, tuple[int, str]]
    referee_sales: list[tuple[Any, ...]]
