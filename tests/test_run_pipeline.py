"""The two-process run (a worker computes batch i while the run reads i+1 and writes
i-1) posts exactly what the one-process run posts, and fails like it."""

from __future__ import annotations

import multiprocessing

import pytest

from engine_helpers import buy, customer, event, go, program
from loyalty_cli import db, workers
from loyalty_cli.engine import pipeline as pipemod
from loyalty_cli.engine.customer import CustomerWork
from loyalty_cli.errors import LoyaltyError
from test_run_bulk import PROGRAM as BULK_PROGRAM

# the bulk-run test shop, plus a punch card
PROGRAM = (
    BULK_PROGRAM
    + """rewards:
  - id: third-coffee
    name: 3rd coffee
    value: 2.00
    punch_card: {every: 3, when: {category: coffee}}
"""
)

TABLES = {
    "ledger": "SELECT date, customer_id, kind, points, value, source_type, source_id, rule_id, "
    "program_version, lot_id, available_on, expires_on, partner, note FROM ledger "
    "ORDER BY entry_id",
    "scored": "SELECT transaction_id, customer_id, date, amount, tax, lines, points, tier, "
    "version, punches FROM scored_receipts ORDER BY transaction_id",
    "vouchers": "SELECT * FROM vouchers ORDER BY voucher_id",
    "tiers": "SELECT * FROM tier_history ORDER BY customer_id, date",
}


def _history(conn, tmp_path):
    program(conn, tmp_path, PROGRAM)
    # Referrers sort after their referees and before them, in other batches.
    customer(conn, "C00", birthday="1990-02-10")
    for n in range(1, 24):
        customer(conn, f"C{n:02}", referred_by=f"C{(n * 7) % 24:02}", birthday="1985-01-20")
    for n in range(24):
        cid = f"C{n:02}"
        for i in range(n % 5 + 1):
            day = f"2026-01-{(n + 3 * i) % 27 + 1:02}"
            buy(conn, f"T{n:02}{i}", cid, day, (1500 + 700 * i, "pastry"), (900, "coffee"))
        if n % 4 == 0:
            buy(conn, f"R{n:02}", cid, "2026-01-28", -800, refund_of=f"T{n:02}0")
        if n % 3 == 0:
            event(conn, f"E{n:02}", cid, "review", "2026-01-15")


def _posted(tmp_path, monkeypatch, pipelined: bool, name: str):
    monkeypatch.setattr(pipemod, "BATCH", 3)
    monkeypatch.setattr(pipemod, "PIPELINE_MIN_BATCHES", 2 if pipelined else 10**9)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    conn = db.connect(tmp_path / f"{name}.db")
    _history(conn, tmp_path)
    results = [go(conn, "2026-01-20").to_dict()]
    buy(conn, "T99", "C05", "2026-01-30", 4000)
    results.append(go(conn, "2026-03-31").to_dict())
    for r in results:
        r.pop("run_id")
    dump = {name: [tuple(r) for r in conn.execute(sql)] for name, sql in TABLES.items()}
    return results, dump


def test_pipelined_run_posts_what_the_sequential_run_posts(tmp_path, monkeypatch):
    sequential = _posted(tmp_path, monkeypatch, False, "seq")
    pipelined = _posted(tmp_path, monkeypatch, True, "pipe")
    assert pipelined == sequential
    results, dump = pipelined
    kinds = {row[2] for row in dump["ledger"]}
    assert {"earn", "bonus", "clawback", "expire"} <= kinds
    assert any(
        row[5] == "referral" and row[13] and "referred C" in row[13] for row in dump["ledger"]
    )
    assert dump["vouchers"] and dump["tiers"]
    # Referrers paid late are worked on twice, counted once.
    assert results[0]["customers"] == 24
    assert not multiprocessing.active_children()


def test_a_failure_in_the_worker_is_raised_and_rolls_back(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(pipemod, "BATCH", 3)
    monkeypatch.setattr(pipemod, "PIPELINE_MIN_BATCHES", 2)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    _history(conn, tmp_path)
    real = CustomerWork.process

    def boom(self):
        if self.cid == "C10":
            raise LoyaltyError("customer C10 cannot be scored", field="x")
        real(self)

    monkeypatch.setattr(CustomerWork, "process", boom)
    with pytest.raises(LoyaltyError, match="customer C10 cannot be scored") as info:
        go(conn, "2026-01-20")
    assert info.value.field == "x"
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert not multiprocessing.active_children()


@pytest.mark.parametrize("customers", [1, 250, 750, 751, 4534, 16000, 86592])
def test_batches_pipeline_a_nightly_run_and_keep_a_small_one_in_one_process(customers):
    size = pipemod.batch_size(customers)
    batches = -(-customers // size)
    assert pipemod.MIN_BATCH <= size <= pipemod.BATCH or customers < pipemod.MIN_BATCH
    if customers > pipemod.MIN_BATCH * (pipemod.PIPELINE_MIN_BATCHES - 1):
        assert batches >= pipemod.PIPELINE_MIN_BATCHES  # a nightly's few thousand: two processes
    else:
        assert batches < pipemod.PIPELINE_MIN_BATCHES  # forking costs more than it saves
    if customers >= pipemod.BATCH * pipemod.PIPELINE_BATCHES:
        assert size == pipemod.BATCH
