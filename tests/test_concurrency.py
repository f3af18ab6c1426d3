"""Safe beside cron: readers never fail during an import, a redemption waits for
the import's transaction, and two nightlies never run at once."""

from __future__ import annotations

import datetime as dt
import sqlite3
import time
from pathlib import Path

import pytest

from loyalty_cli import db
from loyalty_cli.errors import LockedError
from loyalty_cli.nightly import nightly
from loyalty_cli.programs_store import apply_program
from loyalty_cli.rewards import adjust, redeem
from test_crash import LINES, PROGRAM, finish, loyalty, write_purchases

DAY = dt.date(2026, 3, 31)


@pytest.fixture
def shop(db_file: Path, tmp_path: Path) -> dict[str, Path]:
    """Program applied, customer C0001 known with 500 points, a big file ready."""
    conn = db.connect(db_file)
    try:
        apply_program(conn, PROGRAM, effective=dt.date(2024, 1, 1))
        with db.transaction(conn):
            conn.execute("INSERT INTO customers (customer_id, name) VALUES ('C0001', 'Ann')")
        adjust(conn, "C0001", 500, "opening balance", dt.date(2026, 1, 1))
    finally:
        conn.close()
    big = tmp_path / "big.csv"
    write_purchases(big)
    return {"db": db_file, "big": big}


def wait_for_write_lock(db_file: Path, proc, timeout: float = 30) -> None:
    """Until another connection holds the write lock (the import's transaction)."""
    probe = sqlite3.connect(db_file, timeout=0, isolation_level=None)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the command finished before it was caught writing"
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError:
                return
            time.sleep(0.01)
        raise AssertionError("the command never took the write lock")
    finally:
        probe.close()


def test_customer_show_never_fails_during_an_import(shop, cli):
    proc = loyalty(shop["db"], "import", "purchases", str(shop["big"]), "--quiet")
    wait_for_write_lock(shop["db"], proc)
    shown = 0
    while proc.poll() is None:
        result = cli("customer", "show", "C0001", "--as-of", DAY.isoformat())
        assert result.exit_code == 0, result.stderr
        assert "C0001" in result.stdout
        shown += 1
    finish(proc)
    assert shown >= 3  # it really ran beside the import


def test_report_kpi_reads_one_state_side_by_side_during_an_import(shop, cli):
    """The KPI queries run on three connections at once: during a long import
    they never fail, and each report is the state before the import's commit or
    the one after it, never a mix of the two."""
    kpi = ("report", "kpi", "--from", "2026-03-01", "--to", DAY.isoformat(), "-f", "json")
    before = cli(*kpi)
    assert before.exit_code == 0, before.stderr
    proc = loyalty(shop["db"], "import", "purchases", str(shop["big"]), "--quiet")
    wait_for_write_lock(shop["db"], proc)
    seen = []
    while proc.poll() is None:
        result = cli(*kpi)
        assert result.exit_code == 0, result.stderr
        seen.append(result.stdout)
    finish(proc)
    after = cli(*kpi).stdout
    assert after != before.stdout  # the import changed the figures
    assert len(seen) >= 2 and set(seen) <= {before.stdout, after}


def wait_for_lock_row(db_file: Path, proc, timeout: float = 30) -> None:
    """Until the import has taken the nightly lock (its row is committed): the
    write lock held after that is the import's own transaction."""
    probe = sqlite3.connect(db_file, isolation_level=None)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the command finished before it took the lock"
            if probe.execute("SELECT COUNT(*) FROM locks").fetchone()[0]:
                return
            time.sleep(0.01)
        raise AssertionError("the command never took the lock")
    finally:
        probe.close()


def test_a_redemption_during_an_import_waits_and_succeeds(shop):
    proc = loyalty(shop["db"], "import", "purchases", str(shop["big"]), "--quiet")
    wait_for_lock_row(shop["db"], proc)
    wait_for_write_lock(shop["db"], proc)
    conn = db.connect(shop["db"])
    try:
        started = time.monotonic()
        done = redeem(conn, "C0001", "coffee", DAY)
        waited = time.monotonic() - started
        assert done["points"] == 100 and done["balance_after"] == 400
        # It got the write lock only after the import committed.
        assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == LINES
        assert waited > 0.05
    finally:
        conn.close()
    finish(proc)


def test_two_nightlies_never_run_at_once(shop, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "day.csv").write_bytes(shop["big"].read_bytes())
    args = ("nightly", "--inbox", str(inbox), "--as-of", DAY.isoformat())
    first = loyalty(shop["db"], *args, "--wait", "60")
    conn = db.connect(shop["db"])
    try:
        deadline = time.monotonic() + 30
        while conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 0:
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.01)
        # One that may not wait fails at once, naming the holder (in-process
        # calls: no interpreter start-up, so the first is surely still running).
        with pytest.raises(LockedError) as info:
            nightly(shop["db"], inbox, DAY, wait=0)
        assert str(info.value).startswith(f"another nightly (pid {first.pid} on ")
        # One that may wait starts after the first is done: nothing left for it.
        assert first.poll() is None
        third = nightly(shop["db"], inbox, DAY, wait=60)
        finish(first)
        assert third.exit_code == 0 and third.files == []
        assert third.lines()[0] == f"{inbox}: no new files"
        assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == LINES
        assert conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 0
        runs = conn.execute("SELECT started_at, finished_at FROM runs ORDER BY run_id").fetchall()
        assert len(runs) == 2 and runs[0][1] <= runs[1][0]
    finally:
        conn.close()


def _open_new(path: str, errors: object) -> None:
    try:
        db.connect(path).close()
    except Exception as exc:  # noqa: BLE001 - reported to the test
        errors.put(repr(exc))  # type: ignore[attr-defined]


def test_processes_opening_a_new_file_at_once_all_get_it(tmp_path: Path) -> None:
    """Each one creates or finds the schema; none takes a half-made file for another
    program's, none fails to switch it to WAL while another one does."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    for trial in range(40):
        path = str(tmp_path / f"new{trial}.db")
        procs = [ctx.Process(target=_open_new, args=(path, errors)) for _ in range(5)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(30)
        conn = db.connect(path)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
        conn.close()
    assert errors.empty(), errors.get()
