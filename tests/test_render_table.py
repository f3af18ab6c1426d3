"""Listings into a file or a pipe are drawn without Rich (it takes half a minute for
100,000 customers), exactly as Rich would draw them."""

from __future__ import annotations

import datetime as dt
import io
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli import render

values = st.one_of(
    st.none(),
    st.integers(-(10**12), 10**12),
    st.decimals(
        places=2, allow_nan=False, allow_infinity=False, min_value=-(10**6), max_value=10**6
    ),
    st.floats(0, 1),
    st.dates(dt.date(1900, 1, 1), dt.date(2999, 12, 31)),
    st.text(max_size=12),
    st.sampled_from(
        [
            "Café Aalto",
            "漢字の店",
            "-5",
            "=SUM(A1)",
            "[/bold]",
            "a\tb",
            "x\ny",
            "é",
            "🏻",
            "👍🏻",
            "e\u0301",
            "प्रिया",
            "0 ",
            " x",
        ]
    ),
)
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)


def _by_rich(rows, cols, title) -> str:
    out = io.StringIO()
    render.print_table(render.table(rows, cols, title), out)
    return out.getvalue()


@settings(max_examples=400, deadline=None)
@given(
    cols=st.lists(names, min_size=1, max_size=5, unique=True),
    data=st.data(),
    title=st.one_of(st.none(), st.text(max_size=30)),
)
def test_a_listing_into_a_pipe_is_what_rich_draws(cols, data, title):
    rows = data.draw(st.lists(st.fixed_dictionaries({c: values for c in cols}), max_size=6))
    out = io.StringIO()
    render.render_rows(rows, "table", cols, title or None, out)
    assert out.getvalue() == _by_rich(rows, cols, title or None)


def test_a_long_listing_is_not_drawn_by_rich(monkeypatch):
    rows = [
        {"customer_id": f"C{n:05}", "points": n, "value": Decimal(n).scaleb(-2)} for n in range(500)
    ]
    expected = _by_rich(rows, None, "customers")

    def no_rich(*args, **kwargs):
        raise AssertionError("drawn by Rich")

    monkeypatch.setattr(render, "print_table", no_rich)
    out = io.StringIO()
    render.render_rows(rows, "table", None, "customers", out)
    assert out.getvalue() == expected
    assert out.getvalue().splitlines()[5] == "│ C00001      │      1 │  0.01 │"


@pytest.mark.parametrize(
    ("cols", "rows"),
    [(["\u06e7"], []), (["a"], [{"a": "\u0301"}]), (["a", "\u200b"], [{"a": "x", "\u200b": "y"}])],
)
def test_text_of_no_width_is_laid_out_as_rich_does(cols, rows):
    """Found by the test above: Rich crops a lone combining mark from a column of
    width 0."""
    out = io.StringIO()
    render.render_rows(rows, "table", cols, None, out)
    assert out.getvalue() == _by_rich(rows, cols, None)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROW = {"reward_id": "coffee-long-id-1", "name": "Free coffee for everyone", "value": "3.50",
       "active": "2026-01-01 to 2026-12-31", "limit": "1 per month"}  # fmt: skip


def test_a_table_too_wide_for_the_terminal_is_one_block_per_row(monkeypatch):
    """Rich cut ids, dates and amounts to fit (`cof…`, `202…`, `10.…`)."""
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    tea = {**ROW, "reward_id": "tea", "limit": ""}
    render.render_rows([ROW, tea], "table", title="Rewards", out=out)
    assert out.getvalue().splitlines() == [
        "Rewards",
        "",
        "reward_id  coffee-long-id-1",
        "name       Free coffee for everyone",
        "value      3.50",
        "active     2026-01-01 to 2026-12-31",
        "limit      1 per month",
        "",
        "reward_id  tea",
        "name       Free coffee for everyone",
        "value      3.50",
        "active     2026-01-01 to 2026-12-31",
        "limit",
    ]


@pytest.mark.parametrize("columns", [62, 70, 90])
def test_a_table_that_fits_once_its_text_wraps_keeps_every_id_and_date_whole(monkeypatch, columns):
    """Only text with spaces wraps, at its spaces; Rich alone cut `coffee-lo…`."""
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Terminal()
    render.render_rows([ROW], "table", out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("┏") and "…" not in out.getvalue()
    assert max(len(line) for line in lines) <= columns
    assert "coffee-long-id-1" in lines[3] and "2026-01-01" in lines[3]
    assert any("2026-12-31" in line for line in lines[3:])


def test_control_characters_from_the_data_never_reach_the_terminal(cli, write):
    program = write("p.yaml", "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\n")
    assert cli("program", "apply", program, "--yes").exit_code == 0
    people = write("c.csv", "customer_id,name\nX3,Esc \x1b[31mRED\x1b[0m\n")
    assert cli("import", "customers", people).exit_code == 0
    bad = write(
        "p.csv", "transaction_id,customer_id,date,amount\nT1,X3,2026-01-05,\x1b]0;PWNED\x07\n"
    )
    assert cli("import", "purchases", bad).exit_code == 3
    for args in (("customer", "list"), ("customer", "show", "X3"), ("import", "rejects")):
        out = cli(*args).stdout
        assert "\x1b" not in out and "\x07" not in out, args
        assert "\\x1b" in out, args
    listed = json.loads(cli("customer", "list", "--format", "json").stdout)
    assert listed[0]["name"] == "Esc \x1b[31mRED\x1b[0m"  # the data itself is kept
    again = write(
        "p2.csv", "transaction_id,customer_id,date,amount\nT2,X3,2026-01-05,\x1b]0;PWNED\x07\n"
    )
    dry = cli("import", "purchases", again, "--dry-run")
    assert "\x1b" not in dry.stderr and "\\x1b]0;PWNED" in dry.stderr
    missing = cli("customer", "show", "Z\x1b[2J")
    assert missing.exit_code == 1
    assert missing.stderr == "Error: unknown customer 'Z\\x1b[2J'\n"


def test_a_record_of_figures_is_right_aligned_one_with_words_is_not():
    """`report kpi`: counts, amounts, rates (or none) and the period's dates line
    up on the right, as on an accountant's sheet; `redeem`'s record has words."""
    out = io.StringIO()
    render.render_mapping(
        {"from": dt.date(2026, 3, 1), "receipts": 7, "aov": None, "revenue": "1234.50"},
        "table",
        out=out,
    )
    assert out.getvalue().splitlines()[3:7] == [
        "│ from     │ 2026-03-01 │",
        "│ receipts │          7 │",
        "│ aov      │            │",
        "│ revenue  │    1234.50 │",
    ]
    out = io.StringIO()
    render.render_mapping({"reward_id": "coffee", "points": 40}, "table", out=out)
    assert out.getvalue().splitlines()[3:5] == [
        "│ reward_id │ coffee │",
        "│ points    │ 40     │",
    ]


def test_csv_on_a_terminal_writes_control_characters_out_into_a_file_as_they_are():
    """`customer list -f csv` on a terminal sent a name's escape sequence raw (it
    recoloured the terminal); piped or into a file the data stays exact."""
    rows = [["C1", "Evil\x1b[31mRed", "a\nb"]]
    shown, kept = _Terminal(), io.StringIO()
    render.write_csv(["id", "name", "note"], rows, shown)
    render.write_csv(["id", "name", "note"], rows, kept)
    assert shown.getvalue() == 'id,name,note\nC1,Evil\\x1b[31mRed,"a\nb"\n'
    assert kept.getvalue() == 'id,name,note\nC1,Evil\x1b[31mRed,"a\nb"\n'


def test_visible_writes_out_control_characters_and_a_file_names_non_utf8_bytes():
    import os

    from loyalty_cli.render import visible

    assert visible("a\x1b[31mb") == "a\\x1b[31mb"
    assert visible(os.fsdecode(b"caf\xe9.csv")) == "caf\\xe9.csv"
    assert visible("Björn\tok\n") == "Björn\tok\n"
