"""The set-based report queries give what their plain definitions give.

Random ledgers (lots, expiries posted or not, claw-backs aimed at lots and
spilling over, cancellations, entries dated after the report day but posted
before an expire) are checked on every day against: a replay of every customer
(outstanding points) and the straightforward Python forms the queries replaced
(the candidates to replay).
"""

from __future__ import annotations

import datetime as dt
import random

import pytest

from loyalty_cli import ledger, reports
from loyalty_cli.ledger import NewEntry

DAY0 = dt.date(2026, 1, 1)


def _post(conn, day: int, cid: str, kind: str, points: int, **kw) -> int:
    entry = NewEntry(
        date=DAY0 + dt.timedelta(days=day),
        customer_id=cid,
        kind=kind,
        points=points,
        source_type=kw.pop("source_type", "test"),
        **kw,
    )
    return ledger.post(conn, [entry])[0]


def _random_ledger(conn, seed: int) -> None:
    rnd = random.Random(seed)
    lots: dict[str, list[tuple[int, int, int]]] = {}  # cid -> [(lot id, points, expiry day)]
    for _ in range(140):
        cid = f"C{rnd.randrange(8)}"
        day = rnd.randrange(60)
        roll = rnd.random()
        mine = lots.setdefault(cid, [])
        if roll < 0.45 or not mine:
            points = rnd.randrange(1, 60)
            expiry = day + rnd.randrange(3, 30)
            lot = _post(
                conn,
                day,
                cid,
                rnd.choice(["earn", "bonus", "adjust"]),
                points,
                available_on=DAY0 + dt.timedelta(days=day + rnd.choice([0, 0, 2, 5])),
                expires_on=DAY0 + dt.timedelta(days=expiry),
            )
            mine.append((lot, points, expiry))
        elif roll < 0.65:
            lot, points, expiry = rnd.choice(mine)
            # Sometimes dated before the expiry, sometimes after (posted late).
            when = expiry + rnd.choice([0, 0, 1, 7])
            _post(conn, when, cid, "expire", -rnd.randrange(0, points + 1), lot_id=lot)
        elif roll < 0.8:
            lot, points, _ = rnd.choice(mine)
            # Up to twice the lot: the rest spills into other lots.
            _post(conn, day, cid, "clawback", -rnd.randrange(1, 2 * points + 1), lot_id=lot)
        elif roll < 0.9:
            _post(conn, day, cid, "redeem", -rnd.randrange(1, 40), source_type="redemption")
        else:
            _post(conn, day, cid, "redemption_reversed", rnd.randrange(1, 20))


def _late_before_expire_reference(conn, on: dt.date) -> set[str]:
    first_late: dict[str, int] = {}
    last_expire: dict[str, int] = {}
    for row in conn.execute("SELECT entry_id, customer_id, date, kind FROM ledger"):
        entry_id, cid, date, kind = row
        if date > on.isoformat():
            first_late[cid] = min(first_late.get(cid, entry_id), entry_id)
        elif kind == "expire":
            last_expire[cid] = max(last_expire.get(cid, entry_id), entry_id)
    return {cid for cid, first in first_late.items() if first < last_expire.get(cid, -1)}


def _past_lots_without_expire_reference(conn, on: dt.date) -> set[int]:
    day = on.isoformat()
    past = {
        entry_id
        for (entry_id,) in conn.execute(
            "SELECT entry_id FROM ledger WHERE expires_on IS NOT NULL AND expires_on <= ?", (day,)
        )
    }
    expired = {
        lot_id
        for (lot_id,) in conn.execute(
            "SELECT lot_id FROM ledger WHERE kind = 'expire' AND date <= ?", (day,)
        )
    }
    return past - expired


def _unexpired_reference(conn, on: dt.date) -> set[str]:
    """Customers of lots past expiry, usable, not aimed at by an expire dated <= on and
    not emptied by the outgoing entries aimed at them (posted after, dated <= on)."""
    day = on.isoformat()
    rows = {
        r[0]: r
        for r in conn.execute(
            "SELECT entry_id, customer_id, kind, points, date, available_on, lot_id FROM ledger"
        )
    }
    out = set()
    for lot_id in _past_lots_without_expire_reference(conn, on):
        _, cid, kind, points, date, available_on, _ = rows[lot_id]
        if points <= 0 or kind == "redemption_reversed" or date > day:
            continue
        if (available_on or date) > day:
            continue
        aimed = sum(
            r[3]
            for r in rows.values()
            if r[6] == lot_id
            and r[2] in ("expire", "clawback", "reversal")
            and r[3] < 0
            and r[4] <= day
            and r[0] > lot_id
        )
        if points + aimed > 0:
            out.add(cid)
    return out


def _outstanding_reference(conn, on: dt.date) -> int:
    """The ledger total less what the replay finds held in expired lots of the candidates."""
    day = on.isoformat()
    total = sum(p for (p,) in conn.execute("SELECT points FROM ledger WHERE date <= ?", (day,)))
    reversed_ = {
        cid
        for (cid,) in conn.execute(
            "SELECT customer_id FROM ledger WHERE kind = 'redemption_reversed' AND date <= ?",
            (day,),
        )
    }
    candidates = (
        _unexpired_reference(conn, on) | reversed_ | _late_before_expire_reference(conn, on)
    )
    held = 0
    for entries in ledger.entries_by_customer(conn, sorted(candidates)).values():
        state = ledger.replay(entries, on)
        held += sum(
            lot.remaining
            for lot in state.lots.values()
            if lot.remaining > 0
            and lot.available_on <= on
            and lot.expires_on is not None
            and lot.expires_on <= on
        )
    return total - held


@pytest.mark.parametrize("seed", range(8))
def test_outstanding_and_its_candidates_match_the_plain_definitions(conn, seed):
    _random_ledger(conn, seed)
    seen_lots: list[set[int]] = []
    seen_late: list[set[str]] = []
    for offset in range(-1, 75, 3):
        on = DAY0 + dt.timedelta(days=offset)
        late = reports._late_before_expire(conn, on)
        assert late == _late_before_expire_reference(conn, on)
        seen_late.append(late)
        # The lots the merge query returns are the plain set difference.
        lots = {
            entry_id
            for (entry_id,) in conn.execute(reports.PAST_LOTS_WITHOUT_EXPIRE, {"d": on.isoformat()})
        }
        assert lots == _past_lots_without_expire_reference(conn, on)
        seen_lots.append(lots)
        assert reports._unexpired_lot_customers(conn, on) == _unexpired_reference(conn, on)
        assert reports.outstanding_points(conn, on) == _outstanding_reference(conn, on)
    # The shop exercises the paths: lots waiting for their expire, late entries.
    assert any(seen_lots) and any(seen_late)


def test_outstanding_is_the_replay_of_everyone_on_a_sound_ledger(conn):
    """Expiries posted on their day with what the lot holds, claw-backs spilling over."""
    lot_a = _post(conn, 0, "A", "earn", 50, expires_on=DAY0 + dt.timedelta(days=10))
    _post(conn, 1, "A", "earn", 30, expires_on=DAY0 + dt.timedelta(days=20))
    _post(conn, 2, "A", "clawback", -70, lot_id=lot_a)  # 20 spill into the second lot
    _post(conn, 10, "A", "expire", 0, lot_id=lot_a)
    _post(conn, 5, "B", "earn", 40, expires_on=DAY0 + dt.timedelta(days=12))
    for offset in range(0, 30):
        on = DAY0 + dt.timedelta(days=offset)
        replayed = reports._replayed_balances(conn, on, None)
        assert reports.outstanding_points(conn, on) == sum(a + p for a, p in replayed.values())
