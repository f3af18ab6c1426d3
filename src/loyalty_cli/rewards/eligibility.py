"""Who may have which reward on a date, and why not.

A (customer, reward) pair is claimable on D when, in this order:
1. the reward is active on D (inclusive dates); a punch-card reward's dates
   say which receipts count, and a voucher issued stays usable after them;
2. the customer's tier on D is at or above `min_tier` (by level order);
3. the per-customer limit is not reached: non-cancelled redemptions of that
   reward by that customer in the calendar day / ISO week / calendar month /
   calendar year of D;
4. available points on D >= cost, or, for a punch-card reward, an open
   voucher that has not expired. A voucher is owed once issued: when a later
   program version drops its reward, the reward as the version that issued the
   voucher had it stays claimable with it (`voucher_rewards`), on the voucher
   alone (no tier, limit or dates).
`refusal()` is the pure rule; redeem and the listings share it, so what the
counter is offered and what it may do can never disagree.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loyalty_cli import ledger
from loyalty_cli.programs_store import versions_by_number
from loyalty_cli.rewards.common import (
    customer_tiers,
    effective_tier,
    reward_label,
    tier_label,
    tier_rank,
    version_or_none,
)
from loyalty_cli.rewards.vouchers import open_voucher_counts

if TYPE_CHECKING:  # pragma: no cover
    from loyalty_cli.program import Program, Reward

_PERIOD_WORD = {"day": "day", "week": "week", "month": "month", "year": "year"}


def period_bounds(per: str, on: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the calendar day / ISO week / month / year holding `on`."""
    if per == "day":
        return on, on
    if per == "week":
        start = on - dt.timedelta(days=on.weekday())
        return start, start + dt.timedelta(days=6)
    if per == "month":
        start = on.replace(day=1)
        nxt = (start + dt.timedelta(days=32)).replace(day=1)
        return start, nxt - dt.timedelta(days=1)
    if per == "year":
        return dt.date(on.year, 1, 1), dt.date(on.year, 12, 31)
    raise ValueError(f"unknown limit period {per!r}")


def _active_text(reward: Reward) -> str:
    a = reward.active
    start = a.from_.isoformat() if a and a.from_ else "the start"
    end = a.to.isoformat() if a and a.to else "further notice"
    return f"from {start} to {end}"


# The refusals that hold whatever the customer's balance and limits on the day:
# `redeem` says them before it says the day has not come yet (redeem.py).
NOT_ACTIVE, TIER_TOO_LOW = "reward not active", "tier too low"


def refusal(
    program: Program,
    reward: Reward,
    customer_id: str,
    on: dt.date,
    *,
    tier: str | None,
    available: int,
    used_in_period: int,
    open_vouchers: int,
) -> str | None:
    """Why the customer cannot have the reward on `on` (None: they can)."""
    name = reward_label(reward)
    if reward.punch_card is None and not reward.is_active(on):
        return f"{NOT_ACTIVE} on {on.isoformat()}: {name} runs {_active_text(reward)}"
    if reward.min_tier is not None:
        tier = effective_tier(program, tier)
        if tier_rank(program, tier) < tier_rank(program, reward.min_tier):
            need = tier_label(program, reward.min_tier)
            have = tier_label(program, tier)
            has = f"is {have}" if tier is not None else "is not in any tier"
            return f"{TIER_TOO_LOW}: {name} needs tier {need}; {customer_id} {has}"
    if reward.limit is not None and used_in_period >= reward.limit.count:
        per = _PERIOD_WORD[reward.limit.per]
        return (
            f"limit reached: {customer_id} has had {name} {used_in_period} time"
            f"{'s' if used_in_period != 1 else ''} this {per} (limit of "
            f"{reward.limit.count} per {per})"
        )
    if reward.punch_card is not None:
        if open_vouchers < 1:
            return f"no open voucher: {customer_id} has no open voucher for {name}"
        return None
    cost = reward.points_cost
    if available < cost:
        return f"not enough points: {customer_id} has {available} available, {name} costs {cost}"
    return None


@dataclass
class Facts:
    """Everything the rule needs about a set of customers on one date, loaded in bulk."""

    on: dt.date
    customers: list[str]
    available: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)
    # (customer, reward) -> non-cancelled redemption dates (ISO) near `on`
    redeemed: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    vouchers: dict[tuple[str, str], int] = field(default_factory=dict)

    def used_in_period(self, customer_id: str, reward: Reward) -> int:
        if reward.limit is None:
            return 0
        lo, hi = period_bounds(reward.limit.per, self.on)
        dates = self.redeemed.get((customer_id, reward.id), [])
        return sum(1 for d in dates if lo.isoformat() <= d <= hi.isoformat())

    def refusal(self, program: Program, reward: Reward, customer_id: str) -> str | None:
        return refusal(
            program,
            reward,
            customer_id,
            self.on,
            tier=self.tiers.get(customer_id),
            available=self.available.get(customer_id, 0),
            used_in_period=self.used_in_period(customer_id, reward),
            open_vouchers=self.vouchers.get((customer_id, reward.id), 0),
        )


def load_facts(
    conn: sqlite3.Connection,
    program: Program,
    customer_id: str | None,
    on: dt.date,
    posting: bool = False,
) -> Facts:
    """One query per kind of fact, for one customer or for everyone.

    posting=True (redeem, one customer): the replay runs over every entry already
    posted (in posting order), not only those dated up to `on`: a new redeem is
    appended last, so this is exactly what it will be able to consume, and it can
    never create debt. posting=False (listings): the statement's view as of `on`
    (entries dated after `on` ignored), the same number `customer show` gives."""
    # A redemption takes a voucher open now; a statement counts those open on `on`.
    vouchers = open_voucher_counts(conn, customer_id, on, as_of=not posting)
    if customer_id is not None:
        from loyalty_cli.engine.statement import unposted_inactivity

        entries = ledger.entries_for(conn, customer_id)
        state = ledger.replay(entries, None if posting else on)
        # An inactivity expiry due by `on` that no run has posted yet took them all.
        expired = unposted_inactivity(conn, customer_id, on)
        available = {customer_id: ledger.available_after(state, on, expired)}
        customers = [customer_id]
    else:
        # Everyone (a listing, never a posting), as their statements say: most
        # balances come from one grouped scan instead of replaying every customer's
        # ledger (reports.balances).
        from loyalty_cli.reports import balances

        assert not posting, "a redemption is posted for one customer"
        available = {c: held[0] for c, held in balances(conn, on).items()}
        customers = sorted(set(available) | {c for c, _ in vouchers})
    facts = Facts(on=on, customers=customers, vouchers=vouchers)
    facts.available = available
    if program.tiers is not None and any(r.min_tier for r in program.rewards):
        facts.tiers = customer_tiers(conn, [customer_id] if customer_id else None, on)
    limited = [r for r in program.rewards if r.limit is not None]
    if limited:
        bounds = [period_bounds(r.limit.per, on) for r in limited if r.limit]
        lo = min(b[0] for b in bounds).isoformat()
        hi = max(b[1] for b in bounds).isoformat()
        # The limit on a date is what `redeem --date` would decide for it now, in a
        # view of a past date too: the period's redemptions not cancelled, dated
        # before or after it (a back-dated redemption cannot exceed the limit).
        sql = (
            "SELECT customer_id, reward_id, date FROM redemptions "
            "WHERE status != 'cancelled' AND date BETWEEN :lo AND :hi"
        )
        if customer_id is not None:
            sql += " AND customer_id = :c"
        for c, r, d in conn.execute(sql, {"lo": lo, "hi": hi, "c": customer_id}):
            facts.redeemed.setdefault((c, r), []).append(d)
    return facts


def rewards_eligible(
    conn: sqlite3.Connection, customer_id: str | None = None, as_of: dt.date | None = None
) -> list[dict]:
    """[{customer_id, reward_id, cost, available}] for every claimable pair on as_of.

    Without a customer: everyone with points or vouchers (a customer with
    neither can claim nothing). Sorted by customer, then catalogue order.
    """
    on = as_of or dt.date.today()
    if customer_id is not None:
        from loyalty_cli.rewards.common import require_customer

        require_customer(conn, customer_id)
    version = version_or_none(conn, on)
    if version is None:
        return []
    program = version.program
    facts = load_facts(conn, program, customer_id, on)
    dropped = voucher_rewards(conn, program, facts)
    out: list[dict] = []
    for cid in facts.customers:
        for reward in [*program.rewards, *dropped.get(cid, [])]:
            if facts.refusal(program, reward, cid) is None:
                out.append(
                    {
                        "customer_id": cid,
                        "reward_id": reward.id,
                        "cost": reward.points_cost,
                        "available": facts.available.get(cid, 0),
                    }
                )
    return out


def eligible_reward_ids(conn: sqlite3.Connection, customer_id: str, as_of: dt.date) -> list[str]:
    """Reward ids the customer could redeem on as_of (catalogue order); [] without a program."""
    version = version_or_none(conn, as_of)
    if version is None:
        return []
    standing = customer_rewards(conn, version.program, customer_id, as_of)
    return [reward.id for reward, why_not in standing if why_not is None]


def customer_rewards(
    conn: sqlite3.Connection, program: Program, customer_id: str, on: dt.date
) -> list[tuple[Reward, str | None]]:
    """(reward, why the customer cannot have it on `on`, None when they can) for the
    catalogue, then the dropped punch cards they hold a voucher of."""
    facts = load_facts(conn, program, customer_id, on)
    rewards = [*program.rewards, *voucher_rewards(conn, program, facts).get(customer_id, [])]
    return [(r, facts.refusal(program, r, customer_id)) for r in rewards]


def voucher_rewards(
    conn: sqlite3.Connection, program: Program, facts: Facts
) -> dict[str, list[Reward]]:
    """customer -> the punch-card rewards of their open vouchers that `program` no
    longer has (see the module)."""
    out: dict[str, list[Reward]] = {}
    for (cid, rid), count in sorted(facts.vouchers.items()):
        if count and program.reward(rid) is None:
            reward = voucher_reward(conn, cid, rid, facts.on)
            if reward is not None:
                out.setdefault(cid, []).append(reward)
    return out


def voucher_reward(
    conn: sqlite3.Connection, customer_id: str, reward_id: str, on: dt.date
) -> Reward | None:
    """A reward gone from the catalogue as the version that issued the customer's
    next voucher for it (the oldest open on `on`, the one `redeem` takes) had it,
    to be claimed on the voucher alone; None when they never had one."""
    row = conn.execute(
        "SELECT v.issued, (SELECT s.version FROM scored_receipts s WHERE "
        "s.transaction_id = v.transaction_id AND s.customer_id = v.customer_id) "
        "FROM vouchers v WHERE v.customer_id = ? AND v.reward_id = ? AND v.issued <= ? "
        # The next one redeem takes; else any, so a refusal can say none is open.
        "ORDER BY NOT ((v.status = 'open' OR v.closed_on > ?) "
        "AND (v.expires_on IS NULL OR v.expires_on > ?)), v.issued, v.voucher_id LIMIT 1",
        (customer_id, reward_id, *[on.isoformat()] * 3),
    ).fetchone()
    if row is None:
        return None
    issued, number = row
    # The version that scored the voucher's receipt issued it (a version applied
    # later over its date did not); the one in force on the day if that is unknown.
    version = (
        versions_by_number(conn).get(number)
        if number is not None
        else version_or_none(conn, dt.date.fromisoformat(issued))
    )
    reward = version.program.reward(reward_id) if version is not None else None
    if reward is None or reward.punch_card is None:
        return None
    return reward.model_copy(update={"min_tier": None, "limit": None, "active": None})
