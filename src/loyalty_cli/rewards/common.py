"""What every counter operation needs: the program in force, customers, tiers.

The program module is imported lazily so this package can be imported (and
`customer show` can call it) before any program is applied.
"""

from __future__ import annotations

import calendar
import datetime as dt
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from loyalty_cli.errors import NoProgramError, NotFoundError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    from loyalty_cli.program import Program, ProgramVersion, Reward


def posting_limit(conn: sqlite3.Connection) -> dt.date:
    """The last day a counter command (redeem, cancel, adjust, claim, undo) may post
    on: today, or the last run's as-of date when a shop was run ahead of the
    calendar (`run --as-of` a later day, to see the future)."""
    today = dt.date.today()
    row = conn.execute("SELECT MAX(as_of) FROM runs WHERE finished_at IS NOT NULL").fetchone()
    run_to = dt.date.fromisoformat(row[0]) if row and row[0] else None
    return max(today, run_to) if run_to else today


def check_posting_date(on: dt.date, limit: dt.date) -> None:
    """A day to come is refused: a mistyped year would otherwise post an entry no
    statement shows until then (a redemption whose points stay spendable, a
    cancellation whose points come back after their lot expired)."""
    if on > limit:
        today = dt.date.today()
        ahead = f" or the last run's date ({limit})" if limit > today else ""
        raise UsageError(
            f"--date {on} is after today ({today}){ahead}: a date to come; "
            "post on today or an earlier day"
        )


def posting_date(conn: sqlite3.Connection, on: dt.date | None) -> dt.date:
    """The date a counter command posts on: `on` (checked), else today."""
    if on is None:
        return dt.date.today()
    check_posting_date(on, posting_limit(conn))
    return on


def version_on(conn: sqlite3.Connection, on: dt.date) -> ProgramVersion:
    """The program version in force on a date (NoProgramError when none)."""
    from loyalty_cli.program import require_program

    return require_program(conn, on=on)


def version_or_none(conn: sqlite3.Connection, on: dt.date) -> ProgramVersion | None:
    try:
        return version_on(conn, on)
    except NoProgramError:
        return None


def version_for_lot(conn: sqlite3.Connection, on: dt.date) -> ProgramVersion | None:
    """The version that values a hand-made lot dated `on` and sets its expiry: the
    one in force then, else the first one. An opening balance carried over from
    the old system is often dated before the program's `effective_from` (its
    cut-off day); it is valued and expires under the program it moved into."""
    version = version_or_none(conn, on)
    if version is not None:
        return version
    from loyalty_cli.program import list_versions

    first = min(list_versions(conn), key=lambda v: (v.effective_from, v.version), default=None)
    return first


def customer_exists(conn: sqlite3.Connection, customer_id: str) -> bool:
    """Known = in the customers table, or seen on a receipt, a claim or the ledger."""
    row = conn.execute(
        """
        SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = :c)
            OR EXISTS (SELECT 1 FROM ledger WHERE customer_id = :c)
            OR EXISTS (SELECT 1 FROM purchases WHERE customer_id = :c AND undone = 0)
            OR EXISTS (SELECT 1 FROM claims WHERE customer_id = :c)
        """,
        {"c": customer_id},
    ).fetchone()
    return bool(row[0])


def require_customer(conn: sqlite3.Connection, customer_id: str) -> None:
    if not customer_exists(conn, customer_id):
        raise NotFoundError(f"unknown customer '{customer_id}'")


def find_reward(program: Program, reward_id: str) -> Reward:
    reward = program.reward(reward_id)
    if reward is None:
        known = ", ".join(r.id for r in program.rewards)
        offer = f"rewards are {known}" if known else "the program has no rewards"
        raise NotFoundError(f"unknown reward '{reward_id}'; {offer}")
    return reward


def reward_label(reward: Reward) -> str:
    """The reward's name as it reads mid-sentence ("Free coffee" -> "free coffee").
    Only a name in sentence case is lowered: another capital in it ("SilverOnly",
    "Day R", "Starbucks Card") says it is written as a name."""
    name = reward.name
    if len(name) > 1 and name[0].isupper() and name[1:] == name[1:].lower():
        return name[0].lower() + name[1:]
    return name


def tiers_on(
    conn: sqlite3.Connection, customer_ids: Iterable[str] | None, on: dt.date
) -> dict[str, str]:
    """Each customer's tier id on a date, from the engine's tier_history.

    Customers without a history row are absent (see `effective_tier`).
    """
    sql = """
        SELECT customer_id, tier FROM tier_history h
        WHERE date = (SELECT MAX(date) FROM tier_history
                      WHERE customer_id = h.customer_id AND date <= :on)
    """
    args: dict[str, Any] = {"on": on.isoformat()}
    if customer_ids is None:
        return {c: t for c, t in conn.execute(sql, args)}
    out: dict[str, str] = {}
    ids = sorted(set(customer_ids))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join(f":c{i}" for i in range(len(chunk)))
        chunk_args = dict(args, **{f"c{i}": c for i, c in enumerate(chunk)})
        rows = conn.execute(sql + f" AND customer_id IN ({marks})", chunk_args)
        out.update({c: t for c, t in rows})
    return out


def tier_on(conn: sqlite3.Connection, customer_id: str, on: dt.date) -> str | None:
    """The engine's tier function when present, else the tier_history table."""
    return customer_tiers(conn, [customer_id], on).get(customer_id)


def customer_tiers(
    conn: sqlite3.Connection, customer_ids: list[str] | None, on: dt.date
) -> dict[str, str]:
    """Tier ids on a date for the customers named (None: everyone), in bulk.

    The engine (`engine.tiers`) is the source of truth: it derives the tier
    from the scored receipts. Without the engine, the tier_history table.
    """
    try:
        from loyalty_cli.engine.tiers import tiers_on as engine_tiers_on
    except ImportError:
        return tiers_on(conn, customer_ids, on)
    found = engine_tiers_on(conn, on, customer_ids)
    return {c: t for c, t in found.items() if t is not None}


def effective_tier(program: Program, tier: str | None) -> str | None:
    """A customer with no tier history sits on the lowest level when its min is 0."""
    if tier is not None or program.tiers is None:
        return tier
    lowest = program.tiers.levels[0]
    return lowest.id if lowest.min == 0 else None


def tier_rank(program: Program, tier: str | None) -> int:
    """Position of a level in the program's order; -1 for no tier or an unknown id."""
    if tier is None or program.tiers is None:
        return -1
    for i, level in enumerate(program.tiers.levels):
        if level.id == tier:
            return i
    return -1


def tier_label(program: Program, tier: str | None) -> str:
    if tier is None:
        return "not in any tier"
    level = program.level(tier)
    return level.label if level else tier


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus whole months, clamped to the month's end (Jan 31 + 1 = Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(day.day, last))
