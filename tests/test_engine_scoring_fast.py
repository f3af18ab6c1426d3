"""score_receipt (rules prepared per program, integer arithmetic) gives exactly what
score_receipt_reference (the plain Decimal-backed walk over the rules) gives."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.engine.scoring import Line, Receipt, score_receipt, score_receipt_reference
from loyalty_cli.program import parse_program

BOUTIQUE = (Path(__file__).resolve().parents[1] / "programs" / "boutique.yaml").read_text()

RICH = """
program: Rich
currency: {currency}
point_value: 0.01
earn: {{per_currency_unit: {pcu}, rounding: {rounding}, min_order: 1.00, on: {on}}}
rules:
  - {{id: pastry, when: {{category: [pastry, cake]}}, multiplier: 1.5}}
  - {{id: sku-x, when: {{sku: X1}}, multiplier: 3}}
  - {{id: cake-third, when: {{category: cake}}, multiplier: 0.333}}
  - {{id: weekend, when: {{weekday: [sat, sun]}}, multiplier: 1.25}}
  - {{id: june, when: {{date_from: 2026-06-01, date_to: 2026-06-30}}, multiplier: 2}}
  - {{id: flagship, when: {{store: [S1]}}, multiplier: 1.1}}
  - {{id: silver-only, when: {{tier: [silver]}}, bonus: 7}}
  - {{id: big, when: {{min_amount: 40.00}}, bonus: 50}}
  - {{id: pastry-bonus, when: {{category: pastry, min_amount: 10.00}}, bonus: 5}}
partners:
  - {{id: P, stores: [S2], multiplier: 0.5}}
tiers:
  levels:
    - {{id: bronze, min: 0}}
    - {{id: silver, min: 300, multiplier: 1.5}}
    - {{id: gold, min: 1000, multiplier: 2}}
"""

lines = st.lists(
    st.builds(
        Line,
        amount=st.integers(-5000, 20000),
        tax=st.integers(0, 2000),
        category=st.sampled_from([None, "pastry", "cake", "bread", "coffee"]),
        sku=st.sampled_from([None, "X1", "Y2"]),
        store=st.sampled_from([None, "S1", "S2", "S3"]),
        refund_of=st.none(),
    ),
    min_size=1,
    max_size=5,
)
days = st.dates(min_value=dt.date(2026, 5, 20), max_value=dt.date(2026, 7, 10))
tiers = st.sampled_from([(None, Decimal(1)), ("silver", Decimal("1.5")), ("gold", Decimal(2))])


def _receipt(day: dt.date, items: list[Line]) -> Receipt:
    receipt = Receipt("T1", "C1", day)
    for line in items:
        receipt.add(line)
    return receipt


def _same(program, receipt, tier, mult) -> None:
    fast = score_receipt(program, receipt, tier, mult)
    ref = score_receipt_reference(program, receipt, tier, mult)
    assert (fast.earn, fast.rule_ids, fast.bonuses, fast.partner) == (
        ref.earn,
        ref.rule_ids,
        ref.bonuses,
        ref.partner,
    )


@settings(max_examples=300, deadline=None)
@given(day=days, items=lines, tier=tiers)
def test_boutique_fast_equals_reference(day, items, tier):
    _same(parse_program(BOUTIQUE), _receipt(day, items), *tier)


@pytest.mark.parametrize(
    "currency,pcu,rounding,on",
    [
        ("EUR", "1", "floor", "gross"),
        ("EUR", "0.1", "round_half_up", "net"),
        ("JPY", "0.37", "ceil", "gross"),
        ("KWD", "2.5", "round_half_up", "net"),
    ],
)
@settings(max_examples=150, deadline=None)
@given(day=days, items=lines, tier=tiers)
def test_rich_program_fast_equals_reference(currency, pcu, rounding, on, day, items, tier):
    text = RICH.format(currency=currency, pcu=pcu, rounding=rounding, on=on)
    _same(parse_program(text), _receipt(day, items), *tier)


def test_huge_amounts_take_the_reference():
    program = parse_program(
        RICH.format(currency="EUR", pcu="9999.9999", rounding="floor", on="gross")
    )
    receipt = _receipt(dt.date(2026, 6, 6), [Line(10**15, 0, "cake", "X1", "S1", None)])
    _same(program, receipt, "gold", Decimal("123.456"))
