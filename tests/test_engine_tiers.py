"""Tiers: crossing receipt, same_receipt, rolling window edge, retain_days, calendar year."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine_helpers import buy, earned, go, program
from loyalty_cli import db
from loyalty_cli.engine.tiers import tier_on, tiers_on


def tiers(
    window: str = "{rolling_days: 365}",
    upgrade: str = "next_receipt",
    retain: int = 0,
    basis: str = "spend",
) -> str:
    return f"""
tiers:
  basis: {basis}
  window: {window}
  upgrade: {upgrade}
  retain_days: {retain}
  levels:
    - {{id: bronze, min: 0}}
    - {{id: silver, min: 300, multiplier: 1.5}}
    - {{id: gold, min: 1000, multiplier: 2}}
"""


def test_crossing_receipt_earns_at_old_tier(conn, tmp_path):
    program(conn, tmp_path, tiers())
    buy(conn, "T1", "C1", "2026-01-01", 20000)
    buy(conn, "T2", "C1", "2026-01-02", 15000)  # crosses 300: still bronze
    buy(conn, "T3", "C1", "2026-01-03", 10000)  # silver: 100 x 1.5
    go(conn, "2026-01-31")
    assert [earned(conn, t) for t in ("T1", "T2", "T3")] == [200, 150, 150]
    assert tier_on(conn, "C1", dt.date(2026, 1, 1)) == "bronze"
    assert tier_on(conn, "C1", dt.date(2026, 1, 2)) == "silver"
    assert tuple(
        conn.execute(
            "SELECT date, tier FROM tier_history WHERE customer_id = 'C1' ORDER BY date"
        ).fetchall()[-1]
    ) == ("2026-01-03", "silver")


def test_same_receipt_upgrade(conn, tmp_path):
    program(conn, tmp_path, tiers(upgrade="same_receipt"))
    buy(conn, "T1", "C1", "2026-01-01", 20000)
    buy(conn, "T2", "C1", "2026-01-02", 15000)  # crosses 300: earns at silver
    go(conn, "2026-01-31")
    assert earned(conn, "T2") == 225


def test_same_day_order_is_transaction_id(conn, tmp_path):
    program(conn, tmp_path, tiers())
    buy(conn, "B", "C1", "2026-01-01", 10000)
    buy(conn, "A", "C1", "2026-01-01", 30000)  # A comes first: B is after 300 -> silver
    go(conn, "2026-01-31")
    assert (earned(conn, "A"), earned(conn, "B")) == (300, 150)


def test_rolling_window_edge_downgrades(conn, tmp_path):
    program(conn, tmp_path, tiers(window="{rolling_days: 30}"))
    buy(conn, "T1", "C1", "2026-01-01", 40000)
    buy(conn, "T2", "C1", "2026-01-30", 1000)  # window (Dec 31, Jan 30] holds T1: silver
    buy(conn, "T3", "C1", "2026-01-31", 1000)  # window (Jan 1, Jan 31]: T1 left: bronze
    go(conn, "2026-02-28")
    assert (earned(conn, "T2"), earned(conn, "T3")) == (15, 10)
    assert tiers_on(conn, dt.date(2026, 1, 30), ["C1"]) == {"C1": "silver"}
    assert tiers_on(conn, dt.date(2026, 1, 31), ["C1"]) == {"C1": "bronze"}


def test_retain_days_keeps_tier(conn, tmp_path):
    program(conn, tmp_path, tiers(window="{rolling_days: 30}", retain=30))
    buy(conn, "T1", "C1", "2026-01-01", 40000)
    buy(conn, "T2", "C1", "2026-02-05", 1000)  # silver until Jan 30, within the last 30 days
    buy(conn, "T3", "C1", "2026-03-15", 1000)  # last 30 days: spend 20.00 at most: bronze
    go(conn, "2026-03-31")
    assert (earned(conn, "T2"), earned(conn, "T3")) == (15, 10)


def test_calendar_year_resets(conn, tmp_path):
    program(conn, tmp_path, tiers(window="calendar_year"))
    buy(conn, "T1", "C1", "2026-12-01", 40000)
    buy(conn, "T2", "C1", "2026-12-31", 1000)
    buy(conn, "T3", "C1", "2027-01-01", 1000)
    go(conn, "2027-01-31")
    assert (earned(conn, "T2"), earned(conn, "T3")) == (15, 10)


def test_refund_reduces_qualifying_spend(conn, tmp_path):
    program(conn, tmp_path, tiers())
    buy(conn, "T1", "C1", "2026-01-01", 35000)
    buy(conn, "R1", "C1", "2026-01-02", -10000)  # spend 250: below silver again
    buy(conn, "T2", "C1", "2026-01-03", 1000)
    go(conn, "2026-01-31")
    assert earned(conn, "T2") == 10


def test_a_refund_below_zero_spend_keeps_the_base_level(conn, tmp_path):
    """The refund of a sale that left the window takes spend below zero: the customer
    stands on the min-0 level (statement, listing and a bronze rule alike)."""
    program(
        conn,
        tmp_path,
        tiers(window="{rolling_days: 30}")
        + "rules:\n  - {id: bronze-bonus, when: {tier: bronze}, bonus: 7}\n",
    )
    buy(conn, "A1", "C1", "2026-01-01", 40000)
    buy(conn, "R1", "C1", "2026-02-05", -20000)  # A1 left the window: spend -200.00
    buy(conn, "A2", "C1", "2026-02-06", 1000)
    go(conn, "2026-02-28")
    assert earned(conn, "A2") == 10 + 7
    assert tier_on(conn, "C1", dt.date(2026, 2, 6)) == "bronze"
    assert tiers_on(conn, dt.date(2026, 2, 5)) == {"C1": "bronze"}


def test_receipts_basis(conn, tmp_path):
    program(
        conn,
        tmp_path,
        tiers(basis="receipts").replace("min: 300", "min: 2").replace("min: 1000", "min: 3"),
    )
    for i, day in enumerate(("01", "02", "03", "04"), start=1):
        buy(conn, f"T{i}", "C1", f"2026-01-{day}", 1000)
    go(conn, "2026-01-31")
    assert [earned(conn, f"T{i}") for i in range(1, 5)] == [10, 10, 15, 20]


def test_tiers_of_a_few_customers_equal_the_pass_over_everyone(conn, tmp_path, monkeypatch):
    """A few ids are looked up on the customer index, many by one pass: same tiers."""
    from loyalty_cli.engine import tiers as tiers_module

    program(conn, tmp_path, tiers())
    amounts = {"C1": [20000, 15000, 10000], "C2": [5000], "C3": [90000, 30000], "C4": []}
    n = 0
    for cid, spends in amounts.items():
        for i, amount in enumerate(spends):
            n += 1
            buy(conn, f"T{n}", cid, f"2026-01-0{i + 1}", amount)
    go(conn, "2026-01-31")
    ids = ["C4", "C3", "C1", "C2", "C9"]
    for day in ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-31"):
        on = dt.date.fromisoformat(day)
        few = tiers_on(conn, on, ids)
        monkeypatch.setattr(tiers_module, "_FEW", 0)
        everyone = tiers_on(conn, on, ids)
        monkeypatch.undo()
        assert few == everyone
        assert set(few) == set(ids)
    assert tiers_on(conn, dt.date(2026, 1, 31), ids)["C3"] == "gold"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    window=st.sampled_from(
        ["{rolling_days: 30}", "{rolling_days: 365}", "calendar_year", "lifetime"]
    ),
    retain=st.sampled_from([0, 1, 45, 400]),
    basis=st.sampled_from(["spend", "receipts"]),
    receipts=st.lists(
        st.tuples(
            st.sampled_from(["C1", "C2", "C3"]), st.integers(0, 800), st.integers(-5000, 60000)
        ),
        max_size=25,
    ),
    days=st.lists(st.integers(0, 600), min_size=1, max_size=6),
)
# Silver on day 0 has left the 30-day window by day 50, but is within retain_days.
@example(
    window="{rolling_days: 30}", retain=45, basis="spend", receipts=[("C1", 0, 60000)], days=[50]
)
def test_tiers_of_everyone_read_only_the_window_and_agree_with_the_whole_history(
    tmp_path_factory, window, retain, basis, receipts, days
):
    """tiers_on reads only the receipts retain_days and the window can reach; the tier
    is the one the customer's whole history gives (tier_on)."""
    conn = db.connect(tmp_path_factory.mktemp("tiers") / "shop.db")
    program(conn, tmp_path_factory.getbasetemp(), tiers(window, retain=retain, basis=basis))
    start = dt.date(2025, 1, 1)
    for n, (cid, offset, amount) in enumerate(receipts):
        buy(conn, f"T{n:03}", cid, (start + dt.timedelta(days=offset)).isoformat(), amount)
    go(conn, "2027-12-31")
    ids = ["C1", "C2", "C3"]
    for offset in days:
        on = start + dt.timedelta(days=offset)
        assert tiers_on(conn, on, ids) == {cid: tier_on(conn, cid, on) for cid in ids}


def test_retain_days_keeps_a_level_held_for_a_moment_of_a_day(conn, tmp_path):
    """DESIGN: the highest tier qualified for at any moment of the last R days. Silver
    after T1, lost by its refund the same day: T3 and T4 still earn at silver."""
    program(conn, tmp_path, tiers(window="lifetime", retain=30).replace("min: 1000", "min: 5000"))
    buy(conn, "T1", "C1", "2025-01-10", 40000)
    buy(conn, "T2", "C1", "2025-01-10", -20000, refund_of="T1")
    buy(conn, "T3", "C1", "2025-01-10", 1000)
    buy(conn, "T4", "C1", "2025-01-11", 1000)
    go(conn, "2025-01-20")
    assert (earned(conn, "T3"), earned(conn, "T4")) == (15, 15)
    assert tier_on(conn, "C1", dt.date(2025, 1, 20)) == "silver"
    assert tier_on(conn, "C1", dt.date(2025, 2, 10)) == "bronze"  # 31 days later
