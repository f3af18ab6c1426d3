"""The program YAML -> a validated, typed `Program` (+ its JSON Schema).

Loading is safe and exact (program_yaml.py):
- a `yaml.SafeLoader` subclass; YAML floats become `Decimal` built from the
  scalar's text (0.1 stays Decimal("0.1"), 5.00 stays Decimal("5.00"));
- only `true`/`false` are booleans (YAML 1.1 would turn the key `on:` of
  `earn` into True, and a country code NO into False);
- alias bombs are refused (more than MAX_ALIASES aliases, or a document that
  expands to more than MAX_NODES nodes), as are recursive aliases, duplicate
  keys and python tags.

Validation has two passes. Pydantic checks each field on its own; then
`_cross_check` checks what spans fields (ascending tiers, unique ids, names
that must refer to something). Every error is mapped back to the YAML node
tree, so it names the file, the physical line and the field path:
`programs/x.yaml:14: tiers.levels[2].min: must be greater than 300`.

The version storage (`apply_program`, `version_in_force`, ...) lives in
`programs_store.py` and is re-exported at the bottom of this module.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import types
import typing
from contextlib import suppress
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from loyalty_cli import money
from loyalty_cli.engine.dates import OUT_OF_RANGE, in_range
from loyalty_cli.errors import ProgramError
from loyalty_cli.program_yaml import (
    Loader,
    StoredLoader,
    TreeError,
    WrittenInt,
    check_tree,
    open_quote_line,
)

SEGMENT_NAMES = ("new", "one_time", "repeat", "loyal", "at_risk", "lapsed")
ONCE_PER_CUSTOMER = ("signup", "newsletter", "social_follow", "profile_complete")
KNOWN_BONUSES = (*ONCE_PER_CUSTOMER, "review", "birthday", "referral")
STANDARD_COLUMNS = (
    "transaction_id", "customer_id", "date", "amount", "line_no", "sku", "category",
    "quantity", "store", "currency", "tax", "refund_of", "name", "email", "birthday",
    "joined_on", "referred_by", "event_id", "type", "redemption_id", "reward_id", "points",
    "expires_on",
)  # fmt: skip
MAX_MONEY = Decimal(10**12)  # any money field; far above any real shop
MAX_POINTS = 10**9  # any points field
# Points a currency unit earns with every multiplier applied: a million-euro
# receipt stays at 10^12 points, far inside SQLite's integers, however many
# multipliers a program has (each alone is bounded, their product was not).
MAX_POINTS_PER_UNIT = 1_000_000
MAX_DAYS = 36_500  # any day count: a hundred years
FIRST_DAY = dt.date(1, 1, 1)  # "in force from the start of history"

# Union branch tags: never a YAML key, so the error walker can skip them.
_T_INT, _T_MAP, _T_NAME, _T_NUM = "<int>", "<mapping>", "<name>", "<number>"
_TAGS = {_T_INT, _T_MAP, _T_NAME, _T_NUM}


# --------------------------------------------------------------------------- types


def _to_text(value: Any) -> Any:
    # Codes such as SKUs and store ids are often numeric in a till; accept them.
    if isinstance(value, WrittenInt):
        return value.text
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        return str(value)
    return value


def _one_or_many(value: Any) -> Any:
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple):
        return list(value)
    return [value]


# Monday first (date.weekday()); the first spelling is the one shown.
_WEEKDAY_SPELLINGS = (
    ("mon", "monday"),
    ("tue", "tues", "tuesday"),
    ("wed", "wednesday"),
    ("thu", "thur", "thurs", "thursday"),
    ("fri", "friday"),
    ("sat", "saturday"),
    ("sun", "sunday"),
)
_WEEKDAYS = {name: i for i, names in enumerate(_WEEKDAY_SPELLINGS) for name in names}
_DAY_NAMES = tuple(names[0] for names in _WEEKDAY_SPELLINGS)


def _weekdays(value: Any) -> Any:
    items = _one_or_many(value)
    if not isinstance(items, list):
        return items
    out: list[int] = []
    for item in items:
        key = item.strip().lower() if isinstance(item, str) else None
        if key not in _WEEKDAYS:
            raise ValueError(f"'{item}' is not a weekday; use mon, tue, wed, thu, fri, sat or sun")
        out.append(_WEEKDAYS[key])
    return sorted(set(out))


def _currency(value: Any) -> Any:
    if not (isinstance(value, str) and re.fullmatch(r"[A-Z]{3}", value)):
        raise ValueError(f"'{value}' is not a currency code; use 3 upper-case letters such as EUR")
    return value


# What the JSON Schema says a field takes (editors check the YAML against it), where
# that is not the stored type: codes may be numbers, weekdays are names.
_TextInput = Annotated[str, Field(min_length=1)] | float  # number: integers too
# Any case, as the loader reads them; spelled [Mm][Oo][Nn]: JSON Schema patterns are
# ECMA-262 regular expressions, which have no inline (?i).
_WeekdayName = Annotated[
    str,
    Field(
        pattern="^("
        + "|".join(
            "".join(f"[{c.upper()}{c}]" for c in name)
            for name in sorted(_WEEKDAYS, key=len, reverse=True)
        )
        + ")$"
    ),
]
Text = Annotated[
    str, BeforeValidator(_to_text, json_schema_input_type=_TextInput), Field(min_length=1)
]
TextList = Annotated[
    list[Text],
    BeforeValidator(_one_or_many, json_schema_input_type=_TextInput | list[_TextInput]),
    Field(min_length=1),
]
Weekdays = Annotated[
    list[int],
    BeforeValidator(_weekdays, json_schema_input_type=_WeekdayName | list[_WeekdayName]),
    # Shown (program show --format json) as the names the YAML takes back.
    PlainSerializer(lambda days: [_DAY_NAMES[d] for d in days]),
    Field(min_length=1),
]
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
# Upper bounds keep every product of amounts and rates far inside SQLite integers.
Rate = Annotated[Decimal, Field(gt=0, le=1000, allow_inf_nan=False)]
Currency = Annotated[
    str, BeforeValidator(_currency), Field(json_schema_extra={"pattern": "^[A-Z]{3}$"})
]


# YYYY-MM-DD, loosely: 2026-1-5 is told "must be a date like 2026-01-31" by pydantic.
_DAY_SHAPE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}")


def _day(value: Any, info: ValidationInfo) -> Any:
    """A day is written YYYY-MM-DD (a YAML date, or that text quoted). pydantic would
    take 0 or a Unix timestamp (`86400`, `"1767225600"`) as a day of 1970 or later and
    a timestamp's text as its day: a typo turned a campaign on for all history."""
    if _stored(info) or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, str) and _DAY_SHAPE.fullmatch(value):
        return value
    raise ValueError("must be a date like 2026-01-31")


Day = Annotated[
    dt.date,
    BeforeValidator(_day),
    # JSON Schema's "format": "date" is a note unless a validator opts in: say it.
    Field(json_schema_extra={"pattern": r"^\d{4}-\d{2}-\d{2}$"}),
]


class Strict(BaseModel):
    """Every section: unknown keys are errors; an explicit `key:` (null) means the default."""

    # Keys by their YAML names only: `from_` (the field behind `from`) is an unknown key.
    # defer_build: each model's validator is built on first use, not when this module
    # is imported; a command that validates only a Program builds it once (-70 ms).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data

    @field_validator("*", mode="before")
    @classmethod
    def _no_yes_no_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        # YAML true/false is no count of days or points (pydantic reads them as 1/0);
        # a stored version from before the rule still loads.
        if info.field_name is not None and _whole_number(
            cls.model_fields[info.field_name].annotation
        ):
            return _no_yes_no(value, info)
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _plain_decimal(cls, value: Any) -> Any:
        # `1e1` is 10: `program show` writes it so, not "1E+1".
        if isinstance(value, Decimal) and value.is_finite() and int(value.as_tuple().exponent) > 0:
            with suppress(InvalidOperation):  # more digits than a Decimal holds
                return value.quantize(Decimal(1))
        return value


def _whole_number(annotation: Any) -> bool:
    """`int` or `int | None`."""
    return annotation is int or (
        typing.get_origin(annotation) in (typing.Union, types.UnionType)
        and int in typing.get_args(annotation)
    )


class Limit(Strict):
    """At most `count` times per calendar day, ISO week, calendar month or year."""

    count: int = Field(ge=1, le=10**6)
    per: Literal["day", "week", "month", "year"]


class When(Strict):
    """A filter. category/sku match receipt lines; the rest match the receipt."""

    category: TextList | None = None
    sku: TextList | None = None
    store: TextList | None = None
    weekday: Weekdays | None = None
    date_from: Day | None = None
    date_to: Day | None = None
    min_amount: Money | None = None
    tier: TextList | None = None

    @property
    def matches_lines(self) -> bool:
        """True when the filter looks at lines (category or sku)."""
        return self.category is not None or self.sku is not None

    def matches_line(self, category: str | None, sku: str | None) -> bool:
        if self.category is not None and category not in self.category:
            return False
        return self.sku is None or sku in self.sku

    def matches_day(self, on: dt.date) -> bool:
        if self.weekday is not None and on.weekday() not in self.weekday:
            return False
        if self.date_from is not None and on < self.date_from:
            return False
        return self.date_to is None or on <= self.date_to


class Rule(Strict):
    id: Text
    when: When = Field(default_factory=When)
    multiplier: Rate | None = None
    bonus: int | None = Field(None, ge=1, le=MAX_POINTS)

    @property
    def kind(self) -> Literal["multiplier", "bonus"]:
        return "multiplier" if self.multiplier is not None else "bonus"


class BonusDetail(Strict):
    points: int = Field(ge=0, le=MAX_POINTS)
    limit: Limit | None = None


def _bonus_tag(value: Any) -> str:
    return _T_MAP if isinstance(value, (dict, BaseModel)) else _T_INT


def _stored(info: ValidationInfo) -> bool:
    """Whether a stored version is being loaded: rules added since judge only new ones."""
    return bool(info.context and info.context.get("stored"))


def _no_yes_no(value: Any, info: ValidationInfo) -> Any:
    """As Strict._no_yes_no_for_numbers, for a bonus given as a number."""
    if isinstance(value, bool) and not _stored(info):
        raise ValueError("must be a whole number, not true or false")
    return value


BonusValue = Annotated[
    # The bounds before the validator: so the JSON Schema says minimum / maximum.
    Annotated[int, Field(ge=0, le=MAX_POINTS), BeforeValidator(_no_yes_no), Tag(_T_INT)]
    | Annotated[BonusDetail, Tag(_T_MAP)],
    Discriminator(_bonus_tag),
]


class ReferralBonus(Strict):
    """Paid when the referee's first purchase (at least min_first_purchase) posts."""

    referrer: int = Field(0, ge=0, le=MAX_POINTS)
    referee: int = Field(0, ge=0, le=MAX_POINTS)
    min_first_purchase: Money = Decimal(0)


class Bonuses(BaseModel):
    """Known event types, plus any other name as a custom event type."""

    model_config = ConfigDict(extra="allow", frozen=True, defer_build=True)
    __pydantic_extra__: dict[str, BonusValue] = Field(init=False)  # type: ignore[assignment]

    signup: BonusValue | None = None
    newsletter: BonusValue | None = None
    review: BonusValue | None = None
    social_follow: BonusValue | None = None
    profile_complete: BonusValue | None = None
    birthday: BonusValue | None = None
    referral: ReferralBonus | None = None

    @model_validator(mode="before")
    @classmethod
    def _null_is_off(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None}
        return data


@dataclass(frozen=True)
class BonusSpec:
    """What one event of a type is worth. `once`: at most once per customer ever."""

    event: str
    points: int
    limit: Limit | None = None
    once: bool = False


class Expiry(Strict):
    policy: Literal["fixed", "inactivity"]
    months: int = Field(gt=0, le=1200)


class RollingWindow(Strict):
    rolling_days: int = Field(ge=1, le=MAX_DAYS)


def _window_tag(value: Any) -> str:
    return _T_MAP if isinstance(value, (dict, BaseModel)) else _T_NAME


WindowValue = Annotated[
    Annotated[RollingWindow, Tag(_T_MAP)]
    | Annotated[Literal["calendar_year", "lifetime"], Tag(_T_NAME)],
    Discriminator(_window_tag),
]


class Level(Strict):
    id: Text
    name: str | None = None
    min: Decimal = Field(ge=0, le=10**12, allow_inf_nan=False)
    multiplier: Rate = Decimal(1)
    perks: list[str] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return self.name or self.id


class Tiers(Strict):
    basis: Literal["spend", "points", "receipts"] = "spend"
    window: WindowValue = Field(default_factory=lambda: RollingWindow(rolling_days=365))
    upgrade: Literal["next_receipt", "same_receipt"] = "next_receipt"
    retain_days: int = Field(0, ge=0, le=MAX_DAYS)
    levels: list[Level] = Field(min_length=1)

    @property
    def window_kind(self) -> Literal["rolling", "calendar_year", "lifetime"]:
        return "rolling" if isinstance(self.window, RollingWindow) else self.window

    @property
    def window_days(self) -> int | None:
        return self.window.rolling_days if isinstance(self.window, RollingWindow) else None

    def window_start(self, on: dt.date) -> dt.date | None:
        """First date the window at `on` covers (None: lifetime). Rolling N at D is (D-N, D]."""
        if isinstance(self.window, RollingWindow):
            return on - dt.timedelta(days=self.window.rolling_days - 1)
        if self.window == "calendar_year":
            return dt.date(on.year, 1, 1)
        return None

    def level(self, level_id: str) -> Level | None:
        return next((lv for lv in self.levels if lv.id == level_id), None)


class Active(Strict):
    from_: Day | None = Field(None, alias="from")
    to: Day | None = None


class PunchCard(Strict):
    every: int = Field(ge=1, le=10**6)
    when: When = Field(default_factory=When)


class Reward(Strict):
    id: Text
    name: str = Field(min_length=1)
    cost: int | None = Field(None, ge=0, le=MAX_POINTS)
    value: Money = Decimal(0)
    min_tier: Text | None = None
    limit: Limit | None = None
    active: Active | None = None
    punch_card: PunchCard | None = None
    partner: Text | None = None
    voucher_days: int | None = Field(None, ge=1, le=MAX_DAYS)

    @property
    def points_cost(self) -> int:
        return self.cost or 0

    def is_active(self, on: dt.date) -> bool:
        if self.active is None:
            return True
        if self.active.from_ is not None and on < self.active.from_:
            return False
        return self.active.to is None or on <= self.active.to


class Segments(Strict):
    new_days: int = Field(30, ge=1, le=MAX_DAYS)
    at_risk_factor: Rate = Decimal(2)
    at_risk_min_days: int = Field(30, ge=0, le=MAX_DAYS)
    lapsed_days: int = Field(365, ge=1, le=MAX_DAYS)
    loyal_receipts: int = Field(4, ge=1, le=10**6)
    loyal_days: int = Field(365, ge=1, le=MAX_DAYS)


class Offer(Strict):
    id: Text
    segment: Literal["new", "one_time", "repeat", "loyal", "at_risk", "lapsed"] | None = None
    tier: Text | None = None
    favourite_category: bool = False

    @field_validator("favourite_category", mode="before")
    @classmethod
    def _only_true_or_false(cls, value: Any, info: ValidationInfo) -> Any:
        # Only true / false, as docs/program.md says (pydantic would read yes, on, 1);
        # a stored version from before the rule still loads.
        if not _stored(info) and not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value

    discount_percent: Decimal | None = Field(None, gt=0, le=100, allow_inf_nan=False)
    bonus_points: int | None = Field(None, ge=1, le=MAX_POINTS)
    reward: Text | None = None
    text: str | None = None


def _breakage_tag(value: Any) -> str:
    return _T_NAME if isinstance(value, str) and value[:1].isalpha() else _T_NUM


class Accounting(Strict):
    expected_breakage: Annotated[
        Annotated[Decimal, Field(ge=0, lt=1, allow_inf_nan=False), Tag(_T_NUM)]
        | Annotated[Literal["historical"], Tag(_T_NAME)],
        Discriminator(_breakage_tag),
    ] = Decimal(0)

    @property
    def historical(self) -> bool:
        return self.expected_breakage == "historical"

    @property
    def breakage(self) -> Decimal | None:
        """The fixed expected breakage, or None when it is computed from history."""
        return None if self.historical else self.expected_breakage  # type: ignore[return-value]


class CsvFormat(Strict):
    # The schema says what the validators below check, for an editor to mark.
    delimiter: str = Field(",", json_schema_extra={"pattern": '^[^\r\n"]$'})
    decimal: Literal[".", ","] = "."
    date_format: str = "%Y-%m-%d"
    encoding: str = "utf-8-sig"
    columns: dict[str, Text] = Field(
        default_factory=dict,
        json_schema_extra={"propertyNames": {"enum": list(STANDARD_COLUMNS)}},
    )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1:
            raise ValueError("must be a single character such as ',' or ';' (a tab is \"\\t\")")
        if value in '\r\n"':
            raise ValueError(
                "a quote or a line break cannot separate the columns; use ',' or ';' "
                '(a tab is "\\t")'
            )
        return value

    @field_validator("encoding")
    @classmethod
    def _known_codec(cls, value: str) -> str:
        from loyalty_cli.encodings import is_text_encoding

        if not is_text_encoding(value):
            raise ValueError(f"'{value}' is not a known text encoding (e.g. utf-8, cp1252)")
        return value

    @field_validator("date_format")
    @classmethod
    def _strftime(cls, value: str) -> str:
        from loyalty_cli.engine.dates import is_date_format

        if not is_date_format(value):
            raise ValueError(
                f"'{value}' is not a date format with day, month and year, such as %d.%m.%Y"
            )
        return value


class Partner(Strict):
    id: Text
    name: str | None = None
    stores: TextList
    multiplier: Rate = Decimal(1)


class Earn(Strict):
    per_currency_unit: Decimal = Field(ge=0, le=10_000, allow_inf_nan=False)
    rounding: Literal["floor", "round_half_up", "ceil"] = "floor"
    min_order: Money = Decimal(0)
    on: Literal["gross", "net"] = "gross"


class Program(Strict):
    """A whole loyalty program, as written in its YAML file."""

    program: str = Field(min_length=1)
    currency: Currency
    point_value: Decimal = Field(Decimal("0.01"), ge=0, le=1000, allow_inf_nan=False)
    effective_from: Day | None = None
    earn: Earn
    rules: list[Rule] = Field(default_factory=list)
    bonuses: Bonuses = Field(default_factory=Bonuses)
    pending_days: int = Field(0, ge=0, le=MAX_DAYS)
    expiry: Expiry | None = None
    tiers: Tiers | None = None
    rewards: list[Reward] = Field(default_factory=list)
    segments: Segments = Field(default_factory=Segments)
    offers: list[Offer] = Field(default_factory=list)
    accounting: Accounting = Field(default_factory=Accounting)
    csv: CsvFormat = Field(default_factory=CsvFormat)
    partners: list[Partner] = Field(default_factory=list)

    @property
    def name(self) -> str:
        return self.program

    # ---- money
    def minor(self, value: Decimal) -> int:
        """Decimal money in the program currency -> integer minor units."""
        return money.to_minor(value, self.currency)

    # ---- bonuses
    def bonus_for(self, event_type: str) -> BonusSpec | None:
        """The bonus an event type earns (None: not in the program). Referral: see `referral`."""
        if event_type == "referral":
            return None
        if event_type in KNOWN_BONUSES:
            value = getattr(self.bonuses, event_type)
        else:
            value = (self.bonuses.model_extra or {}).get(event_type)
        if value is None:
            return None
        once = event_type in ONCE_PER_CUSTOMER
        if isinstance(value, BonusDetail):
            return BonusSpec(event_type, value.points, value.limit, once)
        return BonusSpec(event_type, int(value), None, once)

    @property
    def referral(self) -> ReferralBonus | None:
        return self.bonuses.referral

    @property
    def bonus_events(self) -> list[str]:
        """Every event type this program pays for (known and custom)."""
        known = [k for k in KNOWN_BONUSES if getattr(self.bonuses, k) is not None]
        return known + list(self.bonuses.model_extra or {})

    # ---- tiers
    def level(self, level_id: str) -> Level | None:
        return self.tiers.level(level_id) if self.tiers else None

    def tier_threshold(self, level: Level) -> int:
        """A level's `min` in the unit the engine counts: minor units (spend) or a count."""
        if self.tiers is not None and self.tiers.basis == "spend":
            return self.minor(level.min)
        return int(level.min)

    @cached_property
    def _thresholds(self) -> list[tuple[int, Level]]:
        if self.tiers is None:
            return []
        return [(self.tier_threshold(lv), lv) for lv in self.tiers.levels]

    def level_for(self, qualifying: int) -> Level | None:
        """The highest level whose min <= qualifying (minor units for spend); None below all.

        A value below zero (the refund of a sale that has left the window) stands no
        lower than buying nothing: a base level of min 0 holds everyone."""
        qualifying = max(qualifying, 0)
        found = None
        for threshold, level in self._thresholds:
            if threshold <= qualifying:
                found = level
        return found

    # ---- catalogue and coalition
    def reward(self, reward_id: str) -> Reward | None:
        return next((r for r in self.rewards if r.id == reward_id), None)

    def rule(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)

    def partner(self, partner_id: str) -> Partner | None:
        return next((p for p in self.partners if p.id == partner_id), None)

    @cached_property
    def _store_partner(self) -> dict[str, Partner]:
        return {store: p for p in self.partners for store in p.stores}

    def partner_for_store(self, store: str | None) -> Partner | None:
        """The partner a store belongs to (None: no partners, or an unknown store)."""
        return self._store_partner.get(store) if store is not None else None


# --------------------------------------------------------------------------- cross-field checks

Loc = tuple[str | int, ...]


# coalition.COALITION and coalition.POOL: rows of `export settlement`.
RESERVED_PARTNER_IDS = ("coalition", "pool")


def _new_version_checks(p: Program) -> list[tuple[Loc, str]]:
    """Rules a program meets to be applied from now on. Versions stored before a rule
    existed still load (the ledger they made stands), so these run only on a file."""
    errs: list[tuple[Loc, str]] = []
    # Headers match without regard to case: two names given one header in another
    # case (`amount: X, tax: x`) would fail every import.
    folded: dict[str, tuple[str, str]] = {}
    for std, header in p.csv.columns.items():
        first, written = folded.setdefault(header.casefold(), (std, header))
        if first != std and written != header:  # (the same text: _cross_check says so)
            errs.append(
                (("csv", "columns", std), f"header '{header}' is already mapped to {first}")
            )
    # Inactivity expiry takes what is available N months after the last purchase:
    # points still pending then would never expire (no purchase comes to move it).
    if p.expiry is not None and p.expiry.policy == "inactivity":
        shortest = 28 * p.expiry.months  # N months are never fewer days than this
        if p.pending_days >= shortest:
            errs.append(
                (
                    ("pending_days",),
                    f"must be shorter than the inactivity expiry of {p.expiry.months} "
                    f"month{'s' if p.expiry.months != 1 else ''} (under {shortest} days): "
                    "points still pending when it comes would never expire",
                )
            )
    # Every multiplier at once: a receipt's points must stay far inside SQLite's
    # integers (each bound alone allowed 10,000 x 1000 x 1000 x ... per unit).
    worst = p.earn.per_currency_unit
    for rule in p.rules:
        worst *= rule.multiplier or 1
    if p.tiers is not None:
        worst *= max((level.multiplier for level in p.tiers.levels), default=Decimal(1))
    worst *= max((partner.multiplier for partner in p.partners), default=Decimal(1))
    if worst > MAX_POINTS_PER_UNIT:
        errs.append(
            (
                ("earn", "per_currency_unit"),
                f"with every rule's multiplier and the highest tier's and partner's "
                f"applied, one {p.currency} earns {worst.normalize():f} points; at most "
                f"{MAX_POINTS_PER_UNIT:,}",
            )
        )
    # The range `--effective` takes (and every date option): 1800-01-01 is a typo.
    if p.effective_from is not None and not in_range(p.effective_from):
        errs.append((("effective_from",), f"'{p.effective_from}' {OUT_OF_RANGE}"))
    if p.currency not in money.ISO_4217:
        errs.append(
            (
                ("currency",),
                f"'{p.currency}' is not an ISO 4217 currency code (such as EUR, USD, SEK)",
            )
        )
    # The settlement's own rows: what no partner funds, and the balancing row.
    for i, partner in enumerate(p.partners):
        if partner.id in RESERVED_PARTNER_IDS:
            errs.append(
                (
                    ("partners", i, "id"),
                    f"'{partner.id}' is reserved: the settlement has a '{partner.id}' row "
                    "of its own",
                )
            )
    return errs


def _cross_check(p: Program) -> list[tuple[Loc, str]]:
    errs: list[tuple[Loc, str]] = []
    exp = money.exponent(p.currency)

    def money_ok(loc: Loc, value: Decimal | None) -> None:
        if value is None:
            return
        shown = money.abbreviated(str(value))
        if abs(value) > MAX_MONEY:
            errs.append((loc, f"{shown} is too large (at most {MAX_MONEY})"))
        elif value != value.quantize(Decimal(1).scaleb(-exp)):
            errs.append((loc, f"{shown} has more than {exp} decimals for {p.currency}"))

    def dupes(items: list[Any], loc: Loc, what: str) -> None:
        seen: dict[str, int] = {}
        for i, item in enumerate(items):
            if item.id in seen:
                errs.append(
                    (
                        (*loc, i, "id"),
                        f"duplicate {what} id '{item.id}' (also {loc[-1]}[{seen[item.id]}])",
                    )
                )
            else:
                seen[item.id] = i

    level_ids = [lv.id for lv in p.tiers.levels] if p.tiers else []

    def tier_ok(loc: Loc, names: list[str] | str | None) -> None:
        for name in [names] if isinstance(names, str) else names or []:
            if not level_ids:
                errs.append((loc, f"unknown tier '{name}': the program has no tiers"))
            elif name not in level_ids:
                errs.append((loc, f"unknown tier '{name}'; levels are {', '.join(level_ids)}"))

    def when_ok(loc: Loc, when: When) -> None:
        if when.date_from and when.date_to and when.date_from > when.date_to:
            errs.append(((*loc, "date_to"), f"must not be before date_from {when.date_from}"))
        money_ok((*loc, "min_amount"), when.min_amount)
        tier_ok((*loc, "tier"), when.tier)

    money_ok(("earn", "min_order"), p.earn.min_order)

    # rules
    dupes(p.rules, ("rules",), "rule")
    for i, rule in enumerate(p.rules):
        if rule.multiplier is not None and rule.bonus is not None:
            errs.append((("rules", i, "bonus"), "a rule has either multiplier or bonus, not both"))
        elif rule.multiplier is None and rule.bonus is None:
            errs.append((("rules", i), "needs a multiplier or a bonus"))
        when_ok(("rules", i, "when"), rule.when)

    if p.referral is not None:
        money_ok(("bonuses", "referral", "min_first_purchase"), p.referral.min_first_purchase)

    # tiers
    if p.tiers is not None:
        t = p.tiers
        dupes(t.levels, ("tiers", "levels"), "level")
        for i, level in enumerate(t.levels):
            loc = ("tiers", "levels", i, "min")
            if t.basis == "spend":
                money_ok(loc, level.min)
            elif level.min != level.min.to_integral_value():
                errs.append((loc, f"must be a whole number of {t.basis}"))
            if i and level.min <= t.levels[i - 1].min:
                errs.append((loc, f"must be greater than {t.levels[i - 1].min}"))
        if t.upgrade == "same_receipt" and t.basis == "points":
            errs.append(
                (("tiers", "upgrade"), "same_receipt is only allowed with basis spend or receipts")
            )

    # partners
    dupes(p.partners, ("partners",), "partner")
    owner: dict[str, str] = {}
    for i, partner in enumerate(p.partners):
        for store in partner.stores:
            if store in owner and owner[store] != partner.id:
                errs.append(
                    (
                        ("partners", i, "stores"),
                        f"store '{store}' already belongs to partner '{owner[store]}'",
                    )
                )
            owner.setdefault(store, partner.id)
    partner_ids = [x.id for x in p.partners]

    # rewards
    dupes(p.rewards, ("rewards",), "reward")
    for i, r in enumerate(p.rewards):
        loc = ("rewards", i)
        money_ok((*loc, "value"), r.value)
        if r.punch_card is not None:
            if r.cost:
                errs.append(
                    ((*loc, "cost"), "a punch-card reward is issued without points; remove cost")
                )
            when_ok((*loc, "punch_card", "when"), r.punch_card.when)
        else:
            if not r.cost:
                errs.append(
                    ((*loc, "cost"), "must be at least 1 point (or give the reward a punch_card)")
                )
            if r.voucher_days is not None:
                errs.append(((*loc, "voucher_days"), "only applies to punch-card rewards"))
        tier_ok((*loc, "min_tier"), r.min_tier)
        if r.partner is not None and r.partner not in partner_ids:
            known = (
                f"partners are {', '.join(partner_ids)}"
                if partner_ids
                else "no partners are defined"
            )
            errs.append(((*loc, "partner"), f"unknown partner '{r.partner}'; {known}"))
        a = r.active
        if a is not None and a.from_ and a.to and a.from_ > a.to:
            errs.append(((*loc, "active", "to"), f"must not be before from {a.from_}"))

    # offers
    dupes(p.offers, ("offers",), "offer")
    reward_ids = [r.id for r in p.rewards]
    for i, o in enumerate(p.offers):
        tier_ok(("offers", i, "tier"), o.tier)
        if o.reward is not None and o.reward not in reward_ids:
            errs.append((("offers", i, "reward"), f"unknown reward '{o.reward}'"))
        if (
            o.discount_percent is None
            and o.bonus_points is None
            and o.reward is None
            and not o.text
        ):
            errs.append(
                (
                    ("offers", i),
                    "needs at least one of discount_percent, bonus_points, reward or text",
                )
            )

    # csv
    targets: dict[str, str] = {}
    for std, header in p.csv.columns.items():
        loc = ("csv", "columns", std)
        if std not in STANDARD_COLUMNS:
            hint = difflib.get_close_matches(std, STANDARD_COLUMNS, n=1)
            errs.append(
                (
                    loc,
                    f"'{std}' is not a standard column"
                    + (f" (did you mean '{hint[0]}'?)" if hint else ""),
                )
            )
        elif header in targets:
            errs.append((loc, f"header '{header}' is already mapped to {targets[header]}"))
        targets.setdefault(header, std)
    return errs


# --------------------------------------------------------------------------- errors -> lines


def _all_field_names() -> list[str]:
    names: set[str] = set()
    for model in (
        Program, Earn, Rule, When, Bonuses, BonusDetail, Limit, ReferralBonus, Expiry, Tiers,
        RollingWindow, Level, Reward, Active, PunchCard, Segments, Offer, Accounting, CsvFormat,
        Partner,
    ):  # fmt: skip
        for fname, info in model.model_fields.items():
            names.add(info.alias or fname)
    return sorted(names)


_FIELD_NAMES = _all_field_names()


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The models an annotation can hold (through Optional, unions, lists, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _keys_at(loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the section at a pydantic loc takes, or None when the walk is lost."""
    models: list[type[BaseModel]] = [Program]
    for step in loc:
        if isinstance(step, int) or step in _TAGS:
            continue  # a list index, a union branch
        fields = {
            (info.alias or name): info for m in models for name, info in m.model_fields.items()
        }
        if step in fields:
            models = _models_in(fields[step].annotation)
        elif any(m.model_config.get("extra") == "allow" for m in models):
            models = [BonusDetail]  # a custom event type under bonuses
        else:
            return None
        if not models:
            return None
    return sorted({info.alias or name for m in models for name, info in m.model_fields.items()})


def _locate(root: Node, loc: Loc) -> tuple[int, str]:
    """Walk the YAML node tree along a pydantic loc: (line, "a.b[2].c")."""
    node: Node | None = root
    line = root.start_mark.line + 1
    path = ""
    for el in loc:
        if isinstance(el, int):
            if isinstance(node, SequenceNode) and 0 <= el < len(node.value):
                node = node.value[el]
                line = node.start_mark.line + 1
                path += f"[{el}]"
            elif isinstance(node, ScalarNode):
                continue  # a single value the model turned into a list
            else:
                node = None
                path += f"[{el}]"
            continue
        key = str(el)
        if isinstance(node, MappingNode):
            hit = next(
                ((k, v) for k, v in node.value if isinstance(k, ScalarNode) and k.value == key),
                None,
            )
            if hit is not None:
                line = hit[0].start_mark.line + 1
                node = hit[1]
                path += f".{key}" if path else key
                continue
        if key in _TAGS:
            continue
        node = None
        path += f".{key}" if path else key
    return line, path


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = err.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        key = str(err["loc"][-1])
        # Hints from the keys valid at that place only (no top-level `tiers` for
        # `tier` under a reward); a key valid elsewhere is no hint for itself.
        here = _keys_at(err["loc"][:-1])
        others = [name for name in (here or _FIELD_NAMES) if name != key]
        hint = difflib.get_close_matches(key, others, n=1, cutoff=0.75)
        return "unknown key" + (f" (did you mean '{hint[0]}'?)" if hint else "")
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, not '{given}'"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("decimal_parsing", "decimal_type", "float_parsing", "float_type"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind.startswith("date_") or kind.startswith("datetime_"):
        if isinstance(given, str) and re.fullmatch(r"\d{4}-\d{1,2}-\d{1,2}", given.strip()):
            try:  # shaped like a date, but none: say why (2026-02-30)
                dt.date(*map(int, given.strip().split("-")))
            except ValueError as exc:
                return f"'{given.strip()}' is not a valid date ({exc})"
        return "must be a date like 2026-01-31"
    if kind.startswith("bool_"):
        return "must be true or false"
    if kind == "string_type":
        return "must be text"
    if kind == "string_too_short" or (kind == "too_short" and isinstance(given, str)):
        return "must not be empty"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"must have at least {n} {'entry' if n == 1 else 'entries'}"
    if kind == "list_type":
        return "must be a list"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "must be a set of keys (key: value)"
    if kind == "union_tag_invalid":
        return "has the wrong shape"
    bounds = {
        "greater_than": ("must be greater than", "gt"),
        "greater_than_equal": ("must be at least", "ge"),
        "less_than": ("must be less than", "lt"),
        "less_than_equal": ("must be at most", "le"),
    }
    if kind in bounds:
        text, key = bounds[kind]
        return f"{text} {ctx.get(key)}"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    return msg[:1].lower() + msg[1:]


def _raise(errors: list[ProgramError]) -> None:
    unique: list[ProgramError] = []
    seen: set[str] = set()
    for e in sorted(errors, key=lambda e: e.line or 0):
        if str(e) not in seen:
            seen.add(str(e))
            unique.append(e)
    first = unique[0]
    exc = ProgramError(first.message, file=first.file, line=first.line, field=first.field)
    exc.errors = unique  # type: ignore[attr-defined]
    raise exc


def _single(message: str, source: str, line: int | None, field: str | None = None) -> None:
    _raise([ProgramError(message, file=source, line=line, field=field)])


# --------------------------------------------------------------------------- public API


def parse_program(text: str, source: str = "<program>", stored: bool = False) -> Program:
    """Validate program YAML text. Raises ProgramError (all errors on `.errors`).
    `stored`: a version read back from the database, which the rules for new versions
    (`_new_version_checks`) do not judge again."""
    loader = (StoredLoader if stored else Loader)(text)
    try:
        root = loader.get_single_node()
        if root is None:
            _single("the file is empty; a program needs program, currency and earn", source, 1)
        check_tree(root)
        data = loader.construct_document(root)
    except TreeError as exc:
        _single(exc.message, source, exc.node.start_mark.line + 1, exc.field)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        tag = re.search(r"for the tag '([^']+)'", problem)
        if tag:
            shown = tag.group(1).replace("tag:yaml.org,2002:", "!!")
            problem = f"the YAML tag '{shown}' is not allowed; use plain values"
        elif isinstance(exc, yaml.constructor.ConstructorError):
            pass  # a value that cannot be read: the problem says which
        else:
            problem = f"YAML syntax error: {problem}"
            opened = open_quote_line(text, mark.line if mark else 0)
            if opened is not None:
                problem += f" (the quote opened on line {opened} is not closed on that line)"
        _single(problem, source, mark.line + 1 if mark else None)
    except yaml.YAMLError as exc:
        _single(f"YAML syntax error: {exc}", source, None)
    except RecursionError:
        _single("the YAML is nested too deeply", source, None)
    finally:
        loader.dispose()

    if not isinstance(root, MappingNode) or not isinstance(data, dict):
        _single(
            "a program must be a set of keys such as program, currency and earn",
            source,
            root.start_mark.line + 1,
        )
    try:
        program = Program.model_validate(data, context={"stored": stored})
    except ValidationError as exc:
        found = []
        for err in exc.errors():
            line, path = _locate(root, tuple(err["loc"]))
            found.append(ProgramError(_message(err), file=source, line=line, field=path or None))
        _raise(found)
    problems = _cross_check(program) + ([] if stored else _new_version_checks(program))
    if problems:
        found = []
        for loc, message in problems:
            line, path = _locate(root, loc)
            found.append(ProgramError(message, file=source, line=line, field=path or None))
        _raise(found)
    return program


def read_program_file(path: str | Path) -> tuple[str, bytes]:
    """(text, raw bytes) of a program file; unreadable or non-UTF-8 -> ProgramError."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ProgramError(f"cannot read the file: {exc.strerror or exc}", file=source) from None
    try:
        return raw.decode("utf-8-sig"), raw
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProgramError("the file is not UTF-8 text", file=source, line=line) from None


def load_program(path: str | Path) -> Program:
    """Read and validate a program file (UTF-8)."""
    text, _ = read_program_file(path)
    return parse_program(text, source=str(path))


def program_schema() -> dict[str, Any]:
    """The JSON Schema of the program YAML (for editors: yaml-language-server etc.)."""
    schema = Program.model_json_schema(by_alias=True)
    _decimal_strings(schema)
    for section in [schema, *schema.get("$defs", {}).values()]:
        _null_is_default_schema(section)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "loyalty program"
    schema["description"] = (
        "A loyalty program for `loyalty program apply`. Only program, currency and earn are "
        "required. Reference: docs/program.md."
    )
    return schema


# The strings the loader reads as a number (pydantic's lax mode: blanks around,
# `_` between digits, an exponent; a whole number may end in `.0`).
_DIGITS = r"[0-9]+(_[0-9]+)*"
_DECIMAL_TEXT = rf"^\s*[+-]?({_DIGITS}(\.({_DIGITS})?)?|\.{_DIGITS})([eE][+-]?[0-9]+)?\s*$"
_INTEGER_TEXT = rf"^\s*[+-]?{_DIGITS}(\.0+)?\s*$"


def _decimal_strings(node: Any) -> None:
    """A number field also takes its digits as a string ("0.20", "14"): say which
    strings, so that `expected_breakage: historical` matches only the `historical`
    branch."""
    if isinstance(node, dict):
        branches = node.get("anyOf")
        # pydantic writes a Decimal as [number, string] (then null when optional); a
        # code (Text), which takes any text or a number, is [string, number] and
        # keeps its plain string.
        if (
            isinstance(branches, list)
            and len(branches) >= 2
            and branches[0].get("type") == "number"
            and branches[1] == {"type": "string"}
            and all(b == {"type": "null"} for b in branches[2:])
        ):
            branches[1]["pattern"] = _DECIMAL_TEXT
        if node.get("type") == "integer":
            # A whole number written in quotes ("14") is one too; `minimum` and
            # `maximum` only weigh numbers, the loader checks the rest.
            node["type"] = ["integer", "string"]
            node["pattern"] = _INTEGER_TEXT
        for value in node.values():
            _decimal_strings(value)
    elif isinstance(node, list):
        for value in node:
            _decimal_strings(value)


_KEEP = ("title", "description", "default")


def _null_is_default_schema(section: dict[str, Any]) -> None:
    """`rules:` with no value means the default (Strict drops nulls): an optional
    key of a section also takes null."""
    required = set(section.get("required", ()))
    extra = section.get("additionalProperties")
    if isinstance(extra, dict):  # bonuses: a custom event type with no value is off
        section["additionalProperties"] = {"anyOf": [extra, {"type": "null"}]}
    for name, prop in section.get("properties", {}).items():
        if name in required or not isinstance(prop, dict):
            continue
        branches = prop.get("anyOf")
        if isinstance(branches, list):
            if {"type": "null"} not in branches:
                branches.append({"type": "null"})
            continue
        inner = {k: v for k, v in prop.items() if k not in _KEEP}
        kept = {k: v for k, v in prop.items() if k in _KEEP}
        section["properties"][name] = {**kept, "anyOf": [inner, {"type": "null"}]}


# Version storage, re-exported so callers only import loyalty_cli.program. Looked
# up on first use (PEP 562): programs_store imports this module, so importing it
# here would break whichever of the two was imported first.
_STORE_NAMES = frozenset(
    {
        "ProgramVersion",
        "VersionTimeline",
        "apply_program",
        "current_version",
        "list_versions",
        "require_program",
        "version_in_force",
        "versions_by_number",
        "versions_timeline",
    }
)


if TYPE_CHECKING:
    from loyalty_cli.programs_store import (
        ProgramVersion,
        VersionTimeline,
        apply_program,
        current_version,
        list_versions,
        require_program,
        version_in_force,
        versions_by_number,
        versions_timeline,
    )


def __getattr__(name: str) -> Any:
    if name in _STORE_NAMES:
        from loyalty_cli import programs_store

        return getattr(programs_store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FIRST_DAY",
    "Accounting",
    "BonusSpec",
    "CsvFormat",
    "Earn",
    "Level",
    "Limit",
    "Offer",
    "Partner",
    "Program",
    "ProgramVersion",
    "Reward",
    "Rule",
    "Tiers",
    "VersionTimeline",
    "When",
    "apply_program",
    "current_version",
    "list_versions",
    "load_program",
    "parse_program",
    "program_schema",
    "read_program_file",
    "require_program",
    "version_in_force",
    "versions_by_number",
    "versions_timeline",
]
