"""`loyalty import ...` through the CLI: output shapes, exit codes, messages."""

from __future__ import annotations

import json

import pytest

HEAD = "transaction_id,customer_id,date,amount\n"


def test_import_json_and_exit_3_on_rejects(cli, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\nT2,C1,2026-13-01,1.00\n")
    result = cli("import", "purchases", p, "--format", "json")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == [
        {
            "import_id": 1, "file": str(p), "rows": 2, "inserted": 1, "duplicates": 0,
            "rejected": 1, "skipped_file": False,
        }
    ]  # fmt: skip
    assert result.stderr == (
        f"Warning: 1 row rejected in {p}; see `loyalty import rejects --import 1`\n"
    )
    rej = cli("import", "rejects", "--import", "1", "--format", "json")
    assert rej.exit_code == 0
    assert json.loads(rej.stdout) == [
        {
            "import_id": 1, "file": str(p), "line": 3, "field": "date",
            "reason": "'2026-13-01' is not a date in the format %Y-%m-%d",
            "raw": "T2,C1,2026-13-01,1.00",
        }
    ]  # fmt: skip


def test_quiet_prints_nothing_and_second_run_skips(cli, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    first = cli("import", "purchases", p, "--quiet")
    assert (first.exit_code, first.stdout, first.stderr) == (0, "", "")
    again = cli("import", "purchases", p)
    assert again.exit_code == 0
    assert again.stdout == (
        f"{p}: skipped, already imported (import 1; to import it again, "
        "`loyalty import undo 1` first)\n"
    )


def test_table_line_per_file(cli, write):
    a = write("a.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    b = write("b.csv", HEAD + "T1,C1,2026-01-05,1.00\nT2,,2026-01-05,2.00\n")
    result = cli("import", "purchases", a, b)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{a}: 1 row, 1 inserted, 0 duplicates, 0 rejected (import 1)",
        f"{b}: 2 rows, 1 inserted, 1 duplicate, 0 rejected (import 2)",
    ]


def test_missing_column_exit_2(cli, write):
    p = write("p.csv", "transaction_id,customer_id,date,Summa €\nT1,C1,2026-01-05,1\n")
    result = cli("import", "purchases", p)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {p}:1: column 'amount' not found; the file has 'transaction_id', "
        "'customer_id', 'date', 'Summa €'; map it in the program (csv.columns.amount) or "
        "for one import (--columns amount=...)\n"
    )
    mapped = cli("import", "purchases", p, "--columns", "amount=Summa €")
    assert mapped.exit_code == 0, mapped.stderr


def test_strict_exit_1_and_nothing_written(cli, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\nT2,,2026-01-05,abc\n")
    result = cli("import", "purchases", p, "--strict")
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: {p}:3: amount: not an amount: 'abc' is not a number "
        "(--strict: nothing was imported from this file)\n"
    )
    listed = cli("import", "list", "--format", "json")
    assert json.loads(listed.stdout) == []


def test_a_file_with_a_bad_header_fails_before_any_file_is_imported(cli, write):
    good = write("good.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    bad = write("bad.csv", "foo,bar\n1,2\n")
    result = cli("import", "purchases", good, bad)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"Error: {bad}:1: column 'transaction_id' not found")
    assert json.loads(cli("import", "list", "--format", "json").stdout) == []


def test_a_failure_inside_a_later_file_keeps_and_reports_the_earlier_ones(cli, write, tmp_path):
    good = write("good.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    broken = tmp_path / "broken.csv"  # a byte that is not UTF-8, on line 3
    rows = HEAD + "T2,C1,2026-01-05,1.00\nT3,C\xff,2026-01-05,1.00\n"
    broken.write_bytes(rows.encode("latin-1"))
    result = cli("import", "purchases", good, broken, "--format", "json")
    assert result.exit_code == 2
    assert [(r["file"], r["inserted"]) for r in json.loads(result.stdout)] == [(str(good), 1)]
    assert result.stderr.startswith(f"Error: {broken}:3: cannot be read as utf-8")
    listed = json.loads(cli("import", "list", "--format", "json").stdout)
    assert [r["file"] for r in listed] == [str(good)]
    table = cli("import", "purchases", broken, write("next.csv", HEAD + "T4,C1,2026-01-06,2"))
    assert table.exit_code == 2 and table.stdout == ""  # the failing file came first


def test_strict_with_several_files_imports_all_or_nothing(cli, write):
    good = write("good.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    bad = write("bad.csv", HEAD + "T2,C1,2026-01-05,1.00\nT3,,2026-01-05,abc\n")
    result = cli("import", "purchases", good, bad, "--strict")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == (
        f"Error: {bad}:3: amount: not an amount: 'abc' is not a number "
        "(--strict: nothing was imported from any of the 2 files)\n"
    )
    assert json.loads(cli("import", "list", "--format", "json").stdout) == []
    ok = cli("import", "purchases", good, write("ok.csv", HEAD + "T5,C1,2026-01-06,2"), "--strict")
    assert ok.exit_code == 0 and len(ok.stdout.splitlines()) == 2


def test_dry_run_shows_rejects_on_stderr(cli, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\nT2,,2026-01-05,abc\n")
    result = cli("import", "purchases", p, "--dry-run")
    assert result.exit_code == 3
    assert result.stdout == (
        f"{p}: dry run: 2 rows, 1 to insert, 0 duplicates, 1 rejected (nothing written)\n"
    )
    assert f"{p}:3: amount: not an amount: 'abc' is not a number" in result.stderr
    assert json.loads(cli("import", "list", "--format", "json").stdout) == []


def test_a_dry_run_of_several_files_says_what_the_import_will_do(cli, write, conn):
    """Each file sees the rows of the files before it, as the real import does: the
    preview of the second file counted everything as new, and a copy of the first
    as to be inserted again."""
    a = write("a.csv", HEAD + "T1,C1,2026-02-01,120.50\nT2,C2,2026-02-05,25.00\n")
    b = write("b.csv", HEAD + "T2,C2,2026-02-05,25.00\nT4,C1,2026-04-01,30.00\n"
                            "T1,C1,2026-02-01,120.60\n")  # fmt: skip
    copy = write("c.csv", a.read_text())
    dry = cli("import", "purchases", a, b, copy, "--dry-run")
    assert dry.exit_code == 3
    assert dry.stdout == (
        f"{a}: dry run: 2 rows, 2 to insert, 0 duplicates, 0 rejected (nothing written)\n"
        f"{b}: dry run: 3 rows, 1 to insert, 1 duplicate, 1 rejected (nothing written)\n"
        f"{copy}: dry run: would be skipped, the same content as a file before it\n"
    )
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0
    real = cli("import", "purchases", a, b, copy, "--format", "json")
    assert real.exit_code == 3
    assert [(r["inserted"], r["duplicates"], r["rejected"], r["skipped_file"])
            for r in json.loads(real.stdout)] == [(2, 0, 0, False), (1, 1, 1, False),
                                                   (0, 0, 0, True)]  # fmt: skip


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        (
            "--date-format", "%Q",
            "--date-format: '%Q' is not a date format with day, month and year, such as %d.%m.%Y",
        ),
        ("--date-format", "%Y-%m", "--date-format: '%Y-%m' is not a date format"),
        ("--columns", "foo=Summa", "--columns: 'foo' is not a column of purchases; they are "),
    ],
)  # fmt: skip
def test_a_bad_flag_is_a_usage_error_before_anything_is_written(cli, write, flag, value, message):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    result = cli("import", "purchases", p, flag, value)
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr.startswith(f"Error: {message}")
    assert json.loads(cli("import", "list", "--format", "json").stdout) == []
    assert cli("import", "purchases", p).exit_code == 0  # the file is not "already imported"


def test_finnish_flags(cli, tmp_path):
    p = tmp_path / "fi.csv"
    p.write_bytes("\ufeffKuitti;Asiakas;Pvm;Summa\r\nK1;A1;31.01.2026;1 234,50\r\n".encode())
    result = cli(
        "import", "purchases", p, "--decimal", ",", "--date-format", "%d.%m.%Y",
        "--columns", "transaction_id=Kuitti,customer_id=Asiakas,date=Pvm,amount=Summa",
        "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["inserted"] == 1


def test_bad_columns_flag_is_usage_error(cli, write):
    p = write("p.csv", HEAD)
    result = cli("import", "purchases", p, "--columns", "amount")
    assert result.exit_code == 2
    assert "--columns: 'amount' is not STANDARD=HEADER" in result.stderr


def test_undo_list_and_undo_twice(cli, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    cli("import", "purchases", p)
    undo = cli("import", "undo", "1", "--date", "2026-02-01")
    assert undo.exit_code == 0
    assert undo.stdout == (
        f"Import 1 (purchases, {p}) undone on 2026-02-01: 1 row marked undone, "
        "their points reversed.\n"
    )
    twice = cli("import", "undo", "1")
    assert twice.exit_code == 1
    assert twice.stderr == "Error: import 1 was already undone on 2026-02-01\n"
    listed = json.loads(cli("import", "list", "--format", "json").stdout)
    assert [(i["import_id"], i["status"], i["undone_on"]) for i in listed] == [
        (1, "undone", "2026-02-01")
    ]
    unknown = cli("import", "rejects", "--import", "9")
    assert unknown.exit_code == 1
    assert "unknown import 9" in unknown.stderr


def test_undoing_rows_a_later_file_also_held_lets_that_file_in_again(cli, write, conn):
    """ob.csv repeats T1 of oa.csv (a duplicate there). Undoing oa.csv undoes T1, which
    ob.csv still says happened: the undo says so, and ob.csv is read again instead
    of being skipped as imported (once: after that it is imported as it stands)."""
    oa = write("oa.csv", HEAD + "T1,C1,2026-02-01,10.00\nT9,C1,2026-02-01,99.00\n")
    ob = write("ob.csv", HEAD + "T1,C1,2026-02-01,10.00\nT2,C1,2026-02-02,20.00\n")
    other = write("oc.csv", HEAD + "T3,C2,2026-02-03,5.00\n")
    assert cli("import", "purchases", oa, ob, other).exit_code == 0
    undo = cli("import", "undo", "1", "--date", "2026-02-05")
    assert undo.exit_code == 0, undo.stderr
    assert undo.stderr == (
        f"Note: {ob} (import 2) counted rows as duplicates of earlier imports; those of "
        "import 1 are undone too: import the file again to bring them back (it is no "
        "longer skipped as imported)\n"
    )
    again = cli("import", "purchases", ob, other, "--format", "json")
    assert [(r["inserted"], r["duplicates"], r["skipped_file"]) for r in
            json.loads(again.stdout)] == [(1, 1, False), (0, 0, True)]  # fmt: skip
    third = cli("import", "purchases", ob, "--format", "json")
    assert json.loads(third.stdout)[0]["skipped_file"] is True
    live = conn.execute(
        "SELECT transaction_id, import_id FROM purchases WHERE undone = 0 ORDER BY 1"
    ).fetchall()
    assert [tuple(r) for r in live] == [("T1", 4), ("T2", 2), ("T3", 3)]


def test_a_strict_dry_run_of_several_files_says_what_the_strict_import_says(cli, write):
    good = write("c.csv", HEAD + "C1,C1,2026-02-01,1.00\n")
    bad = write("a.csv", HEAD + "A1,C1,2026-02-01,abc\n")
    outs = [cli("import", "purchases", good, bad, *flags)
            for flags in (("--dry-run", "--strict"), ("--strict",))]  # fmt: skip
    assert [(r.exit_code, r.stdout) for r in outs] == [(1, ""), (1, "")]
    assert (
        outs[0].stderr
        == outs[1].stderr
        == (
            f"Error: {bad}:2: amount: not an amount: 'abc' is not a number (--strict: nothing "
            "was imported from any of the 2 files)\n"
        )
    )


def test_a_customers_file_is_not_read_again_after_a_customers_undo(cli, write, conn):
    """A customers undo changes no rows: reading an older file again would put back
    a birthday changed since."""
    head = "customer_id,name,birthday\n"
    first = write("u.csv", head + "C1,Ann,1990-01-01\n")
    again = write("p.csv", head + "C1,Ann,1990-01-01\nC2,Bob,\n")
    later = write("q.csv", head + "C1,Ann,1991-05-05\n")
    assert cli("import", "customers", first, again, later).exit_code == 0
    undo = cli("import", "undo", "1")
    assert undo.exit_code == 0 and undo.stderr == ""
    result = cli("import", "customers", again, "--format", "json")
    assert json.loads(result.stdout)[0]["skipped_file"] is True
    birthday = conn.execute("SELECT birthday FROM customers WHERE customer_id = 'C1'")
    assert birthday.fetchone()[0] == "1991-05-05"


def test_help_has_examples(cli):
    for args in (["purchases"], ["customers"], ["events"], ["list"], ["rejects"], ["undo"]):
        result = cli("import", *args, "--help")
        assert result.exit_code == 0
        assert "Example: loyalty import" in result.stdout


def test_an_import_waits_for_a_running_nightly_then_names_it(cli, write, conn):
    from loyalty_cli.lock import hold_lock

    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00\n")
    with hold_lock(conn, "loyalty nightly --inbox /srv/inbox", wait=0):
        result = cli("import", "purchases", p, "--wait", "0.2")
        assert result.exit_code == 1 and result.stdout == ""
        assert "another nightly (pid" in result.stderr
        assert "gave up after waiting 0.2 s (--wait)" in result.stderr
        dry = cli("import", "purchases", p, "--dry-run")  # writes nothing: no wait
        assert dry.exit_code == 0, dry.stderr
    assert cli("import", "purchases", p).exit_code == 0
    assert conn.execute("SELECT COUNT(*) FROM locks").fetchone()[0] == 0


def test_dates_outside_1900_2999_are_rejected_rows_and_usage_errors(cli, write):
    p = write("p.csv", HEAD + "T1,C1,9999-12-31,1.00\nT2,C1,1850-01-01,1.00\n")
    assert cli("import", "purchases", p).exit_code == 3
    rejects = json.loads(cli("import", "rejects", "--format", "json").stdout)
    assert [r["reason"] for r in rejects] == [
        "'9999-12-31' is outside the years 1900-2999",
        "'1850-01-01' is outside the years 1900-2999",
    ]
    run = cli("run", "--as-of", "9999-12-31")
    assert run.exit_code == 2
    assert "'9999-12-31' is outside the years 1900-2999" in run.stderr


def test_an_id_with_a_control_character_is_a_rejected_row(cli, tmp_path):
    p = tmp_path / "nul.csv"
    p.write_bytes(HEAD.encode() + b"A\x002,C1,2026-01-05,1.00\nA3,C\x01,2026-01-05,1.00\n")
    assert cli("import", "purchases", p).exit_code == 3
    rejects = json.loads(cli("import", "rejects", "--format", "json").stdout)
    assert [(r["field"], r["reason"]) for r in rejects] == [
        ("transaction_id", "'A\\x002' contains a control character"),
        ("customer_id", "'C\\x01' contains a control character"),
    ]
