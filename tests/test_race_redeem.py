"""Four tills racing for the same last points: exactly one redemption wins.

Real processes against one SQLite file: the check and the debit run under
one BEGIN IMMEDIATE lock, so the losers wait, then see the winner's debit.
"""

from __future__ import annotations

import os
import subprocess
import sys

from loyalty_cli import db
from test_rewards_support import D, apply, earn


def test_four_processes_race_for_one_coffee(db_file, tmp_path):
    conn = db.connect(db_file)
    apply(conn, tmp_path)
    earn(conn, "C1", 140, D)  # enough for exactly one coffee (100)
    conn.close()

    env = dict(os.environ, NO_COLOR="1")
    cmd = [sys.executable, "-m", "loyalty_cli", "--db", str(db_file), "redeem", "C1", "coffee"]
    procs = [
        subprocess.Popen(
            [*cmd, "--date", "2026-03-10"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1, 1, 1], results
    losers = [err for code, _, err in results if code == 1]
    assert losers == ["Error: not enough points: C1 has 40 available, free coffee costs 100\n"] * 3

    conn = db.connect(db_file)
    try:
        redeems = conn.execute("SELECT points FROM ledger WHERE kind = 'redeem'").fetchall()
        assert [r[0] for r in redeems] == [-100]
        assert conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1
    finally:
        conn.close()
