"""The counter commands through the CLI: shapes, exit codes, sentences, parsing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

from conftest import load_json
from loyalty_cli import db, ledger
from test_rewards_support import PROGRAM, D, apply, customer, earn, set_tier, voucher


def setup(conn, tmp_path):
    apply(conn, tmp_path)
    earn(conn, "C1", 250, D)


def test_redeem_json_shape_and_refusal(conn, tmp_path, cli):
    setup(conn, tmp_path)
    out = load_json(cli("redeem", "C1", "coffee", "--date", "2026-03-10", "--format", "json"))
    assert out == {
        "redemption_id": "R000001",
        "customer_id": "C1",
        "reward_id": "coffee",
        "points": 100,
        "value": "3.50",
        "date": "2026-03-10",
        "balance_after": 150,
    }
    cli("redeem", "C1", "coffee", "--date", "2026-03-10")
    result = cli("redeem", "C1", "coffee", "--date", "2026-03-10")
    assert result.exit_code == 1
    assert result.stderr == "Error: not enough points: C1 has 50 available, free coffee costs 100\n"
    assert result.stdout == ""


def test_redeem_table_shows_the_till_code(conn, tmp_path, cli):
    setup(conn, tmp_path)
    result = cli("redeem", "C1", "coffee", "--date", "2026-03-10")
    assert result.exit_code == 0, result.stderr
    code = conn.execute("SELECT code FROM redemptions").fetchone()[0]
    assert code in result.stdout and "R000001" in result.stdout


def test_redeem_ref_twice_posts_once(conn, tmp_path, cli):
    setup(conn, tmp_path)
    args = ("redeem", "C1", "coffee", "--ref", "till-1", "--format", "json")
    first = load_json(cli(*args, "--date", "2026-03-10"))
    again = load_json(cli(*args, "--date", "2026-03-12"))
    assert again == first
    assert conn.execute("SELECT COUNT(*) FROM ledger WHERE kind = 'redeem'").fetchone()[0] == 1


def test_an_empty_ref_is_a_usage_error_not_a_key(conn, tmp_path, cli):
    setup(conn, tmp_path)
    for ref in ("", "  "):
        result = cli("redeem", "C1", "coffee", "--ref", ref, "--date", "2026-03-10")
        assert (result.exit_code, result.stderr) == (
            2,
            "Error: --ref is empty: give the till's key, or leave --ref out\n",
        )
    assert conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 0


def test_unknown_reward_and_customer_exit_1(conn, tmp_path, cli):
    setup(conn, tmp_path)
    result = cli("redeem", "C1", "tea", "--date", "2026-03-10")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: unknown reward 'tea'")
    result = cli("redeem", "C404", "coffee")
    assert (result.exit_code, result.stderr) == (1, "Error: unknown customer 'C404'\n")


def test_tier_refusal_through_the_cli(conn, tmp_path, cli):
    setup(conn, tmp_path)
    earn(conn, "C1", 500, D)
    result = cli("redeem", "C1", "ten-off", "--date", "2026-03-10")
    assert result.exit_code == 1
    assert result.stderr == "Error: tier too low: 10 EUR off needs tier Silver; C1 is Bronze\n"


def test_redemption_cancel(conn, tmp_path, cli):
    setup(conn, tmp_path)
    cli("redeem", "C1", "coffee", "--date", "2026-03-10")
    out = load_json(cli("redemption", "cancel", "R000001", "--date", "2026-03-11", "-f", "json"))
    assert out["status"] == "cancelled" and out["available"] == 250
    again = cli("redemption", "cancel", "R000001", "--date", "2026-03-11")
    assert again.exit_code == 1
    assert again.stderr == "Error: redemption R000001 was already cancelled on 2026-03-11\n"
    missing = cli("redemption", "cancel", "R000404")
    assert (missing.exit_code, missing.stderr) == (1, "Error: unknown redemption R000404\n")


def test_adjust_negative_points_parse_and_refusal(conn, tmp_path, cli):
    setup(conn, tmp_path)
    out = load_json(
        cli("adjust", "C1", "-50", "--reason", "double scan", "--date", "2026-03-10", "-f", "json")
    )
    assert out["points"] == -50 and out["available_after"] == 200
    refused = cli("adjust", "C1", "-500", "--reason", "oops", "--date", "2026-03-10")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: not enough points: C1 has 200 available; adjusting by -500 would leave -300 "
        "(use --allow-negative to allow it)\n"
    )
    allowed = cli(
        "adjust", "C1", "-500", "--reason", "fraud", "--date", "2026-03-10", "--allow-negative"
    )
    assert allowed.exit_code == 0, allowed.stderr
    assert ledger.state_of(conn, "C1").available(D) == -300
    entry = conn.execute(
        "SELECT kind, source_type, note FROM ledger ORDER BY entry_id DESC LIMIT 1"
    ).fetchone()
    assert tuple(entry) == ("adjust", "adjustment", "fraud")


def test_adjust_beyond_one_entrys_bound_is_a_usage_error(conn, tmp_path, cli):
    setup(conn, tmp_path)
    for points in ("1000000000000", "-9223372036854775807", "99999999999999999999"):
        result = cli("adjust", "C1", points, "--reason", "typo", "--date", "2026-03-10")
        assert result.exit_code == 2, result.stderr
        assert "is beyond what one entry may hold (999,999,999,999 either way)" in result.stderr
    out = load_json(
        cli("adjust", "C1", "999999999999", "--reason", "max", "--date", "2026-03-10", "-f", "json")
    )
    assert out["available_after"] == 999999999999 + 250


def test_positive_adjust_is_a_lot_with_fixed_expiry(conn, tmp_path, cli):
    apply(conn, tmp_path)
    customer(conn, "C2")
    args = ("adjust", "C2", "75", "--reason", "goodwill", "--date", "2026-01-31", "-f", "json")
    out = load_json(cli(*args))
    assert out["expires_on"] == "2027-01-31"
    assert ledger.state_of(conn, "C2").available(D) == 75
    assert cli("adjust", "C9", "5", "--reason", "x").stderr == "Error: unknown customer 'C9'\n"


def test_rewards_list_and_eligible(conn, tmp_path, cli):
    setup(conn, tmp_path)
    earn(conn, "C2", 900, D)
    set_tier(conn, "C2", "silver", D)
    voucher(conn, "V1", "C3", D)
    listing = load_json(cli("rewards", "list", "--as-of", "2026-03-10", "--format", "json"))
    assert [r["reward_id"] for r in listing] == ["coffee", "ten-off", "tenth-coffee"]
    assert listing[1] == {
        "reward_id": "ten-off",
        "name": "10 EUR off",
        "cost": 500,
        "value": "10.00",
        "min_tier": "silver",
        "limit": {"count": 1, "per": "month"},
        "active": {"from": "2026-01-01", "to": "2026-12-31"},
        "active_on_date": True,
        "punch_card": None,
        "partner": None,
        "voucher_days": None,
    }
    assert listing[2]["punch_card"] == {"every": 10, "when": {"category": ["coffee"]}}
    elig = load_json(cli("rewards", "eligible", "--as-of", "2026-03-10", "--format", "json"))
    assert elig == [
        {"customer_id": "C1", "reward_id": "coffee", "cost": 100, "available": 250},
        {"customer_id": "C2", "reward_id": "coffee", "cost": 100, "available": 900},
        {"customer_id": "C2", "reward_id": "ten-off", "cost": 500, "available": 900},
        {"customer_id": "C3", "reward_id": "tenth-coffee", "cost": 0, "available": 0},
    ]
    one = cli("rewards", "eligible", "--customer", "C1", "--as-of", "2026-03-10", "-f", "csv")
    assert one.stdout == "customer_id,reward_id,cost,available\nC1,coffee,100,250\n"
    table = cli("rewards", "list", "--as-of", "2026-03-10")
    assert table.exit_code == 0 and "Rewards" in table.stdout
    csv_out = cli("rewards", "list", "--as-of", "2026-03-10", "--format", "csv").stdout
    assert csv_out.splitlines()[0] == (
        "reward_id,name,cost,value,min_tier,limit,active,active_on_date,punch_card,partner,"
        "voucher_days"
    )
    assert csv_out.splitlines()[2] == (
        "ten-off,10 EUR off,500,10.00,silver,1 per month,2026-01-01 to 2026-12-31,true,,,"
    )


def test_rewards_list_for_a_customer_says_what_they_can_have_and_why_not(conn, tmp_path, cli):
    """The synopsis's `rewards list | eligible [--customer ID]`: the catalogue with
    the customer's standing, by the rule `rewards eligible` and `redeem` use."""
    setup(conn, tmp_path)
    args = ("rewards", "list", "--customer", "C1", "--as-of", "2026-03-10")
    listing = load_json(cli(*args, "--format", "json"))
    standing = [(r["reward_id"], r["eligible"], r["why_not"]) for r in listing]
    assert standing == [
        ("coffee", True, None),
        ("ten-off", False, "tier too low: 10 EUR off needs tier Silver; C1 is Bronze"),
        ("tenth-coffee", False, "no open voucher: C1 has no open voucher for 10th coffee free"),
    ]
    eligible = load_json(cli("rewards", "eligible", "--customer", "C1", "--as-of", "2026-03-10",
                             "--format", "json"))  # fmt: skip
    assert [r["reward_id"] for r in eligible] == [r for r, ok, _ in standing if ok]
    rows = list(csv.DictReader(io.StringIO(cli(*args, "--format", "csv").stdout)))
    assert (rows[0]["eligible"], rows[1]["eligible"]) == ("true", "false")
    assert rows[1]["why_not"].startswith("tier too low")
    unknown = cli("rewards", "list", "--customer", "C9", "--as-of", "2026-03-10")
    assert unknown.exit_code == 1 and "unknown customer" in unknown.stderr


def test_claim_attaches_an_anonymous_receipt(conn, tmp_path, cli):
    apply(conn, tmp_path)
    customer(conn, "C1")
    with db.transaction(conn):
        conn.executemany(
            "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, "
            "import_id) VALUES (?, ?, ?, ?, ?, 1)",
            [("T1", 1, None, "2026-03-01", 1250), ("T1", 2, None, "2026-03-01", 300),
             ("T2", 1, "C2", "2026-03-01", 500)],
        )  # fmt: skip
    out = load_json(cli("claim", "T1", "C1", "--date", "2026-03-05", "--format", "json"))
    assert out == {
        "transaction_id": "T1",
        "customer_id": "C1",
        "date": "2026-03-01",
        "amount": "15.50",
        "claimed_on": "2026-03-05",
        "refunds": [],
    }
    again = cli("claim", "T1", "C1")
    assert (again.exit_code, again.stderr) == (
        1,
        "Error: receipt T1 was already claimed by C1 on 2026-03-05\n",
    )
    owned = cli("claim", "T2", "C1")
    assert owned.stderr == "Error: receipt T2 already belongs to customer C2\n"
    assert cli("claim", "T9", "C1").stderr == "Error: unknown transaction T9\n"
    assert cli("claim", "T1", "C9").exit_code == 1
    assert json.loads(json.dumps(out))["customer_id"] == "C1"


def test_help_texts_have_examples(cli):
    for args in (
        ("rewards", "list"),
        ("rewards", "eligible"),
        ("redeem",),
        ("redemption", "cancel"),
        ("adjust",),
        ("claim",),
    ):
        result = cli(*args, "--help")
        assert result.exit_code == 0 and "Example: loyalty" in result.stdout, args


def test_a_counter_command_dated_after_today_is_refused(conn, tmp_path, cli):
    setup(conn, tmp_path)
    cli("redeem", "C1", "coffee", "--date", "2026-03-10")
    today = dt.date.today()
    later = today + dt.timedelta(days=365)
    refusal = (
        f"Error: --date {later} is after today ({today}): a date to come; post on today or an "
        "earlier day\n"
    )
    attempts = (
        ("redeem", "C1", "coffee"),
        ("redemption", "cancel", "R000001"),
        ("adjust", "C1", "5", "--reason", "typo"),
        ("claim", "T404", "C1"),
        ("import", "undo", "1"),
    )
    before = conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    for args in attempts:
        result = cli(*args, "--date", later.isoformat())
        assert (result.exit_code, result.stderr) == (2, refusal), args
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == before
    assert conn.execute("SELECT status FROM redemptions").fetchone()[0] == "active"
    # A redemption the counter would refuse whatever the day's balance says why;
    # one refused for the balance or limits on a mistyped day is told of the day.
    ten_off = cli("redeem", "C1", "ten-off", "--date", later.isoformat())
    assert ten_off.exit_code == 1 and "reward not active on" in ten_off.stderr
    earn(conn, "C2", 50, D)
    short = cli("redeem", "C2", "coffee", "--date", later.isoformat())
    assert (short.exit_code, short.stderr) == (2, refusal)
    # Today itself is a day that has come.
    assert cli("redeem", "C1", "coffee", "--date", today.isoformat()).exit_code == 0


def test_a_shop_run_ahead_of_the_calendar_posts_up_to_that_run(conn, tmp_path, cli):
    setup(conn, tmp_path)
    today = dt.date.today()
    ahead = today + dt.timedelta(days=40)
    assert cli("run", "--as-of", ahead.isoformat()).exit_code == 0
    ok = cli("redeem", "C1", "coffee", "--date", ahead.isoformat())
    assert ok.exit_code == 0, ok.stderr
    beyond = (ahead + dt.timedelta(days=1)).isoformat()
    result = cli("redeem", "C1", "coffee", "--date", beyond)
    assert result.exit_code == 2
    assert f"is after today ({today}) or the last run's date ({ahead}): a date to come" in (
        result.stderr
    )


def test_cancel_and_adjust_count_an_inactivity_expiry_no_run_has_posted(cli, write):
    program = write(
        "in.yaml",
        """
        program: In
        currency: EUR
        earn: {per_currency_unit: 1}
        expiry: {policy: inactivity, months: 6}
        rewards:
          - {id: r50, name: Fifty, cost: 50}
        """,
    )
    sales = write("u.csv", "transaction_id,customer_id,date,amount\nU1,W1,2026-01-02,100.00\n")
    assert cli("program", "apply", program, "--effective", "2025-01-01", "--yes").exit_code == 0
    assert cli("import", "purchases", sales).exit_code == 0
    assert cli("run", "--as-of", "2026-03-01").exit_code == 0
    assert cli("redeem", "W1", "r50", "--date", "2026-03-01").exit_code == 0
    # 2026-07-02 the inactivity expiry falls; no run has posted it by 2026-07-05.
    cancel = load_json(cli("redemption", "cancel", "R000001", "--date", "2026-07-05", "-f", "json"))
    shown = load_json(cli("customer", "show", "W1", "--as-of", "2026-07-05", "-f", "json"))
    assert cancel["available"] == shown["points"]["available"] == 0
    adjust = ("adjust", "W1", "10", "--reason", "goodwill", "--date", "2026-07-05", "-f", "json")
    assert load_json(cli(*adjust))["available_after"] == 10


def test_rewards_list_names_a_cards_weekdays_and_amounts_as_the_yaml_does(conn, tmp_path, cli):
    apply(
        conn,
        tmp_path,
        PROGRAM.replace(
            "when: {category: coffee}",
            "when: {category: coffee, weekday: [sat, Sunday], min_amount: 4.50, "
            "date_from: 2026-02-01}",
        ),
    )
    listing = load_json(cli("rewards", "list", "--as-of", "2026-03-10", "--format", "json"))
    assert listing[2]["punch_card"]["when"] == {
        "category": ["coffee"],
        "weekday": ["sat", "sun"],
        "min_amount": "4.50",
        "date_from": "2026-02-01",
    }
    text = cli("rewards", "list", "--as-of", "2026-03-10", "--format", "csv").stdout
    flat = list(csv.DictReader(io.StringIO(text)))
    assert flat[2]["punch_card"] == (
        "every 10 (category=coffee, weekday=sat, sun, date_from=2026-02-01, min_amount=4.50)"
    )


def test_a_negative_adjust_beyond_the_available_points_takes_the_pending_ones(cli, write, conn):
    """50 pending, nothing available: -15 is aimed at the pending lot (35 then expire),
    not left as a debt beside a lot that later expires in full (the customer ended at
    -15 after all 50 expired)."""
    program = write("p.yaml", "program: P\ncurrency: EUR\npoint_value: 0.01\n"
                    "earn: {per_currency_unit: 1}\npending_days: 14\n"
                    "expiry: {policy: fixed, months: 1}\n")  # fmt: skip
    assert cli("program", "apply", program, "--effective", "2025-01-01").exit_code == 0
    sale = write("s.csv", "transaction_id,customer_id,date,amount\nP1,C1,2025-01-10,50.00\n")
    assert cli("import", "purchases", sale).exit_code == 0
    assert cli("run", "--as-of", "2025-01-12").exit_code == 0
    out = load_json(cli("adjust", "C1", "-15", "--reason", "double scan", "--date", "2025-01-12",
                        "--allow-negative", "-f", "json"))  # fmt: skip
    assert out["available_after"] == 0
    posted = conn.execute(
        "SELECT points, value, lot_id, note FROM ledger WHERE kind = 'adjust'"
    ).fetchall()
    assert [tuple(r) for r in posted] == [(-15, -15, 1, "double scan, points still pending")]
    shown = load_json(cli("customer", "show", "C1", "--as-of", "2025-01-30", "-f", "json"))
    assert shown["points"]["available"] == 35 and shown["expiring"][0]["points"] == 35
    assert cli("run", "--as-of", "2025-03-31").exit_code == 0
    expired = conn.execute("SELECT SUM(points) FROM ledger WHERE kind = 'expire'").fetchone()[0]
    assert expired == -35 and ledger.state_of(conn, "C1").balance == 0
    assert cli("check").exit_code == 0


def test_a_program_without_rewards_says_so(conn, tmp_path, cli):
    apply(conn, tmp_path, PROGRAM[: PROGRAM.index("rewards:")])
    earn(conn, "C1", 250, D)
    refused = cli("redeem", "C1", "coffee", "--date", "2026-03-10")
    assert refused.exit_code == 1
    assert refused.stderr == "Error: unknown reward 'coffee'; the program has no rewards\n"
    table = cli("rewards", "list", "--as-of", "2026-03-10")
    assert table.exit_code == 0 and "reward_id" in table.stdout  # the header, not a blank line
    assert cli("rewards", "list", "--as-of", "2026-03-10", "--format", "json").stdout == "[]\n"
