"""`loyalty simulate`: a replay under a proposed program, the real file untouched."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from loyalty_cli import rewards
from loyalty_cli.engine.run import run
from loyalty_cli.importing import import_files
from loyalty_cli.program import apply_program
from loyalty_cli.simulate import simulate

PROGRAM = """
program: Sim Shop
currency: EUR
point_value: 0.01
earn: {per_currency_unit: RATE, rounding: floor}
pending_days: 0
expiry: {policy: fixed, months: 3}
tiers:
  basis: spend
  window: lifetime
  levels:
    - {id: basic, min: 0}
    - {id: plus, min: PLUS}
rewards:
  - {id: mug, name: Mug, cost: 40, value: 4.00}
accounting: {expected_breakage: 0.1}
"""

PURCHASES = """\
transaction_id,customer_id,date,amount
T1,A,2026-01-05,30.00
T2,A,2026-01-20,50.00
T3,B,2026-01-07,20.00
T4,B,2026-02-10,90.00
T5,C,2026-02-01,15.00
T6,A,2026-03-03,40.00
T7,C,2026-05-20,60.00
"""


def program_file(write, name="p.yaml", rate="1", plus="100"):
    return write(name, PROGRAM.replace("RATE", rate).replace("PLUS", plus))


@pytest.fixture
def shop(conn, write):
    """A real history: runs, redemptions (one cancelled), an adjustment, expiries."""
    apply_program(conn, program_file(write))
    import_files(conn, "purchases", [write("purchases.csv", PURCHASES)])
    run(conn, dt.date(2026, 1, 31))
    rewards.redeem(conn, "A", "mug", dt.date(2026, 2, 1))
    run(conn, dt.date(2026, 2, 28))
    second = rewards.redeem(conn, "B", "mug", dt.date(2026, 3, 1))
    rewards.cancel_redemption(conn, second["redemption_id"], dt.date(2026, 3, 2))
    rewards.adjust(conn, "C", 25, "goodwill", dt.date(2026, 3, 5))
    run(conn, dt.date(2026, 6, 30))
    return conn


def test_the_current_program_reproduces_the_real_ledger(shop, write):
    result = simulate(shop, program_file(write, "same.yaml"), dt.date(2026, 1, 1))
    assert result["current"]["points_expired"] > 0  # the history exercises expiry
    assert result["current"]["points_redeemed"] == 40
    assert result["proposed"] == result["current"]
    money = {k for k, v in result["current"].items() if isinstance(v, str) or v is None}
    assert all(v == 0 for k, v in result["delta"].items() if k not in money | {"tiers"})
    assert all(result["delta"][k] in ("0.00", None) for k in money)
    assert result["delta"]["liability"] == "0.00"
    assert result["redemptions_skipped"] == 0
    assert result["top_changes"] == []


def test_a_till_writing_during_a_simulation_is_not_taken_for_the_change(
    shop, write, db_file, monkeypatch
):
    """The copy is one state of the shop and the real side was measured by a worker
    on its own, later one: an adjustment in between showed as a delta of the
    program in force. Both sides are now one state (the copy's)."""
    from loyalty_cli import workers
    from loyalty_cli.db import connect

    start = workers.start

    def till_writes_first(*args):
        till = connect(db_file)
        rewards.adjust(till, "C", 7, "goodwill", dt.date(2026, 6, 1))
        till.close()
        return start(*args)

    monkeypatch.setattr(workers, "start", till_writes_first)
    proposal = program_file(write, "same.yaml")
    result = simulate(shop, proposal, dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    assert result["proposed"] == result["current"]
    assert result["top_changes"] == []
    assert shop.execute("SELECT COUNT(*) FROM ledger WHERE note = 'goodwill'").fetchone()[0] == 2
    monkeypatch.setattr(workers, "start", start)  # the next state: the adjustment counts
    later = simulate(shop, proposal, dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    assert later["current"]["outstanding_points"] == result["current"]["outstanding_points"] + 7


def test_to_defaults_to_today_or_the_last_run_when_later(shop, write):
    proposal = program_file(write, "same.yaml")
    assert simulate(shop, proposal, today=dt.date(2026, 12, 6))["to"] == "2026-12-06"
    assert simulate(shop, proposal, today=dt.date(2026, 5, 1))["to"] == "2026-06-30"


def test_a_doubled_rate_doubles_points_issued(shop, write):
    # To the last run: by today every lot has expired on both sides (top_changes: none).
    proposal = program_file(write, "double.yaml", rate="2")
    result = simulate(shop, proposal, dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    # Whole-euro receipts, floor rounding: no rounding effects, so exactly double.
    assert result["current"]["points_issued"] == 305
    assert result["proposed"]["points_issued"] == 610
    assert result["delta"]["points_issued"] == 305
    assert result["top_changes"][0]["change"] > 0


def test_a_higher_threshold_moves_customers_down(shop, write):
    result = simulate(shop, program_file(write, "hard.yaml", plus="115"), dt.date(2026, 1, 1))
    assert result["current"]["tiers"] == {"basic": 1, "plus": 2}
    assert result["proposed"]["tiers"] == {"basic": 2, "plus": 1}
    assert result["delta"]["tiers"] == {"basic": 1, "plus": -1}


def test_unaffordable_redemptions_are_skipped_and_counted(shop, write):
    result = simulate(shop, program_file(write, "stingy.yaml", rate="0.1"), dt.date(2026, 1, 1))
    assert result["redemptions_skipped"] == 2
    assert result["proposed"]["points_redeemed"] == 0


def test_cli_leaves_the_database_file_byte_identical(shop, cli, write, db_file):
    shop.close()
    before = hashlib.sha256(db_file.read_bytes()).hexdigest()
    result = cli("simulate", program_file(write, "double.yaml", rate="2"), "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"from", "to", "current", "proposed", "delta"}
    for side in ("current", "proposed", "delta"):
        assert set(data[side]) >= {
            "points_issued", "points_redeemed", "points_expired", "outstanding_points",
            "liability", "reward_cost", "tiers", "vouchers_issued",
        }  # fmt: skip
    assert hashlib.sha256(db_file.read_bytes()).hexdigest() == before
    table = cli("simulate", program_file(write, "double.yaml", rate="2"))
    assert "points_issued" in table.stdout
    # Rates to 4 decimals in the table, as in `report kpi` (json keeps them whole).
    rate_row = next(line for line in table.stdout.splitlines() if "redemption_rate" in line)
    cells = rate_row.replace("│", " ").split()[1:]
    assert len(cells) == 3 and all(re.fullmatch(r"-|-?\d+\.\d{4}", c) for c in cells), rate_row


def test_the_real_side_measured_by_a_worker_equals_measuring_it_here(shop, write, monkeypatch):
    """The real database is measured by a forked process during the replay; the
    numbers are the ones measuring it in this process gives, and a worker that
    fails is made up for here."""
    import multiprocessing

    import loyalty_cli.simulate as sim

    proposed = program_file(write, "double.yaml", rate="2")
    aside = simulate(shop, proposed)
    with monkeypatch.context() as m:  # no fork: measured in this process
        m.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
        here = simulate(shop, proposed)
    assert aside == here
    with monkeypatch.context() as m:  # the worker fails: measured again here
        m.setattr(sim.db, "connect", lambda path: 1 / 0)
        assert simulate(shop, proposed) == here
    assert aside["current"]["points_issued"] * 2 == aside["proposed"]["points_issued"]


def _same(result) -> bool:
    delta = {k: v for k, v in result["delta"].items() if k != "tiers"}
    return result["proposed"] == result["current"] and all(
        v in (0, 0.0, "0.00", None) for v in delta.values()
    )


def test_an_adjustment_that_paid_for_a_redemption_the_same_day_comes_first(conn, write):
    """C gets 25 points back and redeems with them on the same day: the replay keeps
    the counter's order (the ledger's), so the same program reproduces it."""
    apply_program(conn, program_file(write))
    import_files(conn, "purchases", [write("purchases.csv", PURCHASES)])
    run(conn, dt.date(2026, 2, 28))
    rewards.adjust(conn, "C", 25, "goodwill", dt.date(2026, 3, 1))
    rewards.redeem(conn, "C", "mug", dt.date(2026, 3, 1))  # 15 + 25 = 40
    run(conn, dt.date(2026, 3, 31))
    result = simulate(conn, program_file(write, "same.yaml"), dt.date(2026, 1, 1))
    assert result["current"]["points_redeemed"] == 40
    assert result["redemptions_skipped"] == 0 and _same(result)


def test_a_redemption_after_the_last_run_is_replayed_too(conn, write):
    """--to after the last run: the till's redemption is in the real ledger, so the
    replay makes it as well (its purchases still scored only up to the last run)."""
    apply_program(conn, program_file(write))
    import_files(conn, "purchases", [write("purchases.csv", PURCHASES)])
    run(conn, dt.date(2026, 2, 28))
    rewards.redeem(conn, "A", "mug", dt.date(2026, 3, 10))
    result = simulate(
        conn, program_file(write, "same.yaml"), dt.date(2026, 1, 1), dt.date(2026, 3, 31)
    )
    assert result["current"]["points_redeemed"] == 40
    assert result["redemptions_skipped"] == 0 and _same(result)
    assert result["current"]["points_issued"] == 205  # T1-T5; T6 (2026-03-03) not run yet


def test_simulate_from_after_to_is_a_usage_error(shop, cli, write):
    result = cli("simulate", program_file(write, "same.yaml"), "--from", "2026-03-31",
                 "--to", "2026-01-01")  # fmt: skip
    assert result.exit_code == 2
    assert result.stderr == "Error: --from 2026-03-31 is after --to 2026-01-01\n"


def test_delta_rates_are_exact_differences(shop, write):
    result = simulate(shop, program_file(write, "double.yaml", rate="2"), dt.date(2026, 1, 1))
    for key in ("redemption_rate", "reward_cost_share"):
        a, b = result["current"][key], result["proposed"][key]
        assert result["delta"][key] == float(Decimal(repr(b)) - Decimal(repr(a)))


@pytest.mark.parametrize(("currency", "amount"), [("KWD", "1.234"), ("JPY", "1234")])
def test_money_deltas_have_the_currencys_decimals(conn, write, currency, amount):
    """They were written with 2 decimals: KWD's thousandths cut, JPY given cents."""
    text = PROGRAM.replace("currency: EUR", f"currency: {currency}").replace("RATE", "1")
    apply_program(conn, write("p.yaml", text.replace("PLUS", "100")))
    rows = f"transaction_id,customer_id,date,amount\nT1,A,2026-01-05,{amount}\n"
    import_files(conn, "purchases", [write("k.csv", rows)])
    run(conn, dt.date(2026, 1, 31))
    proposal = write("q.yaml", text.replace("PLUS", "100").replace("0.01", "0.013"))
    result = simulate(conn, proposal, dt.date(2026, 1, 1), dt.date(2026, 1, 31))
    for key in ("liability", "revenue_net"):
        a, b = result["current"][key], result["proposed"][key]
        assert Decimal(result["delta"][key]) == Decimal(b) - Decimal(a)
        assert len(result["delta"][key].partition(".")[2]) == len(a.partition(".")[2])
    assert result["delta"]["liability"] != "0.00" and result["current"]["liability"] != "0"


def test_a_proposal_in_another_currency_is_refused(shop, cli, write):
    """The history's amounts are EUR cents: JPY would read 100.00 EUR as 10000 yen."""
    jpy = write(
        "jpy.yaml", (program_file(write).read_text()).replace("currency: EUR", "currency: JPY")
    )
    result = cli("simulate", str(jpy))
    assert result.exit_code == 2
    assert "JPY is not the currency of version 1 (EUR)" in result.stderr


def test_opening_balances_of_an_undone_import_are_not_replayed(shop, write):
    from loyalty_cli.importing import undo_import

    [opening] = import_files(
        shop, "balances", [write("b.csv", "customer_id,points,date\nA,500,2026-06-20\n")]
    )
    run(shop, dt.date(2026, 6, 30))
    undo_import(shop, opening.import_id, dt.date(2026, 6, 30))
    run(shop, dt.date(2026, 6, 30))
    assert _same(simulate(shop, program_file(write)))


def test_adjusted_and_opening_points_expire_as_the_proposal_says(shop, write):
    """Their expiry was the real program's (3 months): under a proposal without
    expiry they never expire. A date a balances file named stays."""
    import_files(
        shop,
        "balances",
        [write("b.csv", "customer_id,points,date,expires_on\nA,70,2026-01-02,2026-02-01\n")],
    )
    rewards.adjust(shop, "B", 30, "goodwill", dt.date(2026, 1, 3))
    run(shop, dt.date(2026, 6, 30))
    forever = write("forever.yaml", program_file(write).read_text().replace(
        "expiry: {policy: fixed, months: 3}\n", ""))  # fmt: skip
    result = simulate(shop, forever)
    # Under the proposal only the named 70 expire; every other lot keeps its points.
    assert result["proposed"]["points_expired"] == 70
    assert result["current"]["points_expired"] > 70


def test_simulate_to_before_the_history_names_the_first_purchase(shop, cli, write):
    """It said `--from 2026-01-... is after --to`, naming a --from never given."""
    first = shop.execute("SELECT MIN(date) FROM purchases").fetchone()[0]
    result = cli("simulate", program_file(write, "same.yaml"), "--to", "2025-12-31")
    assert result.exit_code == 2
    assert result.stderr == f"Error: --to 2025-12-31 is before the first purchase, on {first}\n"


def test_top_changes_leave_out_points_expired_without_a_run_posting_it(conn, write):
    """--to after the last run, past a lot's expiry: the statement's balance counts,
    not the ledger's sum (the expire entry is not posted yet on the real side)."""
    apply_program(conn, program_file(write))
    import_files(conn, "purchases", [write("purchases.csv", "transaction_id,customer_id,"
                                            "date,amount\nT1,C1,2026-01-10,100.00\n")])  # fmt: skip
    run(conn, dt.date(2026, 1, 31))
    to = dt.date(2026, 5, 31)  # the lot expired on 2026-04-10
    same = simulate(conn, program_file(write, "same.yaml"), dt.date(2026, 1, 1), to)
    assert same["current"]["outstanding_points"] == 0
    assert same["top_changes"] == []
    doubled = simulate(conn, program_file(write, "x2.yaml", rate="2"), dt.date(2026, 1, 1), to)
    assert doubled["top_changes"] == []


def test_a_negative_adjustment_of_pending_points_is_replayed_as_the_ledger_has_it(conn, write):
    """Its part aimed at a pending lot (an id of the real ledger) is split again over
    the replayed lots: the same program gives the same figures."""
    text = program_file(write).read_text().replace("pending_days: 0", "pending_days: 14")
    apply_program(conn, write("pending.yaml", text))
    import_files(conn, "purchases", [write("purchases.csv", PURCHASES)])
    run(conn, dt.date(2026, 2, 2))  # C's T5 (15 points) pending until 02-15
    rewards.adjust(conn, "C", -10, "double scan", dt.date(2026, 2, 2), allow_negative=True)
    run(conn, dt.date(2026, 6, 30))
    aimed = "SELECT COUNT(*) FROM ledger WHERE lot_id IS NOT NULL AND kind = 'adjust'"
    assert conn.execute(aimed).fetchone()[0] == 1
    assert _same(simulate(conn, write("same.yaml", text), dt.date(2026, 1, 1)))


def _one_shop(conn, write, months: int = 3) -> Path:
    """The real program, from 2026-01-01 (its own effective_from); its file."""
    text = (program_file(write).read_text() + "effective_from: 2026-01-01\n").replace(
        "months: 3", f"months: {months}"
    )
    path = write("real.yaml", text)
    apply_program(conn, path)
    return path


def test_a_balance_from_before_the_program_expires_in_the_replay_as_it_really_did(conn, write):
    """Its clock starts when the program really did (2026-01-01, so it expires on
    04-01), not on its own date, although the replay's one version covers all time:
    the same program gave it 12-20 + 3 months and skipped the 03-25 redemption."""
    real = _one_shop(conn, write)
    import_files(conn, "balances", [write("b.csv", "customer_id,points,date\nB,40,2025-12-20\n")])
    sale = "transaction_id,customer_id,date,amount\nQ1,B,2026-01-10,5.00\n"
    import_files(conn, "purchases", [write("p.csv", sale)])
    run(conn, dt.date(2026, 3, 24))
    rewards.redeem(conn, "B", "mug", dt.date(2026, 3, 25))
    run(conn, dt.date(2026, 6, 30))
    result = simulate(conn, real, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert result["redemptions_skipped"] == 0 and _same(result)


def test_a_shop_never_run_is_posted_up_to_to_with_nothing_on_the_real_side(conn, write):
    real = _one_shop(conn, write, months=1)
    sales = "transaction_id,customer_id,date,amount\nt1,A,2026-01-10,10.00\nt2,A,2026-03-10,20.00\n"
    import_files(conn, "purchases", [write("p.csv", sales)])
    result = simulate(conn, real, dt.date(2026, 1, 1), dt.date(2026, 6, 30), dt.date(2026, 12, 7))
    assert result["current"]["points_issued"] == 0
    proposed = result["proposed"]
    # Both lots expire a month later, before --to: what was issued adds up.
    assert (proposed["points_issued"], proposed["points_expired"]) == (30, 30)
    assert proposed["outstanding_points"] == 0


def test_redemptions_skipped_counts_those_of_the_period(shop, write):
    """At 0.4 a point per euro A holds 32 points on 02-01: its mug (40) is skipped."""
    low = program_file(write, "low.yaml", rate="0.4")
    whole = simulate(shop, low, dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    assert whole["redemptions_skipped"] == 1
    later = simulate(shop, low, dt.date(2026, 3, 1), dt.date(2026, 6, 30))
    assert later["redemptions_skipped"] == 0


def test_simulate_csv_holds_the_skipped_redemptions_and_the_top_changes(shop, cli, write):
    low = program_file(write, "low.yaml", rate="0.4")
    period = ("--from", "2026-01-01", "--to", "2026-03-31")
    data = json.loads(cli("simulate", low, *period, "-f", "json").stdout)
    rows = list(csv.reader(io.StringIO(cli("simulate", low, *period, "-f", "csv").stdout)))
    skipped = data["redemptions_skipped"]
    assert ["redemptions_skipped", "0", str(skipped), str(skipped)] in rows
    moved = [r for r in rows if r[0].startswith("balance ")]
    assert moved == [[f"balance {c['customer_id']}", str(c["current"]), str(c["proposed"]),
                      str(c["change"])] for c in data["top_changes"]] and moved  # fmt: skip


def test_a_negative_adjustment_takes_pending_points_under_a_proposal_too(conn, write):
    """The adjustment of 01-15 was covered by T1's available points; under a proposal
    with 30 pending days they are still pending then, and the replay takes them as
    `adjust` would: 50 expire, nothing is owed (it was a debt of 50 beside a lot that
    then expired in full)."""
    real = program_file(write)
    apply_program(conn, real)
    sale = "transaction_id,customer_id,date,amount\nT1,A,2026-01-10,100.00\n"
    import_files(conn, "purchases", [write("t1.csv", sale)])
    run(conn, dt.date(2026, 1, 14))
    rewards.adjust(conn, "A", -50, "double scan", dt.date(2026, 1, 15))
    run(conn, dt.date(2026, 6, 30))
    text = real.read_text().replace("pending_days: 0", "pending_days: 30")
    result = simulate(conn, write("p30.yaml", text), dt.date(2026, 1, 1), dt.date(2026, 6, 30))
    proposed = result["proposed"]
    assert (proposed["points_expired"], proposed["outstanding_points"]) == (50, 0)
