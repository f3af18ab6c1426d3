"""The lot replay: FIFO consumption, targeted entries, debt, cancellations."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli import db, ledger
from loyalty_cli.ledger import Entry, replay

D = dt.date(2026, 1, 1)


def day(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


def lot(eid: int, points: int, on: int = 0, avail: int | None = None, exp: int | None = None):
    return Entry(
        entry_id=eid,
        date=day(on),
        customer_id="C1",
        kind="earn",
        points=points,
        source_type="purchase",
        source_id=f"T{eid}",
        available_on=day(avail if avail is not None else on),
        expires_on=day(exp) if exp is not None else None,
    )


def out(eid: int, kind: str, points: int, on: int, lot_id=None, source_id=None):
    return Entry(
        entry_id=eid,
        date=day(on),
        customer_id="C1",
        kind=kind,
        points=points,
        source_type="redemption",
        source_id=source_id,
        lot_id=lot_id,
    )


def test_redeem_takes_oldest_lot_first_and_expiry_sees_the_rest():
    state = replay([lot(1, 100, 0, exp=30), lot(2, 100, 5, exp=35), out(3, "redeem", -150, 10)])
    assert state.lots[1].remaining == 0
    assert state.lots[2].remaining == 50
    assert state.available(day(10)) == 50
    assert state.expiring(day(10)) == [(day(34), 50)]


def test_pending_lot_is_not_redeemable_and_counts_as_pending():
    state = replay([lot(1, 100, 0, avail=14)])
    assert state.available(day(13)) == 0
    assert state.pending(day(13)) == 100
    assert state.available(day(14)) == 100
    assert state.pending(day(14)) == 0


def test_cancel_returns_points_to_the_same_lots_with_their_expiry():
    entries = [
        lot(1, 60, 0, exp=30),
        lot(2, 100, 1, exp=31),
        out(3, "redeem", -100, 2, source_id="R1"),
        Entry(
            entry_id=4,
            date=day(3),
            customer_id="C1",
            kind="redemption_reversed",
            points=100,
            source_type="redemption",
            source_id="R1",
        ),
    ]
    state = replay(entries)
    assert (state.lots[1].remaining, state.lots[2].remaining) == (60, 100)
    assert state.expiring(day(3)) == [(day(29), 60), (day(30), 100)]


def test_clawback_beyond_the_lot_makes_debt_and_a_new_lot_pays_it():
    entries = [
        lot(1, 100, 0),
        out(2, "redeem", -80, 1, source_id="R1"),
        out(3, "clawback", -50, 2, lot_id=1),
    ]
    state = replay(entries)
    assert state.available(day(2)) == -30
    state = replay([*entries, lot(4, 100, 3, exp=40)])
    assert state.lots[4].remaining == 70
    assert state.available(day(3)) == 70


def test_expire_takes_only_its_own_lot():
    state = replay([lot(1, 100, 0, exp=10), lot(2, 40, 0), out(3, "expire", -100, 10, lot_id=1)])
    assert state.lots[2].remaining == 40
    assert state.debt == 0


def test_as_of_ignores_later_entries():
    state = replay([lot(1, 100, 0), out(2, "redeem", -100, 5, source_id="R1")], as_of=day(4))
    assert state.available(day(4)) == 100


def test_post_and_reverse_sources(conn):
    with db.transaction(conn):
        ids = ledger.post(
            conn,
            [
                ledger.NewEntry(D, "C1", "earn", 120, "purchase", "T1"),
                ledger.NewEntry(D, "C1", "bonus", 50, "purchase", "T1", rule_id="big"),
                ledger.NewEntry(D, "C2", "earn", 10, "purchase", "T2"),
            ],
        )
        assert ids == [1, 2, 3]
        # One reversal per lot of the receipt, each aimed at its lot.
        assert ledger.reverse_sources(conn, "purchase", ["T1"], day(3), "undo import 1") == 2
        aimed = "SELECT lot_id, points FROM ledger WHERE kind = 'reversal' ORDER BY entry_id"
        assert [tuple(r) for r in conn.execute(aimed)] == [(1, -120), (2, -50)]
    state = ledger.state_of(conn, "C1")
    assert state.balance == 0
    assert state.available(day(3)) == 0
    assert ledger.balance(conn, "C2") == 10


@st.composite
def histories(draw):
    entries = []
    for eid in range(1, draw(st.integers(1, 25)) + 1):
        on = draw(st.integers(0, 60))
        if draw(st.booleans()):
            entries.append(
                lot(eid, draw(st.integers(1, 300)), on, exp=on + draw(st.integers(1, 90)))
            )
        else:
            kind = draw(st.sampled_from(["redeem", "adjust", "clawback"]))
            target = draw(st.one_of(st.none(), st.integers(1, eid)))
            entries.append(out(eid, kind, -draw(st.integers(1, 300)), on, lot_id=target))
    return entries


@settings(max_examples=200, deadline=None)
@given(histories())
def test_replay_conserves_points(entries):
    state = replay(entries)
    assert state.balance == sum(e.points for e in entries)
    assert all(0 <= lot.remaining <= lot.points for lot in state.lots.values())
    assert sum(lot.remaining for lot in state.lots.values()) - state.debt == state.balance


def _as_row(e: Entry) -> ledger.Row:
    return ledger.Row(
        e.entry_id, e.date, e.customer_id, e.kind, e.points, e.value, e.source_type,
        e.source_id, e.rule_id, e.program_version, e.lot_id, e.available_on, e.expires_on,
        e.partner, e.note,
    )  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(histories())
def test_replay_of_rows_equals_replay_of_entries(entries):
    # The engine replays ledger.Row tuples; they must consume lots like Entry objects.
    a, b = replay(entries), replay([_as_row(e) for e in entries])
    assert (a.balance, a.debt, a.taken) == (b.balance, b.debt, b.taken)
    assert a.lots == b.lots


def test_post_rows_stores_what_post_stores(tmp_path):
    entries = [
        ledger.NewEntry(
            D, "C1", "earn", 120, "purchase", "T1", "r1", 1, None, day(14), day(380), "P", None, 120
        ),
        ledger.NewEntry(D, "C1", "bonus", 50, "purchase", "T1", rule_id="big", value=50),
        ledger.NewEntry(day(2), "C1", "clawback", -20, "purchase", "R1", lot_id=1, note="refund"),
    ]
    dumps = []
    for name in ("post", "rows"):
        conn = db.connect(tmp_path / f"{name}.db")
        with db.transaction(conn):
            if name == "post":
                ledger.post(conn, entries, now="2026-01-01T00:00:00+00:00")
            else:
                rows = [_as_row(Entry(entry_id=i, **e.__dict__)) for i, e in enumerate(entries, 1)]
                ledger.post_rows(conn, rows, now="2026-01-01T00:00:00+00:00")
        dumps.append([tuple(r) for r in conn.execute("SELECT * FROM ledger ORDER BY entry_id")])
        # The CHECK constraint is on again after the bulk insert.
        assert conn.execute("PRAGMA ignore_check_constraints").fetchone()[0] == 0
        assert [ledger.row_from_db(tuple(r)[:15]) for r in conn.execute(
            f"SELECT {ledger._COLUMNS} FROM ledger ORDER BY entry_id"
        )] == [_as_row(e) for e in ledger.entries_for(conn, "C1")]  # fmt: skip
    assert dumps[0] == dumps[1]


def test_post_rows_refuses_unknown_kinds_and_moved_ids(conn):
    bad = ledger.Row(1, D, "C1", "gift", 10, 0, "purchase")
    with db.transaction(conn), pytest.raises(ValueError, match="unknown ledger kind 'gift'"):
        ledger.post_rows(conn, [bad])
    with db.transaction(conn), pytest.raises(RuntimeError, match="ids moved"):
        ledger.post_rows(conn, [ledger.Row(5, D, "C1", "earn", 10, 0, "purchase")])
