"""The lazy command tree (cli/app.py) gives exactly what typer's eager build gave,
and a short command leaves the heavy modules unimported."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from loyalty_cli import __version__
from loyalty_cli.cli import app as app_module
from loyalty_cli.cli.app import COMMAND_MODULES, LazyCommands, LoyaltyGroup, app


class _EagerGroup(LoyaltyGroup):
    """LoyaltyGroup (same main and error handling) over the commands typer built."""

    def __init__(self, *args, **kwargs):
        TyperGroup.__init__(self, *args, **kwargs)

    list_commands = TyperGroup.list_commands
    format_help = TyperGroup.format_help


def _eager() -> typer.Typer:
    """The root as it was built before: every module registered, the whole tree built."""
    eager = typer.Typer(
        cls=_EagerGroup,
        help=app.info.help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings=app.info.context_settings,
    )
    eager.callback()(app_module.root)
    for name in COMMAND_MODULES:
        importlib.import_module(f"loyalty_cli.cli.{name}").register(eager)
    return eager


def test_commands_are_listed_in_the_order_of_the_eager_build():
    eager = typer.main.get_command(_eager())
    lazy = typer.main.get_command(app)
    assert isinstance(lazy.commands, LazyCommands)
    assert list(lazy.commands) == list(eager.commands)
    assert len(lazy.commands) == 17


def test_help_stand_ins_carry_what_the_built_commands_carry():
    lazy = typer.main.get_command(app)
    summaries = lazy.commands.summaries()
    assert not lazy.commands._built  # listing built nothing
    for name, stub in summaries.items():
        real = lazy.commands[name]
        for attr in ("name", "help", "short_help", "hidden", "deprecated", "rich_help_panel"):
            assert getattr(stub, attr) == getattr(real, attr), (name, attr)


@pytest.mark.parametrize("args", [["--help"], [], ["report", "--help"], ["customer"]])
def test_help_is_the_eager_help(args, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    runner = CliRunner()
    lazy = runner.invoke(app, args, prog_name="loyalty", terminal_width=100)
    eager = runner.invoke(_eager(), args, prog_name="loyalty", terminal_width=100)
    assert lazy.output == eager.output
    assert "customer" in lazy.output and "Usage: loyalty" in lazy.output


def test_an_unknown_command_still_gets_suggestions():
    result = CliRunner().invoke(app, ["repor"], prog_name="loyalty")
    assert result.exit_code == 2
    assert "No such command 'repor'. Did you mean 'report', 'export'?" in result.output


def test_only_the_invoked_group_is_built():
    group = typer.main.get_command(app)
    with pytest.raises(SystemExit):
        group.main(args=["report", "kpi", "--help"], prog_name="loyalty")
    assert set(group.commands._built) == {"report"}


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_version_imports_no_library_nor_rich():
    code = (
        "import sys\n"
        "from loyalty_cli.cli.app import app\n"
        "try:\n"
        "    app(args=['--version'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('loyalty_cli.program', 'pydantic', 'yaml', 'rich', 'loyalty_cli.reports',\n"
        "         'loyalty_cli.importing', 'loyalty_cli.engine', 'typer.rich_utils', 'click')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    result = _run(code)
    assert result.stdout.splitlines() == [f"loyalty {__version__}", "[]"], result.stderr


@pytest.mark.parametrize(("no_color", "escapes"), [("1", False), ("", True)])
def test_no_color_help_has_no_escape_codes_on_a_terminal(no_color, escapes):
    code = (
        "import sys\nfrom loyalty_cli.cli.app import main\nsys.argv = ['loyalty', '-h']\nmain()\n"
    )
    env = {"FORCE_COLOR": "1", "TERM": "xterm-256color", "NO_COLOR": no_color}
    result = _run(code, **env)
    assert "Usage" in result.stdout
    assert ("\x1b[" in result.stdout) is escapes
