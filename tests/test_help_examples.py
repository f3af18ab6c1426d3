"""Every `Example:` line in --help runs as written against the demo shop.

Examples name the demo's ids (C0001, R000001) and the repository's files
(sample_data/, programs/), so a user can paste them into a demo folder."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
import typer.main

from loyalty_cli.cli.app import app
from loyalty_cli.demo import DEMO_AS_OF, build_coalition_demo, build_demo

ROOT = Path(__file__).resolve().parents[1]
# Files an example names that a shop has and the repository cannot ship (a till's
# own export, a former system's balances), and commands that act outside a folder.
NOT_IN_A_DEMO_FOLDER = ("till.csv", "old-system.csv", "/srv/")


def _examples() -> list[str]:
    found: list[str] = []

    def walk(command: Any, ctx: Any) -> None:
        found.extend(re.findall(r"Example: (loyalty [^\n]*)", command.help or ""))
        if hasattr(command, "list_commands"):  # a group (typer brings its own click)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, type(ctx)(sub, parent=ctx, info_name=name))

    root = typer.main.get_command(app)
    walk(root, root.make_context("loyalty", [], resilient_parsing=True))
    return sorted(set(found))


EXAMPLES = _examples()


def test_every_command_has_an_example():
    assert len(EXAMPLES) >= 45


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from loyalty_cli import db

    folder = tmp_path_factory.mktemp("demo")
    for name in ("sample_data", "programs"):
        (folder / name).symlink_to(ROOT / name)
    conn = db.connect(folder / "shop.db")
    build_demo(conn, folder)
    conn.close()
    conn = db.connect(folder / "shop-coalition.db")
    build_coalition_demo(conn, folder)
    conn.close()
    return folder


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs(example: str, demo_folder: Path, tmp_path: Path, runner, monkeypatch):
    if any(part in example for part in NOT_IN_A_DEMO_FOLDER):
        pytest.skip("names a file or folder a shop has, not the repository")
    # Each example on its own copy of the demo: one cancels what another would.
    for name in ("sample_data", "programs"):
        (tmp_path / name).symlink_to(ROOT / name)
    for name in ("shop.db", "shop-coalition.db"):
        shutil.copy(demo_folder / name, tmp_path / name)
    (tmp_path / "backups").mkdir()
    args = shlex.split(example.split(" > ")[0])[1:]
    if args[:2] == ["--db", "shop.db"]:
        args = args[2:]
    if args[0] == "demo":
        args = ["demo", "--db", "new.db"]
    coalition = args[0] in ("report", "export") and args[1] in ("partners", "settlement")
    db = tmp_path / ("shop-coalition.db" if coalition else "shop.db")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NO_COLOR", "1")
    result = runner.invoke(app, ["--db", str(db), *args])
    assert result.exit_code == 0, f"{example}: {result.output}"


def test_demo_as_of_is_the_examples_date():
    # The examples' dates (2026-03-31, 2026-06-30, 2026-10-31) lie inside the demo's history.
    assert DEMO_AS_OF.isoformat() == "2026-10-31"


def test_the_simulate_worked_example_in_the_docs_is_what_the_demo_gives(
    demo_folder: Path, tmp_path: Path, runner
):
    """docs/simulate.md shows numbers measured on the demo shop: they went stale
    when the sample data changed."""
    import json

    text = (ROOT / "docs" / "simulate.md").read_text()
    shown = {
        m[0]: [m[1], m[2], m[3]]
        for m in re.findall(r"│ (\w+) +│ +([\d.]+) │ +([\d.]+) │ +([\d.]+) │", text)
    }
    assert set(shown) == {"points_issued", "points_clawed_back", "outstanding_points", "liability"}
    rule = re.search(r"  - (\{id: june-pastry.*\})\n", text).group(1)
    boutique = (ROOT / "programs" / "boutique.yaml").read_text()
    proposal = tmp_path / "proposal.yaml"
    proposal.write_text(
        boutique.replace("  - {id: pastry-double", f"  - {rule}\n  - {{id: pastry-double", 1)
    )
    shutil.copy(demo_folder / "shop.db", tmp_path / "shop.db")
    args = ["--db", str(tmp_path / "shop.db"), "simulate", str(proposal)]
    result = runner.invoke(app, [*args, "--from", "2026-06-01", "--to", "2026-06-30", "-f", "json"])
    assert result.exit_code == 0, result.stderr
    got = json.loads(result.stdout)
    for metric, (current, proposed, delta) in shown.items():
        assert [str(got[side][metric]) for side in ("current", "proposed", "delta")] == [
            current,
            proposed,
            delta,
        ], metric
