"""The integer fast path of receipt scoring gives exactly the Decimal reference."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli.engine import scoring

decimals = st.one_of(
    st.decimals(min_value=0, max_value=10_000, places=4, allow_nan=False, allow_infinity=False),
    st.sampled_from(["1", "1.0", "1.50", "0.1", "2", "3", "0.333", "1E+1", "0.00", "1.2500"]).map(
        Decimal
    ),
)
amounts = st.integers(min_value=-(10**9), max_value=10**9)
roundings = st.sampled_from(["floor", "ceil", "round_half_up"])


@settings(max_examples=400, deadline=None)
@given(
    terms=st.lists(st.tuples(amounts, st.lists(decimals, max_size=3)), min_size=1, max_size=6),
    with_line_rules=st.booleans(),
    exp=st.sampled_from([0, 2, 3]),
    factors=st.lists(decimals, min_size=3, max_size=6),
    rounding=roundings,
)
def test_exact_equals_decimal(terms, with_line_rules, exp, factors, rounding):
    line_rules = [object()] if with_line_rules else []
    if not with_line_rules:
        terms = [(terms[0][0], [])]
    exact = scoring._points_exact(line_rules, terms, exp, factors, rounding)  # type: ignore[arg-type]
    reference = scoring._points_decimal(line_rules, terms, exp, factors, rounding)  # type: ignore[arg-type]
    if exact is not None:
        assert exact == reference


def test_exact_path_is_taken_and_rounds_like_decimal():
    # 0.50 + 0.50 + 0.50 at rate 1: 1.50 -> floor 1, ceil 2, half up 2; negatives away from zero.
    terms = [(50, [Decimal(1)]), (50, [Decimal(1)]), (50, [Decimal(1)])]
    factors = [Decimal(1), Decimal(1), Decimal(1)]
    for rounding, want in (("floor", 1), ("ceil", 2), ("round_half_up", 2)):
        assert scoring._points_exact([object()], terms, 2, factors, rounding) == want  # type: ignore[list-item]
    assert scoring._points_exact([], [(-250, [])], 2, factors, "round_half_up") == -3
    assert scoring._points_exact([], [(-249, [])], 2, factors, "floor") == -3
    # 70.00 at 0.1 is 7 exactly.
    assert scoring._points_exact([], [(7000, [])], 2, [Decimal("0.1"), *factors[1:]], "floor") == 7


def test_huge_operands_fall_back_to_decimal():
    big = Decimal("123456789.123456789")
    assert scoring._points_exact([], [(10**12, [])], 2, [big, big, big], "floor") is None


def test_every_cent_rounds_like_decimal():
    # Exhaustive over small amounts and common rates: every tie and near-tie.
    for rate in ("1", "0.1", "1.5", "0.25", "2"):
        factors = [Decimal(rate), Decimal(1), Decimal("1.5")]
        for amount in range(-1000, 1001):
            for rounding in ("floor", "ceil", "round_half_up"):
                got = scoring._points_exact([], [(amount, [])], 2, factors, rounding)
                assert got == scoring._points_decimal([], [(amount, [])], 2, factors, rounding)
