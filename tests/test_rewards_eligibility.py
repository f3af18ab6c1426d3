"""Eligibility: active dates, tier, limit, points, vouchers; bulk listing."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_cli import db, ledger
from loyalty_cli.rewards import (
    eligible_reward_ids,
    period_bounds,
    rewards_eligible,
    vouchers_of,
)
from test_rewards_support import D, apply, customer, earn, set_tier, voucher


def test_points_decide_between_nothing_and_coffee(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 99, D)
    assert eligible_reward_ids(conn, "C1", D) == []
    earn(conn, "C1", 1, D)
    assert eligible_reward_ids(conn, "C1", D) == ["coffee"]


def test_tier_gates_the_silver_reward(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 600, D - dt.timedelta(days=5))
    assert eligible_reward_ids(conn, "C1", D) == ["coffee"]
    set_tier(conn, "C1", "silver", D)
    assert eligible_reward_ids(conn, "C1", D) == ["coffee", "ten-off"]
    # Not before the tier was reached, and not outside the active dates.
    assert eligible_reward_ids(conn, "C1", D - dt.timedelta(days=1)) == ["coffee"]


def test_inactive_after_the_end_date(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 600, D)
    set_tier(conn, "C1", "gold", D)
    assert eligible_reward_ids(conn, "C1", dt.date(2027, 1, 1)) == ["coffee"]
    assert eligible_reward_ids(conn, "C1", dt.date(2026, 12, 31)) == ["coffee", "ten-off"]


def _silver_with_a_ten_off(conn, tmp_path, cancelled_on: str | None = None) -> None:
    """C1 silver with 2000 points, a ten-off redeemed on 2026-03-01 (cancelled on
    `cancelled_on` when given)."""
    apply(conn, tmp_path)
    earn(conn, "C1", 2000, D)
    set_tier(conn, "C1", "silver", D)
    with db.transaction(conn):
        conn.execute(
            "INSERT INTO redemptions (redemption_id, customer_id, reward_id, date, points, "
            "value, created_at, status, cancelled_on) VALUES ('X1', 'C1', 'ten-off', "
            "'2026-03-01', 500, 1000, 'now', ?, ?)",
            ("cancelled" if cancelled_on else "active", cancelled_on),
        )


def test_limit_counts_redemptions_in_the_same_month(conn, tmp_path):
    _silver_with_a_ten_off(conn, tmp_path)
    assert "ten-off" not in eligible_reward_ids(conn, "C1", D)
    assert "ten-off" in eligible_reward_ids(conn, "C1", dt.date(2026, 4, 1))
    with db.transaction(conn):
        conn.execute("UPDATE redemptions SET status = 'cancelled' WHERE redemption_id = 'X1'")
    assert "ten-off" in eligible_reward_ids(conn, "C1", D)


def test_a_past_view_judges_the_limit_as_redeem_would_now(conn, tmp_path):
    """The month's ten-off, cancelled on the 25th: a view of the 24th, like `redeem
    --date` the 24th made now, does not count it; a live one later in the month does."""
    from loyalty_cli.rewards import redeem

    _silver_with_a_ten_off(conn, tmp_path, cancelled_on="2026-03-25")
    assert "ten-off" in eligible_reward_ids(conn, "C1", dt.date(2026, 3, 24))
    assert redeem(conn, "C1", "ten-off", dt.date(2026, 3, 24))["reward_id"] == "ten-off"
    assert "ten-off" not in eligible_reward_ids(conn, "C1", dt.date(2026, 3, 12))


def test_period_bounds():
    assert period_bounds("day", D) == (D, D)
    # 2026-03-10 is a Tuesday: ISO week Monday 9th .. Sunday 15th.
    assert period_bounds("week", D) == (dt.date(2026, 3, 9), dt.date(2026, 3, 15))
    assert period_bounds("month", dt.date(2026, 2, 14)) == (
        dt.date(2026, 2, 1),
        dt.date(2026, 2, 28),
    )
    assert period_bounds("week", dt.date(2027, 1, 1)) == (
        dt.date(2026, 12, 28),
        dt.date(2027, 1, 3),
    )
    assert period_bounds("year", D) == (dt.date(2026, 1, 1), dt.date(2026, 12, 31))


def test_punch_card_needs_an_open_unexpired_voucher(conn, tmp_path):
    apply(conn, tmp_path)
    voucher(conn, "V1", "C1", D, expires_on=D + dt.timedelta(days=30))
    assert eligible_reward_ids(conn, "C1", D) == ["tenth-coffee"]
    assert eligible_reward_ids(conn, "C1", D + dt.timedelta(days=30)) == []
    assert vouchers_of(conn, "C1", D + dt.timedelta(days=30)) == [
        {"voucher_id": "V1", "reward_id": "tenth-coffee", "issued": "2026-03-10",
         "status": "expired"}
    ]  # fmt: skip
    assert vouchers_of(conn, "C1", D)[0]["status"] == "open"
    assert vouchers_of(conn, "C1", D - dt.timedelta(days=1)) == []


def test_rewards_eligible_for_everyone_in_one_listing(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 150, D)
    earn(conn, "C2", 50, D)
    earn(conn, "C3", 700, D)
    set_tier(conn, "C3", "silver", D)
    voucher(conn, "V1", "C2", D)
    assert rewards_eligible(conn, as_of=D) == [
        {"customer_id": "C1", "reward_id": "coffee", "cost": 100, "available": 150},
        {"customer_id": "C2", "reward_id": "tenth-coffee", "cost": 0, "available": 50},
        {"customer_id": "C3", "reward_id": "coffee", "cost": 100, "available": 700},
        {"customer_id": "C3", "reward_id": "ten-off", "cost": 500, "available": 700},
    ]
    assert rewards_eligible(conn, "C1", D) == [
        {"customer_id": "C1", "reward_id": "coffee", "cost": 100, "available": 150}
    ]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lots=st.lists(
        st.tuples(
            st.sampled_from(["C1", "C2", "C3", "C4"]),
            st.integers(1, 400),  # points
            st.integers(-60, 20),  # posted, days from D
            st.integers(0, 30),  # pending days
            st.one_of(st.none(), st.integers(-30, 90)),  # expires, days from D
        ),
        max_size=12,
    ),
    spends=st.lists(
        st.tuples(st.sampled_from(["C1", "C2", "C3"]), st.integers(1, 300)), max_size=4
    ),
    offset=st.integers(-40, 40),
)
def test_the_listing_for_everyone_says_what_each_customer_is_told(
    tmp_path_factory, lots, spends, offset
):
    """`rewards eligible` without --customer takes most balances from one grouped scan;
    pending points, lots past expiry and spent points give each customer the same
    answer as asking for them alone."""
    conn = db.connect(tmp_path_factory.mktemp("elig") / "shop.db")
    apply(conn, tmp_path_factory.getbasetemp())
    day = dt.timedelta(days=1)
    for n, (cid, points, posted, pending, expires) in enumerate(lots):
        on = D + posted * day
        _post(conn, on, cid, "earn", points, "purchase", f"T{n}", program_version=1,
              available_on=on + pending * day,
              expires_on=None if expires is None else on + (pending + expires) * day)  # fmt: skip
    for n, (cid, points) in enumerate(spends):
        _post(conn, D, cid, "adjust", -points, "adjustment", f"A{n}")
    on = D + offset * day
    everyone = rewards_eligible(conn, as_of=on)
    one_by_one = [row for cid in ("C1", "C2", "C3", "C4") for row in _alone(conn, cid, on)]
    assert everyone == one_by_one


def _post(conn, on, cid, kind, points, source_type, source_id, **more):
    customer(conn, cid)
    with db.transaction(conn):
        ledger.post(conn, [ledger.NewEntry(on, cid, kind, points, source_type, source_id, **more)])


def _alone(conn, cid, on):
    known = conn.execute("SELECT 1 FROM customers WHERE customer_id = ?", (cid,)).fetchone()
    return rewards_eligible(conn, cid, on) if known else []
