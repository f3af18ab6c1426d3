"""Program versions in the database, and the `loyalty program` commands."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from loyalty_cli.errors import NoProgramError
from loyalty_cli.program import (
    FIRST_DAY,
    apply_program,
    current_version,
    list_versions,
    require_program,
    version_in_force,
    versions_by_number,
    versions_timeline,
)

A = "program: Plan A\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
B = "program: Plan B\ncurrency: EUR\nearn: {per_currency_unit: 2}\n"
D = dt.date


def test_no_program_yet(conn):
    assert list_versions(conn) == []
    assert current_version(conn, D(2026, 1, 1)) is None
    with pytest.raises(NoProgramError):
        require_program(conn, D(2026, 1, 1))


def test_apply_twice_is_one_version(conn, write):
    path = write("a.yaml", A)
    first = apply_program(conn, path, today=D(2026, 3, 1))
    again = apply_program(conn, path, today=D(2026, 5, 1))
    assert first.created and not again.created
    assert (first.version, first.effective_from) == (1, FIRST_DAY)
    assert again.version == 1
    assert len(list_versions(conn)) == 1


def test_the_version_in_force_applied_again_without_a_date_is_unchanged(conn, write):
    """docs/program.md: the same content as the latest version, or as the one in force
    today, with no date: nothing happens (a later version is only scheduled)."""
    a = write("a.yaml", A)
    apply_program(conn, a, today=D(2026, 3, 1))
    apply_program(conn, write("b.yaml", B), effective=D(2027, 1, 1), today=D(2026, 3, 1))
    again = apply_program(conn, a, today=D(2026, 6, 1))
    assert (again.version, again.created) == (1, False)
    assert len(list_versions(conn)) == 2


def test_later_version_from_today_and_in_force(conn, write):
    apply_program(conn, write("a.yaml", A), today=D(2026, 3, 1))
    second = apply_program(conn, write("b.yaml", B), today=D(2026, 5, 1))
    assert (second.version, second.effective_from) == (2, D(2026, 5, 1))
    assert version_in_force(conn, D(2026, 4, 30)).name == "Plan A"
    assert version_in_force(conn, D(2026, 5, 1)).name == "Plan B"
    assert require_program(conn, D(1990, 1, 1)).version == 1
    timeline = versions_timeline(conn)
    assert timeline.at(D(2026, 4, 30)).version == 1
    assert timeline.at(D(2027, 1, 1)).program.earn.per_currency_unit == 2
    assert set(versions_by_number(conn)) == {1, 2}


def test_effective_flag_and_yaml_effective_from(conn, write):
    apply_program(conn, write("a.yaml", A), effective=D(2026, 1, 1), today=D(2026, 3, 1))
    with pytest.raises(NoProgramError) as info:
        require_program(conn, D(2025, 12, 31))
    assert "the first starts on 2026-01-01" in str(info.value)
    b = apply_program(
        conn, write("b.yaml", B + "effective_from: 2026-07-01\n"), today=D(2026, 3, 1)
    )
    assert b.effective_from == D(2026, 7, 1)
    flag = apply_program(conn, write("b.yaml", B), effective=D(2026, 9, 1), today=D(2026, 3, 1))
    assert flag.effective_from == D(2026, 9, 1) and flag.created
    assert versions_timeline(conn).at(D(2026, 8, 1)).version == 2
    assert versions_timeline(conn).at(D(2026, 9, 1)).version == 3


def test_tie_on_effective_date_highest_version_wins(conn, write):
    apply_program(conn, write("a.yaml", A), effective=D(2026, 1, 1))
    apply_program(conn, write("b.yaml", B), effective=D(2026, 1, 1))
    assert version_in_force(conn, D(2026, 1, 1)).version == 2
    assert versions_timeline(conn).at(D(2026, 1, 1)).version == 2


def test_invalid_file_stores_nothing(conn, write):
    from loyalty_cli.errors import ProgramError

    with pytest.raises(ProgramError):
        apply_program(conn, write("bad.yaml", "program: x\n"))
    assert list_versions(conn) == []


# ---- CLI


def test_cli_validate_ok_and_invalid(cli, write):
    good = write("good.yaml", A)
    result = cli("program", "validate", good)
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ok: {good} is a valid program (Plan A)"
    bad = write("bad.yaml", "program: x\ncurrency: eur\nearn: {rounding: up}\n")
    result = cli("program", "validate", bad)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        f"Error: {bad}:2: currency: 'eur' is not a currency code; "
        "use 3 upper-case letters such as EUR"
    )
    assert len(lines) == 3
    assert lines[1] == f"{bad}:3: earn.per_currency_unit: is required"


def test_cli_validate_missing_file(cli, tmp_path):
    result = cli("program", "validate", tmp_path / "none.yaml")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")


def test_cli_apply_show_versions(cli, write):
    a = write("a.yaml", A)
    result = cli("program", "apply", a)
    assert result.exit_code == 0, result.stderr
    assert "version 1" in result.stdout and "0001-01-01" in result.stdout
    result = cli("program", "apply", write("b.yaml", B), "--effective", "2026-02-01")
    assert result.exit_code == 0
    assert result.stdout.strip() == "applied program version 2 (Plan B), effective 2026-02-01"

    shown = json.loads(cli("program", "show", "--format", "json", "--as-of", "2026-01-15").stdout)
    assert (shown["version"], shown["name"], shown["effective_from"]) == (1, "Plan A", "0001-01-01")
    assert shown["program"]["earn"]["per_currency_unit"] == "1"
    assert len(shown["sha256"]) == 64

    table = cli("program", "show", "--as-of", "2026-03-01")
    assert "Plan B" in table.stdout and "per_currency_unit: 2" in table.stdout

    listed = json.loads(cli("program", "versions", "--format", "json").stdout)
    assert [v["version"] for v in listed] == [1, 2]
    assert listed[1]["effective_from"] == "2026-02-01"
    csv_out = cli("program", "versions", "--format", "csv").stdout.splitlines()
    assert csv_out[0] == "version,name,effective_from,applied_at,source_file,sha256,in_force"
    assert cli("program", "versions").exit_code == 0


def test_cli_apply_before_the_last_run_says_posted_points_stay(cli, write):
    assert cli("program", "apply", write("a.yaml", A)).exit_code == 0
    assert cli("run", "--as-of", "2026-03-31").exit_code == 0
    later = cli("program", "apply", write("b.yaml", B), "--effective", "2026-04-01")
    assert later.exit_code == 0 and later.stderr == ""
    back = cli(
        "program", "apply", write("c.yaml", B + "point_value: 0.02\n"), "--effective", "2026-02-01"
    )
    assert back.exit_code == 0
    assert back.stdout.strip() == "applied program version 3 (Plan B), effective 2026-02-01"
    # Version 2 takes over on 2026-04-01: version 3 scores late receipts up to then.
    assert back.stderr == (
        "note: it takes effect on or before the last run's date (2026-03-31): what was "
        "posted stays as it is; receipts imported later and dated from 2026-02-01 to "
        "2026-03-31 (a later version takes over on 2026-04-01) are scored by it\n"
    )
    same_day = cli(
        "program", "apply", write("d.yaml", B + "point_value: 0.03\n"), "--effective", "2026-03-31"
    )
    assert "on or before the last run's date (2026-03-31)" in same_day.stderr
    alone = cli(
        "program", "apply", write("e.yaml", B + "point_value: 0.04\n"), "--effective", "2026-05-01"
    )
    assert alone.stderr == ""  # after the last run: nothing posted is in its span


def test_apply_on_a_terminal_asks_only_when_it_would_store_a_version(cli, write, monkeypatch):
    """The same file again is `unchanged` (exit 0, as from cron) without a question,
    and a file in another currency is refused before one: both asked first."""
    from types import SimpleNamespace

    from loyalty_cli.cli import program as program_cli

    first = write("a.yaml", A)
    assert cli("program", "apply", first).exit_code == 0
    # The runner's stdin is no terminal: the command is told it is one.
    terminal = SimpleNamespace(stdin=SimpleNamespace(isatty=lambda: True))
    monkeypatch.setattr(program_cli, "sys", terminal)
    again = cli("program", "apply", first, input="n\n")
    assert again.exit_code == 0, again.stderr
    assert "Apply this program" not in again.stdout
    assert again.stdout.startswith("unchanged: already applied as program version 1")
    dollars = cli("program", "apply", write("u.yaml", A.replace("EUR", "USD")), input="y\n")
    assert dollars.exit_code == 2
    assert "Apply this program" not in dollars.stdout
    asked = cli("program", "apply", write("b.yaml", B), input="n\n")
    assert asked.exit_code == 1
    assert "Apply this program as a new version?" in asked.stdout
    assert asked.stderr == "Nothing applied.\n"


def test_effective_from_in_the_file_takes_the_years_the_flag_takes(cli, write):
    bad = write("old.yaml", A + "effective_from: 1800-01-01\n")
    result = cli("program", "validate", bad)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {bad}:{A.count(chr(10)) + 1}: effective_from: '1800-01-01' is outside the "
        "years 1900-2999\n"
    )


def test_cli_apply_invalid_exit_2(cli, write):
    result = cli("program", "apply", write("bad.yaml", "program: x\n"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: ")
    assert "currency: is required" in result.stderr


def test_cli_show_without_program(cli):
    result = cli("program", "show")
    assert result.exit_code == 1
    assert "no program applied yet" in result.stderr


def test_cli_schema(cli):
    result = cli("program", "schema")
    assert result.exit_code == 0
    assert "earn" in json.loads(result.stdout)["properties"]


@pytest.mark.parametrize("command", ["validate", "apply", "show", "versions", "schema"])
def test_cli_help_has_example(cli, command):
    result = cli("program", command, "--help")
    assert result.exit_code == 0
    assert "Example: loyalty program" in result.stdout


def test_a_later_version_may_not_change_the_currency(conn, write, cli):
    apply_program(conn, write("a.yaml", A), today=D(2026, 3, 1))
    sek = write("sek.yaml", A.replace("EUR", "SEK"))
    result = cli("program", "apply", str(sek), "--effective", "2026-07-01", "--yes")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: {sek}:2: currency: SEK is not the currency of version 1 (EUR): "
        "a shop's history is kept in one currency\n"
    )
    assert len(list_versions(conn)) == 1


def test_a_version_applied_with_yaml_1_1_numbers_still_loads(conn, write):
    """Applied before the loader read YAML 1.2 integers: `0b1110` and `1:00` were
    numbers then; read back they are still (they failed, and every command that
    needs the program with them: the shop was locked out)."""
    apply_program(conn, write("a.yaml", A))
    conn.execute(
        "UPDATE program_versions SET yaml = yaml || ?",
        (
            "pending_days: 0b1110\nexpiry: {policy: fixed, months: 1:00}\n"
            "tiers: {retain_days: +0x1_0, levels: [{id: b, min: 0}]}\n",
        ),  # fmt: skip
    )
    from loyalty_cli.programs_store import _PARSED

    _PARSED.clear()
    [version] = list_versions(conn)
    assert version.program.pending_days == 14
    assert version.program.expiry.months == 60
    assert version.program.tiers.retain_days == 16
