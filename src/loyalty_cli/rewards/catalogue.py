"""The reward catalogue of the program version in force."""

from __future__ import annotations

import datetime as dt
import sqlite3
from decimal import Decimal
from typing import Any

from loyalty_cli.money import format_minor
from loyalty_cli.rewards.common import version_on


def _plain(value: Any) -> Any:
    """Model values -> JSON-ready values (dates ISO, Decimals as strings)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def list_rewards(
    conn: sqlite3.Connection, as_of: dt.date | None = None, customer_id: str | None = None
) -> list[dict[str, Any]]:
    """Every reward of the version in force on as_of, in catalogue order.

    Keys: reward_id, name, cost (0 for a punch card), value (money string),
    min_tier, limit {count, per} | null, active {from, to} | null,
    active_on_date (bool), punch_card {every, when} | null, partner,
    voucher_days. With a customer, two more: eligible (bool: they could redeem
    it on as_of) and why_not (the sentence `redeem` would refuse with, or null),
    by the rule `rewards eligible` uses; after the catalogue come the punch cards a
    later version dropped while the customer holds a voucher of them (owed).
    """
    on = as_of or dt.date.today()
    version = version_on(conn, on)
    program = version.program
    out = []
    standing: list[tuple[Any, str | None]] = [(r, None) for r in program.rewards]
    if customer_id is not None:
        from loyalty_cli.rewards.common import require_customer
        from loyalty_cli.rewards.eligibility import customer_rewards

        require_customer(conn, customer_id)
        standing = customer_rewards(conn, program, customer_id, on)
    for r, why_not in standing:
        out.append(
            {
                "reward_id": r.id,
                "name": r.name,
                "cost": r.points_cost,
                "value": format_minor(program.minor(r.value), program.currency),
                "min_tier": r.min_tier,
                "limit": {"count": r.limit.count, "per": r.limit.per} if r.limit else None,
                "active": (
                    {"from": _plain(r.active.from_), "to": _plain(r.active.to)}
                    if r.active
                    else None
                ),
                "active_on_date": r.is_active(on),
                "punch_card": (
                    {
                        "every": r.punch_card.every,
                        # JSON mode: weekdays by the names the YAML takes (`sat`).
                        "when": r.punch_card.when.model_dump(mode="json", exclude_none=True),
                    }
                    if r.punch_card
                    else None
                ),
                "partner": r.partner,
                "voucher_days": r.voucher_days,
            }
        )
        if customer_id is not None:
            out[-1].update(eligible=why_not is None, why_not=why_not)
    return out
