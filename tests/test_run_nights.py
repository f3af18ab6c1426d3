"""Runs night after night post what one run over the whole period posts.

The data (purchases, events, customers with birthdays and referrals) is all
there before its date, as a till's exports are: nothing arrives late. Then
`run` every few days must end with the same entries as a single `run` at the
end, for programs that cross referral payouts, birthdays, pending points,
fixed and inactivity expiry and tiers. (An earlier referral payout escaped an
inactivity expiry in a single run only: this is the property that catches it.)
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import buy, customer, event, program
from loyalty_cli import db
from loyalty_cli.checks import check_database
from loyalty_cli.engine.run import run
from loyalty_cli.program import apply_program

COMMON = """
bonuses:
  signup: 25
  review: {points: 10, limit: {count: 2, per: month}}
  birthday: 40
  referral: {referrer: 30, referee: 15, min_first_purchase: 10.00}
rewards:
  - id: third-coffee
    name: 3rd coffee
    value: 2.00
    punch_card: {every: 3, when: {category: coffee}}
"""
PROGRAMS = {
    "inactivity": COMMON
    + """
expiry: {policy: inactivity, months: 1}
tiers:
  basis: spend
  window: {rolling_days: 30}
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 60, multiplier: 2}
""",
    "fixed": COMMON
    + """
pending_days: 3
expiry: {policy: fixed, months: 1}
rules:
  - {id: big, when: {min_amount: 40.00}, bonus: 20}
tiers:
  basis: receipts
  window: lifetime
  upgrade: same_receipt
  levels:
    - {id: bronze, min: 0}
    - {id: gold, min: 3, multiplier: 3}
""",
}
START = dt.date(2026, 1, 1)
END_OFFSET = 150
CUSTOMERS = ["C1", "C2", "C3", "C4"]

purchase_st = st.tuples(
    st.sampled_from(["C1", "C1", "C2", "C3", "C4"]),
    st.integers(0, 120),
    st.integers(100, 6000),
    st.sampled_from(["coffee", "coffee", "bread"]),
)
# "visit" earns nothing and a "birthday" row is ignored (the engine derives birthdays):
# neither is activity that starts the birthdays of a customer without joined_on.
event_st = st.tuples(
    st.sampled_from(CUSTOMERS),
    st.integers(0, 120),
    st.sampled_from(["review", "signup", "visit", "birthday"]),
)
shop_st = st.fixed_dictionaries(
    {
        "program": st.sampled_from(sorted(PROGRAMS)),
        # C2..C4 may be referred by a customer before them in the list.
        "referrers": st.tuples(
            st.sampled_from([None, "C1"]),
            st.sampled_from([None, "C1", "C2"]),
            st.sampled_from([None, "C2", "C3"]),
        ),
        "birthdays": st.lists(st.integers(0, 364), min_size=4, max_size=4),
        "joined": st.lists(st.booleans(), min_size=4, max_size=4),
        "purchases": st.lists(purchase_st, max_size=14),
        "events": st.lists(event_st, max_size=4),
        "nights": st.lists(st.integers(1, END_OFFSET - 1), max_size=8, unique=True),
    }
)


def _day(offset: int) -> str:
    return (START + dt.timedelta(days=offset)).isoformat()


def _shop(directory: Path, shop: dict) -> db.sqlite3.Connection:
    conn = db.connect(directory / "shop.db")
    program(conn, directory, PROGRAMS[shop["program"]], effective="2025-01-01")
    referred_by = dict(zip(CUSTOMERS[1:], shop["referrers"], strict=True))
    for cid, birthday, joined in zip(CUSTOMERS, shop["birthdays"], shop["joined"], strict=True):
        born = dt.date(1990, 1, 1) + dt.timedelta(days=birthday)
        customer(conn, cid, birthday=born.isoformat(), joined_on="2025-12-01" if joined else None,
                 referred_by=referred_by.get(cid))  # fmt: skip
    for n, (cid, offset, amount, category) in enumerate(shop["purchases"]):
        buy(conn, f"T{n:03}", cid, _day(offset), (amount, category))
    for n, (cid, offset, etype) in enumerate(shop["events"]):
        event(conn, f"E{n:03}", cid, etype, _day(offset))
    return conn


def _entries(conn: db.sqlite3.Connection) -> dict[str, list[tuple]]:
    """Each customer's entries as a sorted list, ids replaced by what they point at."""
    rows = conn.execute(
        "SELECT entry_id, customer_id, date, kind, points, value, source_type, source_id, "
        "rule_id, lot_id, available_on, expires_on, note FROM ledger ORDER BY entry_id"
    ).fetchall()
    what = {r[0]: (r[2], r[3], r[6], r[7]) for r in rows}  # entry id -> its identity
    out: dict[str, list[tuple]] = {}
    for _eid, cid, date, kind, pts, value, stype, sid, rule, lot, avail, expires, note in rows:
        if stype == "expiry" and sid is not None and sid.isdigit():
            sid = str(what[int(sid)])
        lot_ref = what[lot] if lot is not None else None
        out.setdefault(cid, []).append(
            (date, kind, pts, value, stype, sid, rule, lot_ref, avail, expires, note)
        )
    return {cid: sorted(items, key=repr) for cid, items in out.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shop=shop_st)
def test_nightly_runs_post_what_one_run_posts(shop):
    end = START + dt.timedelta(days=END_OFFSET)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        nightly, once = _shop(Path(a), shop), _shop(Path(b), shop)
        for offset in sorted(shop["nights"]):
            run(nightly, START + dt.timedelta(days=offset))
        run(nightly, end)
        run(once, end)
        assert _entries(nightly) == _entries(once)
        vouchers = "SELECT customer_id, reward_id, status FROM vouchers ORDER BY 1, 2, 3"
        assert nightly.execute(vouchers).fetchall() == once.execute(vouchers).fetchall()
        # `loyalty check`'s invariants hold on both (no false alarm on any shop).
        assert check_database(nightly) == [] and check_database(once) == []
        nightly.close()
        once.close()


def _both(tmp_path, text: str, build, nights: list[str], end: str) -> tuple[dict, dict]:
    out = []
    for name, days in (("nightly", [*nights, end]), ("once", [end])):
        conn = db.connect(tmp_path / f"{name}.db")
        directory = tmp_path / name
        directory.mkdir()
        program(conn, directory, text, effective="2025-12-01")
        build(conn)
        for day in days:
            run(conn, dt.date.fromisoformat(day))
        out.append(_entries(conn))
    return out[0], out[1]


def test_an_event_that_earns_nothing_does_not_start_the_birthdays(tmp_path):
    def build(conn):
        customer(conn, "C1", birthday="1990-03-11")  # no joined_on
        event(conn, "E1", "C1", "visit", "2026-03-04")  # no bonus for visits
        event(conn, "E2", "C1", "birthday", "2026-03-05")  # derived type: ignored
        buy(conn, "T1", "C1", "2026-05-18", 3000)

    nightly, once = _both(
        tmp_path, "bonuses: {birthday: 100}\n", build, ["2026-03-04", "2026-03-20"], "2026-05-18"
    )
    assert nightly == once
    assert [e[1] for e in once["C1"]] == ["earn"]  # the first receipt is after 11 March


def test_a_referral_payout_starts_the_referrers_birthdays_in_its_own_run(tmp_path):
    def build(conn):
        customer(conn, "R", birthday="1990-03-10")  # no joined_on, no purchase
        customer(conn, "F", referred_by="R", joined_on="2026-01-01")
        buy(conn, "T1", "F", "2026-03-03", 2000)
        event(conn, "E1", "R", "review", "2026-07-17")

    text = "bonuses: {birthday: 40, review: 10, referral: {referrer: 30, referee: 0}}\n"
    nightly, once = _both(tmp_path, text, build, ["2026-03-03"], "2026-07-17")
    assert nightly == once
    assert ("2026-03-10", "bonus", 40) in [e[:3] for e in once["R"]]


def test_a_referral_worth_nothing_is_not_used_up(tmp_path):
    """Version 1 pays 0 to both: nothing is posted, so nothing can say the referral
    was used; version 2 pays it on the next qualifying purchase, however runs fall."""

    def build(conn):
        customer(conn, "R", joined_on="2025-12-01")
        customer(conn, "F", referred_by="R", joined_on="2025-12-01")
        later = tmp_path / "v2.yaml"
        later.write_text(
            "program: T\ncurrency: EUR\npoint_value: 0.01\nearn: {per_currency_unit: 1}\n"
            "bonuses: {referral: {referrer: 30, referee: 0, min_first_purchase: 10.00}}\n"
        )
        if not conn.execute("SELECT 1 FROM program_versions WHERE version = 2").fetchone():
            apply_program(conn, later, effective=dt.date(2026, 4, 1), today=dt.date(2026, 1, 1))
        buy(conn, "T1", "F", "2026-01-05", 4650)
        buy(conn, "T2", "F", "2026-04-04", 1800)

    text = "bonuses: {referral: {referrer: 0, referee: 0, min_first_purchase: 40.00}}\n"
    nightly, once = _both(tmp_path, text, build, ["2026-01-05"], "2026-04-04")
    assert nightly == once
    assert [e[:3] for e in once["R"]] == [("2026-04-04", "bonus", 30)]


def test_a_receipts_store_is_its_first_lines_whatever_the_runs(tmp_path):
    """Line 1 (10.00 at S1) and line 2 (1.00 at S2): the receipt's store is S1 and the
    S1 rule doubles it. A first run used to read the lines by amount (the index
    order), so the store was S2's and the receipt earned 11, a nightly run 22."""

    def build(conn):
        customer(conn, "C1", joined_on="2025-12-01")
        customer(conn, "C9", joined_on="2025-12-01")
        buy(conn, "E0", "C9", "2026-01-01", 100, store="S1")
        with db.transaction(conn):
            for line_no, amount, store in ((1, 1000, "S1"), (2, 100, "S2")):
                conn.execute(
                    "INSERT INTO purchases (transaction_id, line_no, customer_id, date, amount, "
                    "tax, store, import_id) VALUES ('X1', ?, 'C1', '2026-02-01', ?, 0, ?, 1)",
                    (line_no, amount, store),
                )

    text = "rules:\n  - {id: s1-double, when: {store: S1}, multiplier: 2}\n"
    nightly, once = _both(tmp_path, text, build, ["2026-01-31"], "2026-03-01")
    assert nightly == once
    assert [e[2] for e in once["C1"] if e[1] == "earn"] == [22]
