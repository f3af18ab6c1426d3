from loyalty_cli import __version__
from loyalty_cli.cli.app import app


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"loyalty {__version__}"


def test_no_args_shows_help(runner):
    result = runner.invoke(app, [], prog_name="loyalty")
    assert "Usage: loyalty" in result.output
