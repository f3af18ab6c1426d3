"""cli/fastparams.py: plain values coerced without pydantic give exactly what
typer's pydantic coercion gives (values, error messages, exit codes), and a
command with options no longer loads typer's pydantic adapters."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.core import TyperCommand
from typer.testing import CliRunner

from loyalty_cli.cli import fastparams
from loyalty_cli.cli.app import app


class Colour(StrEnum):
    red = "red"
    green = "green"


class _FastCommand(TyperCommand):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fastparams.install(self)


def _probe(paths, s, i, f, p, b, c):
    typer.echo(repr((paths, s, i, f, p, b, c)))
    typer.echo(repr(tuple(type(v).__name__ for v in (paths, s, i, f, p, b, c))))


def _probe_app(cls: type[TyperCommand]) -> typer.Typer:
    """One command with a parameter of every annotation our commands use."""
    probe = typer.Typer()

    @probe.command(cls=cls)
    def command(
        paths: Annotated[list[Path] | None, typer.Argument()] = None,
        s: Annotated[str | None, typer.Option("--s")] = None,
        i: Annotated[int | None, typer.Option("--i")] = None,
        f: Annotated[float, typer.Option("--f")] = 600.0,
        p: Annotated[Path | None, typer.Option("--p")] = None,
        b: Annotated[bool, typer.Option("--b")] = False,
        c: Annotated[Colour, typer.Option("--c")] = Colour.red,
    ) -> None:
        _probe(paths, s, i, f, p, b, c)

    return probe


TRICKY = {
    "--s": ["", "abc", " x ", "-", "é", "a\x00b", "\udcff", "--s", "1.0", "\t"],
    "--i": ["0", "5", "-5", "+5", " 5", "5 ", "1_000", "0x10", "05", "-05", "-0", "00", "5.0"]
    + ["5.5", "٣", "１", "²", "1e3", "", "-", "--1", "9" * 18, "9" * 19, "-" + "9" * 18]
    + ["9" * 5000, "nan", "true"],
    "--f": ["0", "5", "-5", "1.5", "-1.5", "+1.5", " 1.5", "1.5 ", "1_0.5", "inf", "-inf"]
    + ["nan", "1e3", "1E-3", ".5", "5.", "-.5", "0.1", "0.30000000000000004", "٣.5", ""]
    + ["1.7976931348623157e309", "123456789.123456789", "1" * 28 + ".5", "1" * 40, "-0"]
    + ["-0.0", "00.10", "1.2.3", "0x10", "true"],
    "--p": ["", "a", "a//b/", "./a", "-", "~", " ", "a\x00b", "\udcff", "{file}", "{file}/"]
    + ["{dir}", "{dir}/", "{dir}/missing/x"],
    "--c": ["red", "green", "RED", "Red", "blue", "", " red", "red "],
}


def _args(option: str, raw: str, tmp_path: Path) -> list[str]:
    value = raw.format(file=tmp_path / "f.txt", dir=tmp_path) if "{" in raw else raw
    return [f"{option}={value}"]


def _both(args: list[str]):
    runner = CliRunner()
    fast = runner.invoke(_probe_app(_FastCommand), args)
    slow = runner.invoke(_probe_app(TyperCommand), args)
    return fast, slow


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "f.txt").write_text("x")
    return tmp_path


def test_typer_internals_are_what_fastparams_expects():
    # False after a typer upgrade: every command would import pydantic again.
    assert fastparams.SUPPORTED


@pytest.mark.parametrize(("option", "raw"), [(o, r) for o, rs in TRICKY.items() for r in rs])
def test_fast_and_typer_coercion_agree(option, raw, files):
    fast, slow = _both(_args(option, raw, files))
    assert (fast.exit_code, fast.output) == (slow.exit_code, slow.output)
    assert type(fast.exception) is type(slow.exception)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--b"],
        ["a", "b//c", "{file}"],
        ["a", "x\x00y"],
        ["{file}/", "a"],
        ["--i", "1", "--f", "2", "--s", "3", "--p", "4", "--c", "green", "5", "6"],
    ],
)
def test_fast_and_typer_coercion_agree_on_whole_command_lines(args, files):
    fast, slow = _both([a.format(file=files / "f.txt") for a in args])
    assert (fast.exit_code, fast.output) == (slow.exit_code, slow.output)


def test_random_decimals_coerce_as_pydantic_does():
    pick = random.Random(6)
    command = typer.main.get_command(_probe_app(_FastCommand))
    params = {p.name: p for p in command.params}
    for _ in range(300):
        text = f"{pick.choice(['', '-'])}{pick.randrange(10 ** pick.randrange(1, 16))}"
        if pick.random() < 0.7:
            text += "." + str(pick.randrange(10 ** pick.randrange(1, 12))).zfill(pick.randrange(12))
        for name, fast in (("f", fastparams._float), ("i", fastparams._int)):
            param = params[name]
            expected = fastparams.build_runtime_param(param.type_descriptor)
            try:
                wanted = expected.coerce(text, param=param, ctx=None)
            except typer.BadParameter:
                continue
            got = fast(text, param, None)
            assert got is fastparams._TYPER or (type(got), got) == (type(wanted), wanted), text


def test_plain_values_take_the_fast_path(files):
    """The cases the start-up saving rests on never ask typer's pydantic path."""
    command = typer.main.get_command(_probe_app(_FastCommand))
    params = {p.name: p for p in command.params}
    plain = {
        "s": ["2026-11-23", "", "C001"],
        "i": ["12", "-50", "0"],
        "f": ["600", "0.5", 600.0],
        "p": ["inbox", str(files / "f.txt"), str(files)],
        "paths": [("a.csv", str(files / "f.txt"))],
        "b": [True, False],
        "c": ["red", "green", Colour.red],
    }
    for name, values in plain.items():
        runtime = params[name]._runtime_param
        assert isinstance(runtime, fastparams.PlainRuntimeParam), name
        for value in values:
            assert runtime.fast(value, params[name], None) is not fastparams._TYPER, (name, value)


def test_every_parameter_of_every_command_has_the_fast_path():
    """A new annotation (datetime, a parser=...) would import pydantic again: add it to
    fastparams (with its cases in TRICKY) or accept the cost knowingly here."""
    root = typer.main.get_command(app)
    missing = []

    def walk(command, path):
        for param in command.params:
            if not isinstance(param._runtime_param, fastparams.PlainRuntimeParam):
                missing.append((path, param.name, param.type_descriptor.annotation))
        for name in getattr(command, "commands", {}):
            walk(command.commands[name], f"{path} {name}")

    walk(root, "loyalty")
    assert missing == []


def _run(code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )


def _modules_after(db: Path, *args: str, code_wanted: int = 0) -> list[str]:
    """The heavy modules loaded by `loyalty --db DB ARGS` in a fresh interpreter."""
    code = (
        "import sys\n"
        "from loyalty_cli.cli.app import app\n"
        "try:\n"
        f"    app(args={['--db', str(db), *args]!r})\n"
        "except SystemExit as exc:\n"
        f"    assert (exc.code or 0) == {code_wanted}, exc.code\n"
        "print(sorted(m for m in ('pydantic', 'typer._adapters') if m in sys.modules))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    return eval(result.stdout.splitlines()[-1])  # noqa: S307 - our own print of a list


def test_a_command_with_options_imports_no_pydantic(tmp_path):
    db = tmp_path / "shop.db"
    assert _modules_after(db, "init") == []
    assert _modules_after(db, "import", "list", "--format", "json") == []
    assert _modules_after(db, "import", "rejects", "--import", "1", code_wanted=1) == []
    assert _modules_after(db, "check", "--format", "csv") == []


PROGRAM = """
program: Test
currency: EUR
point_value: 0.01
earn: {per_currency_unit: 1, rounding: floor}
"""


def test_the_library_alone_loads_pydantic_for_report_kpi(tmp_path, write):
    # report kpi reads the program (a pydantic model, in loyalty_cli.program): the
    # CLI layer itself must not build typer's adapters on top.
    db = tmp_path / "shop.db"
    assert _modules_after(db, "init") == []
    program = write("p.yaml", PROGRAM)
    apply = ("program", "apply", str(program), "--effective", "2026-01-01", "--yes")
    assert _modules_after(db, *apply) == ["pydantic"]
    kpi = ("report", "kpi", "--from", "2026-10-23", "--to", "2026-11-22", "-f", "json")
    assert _modules_after(db, *kpi) == ["pydantic"]


def test_without_the_expected_internals_typer_coerces_as_before(monkeypatch):
    monkeypatch.setattr(fastparams, "SUPPORTED", False)
    command = typer.main.get_command(_probe_app(_FastCommand))
    assert all(param._runtime_param is None for param in command.params)
    result = CliRunner().invoke(_probe_app(_FastCommand), ["--i", "+5", "a"])
    assert result.exit_code == 0
    assert "([PosixPath('a')], None, 5, 600.0, None, False, <Colour.red: 'red'>)" in result.output
