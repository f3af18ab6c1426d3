"""`loyalty nightly`: imports an inbox in a fixed order, moves files, runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from pathlib import Path

import pytest

from loyalty_cli import db
from loyalty_cli.lock import hold_lock
from loyalty_cli.nightly import inbox_files, move_no_clobber, nightly

PROGRAM = """\
program: Nightly Test
currency: EUR
earn: {per_currency_unit: 1, rounding: floor}
"""
AS_OF = "2026-11-23"
HEADER = "transaction_id,customer_id,date,amount\n"


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def program(cli, tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM)
    result = cli("program", "apply", path, "--effective", "2026-01-01")
    assert result.exit_code == 0, result.stderr


def put(inbox: Path, name: str, text: str) -> Path:
    path = inbox / name
    path.write_text(text)
    return path


def points(db_file: Path) -> dict[str, int]:
    conn = db.connect(db_file)
    try:
        return dict(
            conn.execute("SELECT customer_id, SUM(points) FROM ledger GROUP BY 1 ORDER BY 1")
        )
    finally:
        conn.close()


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def test_nightly_imports_in_kind_order_moves_files_and_runs(cli, program, inbox, db_file):
    put(inbox, "a-day.csv", HEADER + "T1,C1,2026-11-01,12.50\nT2,C2,2026-11-02,30.00\n")
    put(inbox, "customers-2026-11-22.csv", "customer_id,name\nC1,Ann\nC2,Bob\n")
    put(inbox, ".still-uploading.csv", HEADER)
    put(inbox, "notes.txt", "not a csv")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "customers-2026-11-22.csv: customers, 2 inserted, 0 duplicates, 0 rejected",
        "a-day.csv: purchases, 2 inserted, 0 duplicates, 0 rejected",
    ]
    assert lines[2].startswith("run as of 2026-11-23: ")
    assert len(lines) == 3
    assert result.stderr == ""
    assert listing(inbox) == [".still-uploading.csv", "done", "notes.txt"]
    assert listing(inbox / "done") == ["a-day.csv", "customers-2026-11-22.csv"]
    assert points(db_file) == {"C1": 12, "C2": 30}


def test_kind_order_and_name_order(inbox):
    for name in ("b.csv", "redemptions-1.csv", "events-1.csv", "a.csv", "customers-2.csv"):
        put(inbox, name, HEADER)
    put(inbox, "customers-1.csv", HEADER)
    assert [(k, p.name) for k, p in inbox_files(inbox)] == [
        ("customers", "customers-1.csv"),
        ("customers", "customers-2.csv"),
        ("purchases", "a.csv"),
        ("purchases", "b.csv"),
        ("events", "events-1.csv"),
        ("redemptions", "redemptions-1.csv"),
    ]


def test_already_imported_file_is_skipped_and_moved(cli, program, inbox, db_file):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 0
    put(inbox, "day-again.csv", HEADER + "T1,C1,2026-11-01,10.00\n")  # same content
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == (
        "day-again.csv: already imported (import 1), moved to done/"
    )
    assert listing(inbox / "done") == ["day-again.csv", "day.csv"]
    assert points(db_file) == {"C1": 10}


def test_a_file_imported_before_its_report_is_reported_on_the_next_night(
    cli, program, inbox, db_file
):
    """Imported (its rows rejected) but still in the inbox: the nightly that
    committed it was killed before writing its rejects, or it was imported by
    hand. The next nightly writes the rejects file and exits 3, so cron hears."""
    day = put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\nT2,C2,2026-11-01,abc\n")
    assert cli("import", "purchases", day, "--quiet").exit_code == 3
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert result.stdout.splitlines()[0] == (
        "day.csv: already imported (import 1), moved to done/; 1 rejected "
        f"(see {inbox / 'done' / 'day.rejects.csv'})"
    )
    assert listing(inbox / "done") == ["day.csv", "day.rejects.csv"]
    rejects = (inbox / "done" / "day.rejects.csv").read_text().splitlines()
    assert rejects[1].startswith("3,amount,not an amount: 'abc' is not a number")


def test_a_name_clash_in_done_gets_a_suffix_never_overwrites(cli, program, inbox):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 0
    put(inbox, "day.csv", HEADER + "T2,C1,2026-11-02,5.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 0
    done = inbox / "done"
    assert listing(done) == ["day-1.csv", "day.csv"]
    assert "T1" in (done / "day.csv").read_text()
    assert "T2" in (done / "day-1.csv").read_text()


def test_move_no_clobber_counts_up(tmp_path):
    (tmp_path / "d").mkdir()
    for n in range(3):
        src = tmp_path / "x.rejects.csv"
        src.write_text(str(n))
        move_no_clobber(src, tmp_path / "d")
    assert listing(tmp_path / "d") == ["x-1.rejects.csv", "x-2.rejects.csv", "x.rejects.csv"]


def test_rejected_rows_exit_3_and_a_rejects_file(cli, program, inbox, db_file):
    put(
        inbox,
        "day.csv",
        HEADER + "T1,C1,2026-11-01,10.00\nT2,C2,2026-11-01,abc\n=HYPERLINK(1),C3,2026-11-01,x\n",
    )
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    rejects_file = inbox / "done" / "day.rejects.csv"
    assert result.stdout.splitlines()[0] == (
        f"day.csv: purchases, 1 inserted, 0 duplicates, 2 rejected (see {rejects_file})"
    )
    assert rejects_file.read_text() == (
        "line,field,reason,raw\n"
        "3,amount,not an amount: 'abc' is not a number,\"T2,C2,2026-11-01,abc\"\n"
        "4,amount,not an amount: 'x' is not a number,\"'=HYPERLINK(1),C3,2026-11-01,x\"\n"
    )
    assert points(db_file) == {"C1": 10}


def test_quiet_is_silent_on_success(cli, program, inbox):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--quiet")
    assert result.exit_code == 0
    assert result.stdout == "" and result.stderr == ""
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--quiet")  # nothing new
    assert (result.exit_code, result.stdout, result.stderr) == (0, "", "")


def test_quiet_still_reports_rejects_on_stderr(cli, program, inbox):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\nT2,C2,2026-11-01,abc\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--quiet")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert result.stderr == f"day.csv: 1 row rejected, see {inbox / 'done' / 'day.rejects.csv'}\n"


def test_a_file_that_cannot_be_imported_stops_the_night(cli, program, inbox, db_file):
    put(inbox, "a.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    put(inbox, "b.csv", "transaction_id,date,amount\nT2,2026-11-01,5.00\n")
    put(inbox, "c.csv", HEADER + "T3,C1,2026-11-01,7.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stdout == "a.csv: purchases, 1 inserted, 0 duplicates, 0 rejected\n"
    assert result.stderr == (
        f"Error: {inbox / 'b.csv'}:1: column 'customer_id' not found; the file has "
        "'transaction_id', 'date', 'amount'; map it in the program (csv.columns.customer_id) "
        "or for one import (--columns customer_id=...); nightly stopped: b.csv stays in the "
        "inbox, 1 earlier "
        "file imported and moved to done/, the run was not started\n"
    )
    assert listing(inbox) == ["b.csv", "c.csv", "done"]
    assert listing(inbox / "done") == ["a.csv"]
    assert points(db_file) == {}  # the run was not started
    # Fixed and re-run: the rest goes through, nothing is doubled.
    put(inbox, "b.csv", HEADER + "T2,C2,2026-11-01,5.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert points(db_file) == {"C1": 17, "C2": 5}


def test_an_empty_file_fails_the_night(cli, program, inbox):
    put(inbox, "day.csv", "")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {inbox / 'day.csv'}: the file is empty")


def test_without_a_program_nothing_is_imported_and_the_inbox_is_untouched(cli, inbox, db_file):
    """A mistyped --db is a new, empty database: the files must stay for the real one."""
    assert cli("init").exit_code == 0
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: no program applied yet")
    assert result.stderr.rstrip().endswith("nothing was imported, the inbox is untouched")
    assert listing(inbox) == ["day.csv"]
    assert points(db_file) == {}


def test_run_failure_keeps_the_imported_files(cli, program, inbox, monkeypatch):
    from loyalty_cli import nightly as nightly_mod
    from loyalty_cli.errors import LoyaltyError

    def broken(*args, **kwargs):
        raise LoyaltyError("the disk is full")

    monkeypatch.setattr(nightly_mod, "_run_engine", broken)
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: run as of 2026-11-23 failed: the disk is full")
    assert listing(inbox / "done") == ["day.csv"]


def _with_reward(cli, tmp_path: Path, more: str = "") -> None:
    """The test program plus `more` and a reward r100 of 100 points, from 2026-01-01."""
    yaml = tmp_path / "program.yaml"
    yaml.write_text(PROGRAM + more + "rewards:\n  - {id: r100, name: R, cost: 100, value: 1.00}\n")
    assert cli("program", "apply", yaml, "--effective", "2026-01-01").exit_code == 0


def _till(inbox: Path, day: str, *rows: str) -> None:
    body = "".join(f"{r}\n" for r in rows)
    put(inbox, f"redemptions-{day}.csv", "redemption_id,customer_id,reward_id,date\n" + body)


def test_till_redemptions_spend_what_tonights_purchases_earned(cli, tmp_path, inbox, db_file):
    """A missed night: the purchases and the redemptions of two days arrive together;
    the purchases are posted before the redemptions are checked."""
    _with_reward(cli, tmp_path)
    put(inbox, "2026-11-21.csv", HEADER + "T1,K1,2026-11-21,200.00\n")
    _till(inbox, "2026-11-22", "R1,K1,r100,2026-11-22")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert points(db_file) == {"K1": 100}
    assert result.stdout.splitlines()[-1].startswith("run as of 2026-11-23: ")


def test_the_nights_customers_are_counted_once_however_many_runs_work_on_them(cli, tmp_path, inbox):
    """The run before the till file and the night's last run both work on K1."""
    _with_reward(cli, tmp_path)
    put(inbox, "2026-11-21.csv", HEADER + "T1,K1,2026-11-21,200.00\nT2,K1,2026-11-23,5.00\n")
    _till(inbox, "2026-11-22", "R1,K1,r100,2026-11-22")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout)["run"]
    assert (run["customers"], run["receipts"]) == (1, 2)
    assert "_customer_ids" not in run


def test_a_redemption_on_the_last_day_of_its_points_is_not_beaten_by_their_expiry(
    cli, tmp_path, inbox, db_file
):
    """Cron runs the morning after: the early run goes up to the redemption's day, so
    the lot expiring that morning still pays for it; the rest expires after."""
    _with_reward(cli, tmp_path, "expiry: {policy: fixed, months: 1}\n")
    put(inbox, "2026-01-10.csv", HEADER + "T1,C3,2026-01-10,120.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", "2026-01-10").exit_code == 0
    put(inbox, "2026-02-09.csv", HEADER + "T2,C4,2026-02-09,5.00\n")
    _till(inbox, "2026-02-09", "TILL1,C3,r100,2026-02-09")
    result = cli("nightly", "--inbox", inbox, "--as-of", "2026-02-10")
    assert result.exit_code == 0, result.stderr
    assert _kinds(db_file, "C3") == [("earn", 120), ("redeem", -100), ("expire", -20)]


def _kinds(db_file: Path, customer: str) -> list[tuple[str, int]]:
    conn = db.connect(db_file)
    try:
        rows = conn.execute(
            "SELECT kind, points FROM ledger WHERE customer_id = ? ORDER BY entry_id",
            (customer,),
        ).fetchall()
    finally:
        conn.close()
    return [tuple(r) for r in rows]


def test_an_old_or_mistyped_redemption_date_does_not_take_the_early_run_back(
    cli, tmp_path, inbox, db_file
):
    """A till file imported before and dropped in again, and a row dated 2016 by a
    typo: tonight's purchase is still posted before tonight's redemption."""
    _with_reward(cli, tmp_path)
    put(inbox, "n1.csv", HEADER + "T0,C1,2026-11-01,150.00\n")
    _till(inbox, "a", "A1,C1,r100,2026-11-01")
    assert cli("nightly", "--inbox", inbox, "--as-of", "2026-11-01").exit_code == 0
    put(inbox, "redemptions-a.csv", (inbox / "done" / "redemptions-a.csv").read_text())
    put(inbox, "n2.csv", HEADER + "T1,C2,2026-11-23,150.00\n")
    _till(inbox, "b", "B0,C9,r100,2016-11-23", "B1,C2,r100,2026-11-23")
    result = cli("nightly", "--inbox", inbox, "--as-of", "2026-11-23")
    assert result.exit_code == 3  # B0 only: C9 is unknown
    assert points(db_file) == {"C1": 50, "C2": 50}


@pytest.mark.parametrize("case", ["names against days", "till file alone", "typo 2027"])
def test_till_files_are_taken_day_by_day_whatever_their_names(cli, tmp_path, inbox, db_file, case):
    """C3's 120 points expire on the morning of 02-10; C4 buys 150 on 02-09 or 02-10.
    Each till file is checked after the purchases up to its own day, before a later
    day's expiry: whatever the file names, a purchases file imported by hand before
    the night, or a row dated a year ahead by a typo."""
    _with_reward(cli, tmp_path, "expiry: {policy: fixed, months: 1}\n")
    put(inbox, "2026-01-10.csv", HEADER + "T1,C3,2026-01-10,120.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", "2026-01-10").exit_code == 0
    if case == "names against days":
        put(inbox, "2026-02-10.csv", HEADER + "T2,C4,2026-02-10,150.00\n")
        _till(inbox, "a", "A1,C4,r100,2026-02-10")
        _till(inbox, "b", "B1,C3,r100,2026-02-09")
    elif case == "till file alone":
        by_hand = put(tmp_path, "by-hand.csv", HEADER + "T2,C4,2026-02-09,150.00\n")
        assert cli("import", "purchases", by_hand).exit_code == 0
        _till(inbox, "2026-02-09", "B1,C3,r100,2026-02-09", "A1,C4,r100,2026-02-09")
    else:
        put(inbox, "2026-02-09.csv", HEADER + "T2,C4,2026-02-09,150.00\n")
        _till(inbox, "2026-02-09", "B1,C3,r100,2026-02-09", "A1,C4,r100,2027-02-09")
    result = cli("nightly", "--inbox", inbox, "--as-of", "2026-02-11")
    typo = case == "typo 2027"  # the 2027 row itself is rejected (a date to come)
    assert result.exit_code == (3 if typo else 0), result.stdout + result.stderr
    assert points(db_file) == {"C3": 0, "C4": 150 if typo else 50}
    assert _kinds(db_file, "C3") == [("earn", 120), ("redeem", -100), ("expire", -20)]


def test_a_till_file_that_cannot_be_read_comes_last_and_stops_no_other(
    cli, tmp_path, inbox, db_file
):
    _with_reward(cli, tmp_path)
    put(inbox, "2026-11-23.csv", HEADER + "T1,C1,2026-11-23,300.00\n")
    put(inbox, "redemptions-a.csv", "redemption_id,customer_id,reward\nX1,C1,r100\n")
    _till(inbox, "b", "B1,C1,r100,2026-11-23")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert "redemptions-a.csv" in result.stderr
    assert "the run as of 2026-11-23 before the till files was done" in result.stderr
    assert listing(inbox / "done") == ["2026-11-23.csv", "redemptions-b.csv"]
    assert points(db_file) == {"C1": 200}


def test_a_program_starting_later_takes_the_files_in(cli, tmp_path, inbox, db_file):
    """Before the launch the receipts wait for the program, as `run` keeps them."""
    yaml = tmp_path / "program.yaml"
    yaml.write_text(PROGRAM)
    assert cli("program", "apply", yaml, "--effective", "2026-12-01").exit_code == 0
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert listing(inbox / "done") == ["day.csv"]


def test_rejects_are_named_after_the_name_the_file_gets_in_done(cli, program, inbox):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 0
    put(inbox, "day.csv", HEADER + "T2,C1,2026-11-02,5.00\nT3,C1,2026-11-02,x\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 3
    assert listing(inbox / "done") == ["day-1.csv", "day-1.rejects.csv", "day.csv"]


def test_office_lock_files_are_left_alone_and_names_pick_the_kind(inbox):
    for name in ("~$day.csv", "customers.csv", "events_2026.csv", "customerservice.csv"):
        put(inbox, name, HEADER)
    assert [(k, p.name) for k, p in inbox_files(inbox)] == [
        ("customers", "customers.csv"),
        ("purchases", "customerservice.csv"),
        ("events", "events_2026.csv"),
    ]


def test_a_done_folder_that_cannot_be_written_stops_the_night_in_a_sentence(
    cli, program, inbox, monkeypatch
):
    from loyalty_cli import nightly as nightly_mod

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(nightly_mod, "move_no_clobber", refuse)
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert "day.csv is imported (import 1) but could not be moved" in result.stderr
    assert "Permission denied" in result.stderr and "internal error" not in result.stderr
    assert listing(inbox) == ["day.csv", "done"]


def test_missing_inbox_is_a_usage_error(cli, tmp_path):
    result = cli("nightly", "--inbox", tmp_path / "nope")
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path / 'nope'}: the inbox is not a directory\n"


def test_json_output(cli, program, inbox):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["as_of"] == AS_OF and doc["exit_code"] == 0 and doc["error"] is None
    assert doc["files"] == [
        {
            "file": "day.csv",
            "kind": "purchases",
            "import_id": 1,
            "rows": 1,
            "inserted": 1,
            "duplicates": 0,
            "rejected": 0,
            "skipped_file": False,
            "moved_to": str(inbox / "done" / "day.csv"),
            "rejects_file": None,
        }
    ]
    assert doc["run"]["as_of"] == AS_OF


def test_a_second_nightly_waits_then_fails_naming_the_first(cli, program, inbox, conn):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    with hold_lock(conn, "loyalty nightly --inbox /srv/shop/inbox", wait=0) as first:
        result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--wait", "0.2")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: another nightly (pid {os.getpid()} on {socket.gethostname()}, "
        f"`loyalty nightly --inbox /srv/shop/inbox`) holds the lock since {first.since}; "
        "gave up after waiting 0.2 s (--wait)\n"
    )
    assert listing(inbox) == ["day.csv"]  # untouched
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0
    assert conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 0


def test_library_call_with_a_path(program, inbox, db_file):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = nightly(db_file, inbox, dt.date(2026, 11, 23), wait=0, quiet=True)
    assert result.exit_code == 0 and result.error is None
    assert [f.name for f in result.files] == ["day.csv"]
    assert result.run is not None


def test_events_of_tonights_new_customers_are_accepted(cli, inbox, db_file, tmp_path):
    # Events need their customer: the customers file goes first whatever the names.
    path = tmp_path / "program.yaml"
    path.write_text(PROGRAM + "bonuses: {newsletter: 20}\n")
    assert cli("program", "apply", path, "--effective", "2026-01-01").exit_code == 0
    events = "event_id,customer_id,type,date\nE1,C9,newsletter,2026-11-02\n"
    put(inbox, "events-2026-11-22.csv", events)
    put(inbox, "customers-2026-11-22.csv", "customer_id,name\nC9,Nina\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[:2] == [
        "customers-2026-11-22.csv: customers, 1 inserted, 0 duplicates, 0 rejected",
        "events-2026-11-22.csv: events, 1 inserted, 0 duplicates, 0 rejected",
    ]
    assert points(db_file) == {"C9": 20}


def test_a_done_file_in_the_inbox_is_a_usage_error(cli, program, inbox):
    (inbox / "done").write_text("not a folder")
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 2
    assert "done in the inbox is a file, not a folder" in result.stderr
    assert (inbox / "day.csv").exists()


def test_a_till_redemption_dated_after_the_night_is_rejected(cli, tmp_path, inbox, db_file):
    """docs/cron.md: a date to come (a mistyped year). It used to be redeemed, dated a
    year ahead, while its points stayed spendable at the counter until then."""
    _with_reward(cli, tmp_path)
    put(inbox, "2026-11-21.csv", HEADER + "T1,K1,2026-11-21,300.00\n")
    _till(inbox, "2026-11-22", "R9,K1,r100,2027-11-22", "R1,K1,r100,2026-11-22")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert points(db_file) == {"K1": 200}
    rejects = (inbox / "done" / "redemptions-2026-11-22.rejects.csv").read_text()
    assert "2027-11-22 is after 2026-11-23: a date to come" in rejects


def test_a_mapped_column_a_file_lacks_is_said_with_quiet_too(cli, tmp_path, inbox):
    yaml = tmp_path / "program.yaml"
    yaml.write_text(PROGRAM + "csv: {columns: {store: Myymala}}\n")
    assert cli("program", "apply", yaml, "--effective", "2026-01-01").exit_code == 0
    put(inbox, "day.csv", HEADER + "T1,K1,2026-11-21,20.00\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--quiet")
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == (
        "Warning: day.csv: column 'Myymala' (mapped to store) is not in the file: store is "
        "empty on every row\n"
    )


def test_a_negative_wait_is_a_usage_error(cli, inbox):
    for command in (("nightly", "--inbox", inbox), ("import", "purchases", inbox / "x.csv")):
        for value in ("-5", "nan"):
            result = cli(*command, "--wait", value)
            assert result.exit_code == 2
            assert "--wait" in result.stderr


def test_a_file_the_till_is_still_writing_stays_in_the_inbox(
    cli, program, inbox, db_file, monkeypatch
):
    """Rows the till appends while the file is read would be lost once it moves to
    done/ (or a half-written last line imported as it stood): the file is imported
    only when it did not change meanwhile."""
    from loyalty_cli.importing import service

    put(inbox, "a.csv", HEADER + "T1,C1,2026-11-01,12.50\n")
    growing = put(inbox, "b.csv", HEADER + "T2,C2,2026-11-02,30.00\nT3,C2,2026-11-02,4")
    read_rows = service._read_rows

    def till_appends(conn, handler, path, *args):
        read_rows(conn, handler, path, *args)
        if path.name == "b.csv":
            with path.open("a") as fh:
                fh.write(".00\n")

    monkeypatch.setattr(service, "_read_rows", till_appends)
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {growing}: changed while it was being imported (is the till still writing "
        "it?); nothing of it was imported: import it once it is complete; nightly stopped: "
        "b.csv stays in the inbox, 1 earlier file imported and moved to done/, the run was "
        "not started\n"
    )
    assert listing(inbox) == ["b.csv", "done"]
    conn = db.connect(db_file)
    assert [r[0] for r in conn.execute("SELECT file FROM imports")] == [str(inbox / "a.csv")]
    conn.close()
    # The next night the file is whole and unchanged while read: all of it counts.
    monkeypatch.setattr(service, "_read_rows", read_rows)
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert points(db_file) == {"C1": 12, "C2": 34}


# --- what a crash, a full disk or an odd inbox leaves (found by an audit) ------------


def test_a_database_error_in_the_run_is_said_after_the_files_and_in_json(
    cli, program, inbox, db_file
):
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    conn = db.connect(db_file)
    conn.execute(
        "CREATE TRIGGER full BEFORE INSERT ON ledger "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.close()
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert [f["file"] for f in doc["files"]] == ["day.csv"]
    assert doc["error"].startswith(
        "run as of 2026-11-23 failed: database error: database or disk is full; "
    )
    assert doc["run"] is None and doc["exit_code"] == 1
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stdout == "" and "database error" in result.stderr  # nothing new to list
    assert listing(inbox / "done") == ["day.csv"]


def test_a_full_database_names_the_file_and_the_real_cause(program, inbox, db_file):
    """SQLite rolls a transaction back itself when the disk is full; the import's
    own rollback then failed with 'cannot rollback - no transaction is active',
    which hid the cause."""
    put(inbox, "customers-1.csv", "customer_id,name\nC1,Ann\n")
    put(
        inbox,
        "big.csv",
        HEADER + "".join(f"T{i},C{i % 300},2026-11-01,10.00\n" for i in range(5000)),
    )
    conn = db.connect(db_file)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 10}")
    try:
        result = nightly(conn, inbox, dt.date(2026, 11, 23), wait=0)
        assert not conn.in_transaction
    finally:
        conn.close()
    assert result.exit_code == 1
    assert str(result.error).startswith(
        f"{inbox / 'big.csv'}: database error: database or disk is full; nightly stopped: "
        "big.csv stays in the inbox, 1 earlier file imported and moved to done/"
    )
    assert [f.name for f in result.files] == ["customers-1.csv"]
    assert listing(inbox) == ["big.csv", "done"]


def test_a_file_name_that_is_not_utf8_is_imported_and_shown_written_out(cli, program, inbox):
    name = os.fsdecode(b"caf\xe9.csv")  # a Latin-1 name from a Windows share
    put(inbox, name, HEADER + "T1,C1,2026-11-01,10.00\n")
    put(inbox, "z.csv", HEADER + "T2,C1,2026-11-01,x\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 3, result.stderr
    doc = json.loads(result.stdout)
    assert [f["file"] for f in doc["files"]] == ["caf\\xe9.csv", "z.csv"]
    assert doc["files"][0]["moved_to"] == str(inbox / "done" / "caf\\xe9.csv")
    assert sorted(os.listdir(inbox / "done")) == sorted([name, "z.csv", "z.rejects.csv"])
    listed = cli("import", "list", "--format", "csv")
    assert f"{inbox}/caf\\xe9.csv" in listed.stdout
    missing = cli("import", "purchases", inbox / os.fsdecode(b"gone\xe9.csv"))
    assert missing.exit_code == 2
    assert missing.stderr == f"Error: {inbox}/gone\\xe9.csv: no such file\n"


def test_a_night_stopped_after_its_till_run_reports_that_runs_date(cli, tmp_path, inbox):
    _till_night(cli, tmp_path, inbox)
    put(inbox, "redemptions-2026-09-26.csv", "")
    result = cli("nightly", "--inbox", inbox, "--as-of", "2026-11-01")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-1].startswith("run as of 2026-09-25: ")
    assert "the run as of 2026-09-25 before the till files was done" in result.stderr


def test_a_skipped_file_left_in_the_inbox_is_not_said_moved():
    from loyalty_cli.nightly import FileOutcome

    outcome = FileOutcome("day.csv", "purchases", 4, skipped=True)
    assert outcome.line() == "day.csv: already imported (import 4)"
    outcome.moved_to = "inbox/done/day.csv"
    assert outcome.line() == "day.csv: already imported (import 4), moved to done/"


def test_done_on_another_filesystem_gets_a_copy(cli, program, inbox, monkeypatch):
    import errno

    def across(real):
        def call(src, dst, *args, **kwargs):
            if Path(src).parent != Path(dst).parent:
                raise OSError(errno.EXDEV, "Invalid cross-device link")
            return real(src, dst, *args, **kwargs)

        return call

    monkeypatch.setattr(os, "link", across(os.link))
    monkeypatch.setattr(os, "rename", across(os.rename))
    put(inbox, "day.csv", HEADER + "T1,C1,2026-11-01,10.00\nT2,C1,2026-11-01,x\n")
    (inbox / "done").mkdir()
    put(inbox / "done", "day.csv", "an earlier file of that name\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert listing(inbox) == ["done"]
    assert listing(inbox / "done") == ["day-1.csv", "day-1.rejects.csv", "day.csv"]
    assert (inbox / "done" / "day-1.csv").read_text().startswith(HEADER)


def test_a_symbolic_link_is_archived_as_the_file_it_points_to(cli, program, inbox, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    real = put(outside, "real.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    (inbox / "link.csv").symlink_to(os.path.relpath(real, inbox))
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    archived = inbox / "done" / "link.csv"
    assert not archived.is_symlink() and archived.read_text() == real.read_text()
    assert listing(inbox) == ["done"] and real.exists()


def _rejecting_day(cli, inbox: Path) -> None:
    put(inbox, "a.csv", HEADER + "T1,C1,2026-11-01,10.00\nT2,C1,2026-11-01,x\n")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    shown = [name for name in listing(inbox / "done") if not name.startswith(".")]
    assert shown == ["a.csv", "a.rejects.csv"]


def test_a_move_killed_after_its_link_is_finished_not_archived_twice(cli, program, inbox):
    _rejecting_day(cli, inbox)
    os.link(inbox / "done" / "a.csv", inbox / "a.csv")  # killed between link and unlink
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert result.stdout.startswith(
        "a.csv: already imported (import 1), moved to done/; 1 rejected (see "
    )
    assert listing(inbox) == ["done"]
    assert listing(inbox / "done") == ["a.csv", "a.rejects.csv"]


def test_a_nightly_killed_between_the_report_and_the_move_leaves_one_report(cli, program, inbox):
    _rejecting_day(cli, inbox)
    os.rename(inbox / "done" / "a.csv", inbox / "a.csv")  # the report written, not the move
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert listing(inbox) == ["done"]
    assert listing(inbox / "done") == ["a.csv", "a.rejects.csv"]


def test_half_written_files_of_a_killed_nightly_are_removed(cli, program, inbox):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (inbox / "done").mkdir()
    dead = int(gone.stdout)
    stale = put(inbox / "done", f".import-1.rejects.csv.loyalty-tmp-{dead}", "line,")
    copy = put(inbox / "done", f".a.csv.loyalty-tmp-{dead}", "half a copy")
    own = put(inbox / "done", f".b.csv.loyalty-tmp-{os.getpid()}", "being written")
    # Not ours: another tool's temporary files, one with a number no pid can be.
    theirs = put(inbox / "done", f".notes.tmp-{dead}", "a sync tool's")
    huge = put(inbox / "done", ".sync.loyalty-tmp-1733572800000", "not a pid")
    _rejecting_day(cli, inbox)
    assert not stale.exists() and not copy.exists() and own.exists()
    assert theirs.exists() and huge.exists()


def test_a_link_to_a_file_that_is_gone_stops_the_night_in_a_sentence(cli, program, inbox, tmp_path):
    put(inbox, "a.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    (inbox / "b.csv").symlink_to(tmp_path / "share" / "b.csv")  # the share is not mounted
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--quiet")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {inbox / 'b.csv'}: a link to {tmp_path / 'share' / 'b.csv'}, which does not "
        "exist (is the share it points to mounted?); nightly stopped: b.csv stays in the "
        "inbox, 1 earlier file imported and moved to done/, the run was not started\n"
    )
    assert listing(inbox) == ["b.csv", "done"]


def test_a_move_to_a_numbered_name_killed_after_its_link_is_not_archived_twice(cli, program, inbox):
    _rejecting_day(cli, inbox)
    put(inbox, "a.csv", HEADER + "T3,C1,2026-11-02,10.00\nT4,C1,2026-11-02,y\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 3
    done = inbox / "done"
    assert listing(done) == ["a-1.csv", "a-1.rejects.csv", "a.csv", "a.rejects.csv"]
    os.link(done / "a-1.csv", inbox / "a.csv")  # killed between link and unlink
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert listing(inbox) == ["done"]
    assert listing(done) == ["a-1.csv", "a-1.rejects.csv", "a.csv", "a.rejects.csv"]


def test_a_file_imported_again_after_its_undo_gets_its_own_name_and_report(cli, program, inbox):
    """Its bytes are in done/ already, but it is a new import with its own report:
    taken as archived, its report went beside another file's name."""
    body = HEADER + "T1,C1,2026-11-01,10.00\nT2,C1,2026-11-01,x\n"
    put(inbox, "a.csv", body)
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 3
    put(inbox, "a.csv", HEADER + "T5,C1,2026-11-02,10.00\n")
    assert cli("nightly", "--inbox", inbox, "--as-of", AS_OF).exit_code == 0
    assert cli("import", "undo", "1").exit_code == 0
    put(inbox, "a.csv", body)
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 3, result.stderr
    assert "(see " + str(inbox / "done" / "a-2.rejects.csv") + ")" in result.stdout
    assert listing(inbox / "done") == [
        "a-1.csv", "a-2.csv", "a-2.rejects.csv", "a.csv", "a.rejects.csv"
    ]  # fmt: skip


def test_an_inbox_path_that_is_not_utf8_gives_valid_json(cli, program, tmp_path):
    inbox = tmp_path / os.fsdecode(b"inb\xf6x")
    inbox.mkdir()
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["inbox"] == f"{tmp_path}/inb\\xf6x"


def _failing_ledger(db_file: Path, after: str) -> None:
    conn = db.connect(db_file)
    conn.execute(
        f"CREATE TRIGGER full BEFORE INSERT ON ledger WHEN NEW.date > '{after}' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.close()


def _till_night(cli, tmp_path, inbox) -> None:
    _with_reward(cli, tmp_path)
    put(inbox, "customers.csv", "customer_id,name\nC1,Ann\n")
    put(inbox, "2026-09-01.csv", HEADER + "T1,C1,2026-09-01,200.00\nT2,C1,2026-10-01,5.00\n")
    put(
        inbox,
        "redemptions-2026-09-25.csv",
        "redemption_id,customer_id,reward_id,date\nX1,C1,r100,2026-09-25\n",
    )


def test_a_failed_run_before_a_till_file_says_the_file_waits(cli, tmp_path, inbox, db_file):
    _till_night(cli, tmp_path, inbox)
    _failing_ledger(db_file, "2000-01-01")
    result = cli("nightly", "--inbox", inbox, "--as-of", "2026-11-01", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["error"] == (
        "run as of 2026-09-25 before the till file redemptions-2026-09-25.csv failed: "
        "database error: database or disk is full; nightly stopped: "
        "redemptions-2026-09-25.csv and the files after it stay in the inbox, 2 earlier "
        "files imported and moved to done/; run the nightly again once fixed"
    )
    assert doc["run"] is None
    assert listing(inbox) == ["done", "redemptions-2026-09-25.csv"]


def test_a_failed_final_run_still_reports_the_run_before_the_till_files(
    cli, tmp_path, inbox, db_file
):
    _till_night(cli, tmp_path, inbox)
    _failing_ledger(db_file, "2026-09-25")
    result = cli("nightly", "--inbox", inbox, "--as-of", "2026-11-01", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["error"].startswith("run as of 2026-11-01 failed: database error: ")
    assert doc["run"]["as_of"] == "2026-09-25" and doc["run"]["entries"] == {"earn": 1}
    assert listing(inbox) == ["done"]


def test_a_link_to_another_inbox_file_is_left_alone(cli, program, inbox):
    put(inbox, "b.csv", HEADER + "T1,C1,2026-11-01,10.00\n")
    (inbox / "c.csv").symlink_to("b.csv")
    result = cli("nightly", "--inbox", inbox, "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[0] == "b.csv: purchases, 1 inserted, 0 duplicates, 0 rejected"
    assert listing(inbox) == ["c.csv", "done"] and listing(inbox / "done") == ["b.csv"]


def test_rejects_that_could_not_be_written_point_to_import_rejects():
    from loyalty_cli.nightly import FileOutcome, NightlyResult

    result = NightlyResult("inbox", dt.date(2026, 11, 23))
    result.files.append(FileOutcome("a.csv", "purchases", 7, rejected=1))
    assert result.reject_lines() == ["a.csv: 1 row rejected, see loyalty import rejects --import 7"]
