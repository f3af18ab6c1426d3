"""Bonuses from events, birthdays (29 Feb) and referrals."""

from __future__ import annotations

import datetime as dt

from engine_helpers import buy, customer, entries, event, go, program

BONUSES = """
bonuses:
  signup: 50
  review: {points: 10, limit: {count: 3, per: month}}
  birthday: 100
  referral: {referrer: 200, referee: 50, min_first_purchase: 20.00}
  workshop: 5
"""


def test_once_per_customer_and_monthly_limit(conn, tmp_path):
    program(conn, tmp_path, BONUSES)
    customer(conn, "C1")
    event(conn, "E1", "C1", "signup", "2026-01-01")
    event(conn, "E2", "C1", "signup", "2026-01-02")  # once ever
    for i, day in enumerate(("03", "04", "05", "06"), start=3):
        event(conn, f"E{i}", "C1", "review", f"2026-01-{day}")  # the 4th in January: nothing
    event(conn, "E7", "C1", "review", "2026-02-01")
    event(conn, "E8", "C1", "workshop", "2026-02-02")
    event(conn, "E9", "C1", "workshop", "2026-02-03")  # custom: unlimited
    event(conn, "E10", "C1", "unknown-type", "2026-02-03")
    go(conn, "2026-02-28")
    assert [(r[4], r[3], r[5]) for r in entries(conn)] == [
        ("E1", 50, "signup"),
        ("E3", 10, "review"),
        ("E4", 10, "review"),
        ("E5", 10, "review"),
        ("E7", 10, "review"),
        ("E8", 5, "workshop"),
        ("E9", 5, "workshop"),
    ]
    go(conn, "2026-02-28")
    assert len(entries(conn)) == 7


def test_limit_counts_across_runs(conn, tmp_path):
    program(conn, tmp_path, BONUSES)
    for i in range(1, 4):
        event(conn, f"E{i}", "C1", "review", f"2026-01-0{i}")
    go(conn, "2026-01-10")
    event(conn, "E4", "C1", "review", "2026-01-20")
    go(conn, "2026-01-31")
    assert len(entries(conn)) == 3


def test_birthday_29_february(conn, tmp_path):
    program(conn, tmp_path, BONUSES)
    customer(conn, "C1", birthday="2000-02-29", joined_on="2026-01-01")
    customer(conn, "C2", birthday="1990-02-10", joined_on="2026-03-01")  # first one in 2027
    go(conn, "2026-01-31")
    assert entries(conn) == []
    go(conn, "2028-03-01")
    rows = [(r[0], r[1], r[3], r[4]) for r in entries(conn)]
    assert rows == [  # posted per customer, each in date order
        ("2026-02-28", "C1", 100, "birthday:C1:2026"),
        ("2027-02-28", "C1", 100, "birthday:C1:2027"),
        ("2028-02-29", "C1", 100, "birthday:C1:2028"),
        ("2027-02-10", "C2", 100, "birthday:C2:2027"),
        ("2028-02-10", "C2", 100, "birthday:C2:2028"),
    ]
    go(conn, "2028-03-02")
    assert len(entries(conn)) == 5


def test_referral_paid_on_first_qualifying_purchase(conn, tmp_path):
    program(conn, tmp_path, BONUSES)
    customer(conn, "C1")
    customer(conn, "C2", referred_by="C1")
    buy(conn, "T1", "C2", "2026-01-05", 1000)  # 10.00 < 20.00: not yet
    buy(conn, "T2", "C2", "2026-01-06", 2500)
    buy(conn, "T3", "C2", "2026-01-07", 2500)
    go(conn, "2026-01-31")
    ref = [(r[0], r[1], r[3], r[4]) for r in entries(conn) if r[5] == "referral"]
    assert sorted(ref) == [("2026-01-06", "C1", 200, "C2"), ("2026-01-06", "C2", 50, "C2")]
    buy(conn, "T4", "C2", "2026-02-07", 2500)
    go(conn, "2026-02-28")
    assert len([r for r in entries(conn) if r[5] == "referral"]) == 2


def test_a_late_line_that_makes_the_first_receipt_qualify_pays_the_referral(conn, tmp_path):
    program(conn, tmp_path, BONUSES)
    customer(conn, "C1")
    customer(conn, "C2", referred_by="C1")
    buy(conn, "T1", "C2", "2026-03-20", 1000)  # 10.00 < 20.00: not yet
    go(conn, "2026-03-20")
    assert [r for r in entries(conn) if r[5] == "referral"] == []
    buy(conn, "T1", "C2", "2026-03-20", 1500)  # the receipt's second line, a night later
    go(conn, "2026-03-21")
    ref = [(r[0], r[1], r[3], r[4]) for r in entries(conn) if r[5] == "referral"]
    assert sorted(ref) == [("2026-03-20", "C1", 200, "C2"), ("2026-03-20", "C2", 50, "C2")]
    buy(conn, "T2", "C2", "2026-03-25", 2500)
    go(conn, "2026-03-31")
    assert len([r for r in entries(conn) if r[5] == "referral"]) == 2


def test_a_late_referred_by_judges_a_sale_by_its_corrected_amount(conn, tmp_path, write):
    """The referred_by comes with a line that lowers the referee's first sale below
    min_first_purchase: nothing is paid, as one import of everything pays nothing."""
    from loyalty_cli.importing import import_files

    program(conn, tmp_path, BONUSES)
    customer(conn, "C1")
    buy(conn, "T1", "C2", "2026-03-20", 3000)
    go(conn, "2026-03-21")
    head = "customer_id,name,email,birthday,joined_on,referred_by\n"
    import_files(conn, "customers", [write("c.csv", head + "C2,Bert,,,,C1\n")])
    buy(conn, "T1", "C2", "2026-03-20", -2500)  # a correction line: T1 is 5.00 now
    go(conn, "2026-03-22")
    assert [r for r in entries(conn) if r[5] == "referral"] == []


def test_a_referral_by_an_unknown_customer_waits_until_they_are_known(conn, tmp_path):
    # C9 is not a customer: no points for a customer nobody knows, and the referral
    # is not used up; once C9 is known, the next run that works on C2 pays both,
    # dated C2's first qualifying purchase (as one run over all of it would).
    program(conn, tmp_path, BONUSES)
    customer(conn, "C2", referred_by="C9")
    buy(conn, "T1", "C2", "2026-01-05", 2500)
    go(conn, "2026-01-31")
    assert [r for r in entries(conn) if r[5] == "referral" or r[1] == "C9"] == []
    customer(conn, "C9")
    buy(conn, "T2", "C2", "2026-02-03", 2500)
    go(conn, "2026-02-28")
    ref = [(r[0], r[1], r[3]) for r in entries(conn) if r[5] == "referral"]
    assert sorted(ref) == [("2026-01-05", "C2", 50), ("2026-01-05", "C9", 200)]


def test_a_referred_by_imported_after_the_first_purchase_was_scored_still_pays(
    conn, tmp_path, write
):
    """The customers file naming the referrer came after a run scored the referee's
    first qualifying purchase: the next run pays both, dated that purchase, as one
    run over all of it would have (before, only a later purchase paid, if any)."""
    from loyalty_cli.importing import import_files

    program(conn, tmp_path, BONUSES)
    customer(conn, "C1")
    buy(conn, "T1", "C2", "2026-01-05", 1000)  # 10.00 < 20.00: not this one
    buy(conn, "T2", "C2", "2026-01-06", 2500)
    go(conn, "2026-01-31")
    head = "customer_id,name,email,birthday,joined_on,referred_by\n"
    import_files(conn, "customers", [write("c.csv", head + "C2,Bert,,,,C1\n")])
    go(conn, "2026-02-01")
    ref = [(r[0], r[1], r[3], r[4]) for r in entries(conn) if r[5] == "referral"]
    assert sorted(ref) == [("2026-01-06", "C1", 200, "C2"), ("2026-01-06", "C2", 50, "C2")]
    buy(conn, "T3", "C2", "2026-02-07", 2500)
    go(conn, "2026-02-28")  # paid once
    assert len([r for r in entries(conn) if r[5] == "referral"]) == 2


def test_a_late_referral_waits_for_a_run_that_reaches_its_sale(conn, tmp_path, write):
    """A past night run again (`--as-of` before the sale) posts nothing dated after it."""
    from loyalty_cli.importing import import_files

    program(conn, tmp_path, BONUSES)
    customer(conn, "C1")
    buy(conn, "T1", "C2", "2026-02-10", 3000)
    go(conn, "2026-02-10")
    head = "customer_id,name,email,birthday,joined_on,referred_by\n"
    import_files(conn, "customers", [write("c.csv", head + "C2,Bob,,,,C1\n")])
    go(conn, "2026-02-05")
    assert [r for r in entries(conn) if r[5] == "referral"] == []
    go(conn, "2026-02-11")
    assert sorted((r[0], r[1]) for r in entries(conn) if r[5] == "referral") == [
        ("2026-02-10", "C1"), ("2026-02-10", "C2"),
    ]  # fmt: skip


INACTIVE_REFERRAL = """
bonuses:
  referral: {referrer: 200, referee: 50}
expiry: {policy: inactivity, months: 3}
"""


def test_a_referral_payout_is_in_the_referrers_timeline_before_their_expiry(conn, tmp_path):
    """C1 (worked on before C2 in name order) is owed 200 on 2026-02-01 by C2's first
    purchase: the inactivity expiry on 2026-04-10 takes it with the rest, in one run
    as in two."""
    program(conn, tmp_path, INACTIVE_REFERRAL, effective="2025-01-01")
    customer(conn, "C1")
    customer(conn, "C2", referred_by="C1")
    buy(conn, "T1", "C1", "2026-01-10", 10000)
    buy(conn, "T2", "C2", "2026-02-01", 3000)
    go(conn, "2026-06-01")
    c1 = [(r[0], r[2], r[3]) for r in entries(conn) if r[1] == "C1"]
    assert c1 == [
        ("2026-01-10", "earn", 100),
        ("2026-02-01", "bonus", 200),
        ("2026-04-10", "expire", -300),
    ]


def test_referees_are_worked_on_before_their_referrers(conn):
    from loyalty_cli.engine.run import _referees_first

    # A referred by D, D by B (a chain), E and F refer each other (a cycle), G outside.
    for cid, referrer in [("A", "D"), ("B", None), ("D", "B"), ("E", "F"), ("F", "E"), ("C", "G")]:
        customer(conn, cid, referred_by=referrer)
    order = _referees_first(conn, ["A", "B", "C", "D", "E", "F"])
    assert sorted(order) == ["A", "B", "C", "D", "E", "F"]
    assert order.index("A") < order.index("D") < order.index("B")
    assert order == ["A", "D", "B", "C", "F", "E"]  # E waits for F; F's turn closes the cycle
    assert _referees_first(conn, ["B", "C"]) == ["B", "C"]  # no pair inside: unchanged


def test_a_customer_imported_after_their_birthday_still_gets_it(conn, tmp_path, write):
    from loyalty_cli.importing import import_files

    program(conn, tmp_path, BONUSES, effective="2025-01-01")
    head = "customer_id,birthday,joined_on\n"
    import_files(conn, "customers", [write("a.csv", head + "C1,1990-02-15,2025-06-01\n")])
    go(conn, "2026-03-01")
    import_files(conn, "customers", [write("b.csv", head + "C2,1990-02-15,2025-06-01\n")])
    # C1's birthday comes from a later file too: known, paid once.
    import_files(conn, "customers", [write("c.csv", head + "C1,1990-02-15,2025-06-01\n")])
    go(conn, "2026-03-02")
    rows = [(r[0], r[1], r[3], r[4]) for r in entries(conn)]
    assert rows == [
        ("2026-02-15", "C1", 100, "birthday:C1:2026"),
        ("2026-02-15", "C2", 100, "birthday:C2:2026"),
    ]
    # A full customer export again, a name changed: nobody to look at for birthdays.
    import_files(conn, "customers", [write("d.csv", "customer_id,name\nC1,Ann\nC2,Bob\n")])
    import_files(conn, "customers", [write("e.csv", head + "C1,1990-02-15,2025-06-01\n")])
    marks = conn.execute("SELECT customer_id, import_id FROM customers ORDER BY 1").fetchall()
    assert [tuple(r) for r in marks] == [("C1", 1), ("C2", 2)]


def test_a_shop_without_the_customer_import_mark_looks_at_everyone_once(conn, tmp_path, write):
    """A file from before schema 4 has no run.last_customer_import_id: customers
    imported after its last old run were taken as seen (their birthday and
    referral never paid). The next run looks at every one once, paying nothing twice."""
    from loyalty_cli import db
    from loyalty_cli.importing import import_files

    program(conn, tmp_path, BONUSES, effective="2025-01-01")
    head = "customer_id,birthday,joined_on,referred_by\n"
    import_files(conn, "customers", [write("a.csv", head + "A1,1990-02-15,2025-06-01,\n")])
    buy(conn, "T1", "R1", "2026-02-20", 3000)
    go(conn, "2026-03-01")
    late = "R1,,2025-06-01,A1\nB1,1990-02-10,2025-06-01,\n"
    import_files(conn, "customers", [write("b.csv", head + late)])
    with db.transaction(conn):  # as the migration to schema 4 leaves an old shop
        conn.execute("DELETE FROM meta WHERE key = 'run.last_customer_import_id'")
    go(conn, "2026-03-02")
    rows = sorted((r[1], r[3], r[4]) for r in entries(conn) if r[2] == "bonus")
    assert rows == [
        ("A1", 100, "birthday:A1:2026"),
        ("A1", 200, "R1"),
        ("B1", 100, "birthday:B1:2026"),
        ("R1", 50, "R1"),
    ]


def test_an_undone_event_bonus_counts_no_more(conn, tmp_path, write):
    """Undone rows count nowhere: after `import undo` of the events, the corrected
    file's signup is paid (once per customer), and so is its review (1 a month)."""
    from loyalty_cli.importing import import_files, undo_import

    program(conn, tmp_path, "bonuses: {signup: 50, review: {points: 10, limit: "
                            "{count: 1, per: month}}}\n", effective="2025-01-01")  # fmt: skip
    customer(conn, "C1")
    head = "event_id,customer_id,type,date\n"
    wrong = write("a.csv", head + "E1,C1,signup,2026-01-10\nE2,C1,review,2026-01-11\n")
    [first] = import_files(conn, "events", [wrong])
    go(conn, "2026-01-31")
    undo_import(conn, first.import_id, dt.date(2026, 2, 1))
    fixed = write("b.csv", head + "F1,C1,signup,2026-01-10\nF2,C1,review,2026-01-11\n")
    import_files(conn, "events", [fixed])
    go(conn, "2026-02-28")
    assert [(r[2], r[3], r[4]) for r in entries(conn)] == [
        ("bonus", 50, "E1"),
        ("bonus", 10, "E2"),
        ("reversal", -50, "E1"),
        ("reversal", -10, "E2"),
        ("bonus", 50, "F1"),
        ("bonus", 10, "F2"),
    ]
    import_files(conn, "events", [wrong])  # the first file again: both already paid
    go(conn, "2026-03-01")
    assert len(entries(conn)) == 6


def test_events_an_undone_import_kept_from_their_bonus_are_paid_after_the_undo(
    conn, tmp_path, write
):
    """Undone events no longer use up a once-only bonus or a limit: the events of
    another import that they kept from being paid are judged again by the next run
    (they were never looked at again: a fresh shop without the undone file pays them)."""
    from loyalty_cli.importing import import_files, undo_import

    program(conn, tmp_path, "bonuses: {signup: 50, review: {points: 10, limit: "
                            "{count: 2, per: month}}}\n", effective="2025-01-01")  # fmt: skip
    customer(conn, "C1")
    head = "event_id,customer_id,type,date\n"
    first, _ = import_files(
        conn,
        "events",
        [
            write("a.csv", head + "A1,C1,signup,2026-01-10\nA2,C1,review,2026-03-01\n"
                                  "A3,C1,review,2026-03-02\n"),
            write("b.csv", head + "B1,C1,signup,2026-01-12\nB2,C1,review,2026-03-03\n"),
        ],
    )  # fmt: skip
    go(conn, "2026-04-01")
    assert [r[4] for r in entries(conn)] == ["A1", "A2", "A3"]
    undo_import(conn, first.import_id, dt.date(2026, 4, 2))
    go(conn, "2026-04-03")
    assert [(r[0], r[2], r[3], r[4]) for r in entries(conn)][3:] == [
        ("2026-04-02", "reversal", -50, "A1"),
        ("2026-04-02", "reversal", -10, "A2"),
        ("2026-04-02", "reversal", -10, "A3"),
        ("2026-01-12", "bonus", 50, "B1"),
        ("2026-03-03", "bonus", 10, "B2"),
    ]
    go(conn, "2026-04-04")  # and only once
    assert len(entries(conn)) == 8


def test_an_undo_judges_again_only_the_events_of_the_types_it_took_back(conn, tmp_path, write):
    """A review the first version did not pay stays unpaid when a newsletter is
    undone, even under a back-dated version that pays reviews (the re-judging took
    every event of the customer, and paid C1's review but not C2's identical one)."""
    from loyalty_cli.importing import import_files, undo_import

    program(conn, tmp_path, "bonuses: {newsletter: 20}\n", effective="2025-01-01")
    customer(conn, "C1")
    customer(conn, "C2")
    head = "event_id,customer_id,type,date\n"
    import_files(
        conn,
        "events",
        [write("a.csv", head + "E1,C1,review,2026-02-01\nE2,C2,review,2026-02-01\n")],
    )
    [news] = import_files(conn, "events", [write("b.csv", head + "N1,C1,newsletter,2026-02-02\n")])
    go(conn, "2026-03-01")
    program(
        conn,
        tmp_path,
        "bonuses: {newsletter: 20, review: 10}\n",
        effective="2026-01-15",
        name="q.yaml",
    )
    go(conn, "2026-03-02")
    undo_import(conn, news.import_id, dt.date(2026, 3, 3))
    go(conn, "2026-03-03")
    assert [(r[2], r[3], r[4]) for r in entries(conn)] == [
        ("bonus", 20, "N1"), ("reversal", -20, "N1"),
    ]  # fmt: skip


def test_the_same_events_file_again_after_its_undo_is_paid_again(conn, tmp_path, write):
    from loyalty_cli.importing import import_files, undo_import

    program(conn, tmp_path, BONUSES, effective="2025-01-01")
    customer(conn, "C1")
    path = write("a.csv", "event_id,customer_id,type,date\nE1,C1,signup,2026-01-10\n")
    [first] = import_files(conn, "events", [path])
    go(conn, "2026-01-31")
    undo_import(conn, first.import_id, dt.date(2026, 2, 1))
    go(conn, "2026-02-01")
    import_files(conn, "events", [path])
    go(conn, "2026-02-28")
    assert [(r[2], r[3]) for r in entries(conn)] == [
        ("bonus", 50), ("reversal", -50), ("bonus", 50),
    ]  # fmt: skip
