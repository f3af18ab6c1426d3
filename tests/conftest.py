"""Shared fixtures: a fresh SQLite file per test, the CLI runner, helpers."""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from loyalty_cli import db
from loyalty_cli.cli.app import app

# The suite is a gate (nothing red lands): hypothesis draws the same examples on
# every run, so a run cannot fail on the luck of the draw. To look for new bugs,
# draw fresh ones: HYPOTHESIS_PROFILE=explore .venv/bin/pytest (and keep what it
# finds as an @example or a plain test: the gate does not replay a database).
settings.register_profile("gate", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))


@pytest.fixture
def db_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database path in tmp_path, also exported as LOYALTY_DB."""
    path = tmp_path / "loyalty.db"
    monkeypatch.setenv("LOYALTY_DB", str(path))
    monkeypatch.setenv("NO_COLOR", "1")
    return path


@pytest.fixture
def conn(db_file: Path):
    connection = db.connect(db_file)
    yield connection
    connection.close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def cli(runner: CliRunner, db_file: Path) -> Callable[..., object]:
    """cli("import", "purchases", path) -> Result (stdout and stderr separate)."""

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, ["--db", str(db_file), *map(str, args)], input=input)

    return invoke


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """write("p.yaml", text) -> path; text is dedented."""

    def _write(name: str, text: str, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
        return path

    return _write


def load_json(result) -> object:
    assert result.exit_code in (0, 3), result.stderr + result.stdout
    return json.loads(result.stdout)
