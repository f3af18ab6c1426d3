"""Contract audit: promises of DESIGN.md checked through the CLI, as an acceptance test would."""

from __future__ import annotations

import json

import pytest

KPI_POINT_AND_MONEY_KEYS = {
    "revenue_net",
    "member_revenue",
    "aov",
    "member_aov",
    "non_member_aov",
    "clv_historical",
    "points_issued",
    "points_redeemed",
    "points_expired",
    "points_clawed_back",
    "outstanding_points",
    "liability",
    "reward_cost",
}

PROGRAM = """
program: Contract
currency: EUR
point_value: 0.01
earn: {per_currency_unit: RATE, rounding: floor}
"""

PURCHASES = """\
transaction_id,customer_id,date,amount
T1,C1,2026-01-05,70.00
T2,C1,2026-01-06,30.00
"""


def shop(cli, write):
    assert cli("program", "apply", write("p.yaml", PROGRAM.replace("RATE", "0.1"))).exit_code == 0
    assert cli("import", "purchases", write("pur.csv", PURCHASES)).exit_code == 0
    assert cli("run", "--as-of", "2026-01-31").exit_code == 0


def test_simulate_json_has_every_kpi_point_and_money_key(cli, write):
    shop(cli, write)
    proposed = write("p2.yaml", PROGRAM.replace("RATE", "0.2"))
    result = cli(
        "simulate", proposed, "--from", "2026-01-01", "--to", "2026-01-31", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for side in ("current", "proposed", "delta"):
        assert set(data[side]) >= KPI_POINT_AND_MONEY_KEYS, side
        assert "tiers" in data[side] and "vouchers_issued" in data[side]
    assert data["current"]["points_issued"] == 10  # 7 + 3
    assert data["proposed"]["points_issued"] == 20  # 14 + 6
    assert data["current"]["revenue_net"] == "100.00"
    assert data["delta"]["revenue_net"] == "0.00"
    assert data["current"]["non_member_aov"] is None
    assert data["delta"]["non_member_aov"] is None


def test_bad_date_is_a_plain_usage_error_naming_the_option(cli, write):
    shop(cli, write)
    for args, option in (
        (("run", "--as-of", "2026-02-30"), "--as-of"),
        (("report", "kpi", "--from", "2026-02-30"), "--from"),
        (("export", "ledger", "--to", "2026-13-01"), "--to"),
        (("redeem", "C1", "x", "--date", "2026-02-30"), "--date"),
        (("customer", "show", "C1", "--as-of", "tomorrow"), "--as-of"),
        (("program", "apply", "p.yaml", "--effective", "2026-02-30"), "--effective"),
        # ISO forms other than YYYY-MM-DD that date.fromisoformat would read
        (("run", "--as-of", "20260215"), "--as-of"),
        (("report", "kpi", "--from", "2026-W01-1"), "--from"),
        (("program", "apply", "p.yaml", "--effective", "20260301"), "--effective"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, args
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("Error: Invalid value for '" + option + "'"), last
        assert "is not a date; use YYYY-MM-DD" in last
        assert "╭" not in result.stderr and "│" not in result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.parametrize("what", ["ledger", "redemptions", "settlement", "journal"])
def test_an_export_with_from_after_to_is_a_usage_error(cli, write, what):
    """Not an empty file an accountant might take for a quiet month."""
    shop(cli, write)
    result = cli("export", what, "--from", "2026-03-10", "--to", "2026-03-01")
    assert result.exit_code == 2, result.stdout
    assert result.stderr.strip() == "Error: --from 2026-03-10 is after --to 2026-03-01"
    assert result.stdout == ""


def test_unknown_subcommand_is_a_plain_usage_error(cli):
    result = cli("customer", "frobnicate")
    assert result.exit_code == 2
    # One line, as every error (DESIGN.md): no usage block before it.
    assert result.stderr == "Error: No such command 'frobnicate'.\n"


def test_export_to_a_directory_or_missing_folder_is_a_usage_error(cli, write, tmp_path):
    shop(cli, write)
    result = cli("export", "ledger", "-o", str(tmp_path))
    assert result.exit_code == 2
    assert "is a directory, not a file" in result.stderr
    assert "internal error" not in result.stderr
    result = cli("export", "ledger", "-o", str(tmp_path / "nope" / "x.csv"))
    assert result.exit_code == 2
    assert "does not exist" in result.stderr
    out = tmp_path / "ledger.csv"
    assert cli("export", "ledger", "--to", "2026-01-31", "-o", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0] == (
        "entry_id,date,customer_id,kind,points,value,source_type,source_id,rule_id,program_version"
    )


def test_no_color_means_no_escape_codes_even_on_a_terminal(monkeypatch):
    import io

    from rich.table import Table

    from loyalty_cli import render

    def printed() -> str:
        out = io.StringIO()
        con = render.console(out)
        table = Table(title="t", header_style="bold")
        table.add_column("a")
        table.add_row("[bold]x[/bold]")
        con.print(table)
        return out.getvalue()

    monkeypatch.setenv("FORCE_COLOR", "1")  # as if stdout were a terminal
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b" not in printed()
    monkeypatch.delenv("NO_COLOR")
    assert "\x1b" in printed()  # the check can fail: styles do reach a terminal


def test_a_closed_pipe_is_no_internal_error(cli, write, monkeypatch):
    """`loyalty export ledger | head -1`: the reader leaves early; no "internal error"."""
    shop(cli, write)
    from loyalty_cli import exports

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(exports, "write", closed)
    result = cli("export", "ledger", "--to", "2026-01-31")
    assert result.exit_code == 1
    assert "internal error" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_a_database_is_named_in_the_error(runner, tmp_path):
    from loyalty_cli.cli.app import app

    bogus = tmp_path / "notes.db"
    bogus.write_text("garbage\n" * 100)
    result = runner.invoke(app, ["--db", str(bogus), "customer", "list"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {bogus}: database error: file is not a database\n"


def test_a_directory_given_as_csv_is_named_as_such(cli, write, tmp_path):
    shop(cli, write)
    result = cli("import", "purchases", str(tmp_path))
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(f"{tmp_path}: is a directory, not a CSV file")
    )
    result = cli("import", "purchases", str(tmp_path / "missing.csv"))
    assert result.exit_code == 2
    assert "no such file" in result.stderr
