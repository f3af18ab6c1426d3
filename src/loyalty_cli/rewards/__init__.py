"""Rewards at the counter: catalogue, eligibility, redeem, cancel, adjust, claim.

Everything the counter commands do is callable from here; the CLI in
`cli/rewards.py` only parses, calls one of these and renders.
"""

from __future__ import annotations

from loyalty_cli.rewards.adjust import adjust, adjustment_entry, lot_expiry
from loyalty_cli.rewards.catalogue import list_rewards
from loyalty_cli.rewards.claim import claim
from loyalty_cli.rewards.common import posting_date, posting_limit
from loyalty_cli.rewards.eligibility import (
    eligible_reward_ids,
    period_bounds,
    refusal,
    rewards_eligible,
)
from loyalty_cli.rewards.redeem import (
    cancel_redemption,
    get_redemption,
    redeem,
    redemption_code,
    redemption_dict,
)
from loyalty_cli.rewards.vouchers import vouchers_of

__all__ = [
    "adjust",
    "adjustment_entry",
    "cancel_redemption",
    "claim",
    "eligible_reward_ids",
    "get_redemption",
    "list_rewards",
    "lot_expiry",
    "period_bounds",
    "posting_date",
    "posting_limit",
    "redeem",
    "redemption_code",
    "redemption_dict",
    "refusal",
    "rewards_eligible",
    "vouchers_of",
]
