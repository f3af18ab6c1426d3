"""What an `import undo` of refunds gives back is a lot from the undo date that
expires as an adjustment would (it never expired), to the partner who funded it;
undoing a receipt with its refund leaves the customer's other lots alone; and the
undo may not be dated before what took from the import's lots."""

from __future__ import annotations

from conftest import load_json

PROGRAM = """\
program: T
currency: EUR
point_value: 0.01
effective_from: 2025-01-01
earn: {per_currency_unit: 1, rounding: floor}
expiry: {policy: fixed, months: 12}
"""
HEAD = "transaction_id,customer_id,date,amount,refund_of\n"


def _shop(cli, write, program=PROGRAM):
    assert cli("program", "apply", write("p.yaml", program), "--yes").exit_code == 0


def _import(cli, write, name, body, head=HEAD) -> int:
    result = cli("import", "purchases", write(name, head + body), "--format", "json")
    assert result.exit_code == 0, result.stderr
    return load_json(result)[0]["import_id"]


def _show(cli, on):
    return load_json(cli("customer", "show", "C1", "--as-of", on, "--format", "json"))


def test_points_an_undone_refund_gives_back_expire_as_an_adjustment_would(cli, write):
    _shop(cli, write)
    _import(cli, write, "a.csv", "T1,C1,2026-02-01,100.00,\n")
    refund = _import(cli, write, "b.csv", "R1,C1,2026-02-10,-40.00,T1\n")
    assert cli("run", "--as-of", "2026-02-20").exit_code == 0
    assert cli("import", "undo", str(refund), "--date", "2026-02-21").exit_code == 0
    shown = _show(cli, "2026-02-21")
    assert shown["points"]["available"] == 100
    assert shown["expiring"] == [
        {"date": "2027-01-31", "points": 60},
        {"date": "2027-02-20", "points": 40},
    ]
    assert cli("run", "--as-of", "2027-02-21").exit_code == 0
    assert _show(cli, "2027-02-21")["points"]["available"] == 0


def test_points_given_back_after_their_lot_expired_expire_too(cli, write):
    _shop(cli, write)
    _import(cli, write, "a.csv", "T1,C1,2025-01-10,100.00,\n")
    refund = _import(cli, write, "b.csv", "R1,C1,2025-02-01,-40.00,T1\n")
    assert cli("run", "--as-of", "2026-02-01").exit_code == 0  # 60 expired 2026-01-10
    assert cli("import", "undo", str(refund), "--date", "2026-02-02").exit_code == 0
    assert _show(cli, "2026-02-02")["expiring"] == [{"date": "2027-02-01", "points": 40}]
    assert cli("run", "--as-of", "2027-02-02").exit_code == 0
    assert _show(cli, "2027-02-02")["points"]["available"] == 0  # they came back for good


def test_undoing_a_receipt_with_its_refund_leaves_other_lots_alone(cli, write):
    _shop(cli, write)
    _import(cli, write, "t0.csv", "T0,C1,2026-06-01,50.00,\n")
    both = _import(cli, write, "b.csv", "T1,C1,2025-06-01,100.00,\nR1,C1,2025-07-01,-40.00,T1\n")
    assert cli("run", "--as-of", "2026-12-05").exit_code == 0
    assert cli("import", "undo", str(both), "--date", "2026-12-06").exit_code == 0
    assert cli("run", "--as-of", "2026-12-06").exit_code == 0
    shown = _show(cli, "2026-12-06")
    assert shown["points"]["available"] == 50


def test_a_refund_of_two_receipts_undone_gives_back_all_it_took(cli, write):
    _shop(cli, write)
    _import(cli, write, "a.csv", "A1,C1,2026-01-15,50.00,\nA2,C1,2026-06-01,50.00,\n")
    head = "transaction_id,line_no,customer_id,date,amount,refund_of\n"
    refund = _import(
        cli, write, "r.csv", "R1,1,C1,2026-07-01,-10.00,A1\nR1,2,C1,2026-07-01,-10.00,A2\n", head
    )
    assert cli("run", "--as-of", "2026-12-05").exit_code == 0
    assert cli("import", "undo", str(refund), "--date", "2026-12-06").exit_code == 0
    assert cli("run", "--as-of", "2026-12-06").exit_code == 0
    assert _show(cli, "2026-12-06")["points"]["available"] == 100


def test_an_undone_refund_of_two_partners_receipts_gives_each_its_own(cli, write, db_file):
    program = PROGRAM + (
        "partners:\n"
        "  - {id: cafe, stores: [S1], multiplier: 1}\n"
        "  - {id: bakery, stores: [B1], multiplier: 2}\n"
    )
    _shop(cli, write, program)
    head = "transaction_id,line_no,customer_id,date,amount,store,refund_of\n"
    _import(cli, write, "s.csv", "A1,1,C1,2026-09-05,50.00,S1,\nA2,1,C1,2026-09-06,20.00,B1,\n",
            head)  # fmt: skip
    refund = _import(
        cli, write, "r.csv", "R1,1,C1,2026-10-05,-10.00,S1,A1\nR1,2,C1,2026-10-05,-10.00,S1,A2\n",
        head,
    )  # fmt: skip
    assert cli("run", "--as-of", "2026-10-31").exit_code == 0
    assert cli("import", "undo", str(refund), "--date", "2026-11-02").exit_code == 0
    rows = cli("export", "settlement", "--from", "2026-09-01", "--to", "2026-11-30").stdout
    issued = {line.split(",")[0]: line.split(",")[1] for line in rows.splitlines()[1:]}
    assert (issued["cafe"], issued["bakery"]) == ("50", "40")


def test_an_undo_may_not_be_dated_before_a_refund_took_from_its_lots(cli, write):
    _shop(cli, write)
    sale = _import(cli, write, "a.csv", "T1,C1,2026-01-10,200.00,\n")
    _import(cli, write, "b.csv", "R1,C1,2026-03-01,-50.00,T1\n")
    assert cli("run", "--as-of", "2026-03-05").exit_code == 0
    early = cli("import", "undo", str(sale), "--date", "2026-02-01")
    assert early.exit_code == 1
    assert "has points posted up to 2026-03-01" in early.stderr
    assert cli("import", "undo", str(sale), "--date", "2026-03-05").exit_code == 0
    assert _show(cli, "2026-03-05")["points"]["available"] == 0


BONUS_RULE = """\
rules:
  - {id: big-basket, when: {min_amount: 100.00}, bonus: 50}
bonuses:
  signup: 50
"""


def _signup_and_sale(cli, write, program: str) -> int:
    _shop(cli, write, program + BONUS_RULE)
    assert cli("import", "customers", write("c.csv", "customer_id,name\nC1,Ann\n")).exit_code == 0
    ev = write("e.csv", "event_id,customer_id,type,date\nE1,C1,signup,2026-03-01\n")
    assert cli("import", "events", ev).exit_code == 0
    return _import(cli, write, "p.csv", "T1,C1,2026-03-20,150.00,\n")


def test_an_undone_receipt_takes_back_its_bonus_lot_not_older_points(cli, write):
    """The reversal took 200 from the receipt's earn lot (150) and the oldest lot
    (the signup's 50, expiring sooner), leaving the receipt's own bonus lot of 50."""
    sale = _signup_and_sale(cli, write, PROGRAM.replace("months: 12", "months: 1"))
    assert cli("run", "--as-of", "2026-03-25").exit_code == 0
    assert cli("import", "undo", str(sale), "--date", "2026-03-25").exit_code == 0
    assert _show(cli, "2026-03-25")["expiring"] == [{"date": "2026-03-31", "points": 50}]
    assert cli("run", "--as-of", "2026-04-05").exit_code == 0
    assert _show(cli, "2026-04-05")["points"]["available"] == 0
    assert cli("check").exit_code == 0


def test_an_undone_receipt_takes_back_its_pending_bonus_lot(cli, write):
    program = PROGRAM.replace("expiry: {policy: fixed, months: 12}\n", "pending_days: 14\n")
    sale = _signup_and_sale(cli, write, program)
    assert cli("run", "--as-of", "2026-03-25").exit_code == 0
    assert cli("import", "undo", str(sale), "--date", "2026-03-25").exit_code == 0
    points = _show(cli, "2026-03-25")["points"]
    assert (points["available"], points["pending"]) == (50, 0)


def test_reversals_split_by_lot_for_customers_read_in_chunks(cli, write, monkeypatch):
    """An undo replays its customers' ledgers a chunk at a time: each customer's
    reversal still takes from their own receipt's lots."""
    from loyalty_cli import ledger

    monkeypatch.setattr(ledger, "_REPLAY_CHUNK", 1)
    _shop(cli, write, PROGRAM + BONUS_RULE)
    sale = _import(cli, write, "p.csv", "T1,C1,2026-03-20,150.00,\nT2,C2,2026-03-20,150.00,\n")
    assert cli("run", "--as-of", "2026-03-25").exit_code == 0
    assert cli("import", "undo", str(sale), "--date", "2026-03-25").exit_code == 0
    rows = cli("export", "ledger", "--format", "csv").stdout.splitlines()
    reversals = [r.split(",")[2:5] for r in rows if ",reversal," in r]
    assert reversals == [
        ["C1", "reversal", "-150"], ["C1", "reversal", "-50"],
        ["C2", "reversal", "-150"], ["C2", "reversal", "-50"],
    ]  # fmt: skip
