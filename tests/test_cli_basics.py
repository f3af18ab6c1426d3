import os
import subprocess
import sys
from pathlib import Path

import pytest

from loyalty_cli import __version__
from loyalty_cli.cli.app import app


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"loyalty {__version__}"


def test_no_args_shows_help(runner):
    result = runner.invoke(app, [], prog_name="loyalty")
    assert "Usage: loyalty" in result.output


def test_db_may_come_after_the_command(runner, tmp_path, monkeypatch):
    """DESIGN.md writes `loyalty demo [--db PATH]`: --db is global, and accepted
    after the command name too (either spelling; the later one wins)."""
    monkeypatch.delenv("LOYALTY_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    first, second = tmp_path / "a.db", tmp_path / "b.db"
    result = runner.invoke(app, ["init", "--db", str(first)])
    assert result.exit_code == 0, result.output
    assert first.exists() and not (tmp_path / "loyalty.db").exists()
    result = runner.invoke(app, ["--db", str(first), "init", f"--db={second}"])
    assert result.exit_code == 0 and second.exists()
    assert str(second) in result.stdout


def test_hoist_db_leaves_everything_else_in_place():
    from loyalty_cli.cli.app import hoist_db

    assert hoist_db(["demo"]) == ["demo"]
    assert hoist_db(["demo", "--db", "x.db"]) == ["--db", "x.db", "demo"]
    assert hoist_db(["import", "purchases", "--db=x.db", "f.csv", "--quiet"]) == [
        "--db=x.db", "import", "purchases", "f.csv", "--quiet",
    ]  # fmt: skip
    assert hoist_db(["adjust", "C1", "5", "--", "--db", "y"]) == [
        "adjust", "C1", "5", "--", "--db", "y",
    ]  # fmt: skip
    assert hoist_db(["demo", "--db"]) == ["demo", "--db"]  # no value: click says so
    assert hoist_db(["customer", "show", "X", "--debug"]) == ["--debug", "customer", "show", "X"]


def test_a_table_into_a_pipe_is_printed_whole_not_cut_to_80_columns():
    import io

    from loyalty_cli import render

    rows = [{"date": "2026-01-10", "source": "expiry:inactivity:C000123:2026-01-10" * 2,
             "note": "a long note that would not fit beside the rest"}]  # fmt: skip
    out = io.StringIO()  # not a terminal
    render.render_rows(rows, "table", out=out)
    text = out.getvalue()
    assert "2026-01-10" in text and rows[0]["source"] in text and rows[0]["note"] in text
    assert "…" not in text


def test_init_on_a_live_shop_does_not_suggest_applying_the_sample(cli, db_file):
    fresh = cli("init")
    assert fresh.exit_code == 0
    assert "next: loyalty program apply" in fresh.stdout
    program = Path(__file__).parents[1] / "programs" / "boutique.yaml"
    assert cli("program", "apply", program, "--effective", "2026-01-01").exit_code == 0
    again = cli("init")
    assert again.exit_code == 0
    assert again.stdout == (
        f"ok: {db_file} is ready; it holds a shop already (program versions: 1)\n"
    )


@pytest.mark.parametrize("args", [["run"], ["nightly"], ["import", "purchases"], []])
def test_help_shows_no_type_for_a_flag(runner, args):
    """typer's help put `<bool>` after every flag, as if it took a value (`--quiet
    true` then fails); the nightly's --wait said its default twice."""
    from loyalty_cli.cli.app import app

    result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    assert "[default: 600" not in result.stdout


def _loyalty(db, *args, **streams):
    """The command as cron starts it, with the standard streams given (a closed
    one is -1: `>&-`)."""
    closed = [
        fd for fd, name in enumerate(("stdin", "stdout", "stderr")) if streams.get(name) == -1
    ]

    def close() -> None:
        for fd in closed:
            os.close(fd)

    kept = {k: v for k, v in streams.items() if v != -1}
    return subprocess.run(
        [sys.executable, "-m", "loyalty_cli", "--db", str(db), *args],
        preexec_fn=close,
        check=False,
        **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kept},
    )


def _member(cli, tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("customer_id,name\nC1,Aino\n")
    assert cli("program", "apply", "programs/cashback.yaml").exit_code == 0
    assert cli("import", "customers", str(tmp_path / "c.csv")).exit_code == 0


@pytest.mark.parametrize("closed", ["stdin", "stdout", "stderr"])
def test_a_closed_standard_stream_is_taken_as_dev_null(cli, db_file, tmp_path, closed):
    # A nightly started with stdout closed imported nothing: a traceback before it began.
    _member(cli, tmp_path)
    done = _loyalty(db_file, "adjust", "C1", "5", "--reason", "welcome", **{closed: -1})
    assert done.returncode == 0, done.stderr
    assert done.stderr in (b"", None)
    assert cli("customer", "show", "C1", "--format", "json").stdout.count('"available": 5') == 1
    unknown = _loyalty(db_file, "customer", "show", "C9", **{closed: -1})
    assert unknown.returncode == 1
    if closed != "stderr":
        assert unknown.stderr == b"Error: unknown customer 'C9'\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
@pytest.mark.parametrize(
    "args", [("--version",), ("customer", "list", "--format", "json"), ("export", "ledger")]
)
def test_output_into_a_full_disk_is_one_sentence_and_exit_1(cli, db_file, tmp_path, args):
    _member(cli, tmp_path)
    assert cli("adjust", "C1", "5", "--reason", "welcome").exit_code == 0
    with open("/dev/full", "wb") as full:
        done = _loyalty(db_file, *args, stdout=full)
    assert done.returncode == 1
    assert done.stderr == b"Error: cannot write the output: No space left on device\n"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full")
def test_an_error_that_stderr_cannot_take_still_exits_with_its_code(cli, db_file, tmp_path):
    _member(cli, tmp_path)
    with open("/dev/full", "wb") as full:
        missing = _loyalty(db_file, "import", "purchases", str(tmp_path / "nope.csv"), stderr=full)
        unknown = _loyalty(db_file, "customer", "show", "C9", stderr=full)
    assert (missing.returncode, unknown.returncode) == (2, 1)


def test_a_failing_device_is_said_as_such_not_as_a_full_output(cli, tmp_path, monkeypatch):
    import errno

    from loyalty_cli.importing import service

    def failing(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", "till.csv")

    _member(cli, tmp_path)
    monkeypatch.setattr(service, "_check_header", failing)
    (tmp_path / "till.csv").write_text("transaction_id,customer_id,date,amount\n")
    result = cli("import", "purchases", str(tmp_path / "till.csv"))
    assert result.exit_code == 1
    assert result.stderr == "Error: till.csv: input/output error (a failing disk or device)\n"
