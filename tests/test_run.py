"""`run`: idempotent, incremental, atomic, deterministic; CLI; property tests."""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import buy, entries, event, fail_after_first_write, go, program
from loyalty_cli import db, ledger
from loyalty_cli.engine import run as runmod

FULL = """
pending_days: 7
expiry: {policy: fixed, months: 2}
rules:
  - {id: pastry-double, when: {category: pastry}, multiplier: 2}
  - {id: big, when: {min_amount: 50.00}, bonus: 20}
bonuses:
  review: {points: 10, limit: {count: 2, per: week}}
  signup: 25
tiers:
  basis: spend
  window: {rolling_days: 60}
  levels:
    - {id: bronze, min: 0}
    - {id: silver, min: 100, multiplier: 1.5}
"""


def test_twice_is_once(conn, tmp_path):
    program(conn, tmp_path, FULL)
    buy(conn, "T1", "C1", "2026-01-05", (6000, "pastry"))
    event(conn, "E1", "C1", "signup", "2026-01-05")
    first = go(conn, "2026-01-31")
    assert first.receipts == 1
    assert dict(first.entries) == {"earn": 1, "bonus": 2}
    before = entries(conn)
    second = go(conn, "2026-01-31")
    assert (second.receipts, dict(second.entries)) == (0, {})
    assert entries(conn) == before
    assert (
        conn.execute("SELECT COUNT(*) FROM runs WHERE finished_at IS NOT NULL").fetchone()[0] == 2
    )
    assert db.get_meta(conn, "run.as_of") == "2026-01-31"


def test_crash_leaves_nothing(conn, tmp_path, monkeypatch):
    program(conn, tmp_path, FULL)
    buy(conn, "T1", "C1", "2026-01-05", 6000)
    buy(conn, "T2", "C2", "2026-01-05", 6000)

    fail_after_first_write(monkeypatch)
    with pytest.raises(RuntimeError):
        go(conn, "2026-01-31")
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM scored_receipts").fetchone()[0] == 0
    assert db.get_meta(conn, "run.as_of") is None
    monkeypatch.undo()
    go(conn, "2026-01-31")
    assert len(entries(conn)) == 4


def test_no_program_is_an_error(conn):
    from loyalty_cli.errors import NoProgramError

    with pytest.raises(NoProgramError):
        go(conn, "2026-01-31")


def test_incremental_touches_only_new_customers(conn, tmp_path):
    program(conn, tmp_path, FULL)
    for i in range(20):
        buy(conn, f"T{i}", f"C{i}", "2026-01-05", 1000)
    assert go(conn, "2026-01-10").customers == 20
    buy(conn, "X1", "C3", "2026-01-11", 1000)
    result = go(conn, "2026-01-12")
    assert (result.customers, result.receipts) == (1, 1)


# --- CLI -------------------------------------------------------------------------


def test_cli_run_and_quiet(cli, conn, tmp_path):
    program(conn, tmp_path, FULL)
    buy(conn, "T1", "C1", "2026-01-05", 1000)
    result = cli("run", "--as-of", "2026-01-31")
    assert result.exit_code == 0, result.output
    assert "1 receipt, 1 customer;" in result.stdout and "earn 1" in result.stdout
    again = cli("run", "--as-of", "2026-01-31", "--quiet")
    assert (again.exit_code, again.stdout) == (0, "")


def test_cli_run_without_program(cli):
    result = cli("run", "--as-of", "2026-01-31")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no program applied yet")


def test_cli_bad_date(cli):
    result = cli("run", "--as-of", "31.01.2026")
    assert result.exit_code == 2


# --- properties -------------------------------------------------------------------

BASE_DAY = dt.date(2026, 1, 1)

receipt_st = st.tuples(
    st.sampled_from(["C1", "C2", "C3"]),
    st.integers(0, 150),  # day offset
    st.lists(
        st.tuples(st.integers(1, 9000), st.sampled_from(["pastry", "bread"])),
        min_size=1,
        max_size=3,
    ),
    st.integers(0, 100),  # refund share in percent (0: no refund)
)
event_st = st.tuples(
    st.sampled_from(["C1", "C2", "C3"]), st.integers(0, 150), st.sampled_from(["review", "signup"])
)


def _build(directory: Path, receipts, events, redeem_day: int | None) -> db.sqlite3.Connection:
    conn = db.connect(directory / "p.db")
    program(conn, directory, FULL)
    for i, (cid, offset, lines, refund) in enumerate(receipts):
        day = (BASE_DAY + dt.timedelta(days=offset)).isoformat()
        buy(conn, f"T{i:03}", cid, day, *lines)
        if refund:
            total = sum(a for a, _ in lines)
            back = max(1, total * refund // 100)
            refund_day = (BASE_DAY + dt.timedelta(days=offset + 3)).isoformat()
            buy(conn, f"R{i:03}", cid, refund_day, -back, refund_of=f"T{i:03}")
    for i, (cid, offset, etype) in enumerate(events):
        event(conn, f"E{i:03}", cid, etype, (BASE_DAY + dt.timedelta(days=offset)).isoformat())
    return conn


def _canonical(conn) -> dict[str, list[tuple]]:
    """Entries per customer in posting order, entry ids replaced by their position."""
    out: dict[str, list[tuple]] = {}
    position: dict[int, tuple[str, int]] = {}
    for e in ledger.entries_by_customer(conn).values():
        for i, entry in enumerate(e):
            position[entry.entry_id] = (entry.customer_id, i)
    for cid, items in ledger.entries_by_customer(conn).items():
        rows = []
        for entry in items:
            source = entry.source_id
            if entry.source_type == "expiry" and source and source.isdigit():
                source = str(position[int(source)])
            rows.append(
                (
                    entry.date,
                    entry.kind,
                    entry.points,
                    entry.source_type,
                    source,
                    entry.rule_id,
                    position.get(entry.lot_id) if entry.lot_id else None,
                    entry.available_on,
                    entry.expires_on,
                )
            )
        out[cid] = rows
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    receipts=st.lists(receipt_st, max_size=12),
    events=st.lists(event_st, max_size=5),
    split=st.integers(0, 200),
)
def test_run_d1_then_d2_equals_run_d2(receipts, events, split):
    d1 = BASE_DAY + dt.timedelta(days=split)
    d2 = BASE_DAY + dt.timedelta(days=260)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        conn_a = _build(Path(a), receipts, events, None)
        runmod.run(conn_a, d1)
        runmod.run(conn_a, d2)
        conn_b = _build(Path(b), receipts, events, None)
        runmod.run(conn_b, d2)
        assert _canonical(conn_a) == _canonical(conn_b)
        _check_invariants(conn_b, d2)
        conn_a.close()
        conn_b.close()


def _check_invariants(conn, as_of: dt.date) -> None:
    by_customer = ledger.entries_by_customer(conn)
    for cid, items in by_customer.items():
        state = ledger.replay(items)
        total = sum(e.points for e in items)
        # balance = sum of the ledger, and every point is available or pending
        assert state.balance == total == ledger.balance(conn, cid)
        if state.debt == 0:
            assert state.available(as_of) + state.pending(as_of) == total
        assert not state.expired_unposted(as_of)
        lots = {e.entry_id: e for e in items if e.is_lot}
        expired: dict[int, int] = {}
        for e in items:
            if e.kind == "expire" and e.lot_id is not None:
                expired[e.lot_id] = expired.get(e.lot_id, 0) - e.points
        for lot_id, amount in expired.items():
            assert amount <= lots[lot_id].points
    # claw-backs never exceed what the original receipt earned
    rows = conn.execute(
        "SELECT p.refund_of, SUM(l.points) FROM ledger l JOIN purchases p "
        "ON p.transaction_id = l.source_id AND l.kind = 'clawback' "
        "WHERE p.refund_of IS NOT NULL GROUP BY p.refund_of"
    ).fetchall()
    for original, clawed in rows:
        earned = conn.execute(
            "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE source_type = 'purchase' "
            "AND source_id = ? AND kind IN ('earn', 'bonus')",
            (original,),
        ).fetchone()[0]
        assert -clawed <= earned


@settings(max_examples=30, deadline=None)
@given(receipts=st.lists(receipt_st, max_size=10), redeem=st.integers(1, 400))
def test_redemptions_and_expiry_invariants(receipts, redeem):
    with tempfile.TemporaryDirectory() as a:
        conn = _build(Path(a), receipts, [], None)
        runmod.run(conn, BASE_DAY + dt.timedelta(days=60))
        with db.transaction(conn):
            ledger.post(
                conn,
                [
                    ledger.NewEntry(
                        BASE_DAY + dt.timedelta(days=61),
                        "C1",
                        "redeem",
                        -redeem,
                        "redemption",
                        "RX",
                    )
                ],
            )
        runmod.run(conn, BASE_DAY + dt.timedelta(days=400))
        _check_invariants(conn, BASE_DAY + dt.timedelta(days=400))
        conn.close()


def test_a_run_dated_after_today_warns_with_quiet_too(cli, conn, tmp_path):
    import datetime as dt

    program(conn, tmp_path, FULL)
    ahead = (dt.date.today() + dt.timedelta(days=15)).isoformat()
    result = cli("run", "--as-of", ahead, "--quiet")
    assert result.exit_code == 0
    assert result.stderr.startswith(f"Warning: --as-of {ahead} is after today (")
    today = cli("run", "--quiet")
    assert (today.exit_code, today.stderr) == (0, "")
