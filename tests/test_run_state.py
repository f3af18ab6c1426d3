"""The state a run stores for each customer (engine/state.py) gives exactly what
rebuilding it from the ledger gives, night after night, and is rebuilt whenever
something else may have changed it."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import buy, customer, event, go, program
from loyalty_cli import db, ledger
from loyalty_cli.engine import run as runmod
from loyalty_cli.engine import state as statemod

REWARDS = """
rewards:
  - id: third-coffee
    name: 3rd coffee
    value: 2.00
    punch_card: {every: 3, when: {category: coffee}}
bonuses:
  review: {points: 10, limit: {count: 2, per: week}}
  signup: 25
  birthday: 40
  referral: {referrer: 30, referee: 15, min_first_purchase: 10.00}
"""
# Short windows and expiries so that a few months of nights cross all of them.
PROGRAMS = {
    "rolling": REWARDS
    + """
pending_days: 3
expiry: {policy: fixed, months: 1}
rules:
  - {id: pastry-double, when: {category: pastry}, multiplier: 2}
  - {id: big, when: {min_amount: 50.00}, bonus: 20}
tiers:
  basis: spend
  window: {rolling_days: 20}
  retain_days: 5
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 60, multiplier: 1.5}
""",
    "lifetime": REWARDS
    + """
expiry: {policy: inactivity, months: 1}
tiers:
  basis: receipts
  window: lifetime
  upgrade: same_receipt
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 3, multiplier: 2}
""",
    "calendar": REWARDS
    + """
pending_days: 2
tiers:
  basis: points
  window: calendar_year
  levels:
    - {id: bronze, min: 0}
    - {id: gold, min: 150, multiplier: 3}
""",
}

TABLES = {
    "ledger": "SELECT entry_id, date, customer_id, kind, points, value, source_type, source_id, "
    "rule_id, program_version, lot_id, available_on, expires_on, partner, note FROM ledger "
    "ORDER BY entry_id",  # all but created_at
    "scored": "SELECT * FROM scored_receipts ORDER BY transaction_id",
    "vouchers": "SELECT * FROM vouchers ORDER BY voucher_id",
    "tiers": "SELECT * FROM tier_history ORDER BY customer_id, date",
}

START = dt.date(2026, 1, 1)
CUSTOMERS = ["C1", "C2", "C3"]

line_st = st.tuples(
    st.integers(100, 7000), st.sampled_from(["pastry", "coffee", "coffee", "bread"])
)
buy_st = st.tuples(
    # a receipt dated `back` days before the night (late exports, some past LATE_DAYS)
    st.just("buy"),
    st.sampled_from(["C1", "C1", "C2", "C3"]),
    st.sampled_from([0, 0, 0, 1, 5, 40]),
    st.lists(line_st, min_size=1, max_size=2),
)
op_st = st.one_of(
    buy_st,
    buy_st,
    buy_st,
    st.tuples(st.just("refund"), st.integers(0, 30), st.integers(10, 100), st.booleans()),
    st.tuples(st.just("more"), st.integers(0, 30), line_st),  # a line added to a receipt
    st.tuples(st.just("event"), st.sampled_from(CUSTOMERS), st.sampled_from(["review", "signup"])),
    st.tuples(st.just("adjust"), st.sampled_from(CUSTOMERS), st.integers(-80, 50)),
)
nights_st = st.lists(
    st.tuples(st.integers(1, 25), st.lists(op_st, max_size=6)), min_size=3, max_size=9
)


@contextmanager
def stored_state(on: bool):
    saved = runmod.STORED_STATE
    runmod.STORED_STATE = on
    try:
        yield
    finally:
        runmod.STORED_STATE = saved


def _shop(directory: Path, name: str) -> db.sqlite3.Connection:
    conn = db.connect(directory / "shop.db")
    program(conn, directory, PROGRAMS[name], effective="2025-12-01")
    customer(conn, "C1", birthday="1990-02-10")
    customer(conn, "C2", referred_by="C1", birthday="1985-03-30")
    customer(conn, "C3", joined_on="2026-01-01")
    return conn


def _night(conn, night: dt.date, ops, receipts: list[tuple[str, str, str]], n: int) -> None:
    """Apply one night's operations (receipts: (tid, customer, date) made so far)."""
    for i, op in enumerate(ops):
        tid = f"N{n:02}-{i}"
        if op[0] == "buy":
            _, cid, back, lines = op
            day = (night - dt.timedelta(days=back)).isoformat()
            buy(conn, tid, cid, day, *lines)
            receipts.append((tid, cid, day))
        elif op[0] == "refund" and receipts:
            _, pick, share, linked = op
            original, cid, _ = receipts[pick % len(receipts)]
            buy(
                conn,
                tid,
                cid,
                night.isoformat(),
                -share * 10,
                refund_of=original if linked else None,
            )
        elif op[0] == "more" and receipts:
            _, pick, line = op
            original, cid, day = receipts[pick % len(receipts)]
            buy(conn, original, cid, day, line)
        elif op[0] == "event":
            _, cid, etype = op
            event(conn, tid, cid, etype, night.isoformat())
        elif op[0] == "adjust":
            _, cid, points = op
            with db.transaction(conn):
                ledger.post(
                    conn, [ledger.NewEntry(night, cid, "adjust", points, "adjustment", tid)]
                )


def _dump(conn) -> dict[str, list[tuple]]:
    return {name: [tuple(r) for r in conn.execute(sql)] for name, sql in TABLES.items()}


def _comparable(text: str) -> dict:
    """A stored state with the orders that carry no meaning taken out."""
    data = json.loads(text)
    data["lots"] = sorted(data["lots"])
    return data


def stale_states(conn) -> list[str]:
    """Customers whose stored state differs from the one rebuilt from their ledger
    entries and scored receipts as of the run that stored it (if it can still be used)."""
    timeline = runmod.versions_timeline(conn)
    key = statemod.timeline_key(timeline)
    stale = []
    rows = conn.execute(
        "SELECT customer_id, entry_id, as_of, state FROM run_state WHERE timeline = ? AND "
        "entry_id = COALESCE((SELECT MAX(entry_id) FROM ledger l "
        "WHERE l.customer_id = run_state.customer_id), 0) ORDER BY customer_id",
        (key,),
    ).fetchall()
    factory = conn.row_factory
    conn.row_factory = None
    try:
        with stored_state(False):
            for cid, _, as_of, text in rows:
                engine = runmod.Engine(
                    conn, timeline, dt.date.fromisoformat(as_of), runmod._Marks(conn), 0
                )
                conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS _batch (customer_id TEXT PRIMARY KEY)"
                )
                data = engine.build([cid], engine.fetch([cid]))
                rebuilt = runmod.CustomerWork(engine, cid, data, runmod.Output(engine)).saved()
                if _comparable(rebuilt[-1]) != _comparable(text):
                    stale.append(cid)
    finally:
        conn.row_factory = factory
    return stale


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PROGRAMS)), nights=nights_st)
def test_stored_state_posts_what_the_rebuilt_state_posts(name, nights):
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        stored, rebuilt = _shop(Path(a), name), _shop(Path(b), name)
        made_a: list[tuple[str, str, str]] = []
        made_b: list[tuple[str, str, str]] = []
        night = START
        for n, (gap, ops) in enumerate(nights):
            night += dt.timedelta(days=gap)
            _night(stored, night, ops, made_a, n)
            _night(rebuilt, night, ops, made_b, n)
            with stored_state(True):
                runmod.run(stored, night)
            with stored_state(False):
                runmod.run(rebuilt, night)
            assert _dump(stored) == _dump(rebuilt), f"night {n} ({night})"
            assert stale_states(stored) == [], f"night {n} ({night})"
        stored.close()
        rebuilt.close()


def _restores(monkeypatch) -> list[str]:
    """Customers started from a stored state, as the run goes."""
    seen: list[str] = []
    real = runmod.CustomerWork._restore

    def spy(self, *args):
        seen.append(self.cid)
        return real(self, *args)

    monkeypatch.setattr(runmod.CustomerWork, "_restore", spy)
    return seen


def test_a_quiet_customer_starts_from_the_stored_state(conn, tmp_path, monkeypatch):
    program(conn, tmp_path, PROGRAMS["rolling"], effective="2025-12-01")
    buy(conn, "T1", "C1", "2026-01-05", 3000)
    buy(conn, "T2", "C2", "2026-01-05", 3000)
    go(conn, "2026-01-05")
    assert conn.execute("SELECT COUNT(*) FROM run_state").fetchone()[0] == 2
    restored = _restores(monkeypatch)
    buy(conn, "T3", "C1", "2026-01-06", 3000)
    go(conn, "2026-01-06")
    assert restored == ["C1"]


def test_what_others_post_since_the_last_run_rebuilds_the_state(conn, tmp_path, monkeypatch):
    program(conn, tmp_path, PROGRAMS["rolling"], effective="2025-12-01")
    buy(conn, "T1", "C1", "2026-01-05", 3000)
    go(conn, "2026-01-10")
    with db.transaction(conn):
        ledger.post(
            conn, [ledger.NewEntry(dt.date(2026, 1, 10), "C1", "redeem", -10, "redemption", "R1")]
        )
    restored = _restores(monkeypatch)
    buy(conn, "T2", "C1", "2026-01-11", 3000)
    go(conn, "2026-01-11")
    assert restored == []  # the redemption is newer than the stored state
    buy(conn, "T3", "C1", "2026-01-12", 3000)
    go(conn, "2026-01-12")
    assert restored == ["C1"]


def test_a_refund_of_a_known_receipt_or_a_late_receipt_rebuilds_it(conn, tmp_path, monkeypatch):
    program(conn, tmp_path, PROGRAMS["rolling"], effective="2025-12-01")
    buy(conn, "T1", "C1", "2026-03-05", 3000)
    buy(conn, "T2", "C2", "2026-03-05", 3000)
    go(conn, "2026-03-10")
    restored = _restores(monkeypatch)
    buy(conn, "R1", "C1", "2026-03-11", -1000, refund_of="T1")
    # older than LATE_DAYS before the last run: the stored receipts may not reach back
    late = dt.date(2026, 3, 10) - dt.timedelta(days=statemod.LATE_DAYS + 1)
    buy(conn, "T3", "C2", late.isoformat(), 3000)
    go(conn, "2026-03-11")
    assert restored == []


def test_a_new_program_version_rebuilds_every_state(conn, tmp_path, monkeypatch):
    program(conn, tmp_path, PROGRAMS["rolling"], effective="2025-12-01")
    buy(conn, "T1", "C1", "2026-01-05", 3000)
    go(conn, "2026-01-05")
    program(conn, tmp_path, PROGRAMS["calendar"], effective="2026-02-01", name="v2.yaml")
    restored = _restores(monkeypatch)
    buy(conn, "T2", "C1", "2026-02-05", 3000)
    go(conn, "2026-02-05")
    assert restored == []


def test_undoing_an_import_forgets_its_customers_states(conn, tmp_path):
    program(conn, tmp_path, PROGRAMS["rolling"], effective="2025-12-01")
    buy(conn, "T1", "C1", "2026-01-05", 3000)
    buy(conn, "T2", "C2", "2026-01-05", 3000)
    go(conn, "2026-01-05")
    with db.transaction(conn):
        runmod.forget_receipts(conn, ["T1"], dt.date(2026, 1, 6))
    left = [r[0] for r in conn.execute("SELECT customer_id FROM run_state")]
    assert left == ["C2"]


def test_the_state_keeps_the_receipts_a_tier_can_still_look_at(tmp_path):
    kept = {}
    for name in ("rolling", "lifetime"):
        (tmp_path / name).mkdir()
        conn = db.connect(tmp_path / name / "shop.db")
        program(conn, tmp_path / name, PROGRAMS[name], effective="2025-12-01")
        for i, day in enumerate(["2026-01-02", "2026-03-01", "2026-05-01"]):
            buy(conn, f"T{i}", "C1", day, 3000)
        go(conn, "2026-05-01")
        since, text = conn.execute("SELECT since, state FROM run_state").fetchone()
        kept[name] = (since, [q.transaction_id for q in statemod.Restored(text).history])
        conn.close()
    # rolling: 20-day window + 5 retained days before since = 2026-05-01 - LATE_DAYS
    assert kept == {"rolling": ("2026-03-31", ["T2"]), "lifetime": ("", ["T0", "T1", "T2"])}


def test_a_late_receipt_at_the_edge_finds_the_receipts_its_tier_needs(tmp_path):
    """Rolling 20 days + 5 retained: a receipt dated `since` (as late as the stored
    state serves) earns at the tier a receipt 24 days earlier gave, both ways."""
    dumps = []
    for on in (True, False):
        (tmp_path / str(on)).mkdir()
        conn = db.connect(tmp_path / str(on) / "shop.db")
        program(conn, tmp_path / str(on), PROGRAMS["rolling"], effective="2025-12-01")
        night = dt.date(2026, 4, 1)
        since = night - dt.timedelta(days=statemod.LATE_DAYS)
        buy(conn, "T0", "C1", (since - dt.timedelta(days=24)).isoformat(), 7000)
        with stored_state(on):
            runmod.run(conn, night)
            buy(conn, "T1", "C1", since.isoformat(), 1000)
            runmod.run(conn, night + dt.timedelta(days=1))
        dumps.append(_dump(conn))
        earned = conn.execute("SELECT tier FROM scored_receipts WHERE transaction_id = 'T1'")
        assert earned.fetchone()[0] == "silver"
        conn.close()
    assert dumps[0] == dumps[1]
