"""Bounds on numbers in the program YAML."""

import pytest

from loyalty_cli.errors import ProgramError
from loyalty_cli.program import parse_program


@pytest.mark.parametrize(
    ("snippet", "field", "message"),
    [
        ("point_value: 1e400", "point_value", "must be at most 1000"),
        ("bonuses: {signup: 100000000000000000000}", "bonuses.signup", "at most 1000000000"),
        (
            "rules: [{id: x, when: {category: a}, multiplier: 1e300}]",
            "rules[0].multiplier",
            "at most 1000",
        ),
        ("pending_days: 99999999", "pending_days", "at most 36500"),
    ],
)
def test_absurdly_large_numbers_are_refused_not_crashed_on(snippet, field, message):
    text = "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1, rounding: floor}\n" + snippet
    with pytest.raises(ProgramError) as info:
        parse_program(text, "big.yaml")
    assert f"big.yaml:4: {field}: " in str(info.value)
    assert message in str(info.value)
