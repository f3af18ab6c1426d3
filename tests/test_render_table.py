"""Listings into a file or a pipe are drawn without Rich (it takes half a minute for
100,000 customers), exactly as Rich would draw them."""

from __future__ import annotations

import datetime as dt
import io
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
