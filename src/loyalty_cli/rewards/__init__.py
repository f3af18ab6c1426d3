"""Rewards at the counter: catalogue, eligibility, redeem, cancel, adjust, claim.

Everything the counter commands do is callable from here; the CLI in
`cli/rewards.py` only parses, calls one of these and renders.
"""

from __future__ import annotations

from loyalty_cli.rewards.eligibility import (
    eligible_reward_ids,
    period_bounds,
    refusal,
    rewards_eligible,
)
from loyalty_cli.rewards.vouchers import vouchers_of

__all__ = [
    "eligible_reward_ids",
    "period_bounds",
    "refusal",
    "rewards_eligible",
    "vouchers_of",
]
