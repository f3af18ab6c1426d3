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


def score_receipt(
    program: Program, receipt: Receipt, tier: str | None, tier_multiplier: Decimal
) -> Score:
    """Points a sale receipt earns under `program` at `tier`."""
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
    whole = ONE
    line_rules: list[Rule] = []
    matched: set[str] = set()
    for rule in mult_rules:
        if rule.when.matches_lines:
            line_rules.append(rule)
        else:
            whole *= rule.multiplier  # type: ignore[operator]
            matched.add(rule.id)
    if line_rules:
        weighted = Decimal(0)
        for line in receipt.lines:
            amount = line.amount - line.tax if on == "net" else line.amount
            factor = ONE
            for rule in line_rules:
                if rule.when.matches_line(line.category, line.sku):
                    factor *= rule.multiplier  # type: ignore[operator]
                    matched.add(rule.id)
            weighted += amount * factor
    else:
        weighted = Decimal(basis_total)
    raw = (
        weighted.scaleb(-exponent(currency))
        * program.earn.per_currency_unit
        * whole
        * tier_multiplier
        * partner_mult
    )
    score.earn = max(0, round_points(raw, program.earn.rounding))
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
