"""Points of one receipt: pure arithmetic over its lines and the program.

points = rounding( Σ lines(amount on the earning basis × per_currency_unit ×
product of the line's matching multiplier rules) × tier multiplier × partner
multiplier ) + Σ matching fixed-bonus rules. Decimal throughout, rounded once
per receipt. Nothing at all below `min_order`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache

from loyalty_cli.money import exponent, round_points
from loyalty_cli.program import Program, Rule, When

ONE = Decimal(1)


@dataclass(slots=True)
class Line:
    amount: int  # minor units, tax included
    tax: int
    category: str | None
    sku: str | None
    store: str | None
    refund_of: str | None


@dataclass(slots=True)
class Receipt:
    """The active lines of one transaction_id, attributed to one member."""

    transaction_id: str
    customer_id: str
    date: dt.date
    lines: list[Line] = field(default_factory=list)
    amount: int = 0  # Σ line amounts (kept by add())
    tax: int = 0

    def add(self, line: Line) -> None:
        self.lines.append(line)
        self.amount += line.amount
        self.tax += line.tax

    def set_lines(self, lines: list[Line]) -> None:
        self.lines = []
        self.amount = self.tax = 0
        for line in lines:
            self.add(line)

    @property
    def is_refund(self) -> bool:
        return self.amount < 0

    @property
    def store(self) -> str | None:
        return next((line.store for line in self.lines if line.store), None)

    @property
    def refund_of(self) -> str | None:
        return next((line.refund_of for line in self.lines if line.refund_of), None)

    def basis_amount(self, on: str) -> int:
        """Receipt total on the earning basis: gross = amount, net = amount - tax."""
        return self.amount - self.tax if on == "net" else self.amount


@dataclass(slots=True)
class Score:
    earn: int = 0  # the rounded, multiplied points (one `earn` entry)
    rule_ids: list[str] = field(default_factory=list)  # multiplier rules that matched
    bonuses: list[tuple[str, int]] = field(default_factory=list)  # (rule id, points)
    partner: str | None = None

    @property
    def total(self) -> int:
        return self.earn + sum(points for _, points in self.bonuses)


def receipt_matches(
    when: When, receipt: Receipt, basis_total: int, tier: str | None, currency: str
) -> bool:
    """The receipt-level part of a filter: dates, weekday, store, min_amount, tier."""
    if not when.matches_day(receipt.date):
        return False
    if when.store is not None and receipt.store not in when.store:
        return False
    if when.min_amount is not None and basis_total < _minor(when.min_amount, currency):
        return False
    return when.tier is None or tier in when.tier


def partner_multiplier(program: Program, store: str | None) -> tuple[str | None, Decimal]:
    if not program.partners:
        return None, ONE
    partner = program.partner_for_store(store)
    if partner is None:
        return None, ONE
    return partner.id, partner.multiplier


@lru_cache(maxsize=1024)
def _minor(value: Decimal, currency: str) -> int:
    """A program's money threshold in minor units (cached: asked once per receipt)."""
    return int(value.scaleb(exponent(currency)))


def min_order_minor(program: Program) -> int:
    return _minor(program.earn.min_order, program.currency)


class _WhenPlan:
    """A filter prepared once per program: the receipt-level tests in the form the
    hot loop asks them (day results memoised, thresholds in minor units)."""

    __slots__ = ("when", "days", "store", "min_minor", "tier", "lines", "categories", "skus")

    def __init__(self, when: When, currency: str) -> None:
        self.when = when
        self.days: dict[dt.date, bool] = {}
        self.store = when.store
        self.min_minor = None if when.min_amount is None else _minor(when.min_amount, currency)
        self.tier = when.tier
        self.lines = when.matches_lines
        # When.matches_line as set look-ups (`line_matches`).
        self.categories = None if when.category is None else frozenset(when.category)
        self.skus = None if when.sku is None else frozenset(when.sku)

    def line_matches(self, line: Line) -> bool:
        """self.when.matches_line(line.category, line.sku)."""
        cats, skus = self.categories, self.skus
        return (cats is None or line.category in cats) and (skus is None or line.sku in skus)

    def matches(self, receipt: Receipt, basis_total: int, tier: str | None) -> bool:
        """receipt_matches(self.when, receipt, basis_total, tier, currency)."""
        day = self.days.get(receipt.date)
        if day is None:
            day = self.days[receipt.date] = self.when.matches_day(receipt.date)
        if not day:
            return False
        if self.store is not None and receipt.store not in self.store:
            return False
        if self.min_minor is not None and basis_total < self.min_minor:
            return False
        return self.tier is None or tier in self.tier


class _RulePlan:
    __slots__ = ("rule", "id", "when", "cond", "multiplier", "parts", "bonus")

    def __init__(self, rule: Rule, currency: str) -> None:
        self.rule = rule
        self.id = rule.id
        self.when = rule.when
        self.cond = _WhenPlan(rule.when, currency)
        self.multiplier = rule.multiplier
        self.parts = _parts(rule.multiplier) if rule.multiplier is not None else None
        self.bonus = rule.bonus


class _Plan:
    """What score_receipt needs of a program, prepared once (programs are immutable)."""

    def __init__(self, program: Program) -> None:
        self.program = program
        currency = program.currency
        self.net = program.earn.on == "net"
        self.min_order = min_order_minor(program)
        self.exp = exponent(currency)
        self.rounding = program.earn.rounding
        self.pcu = _parts(program.earn.per_currency_unit)
        self.rules = [_RulePlan(r, currency) for r in program.rules]
        self.exact = self.pcu is not None and all(
            r.parts is not None for r in self.rules if r.multiplier is not None
        )
        self.whens: dict[int, _WhenPlan] = {}
        self.by_day: dict[dt.date, list[_RulePlan]] = {}  # rules whose day filter holds


_PLANS: dict[int, _Plan] = {}


def _plan(program: Program) -> _Plan:
    plan = _PLANS.get(id(program))
    if plan is None or plan.program is not program:
        if len(_PLANS) > 256:
            _PLANS.clear()
        plan = _PLANS[id(program)] = _Plan(program)  # holds program: its id stays unique
    return plan


def when_plan(program: Program, when: When) -> _WhenPlan:
    """A prepared filter of `program` (memoised per program, like the rules)."""
    whens = _plan(program).whens
    found = whens.get(id(when))
    if found is None or found.when is not when:
        found = whens[id(when)] = _WhenPlan(when, program.currency)
    return found


def score_receipt(
    program: Program, receipt: Receipt, tier: str | None, tier_multiplier: Decimal
) -> Score:
    """Points a sale receipt earns under `program` at `tier`.

    The same numbers as `score_receipt_reference` (tests compare them): rules are
    prepared once per program and the arithmetic stays in integers; whenever the
    integers could differ from Decimal's default context, the reference decides.
    """
    plan = _plan(program)
    if not plan.exact:
        return score_receipt_reference(program, receipt, tier, tier_multiplier)
    basis_total = receipt.amount - receipt.tax if plan.net else receipt.amount
    partner, partner_mult = (
        partner_multiplier(program, receipt.store) if program.partners else (None, ONE)
    )
    score = Score(partner=partner)
    if basis_total < plan.min_order:
        return score
    # The rules whose receipt-level filter holds (_WhenPlan.matches, inlined).
    day_rules = plan.by_day.get(receipt.date)
    if day_rules is None:
        day_rules = plan.by_day[receipt.date] = [
            r for r in plan.rules if r.when.matches_day(receipt.date)
        ]
    live: list[_RulePlan] = []
    for rule in day_rules:
        cond = rule.cond
        if cond.store is not None and receipt.store not in cond.store:
            continue
        if cond.min_minor is not None and basis_total < cond.min_minor:
            continue
        if cond.tier is not None and tier not in cond.tier:
            continue
        live.append(rule)
    # Factors applying to the whole receipt: per_currency_unit, whole-receipt
    # multipliers (rule order), tier, partner; as one coefficient and exponent.
    tm, pm = _parts(tier_multiplier), _parts(partner_mult)
    if tm is None or pm is None:
        return score_receipt_reference(program, receipt, tier, tier_multiplier)
    pcu = plan.pcu
    assert pcu is not None
    fc, fe = pcu[0] * tm[0] * pm[0], pcu[1] + tm[1] + pm[1]
    fb = (abs(pcu[0]) or 1) * (abs(tm[0]) or 1) * (abs(pm[0]) or 1)
    line_rules: list[_RulePlan] = []
    matched: set[str] = set()
    for rule in live:
        if rule.parts is None:
            continue
        if rule.cond.lines:
            line_rules.append(rule)
        else:
            c, e = rule.parts
            fc, fe, fb = fc * c, fe + e, fb * (abs(c) or 1)
            matched.add(rule.id)
    if line_rules:
        # Decimal(0) + Σ amount × Π line multipliers: the sum lives at the smallest exponent.
        net = plan.net
        scaled: list[tuple[int, int]] = []
        low = 0
        for line in receipt.lines:
            c, e = 1, 0
            for rule in line_rules:
                cats, skus = rule.cond.categories, rule.cond.skus
                if (cats is None or line.category in cats) and (skus is None or line.sku in skus):
                    rc, re = rule.parts  # type: ignore[misc]
                    c, e = c * rc, e + re
                    matched.add(rule.id)
            if abs(c) >= _EXACT_BOUND:
                return score_receipt_reference(program, receipt, tier, tier_multiplier)
            scaled.append(((line.amount - line.tax if net else line.amount) * c, e))
            if e < low:
                low = e
        weighted = bound = 0
        for c, e in scaled:
            aligned = c * 10 ** (e - low) if e != low else c
            weighted += aligned
            bound += abs(aligned)
    else:
        low, weighted, bound = 0, basis_total, abs(basis_total)
    points = None
    if bound * fb < _EXACT_BOUND:
        points = _round_scaled(weighted * fc, low - plan.exp + fe, plan.rounding)
    if points is None:
        return score_receipt_reference(program, receipt, tier, tier_multiplier)
    score.earn = max(0, points)
    score.rule_ids = [r.id for r in live if r.parts is not None and r.id in matched]
    for rule in live:
        if rule.bonus is None:
            continue
        if rule.cond.lines and not any(rule.cond.line_matches(line) for line in receipt.lines):
            continue
        score.bonuses.append((rule.id, rule.bonus))
    return score


def score_receipt_reference(
    program: Program, receipt: Receipt, tier: str | None, tier_multiplier: Decimal
) -> Score:
    """Points a sale receipt earns under `program` at `tier` (the plain reference)."""
    on = program.earn.on
    basis_total = receipt.basis_amount(on)
    # receipt.store walks the lines: only a coalition needs it here.
    partner, partner_mult = (
        partner_multiplier(program, receipt.store) if program.partners else (None, ONE)
    )
    score = Score(partner=partner)
    if basis_total < min_order_minor(program):
        return score
    currency = program.currency
    # Rules whose receipt-level conditions hold; line filters are checked per line.
    live: list[Rule] = [
        r for r in program.rules if receipt_matches(r.when, receipt, basis_total, tier, currency)
    ]
    mult_rules = [r for r in live if r.multiplier is not None]
    wholes: list[Decimal] = []
    line_rules: list[Rule] = []
    matched: set[str] = set()
    for rule in mult_rules:
        if rule.when.matches_lines:
            line_rules.append(rule)
        else:
            wholes.append(rule.multiplier)  # type: ignore[arg-type]
            matched.add(rule.id)
    # (amount on the basis, its line's multipliers) per line; one term without line rules.
    terms: list[tuple[int, list[Decimal]]]
    if line_rules:
        terms = []
        for line in receipt.lines:
            amount = line.amount - line.tax if on == "net" else line.amount
            line_factors: list[Decimal] = []
            for rule in line_rules:
                if rule.when.matches_line(line.category, line.sku):
                    line_factors.append(rule.multiplier)  # type: ignore[arg-type]
                    matched.add(rule.id)
            terms.append((amount, line_factors))
    else:
        terms = [(basis_total, [])]
    factors = [program.earn.per_currency_unit, *wholes, tier_multiplier, partner_mult]
    exp, rounding = exponent(currency), program.earn.rounding
    points = _points_exact(line_rules, terms, exp, factors, rounding)
    if points is None:
        points = _points_decimal(line_rules, terms, exp, factors, rounding)
    score.earn = max(0, points)
    score.rule_ids = [r.id for r in mult_rules if r.id in matched]
    for rule in live:
        if rule.bonus is None:
            continue
        if rule.when.matches_lines and not any(
            rule.when.matches_line(line.category, line.sku) for line in receipt.lines
        ):
            continue
        score.bonuses.append((rule.id, rule.bonus))
    return score


def _points_decimal(
    line_rules: list[Rule],
    terms: list[tuple[int, list[Decimal]]],
    exp: int,
    factors: list[Decimal],
    rounding: str,
) -> int:
    """The reference: Decimal arithmetic in the default context, rounded once."""
    if line_rules:
        weighted = Decimal(0)
        for amount, line_factors in terms:
            factor = ONE
            for m in line_factors:
                factor *= m
            weighted += amount * factor
    else:
        weighted = Decimal(terms[0][0])
    pcu, *rest = factors
    whole = ONE
    for m in rest[:-2]:
        whole *= m
    raw = weighted.scaleb(-exp) * pcu * whole * rest[-2] * rest[-1]
    return round_points(raw, rounding)


# Decimal's default context keeps 28 digits: below this bound on every
# coefficient the Decimal reference is exact, so integers give the same result.
_EXACT_BOUND = 10**26
_PARTS: dict[int, tuple[Decimal, int, int]] = {}


def _parts(d: Decimal) -> tuple[int, int] | None:
    """d as (coefficient, exponent) with d = c × 10**e, exactly as Decimal holds it."""
    hit = _PARTS.get(id(d))
    if hit is not None and hit[0] is d:
        return hit[1], hit[2]
    sign, digits, e = d.as_tuple()
    if not isinstance(e, int):
        return None  # NaN / infinity: leave it to the reference
    c = 0
    for digit in digits:
        c = c * 10 + digit
    c = -c if sign else c
    if len(_PARTS) > 4096:
        _PARTS.clear()
    _PARTS[id(d)] = (d, c, e)  # holding d keeps its id from being reused
    return c, e


def _points_exact(
    line_rules: list[Rule],
    terms: list[tuple[int, list[Decimal]]],
    exp: int,
    factors: list[Decimal],
    rounding: str,
) -> int | None:
    """The same number as _points_decimal in integer arithmetic, or None when the
    operands are too large to be sure Decimal's own arithmetic was exact."""
    # Each line: amount × Π multipliers = a × 10**e.
    scaled: list[tuple[int, int]] = []
    for amount, line_factors in terms:
        fc, e = 1, 0
        for m in line_factors:
            parts = _parts(m)
            if parts is None:
                return None
            fc, e = fc * parts[0], e + parts[1]
        if abs(fc) >= _EXACT_BOUND:
            return None
        scaled.append((amount * fc, e))
    if line_rules:
        # Decimal(0) + ...: the sum lives at the smallest exponent (0 included).
        low = min(0, *(e for _, e in scaled))
        weighted = 0
        bound = 0
        for c, e in scaled:
            aligned = c * 10 ** (e - low)
            weighted += aligned
            bound += abs(aligned)
    else:
        low = 0
        weighted = scaled[0][0]
        bound = abs(weighted)
    total_e = low - exp
    for m in factors:
        parts = _parts(m)
        if parts is None:
            return None
        weighted *= parts[0]
        bound *= abs(parts[0]) or 1
        total_e += parts[1]
    if bound >= _EXACT_BOUND:
        return None
    return _round_scaled(weighted, total_e, rounding)


def _round_scaled(c: int, e: int, rounding: str) -> int | None:
    """c × 10**e rounded to an integer like Decimal.to_integral_value."""
    if e >= 0:
        return c * 10**e
    q = 10**-e
    if rounding == "floor":
        return c // q
    if rounding == "ceil":
        return -(-c // q)
    if rounding == "round_half_up":  # half away from zero, as ROUND_HALF_UP
        return (2 * c + q) // (2 * q) if c >= 0 else -((-2 * c + q) // (2 * q))
    return None


def base_refund_points(program: Program, receipt: Receipt, tier_multiplier: Decimal) -> int:
    """Claw-back of a refund without a known original: |amount| at the base rate and tier."""
    amount = -receipt.basis_amount(program.earn.on)
    if amount <= 0:
        return 0
    _, partner_mult = partner_multiplier(program, receipt.store)
    raw = (
        Decimal(amount).scaleb(-exponent(program.currency))
        * program.earn.per_currency_unit
        * tier_multiplier
        * partner_mult
    )
    return max(0, round_points(raw, program.earn.rounding))


def proportional_clawback(
    original_points: int, refunded: int, original_amount: int, rounding: str
) -> int:
    """rounding(original points × refunded amount / original amount), exact."""
    if original_amount <= 0 or original_points <= 0 or refunded <= 0:
        return 0
    return round_points(Decimal(original_points) * refunded / original_amount, rounding)
