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


def test_multipliers_that_add_up_to_an_overflow_are_refused(tmp_path):
    """Each within its bound, together 10^16 points per euro: a large receipt made
    every later run fail with an internal error (an integer too large for SQLite)."""
    text = (
        "program: Big\ncurrency: EUR\nearn: {per_currency_unit: 10000}\n"
        "rules: [{id: a, multiplier: 1000}, {id: b, multiplier: 1000}]\n"
        "tiers: {levels: [{id: t, min: 0, multiplier: 1000}]}\n"
    )
    with pytest.raises(ProgramError) as info:
        parse_program(text, "big.yaml")
    assert str(info.value) == (
        "big.yaml:3: earn.per_currency_unit: with every rule's multiplier and the highest "
        "tier's and partner's applied, one EUR earns 10000000000000 points; at most 1,000,000"
    )
    fine = text.replace("10000}", "2}").replace("1000}, {id: b, multiplier: 1000}", "5}")
    assert parse_program(fine.replace("multiplier: 1000}]", "multiplier: 3}]")).program == "Big"


def test_a_stored_version_beyond_the_multiplier_bound_still_loads():
    """The bound came later: a version applied before it stands (its ledger does)."""
    text = (
        "program: Big\ncurrency: EUR\nearn: {per_currency_unit: 10000}\n"
        "rules: [{id: a, multiplier: 1000}]\n"
    )
    assert parse_program(text, "v1", stored=True).program == "Big"
