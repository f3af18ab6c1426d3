"""Punch-card vouchers through undo, re-import, refunds and cancellations, and the
statement's view of them as of a past date (found by a helper's rewards audit)."""

from __future__ import annotations

import json

import pytest

PROGRAM = """program: V
currency: EUR
earn: {per_currency_unit: 1, rounding: floor}
rewards:
  - {id: stamp, name: Third coffee free, value: 3.50,
     punch_card: {every: 3, when: {category: coffee}}}
"""
HEAD = "transaction_id,customer_id,date,amount,category\n"
THREE = "P1,C1,2026-01-01,3.00,coffee\nP2,C1,2026-01-02,3.00,coffee\nP3,C1,2026-01-03,3.00,coffee\n"


def _shop(cli, write) -> str:
    assert (
        cli("program", "apply", write("p.yaml", PROGRAM), "--effective", "2026-01-01").exit_code
        == 0
    )
    path = write("three.csv", HEAD + THREE)
    assert cli("import", "purchases", path).exit_code == 0
    assert cli("run", "--as-of", "2026-01-04").exit_code == 0
    return path


def _show(cli, day: str) -> dict:
    result = cli("customer", "show", "C1", "--as-of", day, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_a_voucher_withdrawn_by_undo_is_issued_again_when_the_receipts_come_back(cli, write):
    path = _shop(cli, write)
    assert cli("import", "undo", "1", "--date", "2026-01-05").exit_code == 0
    assert _show(cli, "2026-01-05")["vouchers"][0]["status"] == "withdrawn"
    assert cli("import", "purchases", path).exit_code == 0
    assert cli("run", "--as-of", "2026-01-06").exit_code == 0
    shown = _show(cli, "2026-01-06")
    assert [(v["voucher_id"], v["status"]) for v in shown["vouchers"]] == [("VP3-stamp", "open")]
    assert shown["eligible_rewards"] == ["stamp"]
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-06").exit_code == 0


def test_cancelling_a_voucher_redemption_after_its_receipt_was_undone_gives_it_back_withdrawn(
    cli, write
):
    _shop(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-05").exit_code == 0
    assert cli("import", "undo", "1", "--date", "2026-01-07").exit_code == 0
    assert cli("redemption", "cancel", "R000001", "--date", "2026-01-08").exit_code == 0
    shown = _show(cli, "2026-01-08")
    assert [v["status"] for v in shown["vouchers"]] == ["withdrawn"]  # the receipts are gone
    result = cli("redeem", "C1", "stamp", "--date", "2026-01-08")
    assert result.exit_code == 1 and "no open voucher" in result.stderr


def test_cancelling_a_voucher_redemption_after_a_refund_of_its_receipt_gives_it_back_withdrawn(
    cli, write
):
    _shop(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-05").exit_code == 0
    refund = write(
        "r.csv", "transaction_id,customer_id,date,amount,refund_of\nR3,C1,2026-01-07,-3.00,P3\n"
    )
    assert cli("import", "purchases", refund).exit_code == 0
    assert cli("run", "--as-of", "2026-01-07").exit_code == 0
    assert cli("redemption", "cancel", "R000001", "--date", "2026-01-08").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-08")["vouchers"]] == ["withdrawn"]
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-08").exit_code == 1
    # not yet scored refunds are left to the run, which withdraws an open voucher


def test_a_voucher_used_later_is_open_and_eligible_in_a_statement_as_of_before(cli, write):
    _shop(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-12").exit_code == 0
    shown = _show(cli, "2026-01-10")
    assert [v["status"] for v in shown["vouchers"]] == ["open"]
    assert shown["eligible_rewards"] == ["stamp"]
    assert _show(cli, "2026-01-12")["eligible_rewards"] == []


def test_the_expiring_line_counts_a_sale_the_next_run_will_score(cli, write):
    """Inactivity: the points a statement counts as available expire N months after
    the last sale it counts, scored or about to be."""
    program = (
        "program: I\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "expiry: {policy: inactivity, months: 1}\n"
    )
    assert (
        cli("program", "apply", write("i.yaml", program), "--effective", "2026-01-01").exit_code
        == 0
    )
    sales = (
        "transaction_id,customer_id,date,amount\nT1,C1,2026-01-10,150.00\nT2,C1,2026-01-31,10.00\n"
    )
    assert cli("import", "purchases", write("s.csv", sales)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-20").exit_code == 0
    shown = _show(cli, "2026-02-10")
    assert shown["points"]["available"] == 150
    assert shown["expiring"] == [{"date": "2026-02-27", "points": 150}]
    assert _show(cli, "2026-02-01")["expiring"] == [{"date": "2026-02-27", "points": 150}]


def test_a_voucher_a_scored_refund_withdrew_is_not_reopened_by_a_reimport(cli, write):
    path = _shop(cli, write)
    refund = write(
        "r.csv", "transaction_id,customer_id,date,amount,refund_of\nR3,C1,2026-01-05,-3.00,P3\n"
    )
    assert cli("import", "purchases", refund).exit_code == 0
    assert cli("run", "--as-of", "2026-01-05").exit_code == 0
    assert cli("import", "undo", "1", "--date", "2026-01-06").exit_code == 0
    assert cli("import", "purchases", path).exit_code == 0
    assert cli("run", "--as-of", "2026-01-07").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-07")["vouchers"]] == ["withdrawn"]
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-07").exit_code == 1


def test_cancelling_after_the_punched_line_was_undone_gives_the_voucher_back_withdrawn(cli, write):
    """P3's coffee line came in a second import; undoing it leaves P3 a cake, which
    punches nothing: the voucher it had earned does not come back open."""
    program = write("p.yaml", PROGRAM)
    assert cli("program", "apply", program, "--effective", "2026-01-01").exit_code == 0
    head = "transaction_id,line_no,customer_id,date,amount,category\n"
    first = (
        "P1,1,C1,2026-01-01,3.00,coffee\nP2,1,C1,2026-01-02,3.00,coffee\n"
        "P3,1,C1,2026-01-03,3.00,cake\n"
    )
    assert cli("import", "purchases", write("a.csv", head + first)).exit_code == 0
    second = write("b.csv", head + "P3,2,C1,2026-01-03,3.00,coffee\n")
    assert cli("import", "purchases", second).exit_code == 0
    assert cli("run", "--as-of", "2026-01-04").exit_code == 0
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-05").exit_code == 0
    assert cli("import", "undo", "2", "--date", "2026-01-06").exit_code == 0
    assert cli("run", "--as-of", "2026-01-06").exit_code == 0
    assert cli("redemption", "cancel", "R000001", "--date", "2026-01-07").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-07")["vouchers"]] == ["withdrawn"]


def test_a_redemption_dated_before_a_later_use_is_refused_with_the_reason(cli, write):
    _shop(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-12").exit_code == 0
    result = cli("redeem", "C1", "stamp", "--date", "2026-01-10")
    assert result.exit_code == 1
    assert "no open voucher: C1 has no open voucher for" in result.stderr


def _card_shop(cli, write, card: str, extra: str = "") -> None:
    program = write(
        "card.yaml",
        f"""
        program: V
        currency: EUR
        earn: {{per_currency_unit: 1}}
        {extra}
        rewards:
          - {{id: card, name: Card, value: 3.50, punch_card: {card}}}
        """,
    )
    assert cli("program", "apply", program, "--effective", "2026-01-01").exit_code == 0


def _vouchers(cli, day: str) -> list[str]:
    return [v["voucher_id"] for v in _show(cli, day)["vouchers"]]


def test_a_punch_card_for_one_tier_counts_the_receipts_earned_at_that_tier(cli, write):
    """`when: {tier: gold}` never matched: the card was checked without the tier."""
    _card_shop(
        cli,
        write,
        "{every: 2, when: {category: coffee, tier: gold}}",
        "tiers: {basis: receipts, window: lifetime, levels: "
        "[{id: bronze, min: 0}, {id: gold, min: 2}]}",
    )
    rows = "".join(f"T{n},C1,2026-01-0{n},5.00,coffee\n" for n in range(1, 7))
    assert cli("import", "purchases", write("c.csv", HEAD + rows)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-10").exit_code == 0
    # T1, T2 earn at bronze (T3 is the first after two receipts): T3..T6 count.
    assert _vouchers(cli, "2026-01-10") == ["VT4-card", "VT6-card"]


def test_a_line_added_later_counts_the_receipt_on_the_card(cli, write):
    """T2 had only tea until its coffee line came in a later file: it counts, as it
    does when both files come before one run (VT2, VT4). Before, only VT3."""
    _card_shop(cli, write, "{every: 2, when: {category: coffee}}")
    head = "transaction_id,customer_id,date,amount,line_no,category\n"
    files = [
        head + "T1,C1,2026-01-01,5.00,1,coffee\nT2,C1,2026-01-02,5.00,1,tea\n",
        head + "T2,C1,2026-01-02,4.00,2,coffee\n",
        head + "T3,C1,2026-01-05,5.00,1,coffee\nT4,C1,2026-01-06,5.00,1,coffee\n",
    ]
    days = ["2026-01-03", "2026-01-04", "2026-01-07"]
    for n, (text, day) in enumerate(zip(files, days, strict=True)):
        assert cli("import", "purchases", write(f"f{n}.csv", text)).exit_code == 0
        assert cli("run", "--as-of", day).exit_code == 0
    assert _vouchers(cli, "2026-01-07") == ["VT2-card", "VT4-card"]


def test_a_voucher_stays_usable_when_a_later_version_drops_its_reward(cli, write):
    """It showed `open` but `redeem` said "unknown reward" for good."""
    _card_shop(cli, write, "{every: 2, when: {category: coffee}}")
    later = write(
        "v2.yaml",
        """
        program: V
        currency: EUR
        earn: {per_currency_unit: 1}
        rewards:
          - {id: coffee, name: Coffee, cost: 50, value: 3.50}
        """,
    )
    assert cli("program", "apply", later, "--effective", "2026-06-01").exit_code == 0
    rows = "T1,C1,2026-01-15,5.00,coffee\nT2,C1,2026-02-15,5.00,coffee\nT3,C2,2026-01-15,5.00,tea\n"
    assert cli("import", "purchases", write("c.csv", HEAD + rows)).exit_code == 0
    assert cli("run", "--as-of", "2026-12-01").exit_code == 0
    assert _show(cli, "2026-12-01")["eligible_rewards"] == ["card"]
    listed = json.loads(
        cli("rewards", "eligible", "--as-of", "2026-12-01", "--format", "json").stdout
    )
    assert [(r["customer_id"], r["reward_id"]) for r in listed] == [("C1", "card")]
    catalogue = cli("rewards", "list", "--customer", "C1", "--as-of", "2026-12-01", "-f", "json")
    owed = [(r["reward_id"], r["eligible"]) for r in json.loads(catalogue.stdout)]
    assert owed == [("coffee", False), ("card", True)]  # the dropped card after the catalogue
    used = cli("redeem", "C1", "card", "--date", "2026-12-01", "--format", "json")
    assert used.exit_code == 0, used.stderr
    assert json.loads(used.stdout)["value"] == "3.50"
    assert _show(cli, "2026-12-01")["vouchers"][0]["status"] == "used"
    again = cli("redeem", "C1", "card", "--date", "2026-12-01")
    assert again.exit_code == 1 and "no open voucher" in again.stderr
    other = cli("redeem", "C2", "card", "--date", "2026-12-01")
    assert other.exit_code == 1 and "unknown reward 'card'" in other.stderr


def test_a_voucher_stays_usable_after_its_cards_active_dates(cli, write):
    """The card's dates say which receipts count; a voucher issued is owed."""
    _card_shop(cli, write, "{every: 2, when: {category: coffee}}, active: {to: 2026-03-31}")
    rows = "T1,C1,2026-03-14,5.00,coffee\nT2,C1,2026-03-15,5.00,coffee\n"
    rows += "T3,C1,2026-04-14,5.00,coffee\nT4,C1,2026-04-15,5.00,coffee\n"
    assert cli("import", "purchases", write("c.csv", HEAD + rows)).exit_code == 0
    assert cli("run", "--as-of", "2026-04-20").exit_code == 0
    assert _vouchers(cli, "2026-04-20") == ["VT2-card"]  # T3, T4 after the card ended
    assert _show(cli, "2026-04-20")["eligible_rewards"] == ["card"]
    assert cli("redeem", "C1", "card", "--date", "2026-04-20").exit_code == 0


def test_a_voucher_is_claimed_as_the_version_that_issued_it_had_its_reward(cli, write):
    """A version applied later over the voucher's date (without the card) did not
    issue it: the version that scored its receipt did."""
    _card_shop(cli, write, "{every: 2, when: {category: coffee}}")
    rows = "T1,C1,2026-01-15,5.00,coffee\nT2,C1,2026-02-15,5.00,coffee\n"
    assert cli("import", "purchases", write("c.csv", HEAD + rows)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-01").exit_code == 0
    later = write("v2.yaml", "program: V\ncurrency: EUR\nearn: {per_currency_unit: 1}\n")
    assert cli("program", "apply", later, "--effective", "2026-02-01").exit_code == 0
    assert _show(cli, "2026-12-01")["eligible_rewards"] == ["card"]
    assert cli("redeem", "C1", "card", "--date", "2026-12-01").exit_code == 0


def test_undoing_the_refund_that_withdrew_a_voucher_opens_it_again(cli, write):
    """The sale stands with no live refund: the voucher is the customer's again (it
    stayed withdrawn for good). Undoing the sales themselves keeps it withdrawn."""
    _shop(cli, write)
    refund = write("r.csv", HEAD.replace("category", "category,refund_of")
                   + "X3,C1,2026-01-05,-3.00,coffee,P3\n")  # fmt: skip
    assert cli("import", "purchases", refund).exit_code == 0
    assert cli("run", "--as-of", "2026-01-05").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-05")["vouchers"]] == ["withdrawn"]
    assert cli("import", "undo", "2", "--date", "2026-01-06").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["open"]
    assert cli("run", "--as-of", "2026-01-06").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["open"]
    assert cli("import", "undo", "1", "--date", "2026-01-07").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-07")["vouchers"]] == ["withdrawn"]


def test_a_refund_after_the_voucher_expired_leaves_it_expired(cli, write):
    program = PROGRAM.replace("value: 3.50,", "value: 3.50, voucher_days: 5,")
    assert cli("program", "apply", write("p.yaml", program), "--effective", "2026-01-01"
               ).exit_code == 0  # fmt: skip
    assert cli("import", "purchases", write("three.csv", HEAD + THREE)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-04").exit_code == 0
    refund = write("r.csv", HEAD.replace("category", "category,refund_of")
                   + "X3,C1,2026-01-10,-3.00,coffee,P3\n")  # fmt: skip
    assert cli("import", "purchases", refund).exit_code == 0
    run = cli("run", "--as-of", "2026-01-10")
    assert "withdrawn" not in run.stdout
    assert [v["status"] for v in _show(cli, "2026-01-10")["vouchers"]] == ["expired"]


def test_the_run_counts_only_the_vouchers_it_opened(cli, write):
    """A used voucher of receipts undone and imported again stays used: the run that
    scores them again issues nothing (it said `vouchers issued 1`)."""
    path = _shop(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-04").exit_code == 0
    assert cli("import", "undo", "1", "--date", "2026-01-05").exit_code == 0
    assert cli("import", "purchases", path).exit_code == 0
    again = cli("run", "--as-of", "2026-01-06")
    assert again.exit_code == 0 and "3 receipts" in again.stdout
    assert "vouchers issued" not in again.stdout
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["used"]


LATE_HEAD = "transaction_id,line_no,customer_id,date,amount,category,refund_of\n"


@pytest.mark.parametrize(
    "late",
    [
        "P1,2,C1,2026-01-01,1.00,coffee,\n",
        "P1,2,C1,2026-01-01,1.00,coffee,\nR3,1,C1,2026-01-04,-3.00,coffee,P3\n",
    ],
    ids=["late line", "late line and a refund of P3"],
)
def test_undoing_a_late_line_of_a_punched_receipt_makes_no_second_voucher(cli, write, late):
    """P1's late line is undone: P1 is scored again and its punch counted again, last
    on the card (after P2 and P3), and it made a voucher of its own: three coffees
    held two. With the refund of P3 in the undone file too, P3's voucher is the one."""
    first = "".join(f"P{i},1,C1,2026-01-0{i},3.00,coffee,\n" for i in (1, 2, 3))
    program = write("p.yaml", PROGRAM)
    assert cli("program", "apply", program, "--effective", "2026-01-01").exit_code == 0
    assert cli("import", "purchases", write("a.csv", LATE_HEAD + first)).exit_code == 0
    assert cli("import", "purchases", write("b.csv", LATE_HEAD + late)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-05").exit_code == 0
    assert cli("import", "undo", "2", "--date", "2026-01-06").exit_code == 0
    run = cli("run", "--as-of", "2026-01-06")
    assert run.exit_code == 0 and "vouchers issued" not in run.stdout
    shown = _show(cli, "2026-01-06")
    assert [(v["voucher_id"], v["status"]) for v in shown["vouchers"]] == [("VP3-stamp", "open")]


def test_a_corrected_file_after_an_undo_counts_its_receipts_as_new(cli, write):
    """The undo queues every receipt of the file, also ones no run ever counted
    (anonymous sales) and ones the corrected file gives another member: those are
    counted as new. Only a receipt counted for the same member before keeps to the
    vouchers it had."""
    head = "transaction_id,customer_id,date,amount,category\n"
    rows = "".join(f"P{i},{{c}},2026-01-0{i},3.00,coffee\n" for i in (1, 2, 3))
    assert cli("program", "apply", write("p.yaml", PROGRAM), "--effective", "2026-01-01"
               ).exit_code == 0  # fmt: skip
    assert cli("import", "purchases", write("anon.csv", head + rows.format(c=""))).exit_code == 0
    assert cli("import", "undo", "1", "--date", "2026-01-04").exit_code == 0
    assert cli("import", "purchases", write("c1.csv", head + rows.format(c="C1"))).exit_code == 0
    assert cli("run", "--as-of", "2026-01-04").exit_code == 0
    assert [(v["voucher_id"], v["status"]) for v in _show(cli, "2026-01-04")["vouchers"]] == [
        ("VP3-stamp", "open")
    ]
    # P3 moves to C2, who has one coffee: no voucher for C2, C1's is withdrawn.
    assert cli("import", "undo", "2", "--date", "2026-01-05").exit_code == 0
    moved = rows.format(c="C1").replace("P3,C1", "P3,C2")
    assert cli("import", "purchases", write("c2.csv", head + moved)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-06").exit_code == 0
    shown = cli("customer", "show", "C2", "--as-of", "2026-01-06", "--format", "json")
    assert json.loads(shown.stdout)["vouchers"] == []


REFUND_HEAD = "transaction_id,customer_id,date,amount,category,refund_of\n"


def _refund(cli, write, rows: str, day: str) -> None:
    assert cli("import", "purchases", write(f"r{day}.csv", REFUND_HEAD + rows)).exit_code == 0
    assert cli("run", "--as-of", day).exit_code == 0


def _coffee_and_cake(cli, write) -> None:
    """C1's third coffee receipt also holds a cake: its voucher is VP3-stamp."""
    assert cli("program", "apply", write("p.yaml", PROGRAM), "--effective", "2026-01-01"
               ).exit_code == 0  # fmt: skip
    head = "transaction_id,line_no,customer_id,date,amount,category\n"
    lines = "".join(f"P{i},1,C1,2026-01-0{i},3.00,coffee\n" for i in (1, 2, 3))
    lines += "P3,2,C1,2026-01-03,4.00,cake\n"
    assert cli("import", "purchases", write("three.csv", head + lines)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-04").exit_code == 0


def test_a_refund_of_only_a_line_the_card_did_not_count_leaves_the_voucher_open(cli, write):
    _coffee_and_cake(cli, write)
    _refund(cli, write, "X3,C1,2026-01-05,-4.00,cake,P3\n", "2026-01-05")
    assert [v["status"] for v in _show(cli, "2026-01-05")["vouchers"]] == ["open"]
    # The coffee returned later withdraws it.
    _refund(cli, write, "Y3,C1,2026-01-06,-3.00,coffee,P3\n", "2026-01-06")
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["withdrawn"]


def test_a_refund_line_without_a_category_may_be_the_counted_one_and_withdraws(cli, write):
    _coffee_and_cake(cli, write)
    _refund(cli, write, "X3,C1,2026-01-05,-4.00,,P3\n", "2026-01-05")
    assert [v["status"] for v in _show(cli, "2026-01-05")["vouchers"]] == ["withdrawn"]


def test_a_cake_refund_neither_keeps_a_used_voucher_from_coming_back_nor_blocks_a_reopen(
    cli, write
):
    """The cake's refund withdrew nothing: cancelling the voucher's redemption gives it
    back open, and undoing the coffee's refund opens the voucher beside it."""
    _coffee_and_cake(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-04").exit_code == 0
    _refund(cli, write, "X3,C1,2026-01-05,-4.00,cake,P3\n", "2026-01-05")
    assert cli("redemption", "cancel", "R000001", "--date", "2026-01-06").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["open"]
    _refund(cli, write, "Y3,C1,2026-01-07,-3.00,coffee,P3\n", "2026-01-07")
    assert [v["status"] for v in _show(cli, "2026-01-07")["vouchers"]] == ["withdrawn"]
    undo = cli("import", "undo", "3", "--date", "2026-01-08")  # the coffee's refund
    assert undo.exit_code == 0, undo.stderr
    assert [v["status"] for v in _show(cli, "2026-01-08")["vouchers"]] == ["open"]


def test_a_refund_scored_before_schema_10_still_counts_as_withdrawing(cli, write, db_file):
    """`withdrew` NULL (a refund scored before the column existed): any scored refund
    of the receipt withdrew its vouchers, as it did then."""
    import sqlite3

    _coffee_and_cake(cli, write)
    assert cli("redeem", "C1", "stamp", "--date", "2026-01-04").exit_code == 0
    _refund(cli, write, "X3,C1,2026-01-05,-4.00,cake,P3\n", "2026-01-05")
    with sqlite3.connect(db_file) as raw:
        stored = raw.execute("SELECT withdrew FROM scored_receipts WHERE transaction_id = 'X3'")
        assert stored.fetchone() == ("[]",)
        raw.execute("UPDATE scored_receipts SET withdrew = NULL WHERE transaction_id = 'X3'")
    raw.close()
    assert cli("redemption", "cancel", "R000001", "--date", "2026-01-06").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["withdrawn"]


def test_a_late_coffee_line_of_a_cake_refund_withdraws_the_voucher(cli, write):
    _coffee_and_cake(cli, write)
    head = "transaction_id,line_no,customer_id,date,amount,category,refund_of\n"
    late = [("X3,1,C1,2026-01-05,-4.00,cake,P3", "2026-01-05"),
            ("X3,2,C1,2026-01-05,-3.00,coffee,P3", "2026-01-06")]  # fmt: skip
    for row, day in late:
        assert cli("import", "purchases", write(f"x{day}.csv", head + row + "\n")).exit_code == 0
        assert cli("run", "--as-of", day).exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["withdrawn"]


def test_a_coffee_refund_scored_while_its_receipt_was_undone_keeps_the_voucher_withdrawn(
    cli, write
):
    _coffee_and_cake(cli, write)
    assert cli("import", "undo", "1", "--date", "2026-01-05").exit_code == 0
    _refund(cli, write, "Y3,C1,2026-01-05,-3.00,coffee,P3\n", "2026-01-05")
    head = "transaction_id,line_no,customer_id,date,amount,category\n"
    lines = "".join(f"P{i},1,C1,2026-01-0{i},3.00,coffee\n" for i in (1, 2, 3))
    lines += "P3,2,C1,2026-01-03,4.00,cake\n"
    assert cli("import", "purchases", write("again.csv", head + lines)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-06").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-06")["vouchers"]] == ["withdrawn"]


def test_an_exchange_that_sells_a_coffee_returns_only_the_cake(cli, write):
    _coffee_and_cake(cli, write)
    head = "transaction_id,line_no,customer_id,date,amount,category,refund_of\n"
    rows = "X3,1,C1,2026-01-05,-4.00,cake,P3\nX3,2,C1,2026-01-05,3.00,coffee,\n"
    assert cli("import", "purchases", write("x.csv", head + rows)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-05").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-05")["vouchers"]] == ["open"]


def test_a_late_coffee_line_after_the_receipts_undo_keeps_its_voucher_withdrawn(cli, write):
    _coffee_and_cake(cli, write)
    head = "transaction_id,line_no,customer_id,date,amount,category,refund_of\n"
    first = write("x1.csv", head + "X3,1,C1,2026-01-05,-4.00,cake,P3\n")
    assert cli("import", "purchases", first).exit_code == 0
    assert cli("run", "--as-of", "2026-01-05").exit_code == 0
    assert cli("import", "undo", "1", "--date", "2026-01-06").exit_code == 0
    late = write("x2.csv", head + "X3,2,C1,2026-01-05,-3.00,coffee,P3\n")
    assert cli("import", "purchases", late).exit_code == 0
    assert cli("run", "--as-of", "2026-01-06").exit_code == 0
    sales = "transaction_id,line_no,customer_id,date,amount,category\n"
    sales += "".join(f"P{i},1,C1,2026-01-0{i},3.00,coffee\n" for i in (1, 2, 3))
    sales += "P3,2,C1,2026-01-03,4.00,cake\n"
    assert cli("import", "purchases", write("again.csv", sales)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-07").exit_code == 0
    assert [v["status"] for v in _show(cli, "2026-01-07")["vouchers"]] == ["withdrawn"]
