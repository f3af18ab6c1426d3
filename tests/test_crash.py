"""Crash safety: `import` and `run` killed with SIGKILL at several moments, then
rerun, end with the same ledger as an uninterrupted run (DESIGN: "a kill at any
point leaves the database as before the command or after it")."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loyalty_cli import db
from loyalty_cli.checks import check_database
from loyalty_cli.programs_store import apply_program

ROOT = Path(__file__).resolve().parents[1]
PROGRAM = ROOT / "programs" / "boutique.yaml"  # tiers, rules, pending, fixed expiry
LINES = 4000
AS_OF = "2026-03-31"
# Where in the command's wall-clock time to kill it (fractions of a clean run):
# start-up, mid-way, near the commit.
KILL_AT = (0.35, 0.65, 0.92)
RUN_KILL_AT = (0.5, 0.9)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def write_purchases(path: Path, lines: int = LINES) -> None:
    """Receipts of 1-2 lines over 90 days, 300 customers, some refunds."""
    start = dt.date(2026, 1, 1)
    out = ["transaction_id,line_no,customer_id,date,amount,category,refund_of"]
    n = 0
    while len(out) <= lines:
        n += 1
        day = (start + dt.timedelta(days=n % 90)).isoformat()
        customer = f"C{(n * 7919) % 300:04d}"
        out.append(f"T{n:06d},1,{customer},{day},{(n * 37) % 9000 / 100 + 1:.2f},pastry,")
        if n % 3 == 0:
            out.append(f"T{n:06d},2,{customer},{day},{(n * 13) % 5000 / 100 + 1:.2f},tops,")
        if n % 50 == 0 and n > 100:
            old = n - 90
            out.append(f"R{n:06d},1,C{(old * 7919) % 300:04d},{day},-5.00,,T{old:06d}")
    path.write_text("\n".join(out[: lines + 1]) + "\n")


def loyalty(db_file: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "loyalty_cli", "--db", str(db_file), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )


def finish(proc: subprocess.Popen) -> float:
    started = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return time.monotonic() - started


def timed(db_file: Path, *args: str) -> float:
    started = time.monotonic()
    finish(loyalty(db_file, *args))
    return time.monotonic() - started


def kill_after(db_file: Path, seconds: float, *args: str) -> int | None:
    """Start the command, SIGKILL it after `seconds`; its exit status (None if it
    finished first)."""
    proc = loyalty(db_file, *args)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return proc.returncode


def kill_mid(source: Path, target: Path, seconds: float, *args: str) -> int | None:
    """kill_after on a fresh copy of `source`; when the command finished before
    the kill (the machine got faster than when the reference was timed), again
    on a fresh copy with half the delay, up to three times."""
    for _ in range(3):
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copy(source, target)
        status = kill_after(target, seconds, *args)
        if status == -signal.SIGKILL:
            break
        seconds /= 2
    return status


def snapshot(db_file: Path) -> dict[str, object]:
    conn = db.connect(db_file)
    try:
        return {
            "balances": conn.execute(
                "SELECT customer_id, SUM(points) FROM ledger GROUP BY 1 ORDER BY 1"
            ).fetchall(),
            "entries": conn.execute(
                "SELECT date, customer_id, kind, points, source_type, source_id, lot_id "
                "FROM ledger ORDER BY entry_id"
            ).fetchall(),
            "purchases": conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0],
            "imports": conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0],
        }
    finally:
        conn.close()


def state_after_kill(db_file: Path) -> tuple[int, int]:
    """(purchases, ledger entries) of a killed database, after checking it is sound."""
    conn = db.connect(db_file)
    try:
        assert check_database(conn) == []
        return (
            conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0],
            conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0],
        )
    finally:
        conn.close()


def rerun(db_file: Path, import_file: Path | None = None) -> None:
    """The re-run after the crash, in-process (the library the CLI calls)."""
    from loyalty_cli.engine.run import run
    from loyalty_cli.importing import import_files

    conn = db.connect(db_file)
    try:
        if import_file is not None:
            import_files(conn, "purchases", [import_file])
        run(conn, dt.date.fromisoformat(AS_OF))
    finally:
        conn.close()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A fresh database with the program, the big file, and the clean reference."""
    base = tmp_path_factory.mktemp("crash")
    big = base / "big.csv"
    write_purchases(big)
    empty = base / "empty.db"
    conn = db.connect(empty)
    apply_program(conn, PROGRAM, effective=dt.date(2024, 1, 1))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    ref = base / "ref.db"
    shutil.copy(empty, ref)
    import_seconds = timed(ref, "import", "purchases", str(big), "--quiet")
    imported = base / "imported.db"
    conn = db.connect(ref)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copy(ref, imported)
    run_seconds = timed(ref, "run", "--as-of", AS_OF)
    reference = snapshot(ref)
    assert reference["purchases"] == LINES
    assert len(reference["entries"]) > LINES // 2
    return {
        "base": base,
        "big": big,
        "empty": empty,
        "imported": imported,
        "reference": reference,
        "import_seconds": import_seconds,
        "run_seconds": run_seconds,
    }


@pytest.mark.parametrize("fraction", KILL_AT)
def test_import_killed_then_rerun_equals_a_clean_run(setup, fraction, tmp_path):
    target = tmp_path / "t.db"
    status = kill_mid(
        setup["empty"],
        target,
        setup["import_seconds"] * fraction,
        "import",
        "purchases",
        str(setup["big"]),
    )
    if fraction < 0.9:
        assert status == -signal.SIGKILL  # it was really killed, not finished
    purchases, entries = state_after_kill(target)
    assert purchases in (0, LINES)  # all or nothing
    assert entries == 0
    rerun(target, import_file=setup["big"])
    after = snapshot(target)
    assert after["balances"] == setup["reference"]["balances"]
    assert after["entries"] == setup["reference"]["entries"]
    assert after["purchases"] == LINES and after["imports"] == 1


@pytest.mark.parametrize("fraction", RUN_KILL_AT)
def test_run_killed_then_rerun_equals_a_clean_run(setup, fraction, tmp_path):
    target = tmp_path / "t.db"
    status = kill_mid(
        setup["imported"], target, setup["run_seconds"] * fraction, "run", "--as-of", AS_OF
    )
    if fraction < 0.9:
        assert status == -signal.SIGKILL
    purchases, entries = state_after_kill(target)
    assert purchases == LINES
    assert entries in (0, len(setup["reference"]["entries"]))  # all or nothing
    rerun(target)
    after = snapshot(target)
    assert after["balances"] == setup["reference"]["balances"]
    assert after["entries"] == setup["reference"]["entries"]


def test_sigterm_during_a_nightly_rolls_back_and_releases_the_lock(setup, tmp_path):
    """cron's timeout or a shutdown sends SIGTERM: the file's transaction rolls
    back, the lock row is deleted, the file stays in the inbox."""
    from test_concurrency import wait_for_write_lock

    target = tmp_path / "t.db"
    shutil.copy(setup["empty"], target)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    shutil.copy(setup["big"], inbox / "day.csv")
    proc = loyalty(target, "nightly", "--inbox", str(inbox), "--as-of", AS_OF)
    wait_for_write_lock(target, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert err.decode().startswith("Error: nightly stopped by SIGTERM; the step in progress")
    conn = db.connect(target)
    try:
        assert conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0
    finally:
        conn.close()
    assert (inbox / "day.csv").exists()
