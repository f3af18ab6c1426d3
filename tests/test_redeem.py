"""redeem / cancel_redemption: checks with their exact reasons, lots, vouchers, --ref."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from loyalty_cli import db, ledger
from loyalty_cli.errors import ConflictError, NotFoundError, RedemptionError
from loyalty_cli.ledger import NewEntry
from loyalty_cli.rewards import cancel_redemption, redeem, redemption_code, vouchers_of
from test_rewards_support import D, apply, earn, set_tier, voucher


def ledger_rows(conn, kind=None):
    sql = "SELECT kind, points, value, source_type, source_id, date, lot_id FROM ledger"
    rows = [tuple(r) for r in conn.execute(sql + " ORDER BY entry_id")]
    return [r for r in rows if kind is None or r[0] == kind]


def test_redeem_posts_a_redeem_entry_and_returns_the_contract_shape(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 250, D)
    out = redeem(conn, "C1", "coffee", D)
    assert out == {
        "redemption_id": "R000001",
        "customer_id": "C1",
        "reward_id": "coffee",
        "points": 100,
        "value": "3.50",
        "date": "2026-03-10",
        "balance_after": 150,
    }
    assert ledger_rows(conn, "redeem") == [
        ("redeem", -100, -100, "redemption", "R000001", "2026-03-10", None)
    ]
    row = conn.execute("SELECT status, code, value FROM redemptions").fetchone()
    assert tuple(row) == ("active", redemption_code("R000001"), 350)
    assert len(row["code"]) == 6 and set(row["code"]) <= set("ACDEFGHJKMNPQRTUVWXY34679")
    assert redeem(conn, "C1", "coffee", D)["redemption_id"] == "R000002"


def test_overdraft_is_refused_and_the_balance_is_unchanged(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 40, D)
    with pytest.raises(RedemptionError) as exc:
        redeem(conn, "C1", "coffee", D)
    assert str(exc.value) == "not enough points: C1 has 40 available, free coffee costs 100"
    assert ledger.state_of(conn, "C1").available(D) == 40
    assert ledger_rows(conn, "redeem") == []
    assert conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 0


def test_pending_and_expired_points_do_not_pay(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 100, D - dt.timedelta(days=400), expires_on=D - dt.timedelta(days=35))
    with pytest.raises(RedemptionError, match="C1 has 0 available"):
        redeem(conn, "C1", "coffee", D)


def test_tier_too_low_names_both_tiers(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 1000, D)
    with pytest.raises(RedemptionError) as exc:
        redeem(conn, "C1", "ten-off", D)
    assert str(exc.value) == "tier too low: 10 EUR off needs tier Silver; C1 is Bronze"


def test_limit_of_one_per_month(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 2000, D)
    set_tier(conn, "C1", "silver", D)
    redeem(conn, "C1", "ten-off", D)
    with pytest.raises(RedemptionError) as exc:
        redeem(conn, "C1", "ten-off", D + dt.timedelta(days=5))
    assert str(exc.value) == (
        "limit reached: C1 has had 10 EUR off 1 time this month (limit of 1 per month)"
    )
    assert redeem(conn, "C1", "ten-off", dt.date(2026, 4, 1))["points"] == 500


def test_inactive_reward_and_unknown_ids(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 2000, D)
    set_tier(conn, "C1", "gold", D)
    with pytest.raises(RedemptionError) as exc:
        redeem(conn, "C1", "ten-off", dt.date(2027, 1, 2))
    assert str(exc.value) == (
        "reward not active on 2027-01-02: 10 EUR off runs from 2026-01-01 to 2026-12-31"
    )
    with pytest.raises(NotFoundError) as exc2:
        redeem(conn, "C1", "tea", D)
    assert str(exc2.value) == "unknown reward 'tea'; rewards are coffee, ten-off, tenth-coffee"
    with pytest.raises(NotFoundError) as exc3:
        redeem(conn, "C9", "coffee", D)
    assert str(exc3.value) == "unknown customer 'C9'"


def test_ref_twice_is_once(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 500, D)
    first = redeem(conn, "C1", "coffee", D, ref="till-7-0042")
    again = redeem(conn, "C1", "coffee", D + dt.timedelta(days=3), ref="till-7-0042")
    assert again == first
    assert len(ledger_rows(conn, "redeem")) == 1
    assert ledger.state_of(conn, "C1").available(D) == 400


def test_a_ref_used_for_another_customer_is_refused(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 500, D)
    earn(conn, "C2", 500, D)
    first = redeem(conn, "C1", "coffee", D, ref="K1")
    with pytest.raises(ConflictError) as exc:
        redeem(conn, "C2", "coffee", D, ref="K1")
    assert str(exc.value) == (
        f"ref K1 is redemption {first['redemption_id']} of customer C1, not of C2; use a new key"
    )
    assert ledger.state_of(conn, "C2").available(D) == 500


def test_cancel_restores_the_exact_lots(conn, tmp_path):
    apply(conn, tmp_path)
    old = earn(conn, "C1", 60, D - dt.timedelta(days=30), expires_on=dt.date(2027, 1, 1))
    new = earn(conn, "C1", 80, D - dt.timedelta(days=10), expires_on=dt.date(2027, 2, 1))
    before = {k: lot.remaining for k, lot in ledger.state_of(conn, "C1").lots.items()}
    rid = redeem(conn, "C1", "coffee", D)["redemption_id"]
    during = ledger.state_of(conn, "C1").lots
    assert (during[old].remaining, during[new].remaining) == (0, 40)
    out = cancel_redemption(conn, rid, D + dt.timedelta(days=1))
    after = {k: lot.remaining for k, lot in ledger.state_of(conn, "C1").lots.items()}
    assert after == before
    assert out["status"] == "cancelled" and out["points_returned"] == 100
    assert out["available"] == 140 and out["points_expired"] == 0
    assert ledger_rows(conn, "redemption_reversed") == [
        ("redemption_reversed", 100, 100, "redemption", rid, "2026-03-11", None)
    ]
    assert conn.execute("SELECT status, cancelled_on FROM redemptions").fetchone()[:] == (
        "cancelled",
        "2026-03-11",
    )


def test_cancel_after_a_lot_expired_expires_what_came_back_at_once(conn, tmp_path):
    apply(conn, tmp_path)
    old = earn(conn, "C1", 60, D - dt.timedelta(days=30), expires_on=dt.date(2026, 4, 1))
    new = earn(conn, "C1", 80, D - dt.timedelta(days=10), expires_on=dt.date(2027, 2, 1))
    rid = redeem(conn, "C1", "coffee", D)["redemption_id"]
    out = cancel_redemption(conn, rid, dt.date(2026, 4, 15))
    assert out["points_returned"] == 100 and out["points_expired"] == 60
    assert ledger_rows(conn, "expire") == [
        ("expire", -60, -60, "expiry", str(old), "2026-04-15", old)
    ]
    state = ledger.state_of(conn, "C1")
    assert state.lots[old].remaining == 0 and state.lots[new].remaining == 80
    assert state.available(dt.date(2026, 4, 15)) == 80


def test_cancel_twice_conflicts_and_unknown_id_is_not_found(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 100, D)
    rid = redeem(conn, "C1", "coffee", D)["redemption_id"]
    cancel_redemption(conn, rid, D)
    with pytest.raises(ConflictError) as exc:
        cancel_redemption(conn, rid, D)
    assert str(exc.value) == f"redemption {rid} was already cancelled on 2026-03-10"
    with pytest.raises(NotFoundError, match="unknown redemption R999999"):
        cancel_redemption(conn, "R999999", D)
    # A cancelled redemption no longer counts; its id is not handed out again.
    assert redeem(conn, "C1", "coffee", D)["redemption_id"] == "R000002"


def test_voucher_redemption_uses_the_oldest_open_voucher_and_no_points(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 30, D)
    voucher(conn, "V2", "C1", D - dt.timedelta(days=5))
    voucher(conn, "V1", "C1", D - dt.timedelta(days=20))
    voucher(conn, "V0", "C1", D - dt.timedelta(days=40), expires_on=D - dt.timedelta(days=1))
    out = redeem(conn, "C1", "tenth-coffee", D)
    assert out["points"] == 0 and out["value"] == "3.50" and out["balance_after"] == 30
    assert ledger_rows(conn) == [ledger_rows(conn)[0]]  # only the earn lot
    statuses = {v["voucher_id"]: v["status"] for v in vouchers_of(conn, "C1", D)}
    assert statuses == {"V0": "expired", "V1": "used", "V2": "open"}
    used = conn.execute("SELECT redemption_id, closed_on FROM vouchers WHERE voucher_id = 'V1'")
    assert tuple(used.fetchone()) == (out["redemption_id"], "2026-03-10")
    redeem(conn, "C1", "tenth-coffee", D)
    with pytest.raises(RedemptionError) as exc:
        redeem(conn, "C1", "tenth-coffee", D)
    assert str(exc.value) == "no open voucher: C1 has no open voucher for 10th coffee free"
    cancel_redemption(conn, out["redemption_id"], D)
    statuses = {v["voucher_id"]: v["status"] for v in vouchers_of(conn, "C1", D)}
    assert statuses == {"V0": "expired", "V1": "open", "V2": "used"}


def test_imported_id_is_kept_and_generated_ids_skip_it(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 500, D)
    assert redeem(conn, "C1", "coffee", D, redemption_id="R000001")["redemption_id"] == "R000001"
    assert redeem(conn, "C1", "coffee", D)["redemption_id"] == "R000002"
    with pytest.raises(ConflictError, match="redemption R000001 already exists"):
        redeem(conn, "C1", "coffee", D, redemption_id="R000001")


def test_partner_reward_names_its_partner_on_the_entry(conn, tmp_path):
    apply(
        conn,
        tmp_path,
        """
        program: Coalition
        currency: EUR
        point_value: 0.02
        earn: {per_currency_unit: 1}
        partners:
          - {id: bakery, name: Leipomo, stores: [B1]}
        rewards:
          - {id: free-bun, name: Free bun, cost: 100, value: 2.00, partner: bakery}
        """,
    )
    earn(conn, "C1", 100, D)
    redeem(conn, "C1", "free-bun", D)
    row = conn.execute("SELECT partner, value FROM ledger WHERE kind = 'redeem'").fetchone()
    assert tuple(row) == ("bakery", -200)


def test_a_later_redemption_is_not_double_spent_by_a_back_dated_one(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 150, D)
    redeem(conn, "C1", "coffee", D + dt.timedelta(days=5))
    # As of D the statement still shows 150, but a redemption dated D now
    # would consume points already spent: it is refused.
    assert ledger.replay(ledger.entries_for(conn, "C1"), D).available(D) == 150
    with pytest.raises(RedemptionError, match="C1 has 50 available"):
        redeem(conn, "C1", "coffee", D)


INACTIVE = """
program: P
currency: EUR
earn: {per_currency_unit: 1}
expiry: {policy: inactivity, months: 3}
rewards:
  - {id: r150, name: R150, cost: 150, value: 1.50}
"""


def _shop(cli, write, expiry: str, purchases: str) -> None:
    program = write(
        "p.yaml",
        f"""
        program: P
        currency: EUR
        earn: {{per_currency_unit: 1}}
        expiry: {expiry}
        rewards:
          - {{id: r60, name: R60, cost: 60, value: 1.00}}
        """,
    )
    assert cli("program", "apply", program, "--effective", "2026-01-01").exit_code == 0
    assert cli("import", "purchases", write("s.csv", purchases), "--quiet").exit_code == 0


def _points(cli, on: str) -> dict:
    return json.loads(cli("customer", "show", "C1", "--as-of", on, "--format", "json").stdout)


def test_a_cancellation_while_the_customer_owes_points_pays_the_debt_first(cli, write, conn):
    """Earn 100, redeem 60, a full refund claws 100 back (-60, owed), then the
    redemption is cancelled: the 60 pay what is owed. Before, they went back into
    the lot, which later expired them again (the customer ended at -60)."""
    _shop(
        cli,
        write,
        "{policy: fixed, months: 12}",
        """
        transaction_id,customer_id,date,amount,refund_of
        T1,C1,2026-01-01,100.00,
        F1,C1,2026-01-05,-100.00,T1
        """,
    )
    assert cli("run", "--as-of", "2026-01-02").exit_code == 0
    assert cli("redeem", "C1", "r60", "--date", "2026-01-02").exit_code == 0
    assert cli("run", "--as-of", "2026-01-10").exit_code == 0
    assert _points(cli, "2026-01-10")["points"]["available"] == -60
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-01-10",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"], out["available"]) == (60, 0, 0)
    shown = _points(cli, "2026-01-10")
    assert shown["points"]["total"] == 0 and shown["expiring"] == []
    assert cli("run", "--as-of", "2027-01-05").exit_code == 0
    assert _points(cli, "2027-01-05")["points"]["total"] == 0
    assert conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'expire'").fetchone()[0] == 0
    assert cli("check").exit_code == 0


@pytest.mark.parametrize("policy", ["fixed", "inactivity"])
def test_points_back_in_a_dead_lot_expire_and_pay_no_debt_even_one_dated_later(
    cli, write, conn, policy
):
    """The 40 points left of the lot expire on 04-10; a debt of 15 is posted, dated
    05-20; then the redemption is cancelled, dated 05-01. Its 60 points come back
    into the dead lot and expire at once: the customer ends at -15. Before, they
    paid the later debt (ending at -5 with nothing expired), reviving expired points,
    and the journal showed 60 outstanding from 05-01 to 05-19."""
    months = (
        "{policy: fixed, months: 3}" if policy == "fixed" else "{policy: inactivity, months: 3}"
    )
    _shop(cli, write, months, "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,100.00\n")
    assert cli("run", "--as-of", "2026-02-01").exit_code == 0
    assert cli("redeem", "C1", "r60", "--date", "2026-02-01").exit_code == 0
    assert cli("run", "--as-of", "2026-06-01").exit_code == 0  # the 40 left expire on 04-10
    adjust = cli("adjust", "C1", "-15", "--date", "2026-05-20", "--reason", "fix",
                 "--allow-negative")  # fmt: skip
    assert adjust.exit_code == 0, adjust.stderr
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-05-01",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"]) == (60, 60)
    assert cli("run", "--as-of", "2026-06-01").exit_code == 0
    assert _points(cli, "2026-06-01")["points"]["available"] == -15
    journal = cli("export", "journal", "--from", "2026-05-01", "--to", "2026-05-19", "--by", "day")
    assert {row.split(",")[8] for row in journal.stdout.splitlines()[1:]} == {"0"}
    assert cli("check").exit_code == 0


def test_points_back_in_a_dead_lot_pay_the_debts_of_its_life_not_those_after(cli, write, conn):
    """T1's lot (100) dies on 04-10. A debt of 10 arose on 03-01 while it lived, one of
    7 on 05-20 after; cancelling the 60-point redemption on 05-25 pays the 10 (the
    lot would have paid it) and expires the other 50: the customer ends at -7."""
    _shop(cli, write, "{policy: fixed, months: 3}",
          "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,100.00\n")  # fmt: skip
    assert cli("run", "--as-of", "2026-02-01").exit_code == 0
    assert cli("redeem", "C1", "r60", "--date", "2026-02-01").exit_code == 0
    for points, day in (("-50", "2026-03-01"), ("-7", "2026-05-20")):
        if day == "2026-05-20":
            assert cli("run", "--as-of", "2026-06-01").exit_code == 0
        adjust = cli("adjust", "C1", points, "--date", day, "--reason", "fix", "--allow-negative")
        assert adjust.exit_code == 0, adjust.stderr
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-05-25",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"], out["available"]) == (60, 50, -7)
    assert cli("check").exit_code == 0


def test_a_later_inactivity_expiry_does_not_move_a_dead_lots_death(cli, write, conn):
    """T1's lot dies by the inactivity expiry of 04-10; a later one (09-01, taking T2's
    and T3's points) does not keep it alive until then: the 60 points back pay none
    of the 80 owed since 05-20 and expire (they paid 60 of it, ending at -20)."""
    _shop(cli, write, "{policy: inactivity, months: 3}",
          "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,100.00\n"
          "T2,C1,2026-05-01,10.00\nT3,C1,2026-06-01,10.00\n")  # fmt: skip
    assert cli("run", "--as-of", "2026-02-01").exit_code == 0
    assert cli("redeem", "C1", "r60", "--date", "2026-02-01").exit_code == 0
    assert cli("run", "--as-of", "2026-10-05").exit_code == 0
    adjust = cli("adjust", "C1", "-80", "--date", "2026-05-20", "--reason", "fix",
                 "--allow-negative")  # fmt: skip
    assert adjust.exit_code == 0, adjust.stderr
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-10-05",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"], out["available"]) == (60, 60, -80)
    assert cli("check").exit_code == 0


def test_a_cancellation_after_an_inactivity_expiry_expires_the_points_at_once(cli, write, conn):
    """Had the redemption not been made, the inactivity expiry would have taken its
    points too. Before, they came back for good: no purchase would ever start
    another inactivity clock."""
    _inactive_shop(cli, write)
    assert cli("run", "--as-of", "2026-05-01").exit_code == 0  # expires the 40 on 04-10
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-05-01",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"], out["available"]) == (60, 60, 0)
    assert conn.execute(
        "SELECT date, points, note FROM ledger WHERE kind = 'expire' ORDER BY entry_id"
    ).fetchall()[-1][:] == (
        "2026-05-01",
        -60,
        "expired by inactivity on 2026-04-10; returned by cancellation of R000001",
    )
    assert cli("run", "--as-of", "2026-11-01").exit_code == 0
    assert _points(cli, "2026-11-01")["points"]["total"] == 0
    assert cli("check").exit_code == 0


def test_a_cancellation_before_the_inactivity_expiry_keeps_the_points(cli, write):
    _inactive_shop(cli, write)
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-03-01",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_expired"], out["available"]) == (0, 100)
    assert cli("run", "--as-of", "2026-05-01").exit_code == 0  # all 100 expire on 04-10
    assert _points(cli, "2026-05-01")["points"]["total"] == 0


def _inactive_shop(cli, write) -> None:
    _shop(cli, write, "{policy: inactivity, months: 3}",
          "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,100.00\n")  # fmt: skip
    assert cli("run", "--as-of", "2026-02-01").exit_code == 0
    assert cli("redeem", "C1", "r60", "--date", "2026-02-01").exit_code == 0


def test_a_cancellation_dated_before_an_inactivity_expiry_already_posted_expires_too(cli, write):
    """The expiry (04-10) was posted before the cancellation, dated 03-01, was
    entered: it took every point then, and no run looks at it again."""
    _inactive_shop(cli, write)
    assert cli("run", "--as-of", "2026-05-01").exit_code == 0
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-03-01",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"]) == (60, 60)
    assert cli("run", "--as-of", "2026-11-01").exit_code == 0
    assert _points(cli, "2026-11-01")["points"]["total"] == 0


def test_a_cancellation_after_an_undo_made_an_earlier_inactivity_expiry_due(cli, write):
    """Undoing the last sale brings the inactivity expiry back to 04-10, before the
    redemption of 05-01, posted after it: it took the customer's points then."""
    _shop(cli, write, "{policy: inactivity, months: 3}",
          "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,100.00\n")  # fmt: skip
    later = write("t2.csv", "transaction_id,customer_id,date,amount\nT2,C1,2026-03-01,10.00\n")
    assert cli("import", "purchases", later, "--quiet").exit_code == 0
    assert cli("run", "--as-of", "2026-05-01").exit_code == 0
    assert cli("redeem", "C1", "r60", "--date", "2026-05-01").exit_code == 0
    assert cli("import", "undo", "2", "--date", "2026-05-05").exit_code == 0
    assert cli("run", "--as-of", "2026-05-06").exit_code == 0  # expires 40 dated 04-10
    out = json.loads(cli("redemption", "cancel", "R000001", "--date", "2026-05-10",
                         "--format", "json").stdout)  # fmt: skip
    assert (out["points_returned"], out["points_expired"], out["available"]) == (60, 60, 0)
    assert cli("run", "--as-of", "2026-11-01").exit_code == 0
    assert _points(cli, "2026-11-01")["points"]["total"] == 0


def test_an_inactivity_expiry_does_not_take_points_of_a_lot_available_after_its_date(
    conn, tmp_path
):
    """Lot A (01-10) and lot B (04-25) paid a redemption; an inactivity expiry dated
    04-10 was posted after it (as an undo of the last sale can make one fall due):
    what comes back to A expires, what comes back to B (not available on 04-10,
    so not taken then) stays. The expiry found nothing to take, which leaves a
    debt of 50 that the returned points pay first, from A."""
    apply(conn, tmp_path, INACTIVE)
    a = earn(conn, "C1", 100, dt.date(2026, 1, 10))
    b = earn(conn, "C1", 100, dt.date(2026, 4, 25))
    rid = redeem(conn, "C1", "r150", dt.date(2026, 5, 1))["redemption_id"]
    with db.transaction(conn):
        ledger.post(conn, [NewEntry(dt.date(2026, 4, 10), "C1", "expire", -50, "expiry",
                                    "inactivity:C1:2026-01-10")])  # fmt: skip
    out = cancel_redemption(conn, rid, dt.date(2026, 5, 5))
    assert (out["points_returned"], out["points_expired"]) == (150, 50)
    lots = ledger.state_of(conn, "C1").lots
    assert (lots[a].remaining, lots[b].remaining) == (0, 100)


@pytest.mark.parametrize(
    ("name", "said"),
    [("Free coffee", "free coffee"), ("Latte", "latte"), ("10 EUR off", "10 EUR off"),
     ("SilverOnly", "SilverOnly"), ("Day R", "Day R"), ("Starbucks Card", "Starbucks Card"),
     ("W", "W"), ("EUR 5 off", "EUR 5 off")],
)  # fmt: skip
def test_a_reward_name_is_lowered_mid_sentence_only_in_sentence_case(name, said):
    from types import SimpleNamespace

    from loyalty_cli.rewards.common import reward_label

    assert reward_label(SimpleNamespace(name=name)) == said
