"""The program YAML: parsing, exact decimals, validation messages and their lines."""
# ruff: noqa: E501 - the exact error sentences are asserted verbatim

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import pytest

from loyalty_cli.errors import ProgramError
from loyalty_cli.program import load_program, parse_program, program_schema

PROGRAMS = Path(__file__).resolve().parent.parent / "programs"

BASE = """\
program: Demo Boutique
currency: EUR
point_value: 0.01
effective_from: 2026-01-01
earn:
  per_currency_unit: 1
  rounding: floor
  min_order: 5.00
  on: gross
rules:
  - {id: pastry-double, when: {category: pastry}, multiplier: 2}
  - {id: launch-week, when: {date_from: 2026-06-01, date_to: 2026-06-07}, multiplier: 3}
  - {id: big-basket, when: {min_amount: 100.00}, bonus: 50}
bonuses:
  signup: 50
  newsletter: 20
  review: {points: 10, limit: {count: 3, per: month}}
  birthday: 100
  referral: {referrer: 200, referee: 50, min_first_purchase: 20.00}
pending_days: 14
expiry: {policy: fixed, months: 12}
tiers:
  basis: spend
  window: {rolling_days: 365}
  upgrade: next_receipt
  retain_days: 0
  levels:
    - {id: bronze, name: Bronze, min: 0}
    - {id: silver, name: Silver, min: 300, multiplier: 1.5, perks: [free gift wrap]}
    - {id: gold, name: Gold, min: 1000, multiplier: 2}
rewards:
  - {id: coffee, name: Free coffee, cost: 100, value: 3.50}
  - {id: ten-off, name: 10 EUR off, cost: 500, value: 10.00, min_tier: silver,
     limit: {count: 1, per: month}, active: {from: 2026-01-01, to: 2026-12-31}}
  - {id: tenth-coffee, name: 10th coffee free, value: 3.50,
     punch_card: {every: 10, when: {category: coffee}}}
segments: {new_days: 30, at_risk_factor: 2, at_risk_min_days: 30, lapsed_days: 365, loyal_receipts: 4}
offers:
  - {id: winback, segment: at_risk, favourite_category: true, discount_percent: 10}
accounting: {expected_breakage: 0.2}
csv:
  delimiter: ";"
  decimal: ","
  date_format: "%d.%m.%Y"
  encoding: utf-8-sig
  columns: {transaction_id: Kuitti, customer_id: Asiakas, date: Pvm, amount: Summa}
partners:
  - {id: cafe, name: Cafe Aalto, stores: [S1, S2], multiplier: 1}
  - {id: bakery, name: Leipomo, stores: [B1], multiplier: 2}
"""

MINIMAL = "program: P\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"


def fail(text: str) -> ProgramError:
    with pytest.raises(ProgramError) as info:
        parse_program(text, "programs/x.yaml")
    return info.value


def edit(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def test_design_example_parses_exactly():
    p = parse_program(BASE)
    assert p.point_value == Decimal("0.01")
    assert str(p.earn.min_order) == "5.00"
    assert p.earn.on == "gross"  # YAML 1.1 would have read the key `on` as True
    assert p.tiers.levels[1].multiplier == Decimal("1.5")
    assert p.rewards[0].value == Decimal("3.50")
    assert p.accounting.breakage == Decimal("0.2")
    assert p.rewards[1].active.from_.isoformat() == "2026-01-01"
    assert p.rules[0].when.category == ["pastry"]
    assert p.rules[2].kind == "bonus" and p.rules[0].kind == "multiplier"
    assert p.minor(p.earn.min_order) == 500
    assert p.partner_for_store("B1").id == "bakery"
    assert p.partner_for_store("X9") is None


def test_point_one_stays_exact():
    p = parse_program(MINIMAL.replace("per_currency_unit: 1", "per_currency_unit: 0.1"))
    assert p.earn.per_currency_unit == Decimal("0.1")
    assert p.earn.per_currency_unit.as_tuple() == Decimal("0.1").as_tuple()


def test_defaults():
    p = parse_program(MINIMAL)
    assert p.point_value == Decimal("0.01")
    assert (p.earn.rounding, p.earn.min_order, p.earn.on) == ("floor", 0, "gross")
    assert p.pending_days == 0 and p.expiry is None and p.tiers is None
    assert p.segments.new_days == 30 and p.segments.at_risk_factor == 2
    assert p.segments.lapsed_days == 365 and p.segments.loyal_receipts == 4
    assert p.accounting.breakage == 0 and not p.accounting.historical
    assert p.csv.delimiter == "," and p.csv.decimal == "."
    assert p.bonus_for("signup") is None


def test_bonuses_normalised_and_custom_names_allowed():
    text = edit(
        "  birthday: 100\n",
        "  birthday: 100\n  store_visit: {points: 5, limit: {count: 1, per: day}}\n  app_install: 30\n",
    )
    p = parse_program(text)
    assert p.bonus_for("signup").points == 50 and p.bonus_for("signup").once
    review = p.bonus_for("review")
    assert (review.points, review.limit.count, review.limit.per, review.once) == (
        10,
        3,
        "month",
        False,
    )
    assert p.bonus_for("app_install").points == 30
    assert p.bonus_for("store_visit").limit.per == "day"
    assert p.bonus_for("unknown") is None
    assert p.bonus_for("referral") is None
    assert p.referral.referrer == 200 and p.referral.min_first_purchase == Decimal("20.00")
    assert "app_install" in p.bonus_events


def test_when_normalises_weekdays_and_lists():
    p = parse_program(
        edit(
            "when: {category: pastry}",
            "when: {weekday: [Saturday, sun], store: 12, sku: [1001, A2]}",
        )
    )
    when = p.rules[0].when
    assert when.weekday == [5, 6]
    assert when.store == ["12"] and when.sku == ["1001", "A2"]


def test_tiers_accessors():
    p = parse_program(BASE)
    assert p.tiers.window_kind == "rolling" and p.tiers.window_days == 365
    assert p.level_for(29_999).id == "bronze"
    assert p.level_for(30_000).id == "silver"
    assert p.tier_threshold(p.tiers.levels[2]) == 100_000
    cal = parse_program(edit("window: {rolling_days: 365}", "window: calendar_year"))
    assert cal.tiers.window_kind == "calendar_year" and cal.tiers.window_days is None


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "min: 1000",
            "min: 200",
            "programs/x.yaml:30: tiers.levels[2].min: must be greater than 300",
        ),
        (
            "min: 1000",
            "min: 300",
            "programs/x.yaml:30: tiers.levels[2].min: must be greater than 300",
        ),
        (
            "{id: gold,",
            "{id: silver,",
            "programs/x.yaml:30: tiers.levels[2].id: duplicate level id 'silver' (also levels[1])",
        ),
        (
            "currency: EUR",
            "currency: eur",
            "programs/x.yaml:2: currency: 'eur' is not a currency code; use 3 upper-case letters such as EUR",
        ),
        (
            "  rounding: floor",
            "  roundng: floor",
            "programs/x.yaml:7: earn.roundng: unknown key (did you mean 'rounding'?)",
        ),
        (
            "  rounding: floor",
            "  rounding: flor",
            "programs/x.yaml:7: earn.rounding: must be 'floor', 'round_half_up' or 'ceil', not 'flor'",
        ),
        ("  per_currency_unit: 1\n", "", "programs/x.yaml:5: earn.per_currency_unit: is required"),
        (
            "  per_currency_unit: 1\n",
            "  per_currency_unit: -1\n",
            "programs/x.yaml:6: earn.per_currency_unit: must be at least 0",
        ),
        (
            "{id: launch-week",
            "{id: pastry-double",
            "programs/x.yaml:12: rules[1].id: duplicate rule id 'pastry-double' (also rules[0])",
        ),
        (
            "multiplier: 3}",
            "multiplier: 3, bonus: 5}",
            "programs/x.yaml:12: rules[1].bonus: a rule has either multiplier or bonus, not both",
        ),
        (
            "when: {min_amount: 100.00}, bonus: 50}",
            "when: {min_amount: 100.00}}",
            "programs/x.yaml:13: rules[2]: needs a multiplier or a bonus",
        ),
        (
            "multiplier: 2}",
            "multiplier: 0}",
            "programs/x.yaml:11: rules[0].multiplier: must be greater than 0",
        ),
        (
            "date_to: 2026-06-07",
            "date_to: 2026-05-07",
            "programs/x.yaml:12: rules[1].when.date_to: must not be before date_from 2026-06-01",
        ),
        (
            "when: {category: pastry}",
            "when: {tier: platinum}",
            "programs/x.yaml:11: rules[0].when.tier: unknown tier 'platinum'; levels are bronze, silver, gold",
        ),
        (
            "when: {category: pastry}",
            "when: {weekday: funday}",
            "programs/x.yaml:11: rules[0].when.weekday: 'funday' is not a weekday; use mon, tue, wed, thu, fri, sat or sun",
        ),
        (
            "min_tier: silver",
            "min_tier: platinum",
            "programs/x.yaml:33: rewards[1].min_tier: unknown tier 'platinum'; levels are bronze, silver, gold",
        ),
        (
            "{id: ten-off",
            "{id: coffee",
            "programs/x.yaml:33: rewards[1].id: duplicate reward id 'coffee' (also rewards[0])",
        ),
        (
            "to: 2026-12-31",
            "to: 2025-12-31",
            "programs/x.yaml:34: rewards[1].active.to: must not be before from 2026-01-01",
        ),
        (
            "cost: 100, ",
            "",
            "programs/x.yaml:32: rewards[0].cost: must be at least 1 point (or give the reward a punch_card)",
        ),
        (
            "name: 10th coffee free, value: 3.50,",
            "name: 10th coffee free, value: 3.50, cost: 10,",
            "programs/x.yaml:35: rewards[2].cost: a punch-card reward is issued without points; remove cost",
        ),
        (
            "{every: 10,",
            "{every: 0,",
            "programs/x.yaml:36: rewards[2].punch_card.every: must be at least 1",
        ),
        (
            "upgrade: next_receipt",
            "upgrade: same_receipt\n  basis: points",
            "programs/x.yaml:26: tiers.basis: duplicate key 'basis' (first at line 23)",
        ),
        (
            "expected_breakage: 0.2",
            "expected_breakage: 1",
            "programs/x.yaml:40: accounting.expected_breakage: must be less than 1",
        ),
        (
            "expected_breakage: 0.2",
            "expected_breakage: historic",
            "programs/x.yaml:40: accounting.expected_breakage: must be 'historical', not 'historic'",
        ),
        (
            "discount_percent: 10",
            "discount_percent: 120",
            "programs/x.yaml:39: offers[0].discount_percent: must be at most 100",
        ),
        (
            "segment: at_risk",
            "segment: sleepy",
            "programs/x.yaml:39: offers[0].segment: must be 'new', 'one_time', 'repeat', 'loyal', 'at_risk' or 'lapsed', not 'sleepy'",
        ),
        (
            "expiry: {policy: fixed, months: 12}",
            "expiry: {policy: fixed, months: 0}",
            "programs/x.yaml:21: expiry.months: must be greater than 0",
        ),
        (
            "expiry: {policy: fixed, months: 12}",
            "expiry: {policy: never, months: 12}",
            "programs/x.yaml:21: expiry.policy: must be 'fixed' or 'inactivity', not 'never'",
        ),
        (
            "window: {rolling_days: 365}",
            "window: calender_year",
            "programs/x.yaml:24: tiers.window: must be 'calendar_year' or 'lifetime', not 'calender_year'",
        ),
        (
            "window: {rolling_days: 365}",
            "window: {rolling_days: 0}",
            "programs/x.yaml:24: tiers.window.rolling_days: must be at least 1",
        ),
        (
            "newsletter: 20",
            "newsletter: 2.5",
            "programs/x.yaml:16: bonuses.newsletter: must be a whole number",
        ),
        (
            "per: month}}",
            "per: fortnight}}",
            "programs/x.yaml:17: bonuses.review.limit.per: must be 'day', 'week', 'month' or 'year', not 'fortnight'",
        ),
        (
            "min_order: 5.00",
            "min_order: 5.001",
            "programs/x.yaml:8: earn.min_order: 5.001 has more than 2 decimals for EUR",
        ),
        (
            'delimiter: ";"',
            'delimiter: ";;"',
            "programs/x.yaml:42: csv.delimiter: must be a single character such as ',' or ';' (a tab is \"\\t\")",
        ),
        (
            'decimal: ","',
            'decimal: "\'"',
            "programs/x.yaml:43: csv.decimal: must be '.' or ',', not '''",
        ),
        (
            "encoding: utf-8-sig",
            "encoding: utf-99",
            "programs/x.yaml:45: csv.encoding: 'utf-99' is not a known text encoding (e.g. utf-8, cp1252)",
        ),
        (  # a codec, but not of text: reading a file with it failed as an internal error
            "encoding: utf-8-sig",
            "encoding: hex",
            "programs/x.yaml:45: csv.encoding: 'hex' is not a known text encoding (e.g. utf-8, cp1252)",
        ),
        (
            'date_format: "%d.%m.%Y"',
            'date_format: "%d.%m"',
            "programs/x.yaml:44: csv.date_format: '%d.%m' is not a date format with day, month and year, such as %d.%m.%Y",
        ),
        (
            "amount: Summa}",
            "amount: Summa, amout: X}",
            "programs/x.yaml:46: csv.columns.amout: 'amout' is not a standard column (did you mean 'amount'?)",
        ),
        (
            "amount: Summa}",
            "amount: Pvm}",
            "programs/x.yaml:46: csv.columns.amount: header 'Pvm' is already mapped to date",
        ),
        (
            "{id: bakery,",
            "{id: cafe,",
            "programs/x.yaml:49: partners[1].id: duplicate partner id 'cafe' (also partners[0])",
        ),
        (
            "stores: [B1]",
            "stores: [B1, S2]",
            "programs/x.yaml:49: partners[1].stores: store 'S2' already belongs to partner 'cafe'",
        ),
        (
            "stores: [B1], multiplier: 2}",
            "stores: [B1], multiplier: -2}",
            "programs/x.yaml:49: partners[1].multiplier: must be greater than 0",
        ),
        (
            "effective_from: 2026-01-01",
            "effective_from: 2026-13-01",
            "programs/x.yaml:4: effective_from: '2026-13-01' is not a valid date "
            "(month must be in 1..12)",
        ),
    ],
)
def test_validation_messages(old, new, expected):
    err = fail(edit(old, new))
    assert str(err).startswith(expected), str(err)
    assert err.exit_code == 2


def test_same_receipt_needs_spend_or_receipts():
    err = fail(
        edit("upgrade: next_receipt", "upgrade: same_receipt").replace(
            "basis: spend", "basis: points"
        )
    )
    assert (
        str(err)
        == "programs/x.yaml:25: tiers.upgrade: same_receipt is only allowed with basis spend or receipts"
    )
    parse_program(edit("upgrade: next_receipt", "upgrade: same_receipt"))


def test_points_basis_needs_whole_minimums():
    err = fail(edit("basis: spend", "basis: points").replace("min: 300,", "min: 300.5,"))
    assert str(err) == "programs/x.yaml:29: tiers.levels[1].min: must be a whole number of points"


def test_reward_partner_must_exist():
    err = fail(edit("cost: 100, value: 3.50}", "cost: 100, value: 3.50, partner: deli}"))
    assert (
        str(err)
        == "programs/x.yaml:32: rewards[0].partner: unknown partner 'deli'; partners are cafe, bakery"
    )


def test_offer_tier_and_reward_must_exist():
    err = fail(edit("discount_percent: 10}", "discount_percent: 10, tier: vip, reward: nope}"))
    assert (
        str(err)
        == "programs/x.yaml:39: offers[0].tier: unknown tier 'vip'; levels are bronze, silver, gold"
    )
    assert [e.field for e in err.errors] == ["offers[0].tier", "offers[0].reward"]


def test_missing_top_level_key_points_at_document():
    err = fail("currency: EUR\nearn: {per_currency_unit: 1}\n")
    assert str(err) == "programs/x.yaml:1: program: is required"


def test_unknown_key_in_nested_section_points_at_its_line():
    err = fail(
        edit(
            "    - {id: bronze, name: Bronze, min: 0}",
            "    - {id: bronze, name: Bronze, min: 0,\n       colour: brown}",
        )
    )
    assert str(err) == "programs/x.yaml:29: tiers.levels[0].colour: unknown key"


def test_several_errors_first_by_line_and_all_kept():
    text = edit("currency: EUR", "currency: X").replace("min: 1000", "min: 5")
    text = text.replace("  rounding: floor", "  rounding: up")
    err = fail(text)
    assert str(err).startswith("programs/x.yaml:2: currency:")
    # pydantic errors first; cross-field errors once the fields are valid
    assert [e.line for e in err.errors] == [2, 7]


def test_syntax_error_names_line():
    err = fail("program: P\ncurrency: EUR\nearn: {per_currency_unit: 1\n")
    assert err.file == "programs/x.yaml" and err.line == 4
    assert "YAML syntax error" in str(err)


def test_python_tag_rejected():
    err = fail(MINIMAL + "x: !!python/object/apply:os.system ['echo hi']\n")
    assert str(err) == (
        "programs/x.yaml:4: the YAML tag '!!python/object/apply:os.system' is not allowed; "
        "use plain values"
    )


def test_billion_laughs_rejected():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    err = fail("\n".join(lines) + "\n")
    assert "too large" in str(err) or "too many aliases" in str(err)


def test_too_many_aliases_rejected():
    text = MINIMAL + "x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n"
    err = fail(text)
    assert str(err) == "programs/x.yaml:5: YAML syntax error: too many aliases (more than 100)"


def test_recursive_alias_rejected():
    assert "recursive alias" in str(fail("a: &a [*a]\n"))


def test_empty_and_non_mapping():
    assert (
        str(fail(""))
        == "programs/x.yaml:1: the file is empty; a program needs program, currency and earn"
    )
    assert "must be a set of keys" in str(fail("- a\n- b\n"))


def test_null_section_means_default():
    p = parse_program(MINIMAL + "rules:\nrewards:\n")
    assert p.rules == [] and p.rewards == []


def test_load_program_unreadable(tmp_path):
    with pytest.raises(ProgramError) as info:
        load_program(tmp_path / "nope.yaml")
    assert "cannot read the file" in str(info.value)
    bad = tmp_path / "latin.yaml"
    bad.write_bytes(b"program: Caf\xe9\ncurrency: EUR\n")
    with pytest.raises(ProgramError) as info:
        load_program(bad)
    assert str(info.value) == f"{bad}:1: the file is not UTF-8 text"


def test_schema_is_json_with_earn():
    schema = json.loads(json.dumps(program_schema()))
    assert "earn" in schema["properties"]
    assert set(schema["required"]) == {"program", "currency", "earn"}
    assert "from" in schema["$defs"]["Active"]["properties"]


@pytest.mark.parametrize("path", sorted(PROGRAMS.glob("*.yaml")), ids=lambda p: p.name)
def test_example_programs_validate(path):
    program = load_program(path)
    assert program.program


def test_example_programs_present():
    names = {p.name for p in PROGRAMS.glob("*.yaml")}
    assert {"coffee-punch-card.yaml", "boutique.yaml", "cashback.yaml", "fi-pos.yaml"} <= names
    fi = load_program(PROGRAMS / "fi-pos.yaml")
    assert (fi.csv.delimiter, fi.csv.decimal, fi.csv.date_format) == (";", ",", "%d.%m.%Y")
    cash = load_program(PROGRAMS / "cashback.yaml")
    assert cash.point_value == Decimal("0.01") and cash.earn.per_currency_unit == 2


def test_a_key_valid_elsewhere_is_not_its_own_did_you_mean(tmp_path):
    path = tmp_path / "w.yaml"
    path.write_text(
        "program: A\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "rewards:\n  - {id: c, name: C, cost: 10, value: 1.00, when: yes}\n"
    )
    with pytest.raises(ProgramError) as err:
        load_program(path)
    assert str(err.value).endswith("w.yaml:5: rewards[0].when: unknown key")


def test_points_pending_past_an_inactivity_expiry_are_refused():
    """They would never expire: the expiry takes what is available on its day and no
    purchase comes to set another."""
    inactive = edit(
        "expiry: {policy: fixed, months: 12}", "expiry: {policy: inactivity, months: 1}"
    )
    err = fail(inactive.replace("pending_days: 14", "pending_days: 28"))
    assert str(err) == (
        "programs/x.yaml:20: pending_days: must be shorter than the inactivity expiry of "
        "1 month (under 28 days): points still pending when it comes would never expire"
    )
    assert (
        parse_program(inactive.replace("pending_days: 14", "pending_days: 27")).pending_days == 27
    )
    assert parse_program(edit("pending_days: 14", "pending_days: 400")).pending_days == 400


def test_a_stored_version_from_before_a_rule_still_loads(tmp_path):
    """A shop whose version was applied before the pending_days rule keeps working and
    can apply a corrected version; only a new file is held to the rule."""
    from loyalty_cli import db
    from loyalty_cli.program import apply_program, versions_timeline

    conn = db.connect(tmp_path / "shop.db")
    inactive = edit(
        "expiry: {policy: fixed, months: 12}", "expiry: {policy: inactivity, months: 1}"
    )
    path = tmp_path / "p.yaml"
    path.write_text(inactive.replace("pending_days: 14", "pending_days: 27"))
    apply_program(conn, path, effective=dt.date(2026, 1, 1))
    conn.execute(
        "UPDATE program_versions SET yaml = replace(yaml, 'pending_days: 27', 'pending_days: 30'),"
        " sha256 = 'as stored by an older release'"
    )
    (version,) = versions_timeline(conn)
    assert version.program.pending_days == 30
    path.write_text(inactive.replace("pending_days: 14", "pending_days: 30"))
    with pytest.raises(ProgramError, match="pending_days: must be shorter"):
        apply_program(conn, path, effective=dt.date(2026, 2, 1))
    path.write_text(inactive.replace("pending_days: 14", "pending_days: 7"))
    apply_program(conn, path, effective=dt.date(2026, 2, 1))
    assert [v.program.pending_days for v in versions_timeline(conn)] == [30, 7]


def _as_json(value):
    """A program as an editor's YAML 1.2 language server sees it: dates as text."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def _schema_errors(text: str) -> list[str]:
    import jsonschema
    import yaml

    from loyalty_cli.program_yaml import Loader

    validator = jsonschema.Draft202012Validator(json.loads(json.dumps(program_schema())))
    return [e.message for e in validator.iter_errors(_as_json(yaml.load(text, Loader=Loader)))]


@pytest.mark.parametrize(
    "path",
    [*sorted(PROGRAMS.glob("*.yaml")), Path(__file__).parent / "data" / "design-example.yaml"],
    ids=lambda p: p.name,
)
def test_the_schema_accepts_every_shipped_program_and_the_contracts_example(path):
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(program_schema())
    assert _schema_errors(path.read_text()) == []


def test_the_schema_takes_what_the_loader_takes_and_refuses_what_it_refuses():
    good = (
        "program: X\ncurrency: EUR\nearn: {per_currency_unit: '0.5'}\n"
        "accounting: {expected_breakage: historical}\nrules:\n"
        "segments: {new_days: '30', loyal_receipts: ' 4', at_risk_factor: '1e1'}\n"
        "rewards: [{id: 7, name: Seven, cost: 5, active: {from: 2026-01-01}}]\n"
        "offers: [{id: o, favourite_category: true, text: t}]\n"
        "bonuses: {signup: 5, app_install: , workshop: '3'}\n"
        "pending_days: '14'\n"
        "expiry: {policy: fixed, months: 12.0}\n"
    ).replace(
        "rules:\n", "rules: [{id: we, when: {weekday: [Sat, SUNDAY], sku: 12.5}, multiplier: 2}]\n"
    )
    parse_program(good)
    assert _schema_errors(good) == []
    for bad, loader_says in [
        ("currency: eur", "currency: 'eur' is not a currency code"),
        ("rules: [{id: a, when: {weekday: funday}, bonus: 2}]", "'funday' is not a weekday"),
        ("accounting: {expected_breakage: sometimes}", "expected_breakage"),
        ("offers: [{id: o, discount_percent: lots, text: t}]", "discount_percent"),
        ("offers: [{id: o, favourite_category: yes, text: t}]", "favourite_category"),
        ("rewards: [{id: s, name: S, cost: 5, active: {from_: 2026-03-01}}]", "from_"),
        ("bonuses: {signup: -1}", "must be at least 0"),
        ("bonuses: {app: 10000000000}", "must be at most 1000000000"),
        ("pending_days: true", "must be a whole number, not true or false"),
        ("pending_days: '14.5'", "must be a whole number"),
        ("csv: {delimiter: ';;'}", "must be a single character"),
        ("csv: {delimiter: '\"'}", "a quote or a line break cannot separate the columns"),
        ("csv: {columns: {kuitti: K}}", "'kuitti' is not a standard column"),
        ("segments: {at_risk_factor: '2 weeks'}", "at_risk_factor"),
        ("rules: [{id: a, when: {category: ''}, bonus: 2}]", "must not be empty"),
        ("rules: [{id: a, when: {sku: ['']}, bonus: 2}]", "must not be empty"),
        ("effective_from: 0", "must be a date like 2026-01-31"),
        ("effective_from: '1767225600'", "must be a date like 2026-01-31"),
        (
            "rewards: [{id: s, name: S, cost: 5, active: {to: '2026-01-05T00:00:00'}}]",
            "must be a date like 2026-01-31",
        ),
    ]:
        base = "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        text = base.replace("currency: EUR", bad) if bad.startswith("currency") else base + bad
        with pytest.raises(ProgramError) as err:
            parse_program(text)
        assert loader_says in str(err.value)
        assert _schema_errors(text), bad


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "currency: EUE",
            "currency: 'EUE' is not an ISO 4217 currency code (such as EUR, USD, SEK)",
        ),
        ("rules: [{id: '', bonus: 1}]", "rules[0].id: must not be empty"),
    ],
)
def test_a_currency_code_must_exist_and_an_id_must_not_be_empty(line, message):
    base = "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
    text = base.replace("currency: EUR", line) if line.startswith("currency") else base + line
    with pytest.raises(ProgramError) as err:
        parse_program(text, source="p.yaml")
    assert str(err.value).endswith(message)


def test_weekdays_are_shown_by_the_names_the_yaml_takes():
    text = (
        "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "rules: [{id: we, when: {weekday: [sunday, sat]}, multiplier: 2}]\n"
    )
    program = parse_program(text)
    assert program.rules[0].when.weekday == [5, 6]
    assert program.model_dump(mode="json", by_alias=True)["rules"][0]["when"]["weekday"] == [
        "sat",
        "sun",
    ]


def test_rules_for_new_versions_do_not_lock_out_a_stored_one():
    """A version applied before the ISO list and the true/false rule still loads
    from the database; a file with the same text is refused."""
    text = (
        "program: X\ncurrency: RMB\nearn: {per_currency_unit: 1}\n"
        "offers: [{id: o, favourite_category: yes, text: t}]\n"
    )
    stored = parse_program(text, source="program version 1", stored=True)
    assert (stored.currency, stored.offers[0].favourite_category) == ("RMB", True)
    with pytest.raises(ProgramError) as err:
        parse_program(text, source="p.yaml")
    assert "favourite_category: must be true or false" in str(err.value)
    with pytest.raises(ProgramError) as err:
        parse_program(text.replace("favourite_category: yes", "favourite_category: true"))
    assert "'RMB' is not an ISO 4217 currency code" in str(err.value)


def test_counts_and_points_are_numbers_not_true_or_false():
    text = (
        "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\npending_days: true\n"
        "bonuses: {signup: true, review: {points: true, limit: {count: true, per: month}}}\n"
        "segments: {new_days: true, at_risk_min_days: false}\n"
        "rewards:\n  - {id: c, name: C, cost: true}\n  - {id: v, name: V, punch_card: {every: true}}\n"
        "offers: [{id: o, bonus_points: true}]\n"
    )
    with pytest.raises(ProgramError) as err:
        parse_program(text, source="p.yaml")
    found = {e.field for e in err.value.errors}
    assert found == {
        "pending_days", "bonuses.signup", "bonuses.review.points", "bonuses.review.limit.count",
        "segments.new_days", "segments.at_risk_min_days", "rewards[0].cost",
        "rewards[1].punch_card.every", "offers[0].bonus_points",
    }  # fmt: skip
    assert {e.message for e in err.value.errors} == {"must be a whole number, not true or false"}
    stored = parse_program(text, source="program version 1", stored=True)  # still loads
    assert (stored.pending_days, stored.offers[0].bonus_points) == (1, 1)


def test_unknown_key_hints_come_from_the_keys_valid_at_that_place():
    text = """\
program: X
currency: EUR
earn: {per_currency_unit: 1}
bonuses:
  referral: {referrer: 10, bonus: 1}
  myevent: {points: 5, limit: {cout: 1, per: month}, referer: 3}
rewards:
  - {id: a, name: A, cost: 10, tiers: gold}
  - {id: c, name: C, value: 1, punch_card: {every: 2, when: {categry: x}}}
tier: {}
"""
    with pytest.raises(ProgramError) as exc:
        parse_program(text, "x.yaml")
    lines = [str(e) for e in exc.value.errors]  # type: ignore[attr-defined]
    assert "x.yaml:5: bonuses.referral.bonus: unknown key" in lines  # not 'bonus' of a rule
    assert "x.yaml:6: bonuses.myevent.limit.cout: unknown key (did you mean 'count'?)" in lines
    assert "x.yaml:6: bonuses.myevent.referer: unknown key" in lines  # a referral's key
    assert "x.yaml:8: rewards[0].tiers: unknown key" in lines  # `tiers` is top-level only
    assert (
        "x.yaml:9: rewards[1].punch_card.when.categry: unknown key (did you mean 'category'?)"
        in lines
    )
    assert "x.yaml:10: tier: unknown key (did you mean 'tiers'?)" in lines


@pytest.mark.parametrize(
    ("written", "code", "days"),
    [("0042", "0042", 42), ("010", "010", 10), ("0x1F", "0x1F", 31), ("0o17", "0o17", 15),
     ("1_000", "1_000", 1000), ("'0042'", "0042", 42)],
)  # fmt: skip
def test_codes_keep_their_digits_and_numbers_read_as_yaml_1_2(written, code, days):
    """YAML 1.1 read 0042 as octal 34: a rule for SKU 0042 matched SKU 34, and
    `pending_days: 010` was 8 days."""
    program = parse_program(
        "program: T\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        f"pending_days: {written}\n"
        f"rules: [{{id: a, when: {{sku: {written}, store: {written}}}, multiplier: 2}}]\n"
    )
    assert program.rules[0].when.sku == [code] and program.rules[0].when.store == [code]
    assert program.pending_days == days


def test_base_60_is_text_not_a_number():
    with pytest.raises(ProgramError) as err:
        parse_program(
            "program: T\ncurrency: EUR\nearn: {per_currency_unit: 1}\npending_days: 1:30\n"
        )
    assert "pending_days: must be a whole number" in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("true: 5\n", "x.yaml:4: true: unknown key"),
        ("null: 5\n", "x.yaml:4: null: unknown key"),
        ("rewards:\n  - id: r\n    name: R\n    cost: 5\n    2026: x\n",
         "x.yaml:8: rewards[0].2026: unknown key"),
        ("? [a, b]\n: 5\n", "x.yaml:4: a key must be a name, not a list or a mapping"),
    ],
)  # fmt: skip
def test_a_key_is_a_name_as_written(text, message):
    """`true:` was reported at line 1 as `[1]: keys should be strings`; a list as a
    key as `found unhashable key` with no line."""
    with pytest.raises(ProgramError) as err:
        parse_program("program: T\ncurrency: EUR\nearn: {per_currency_unit: 1}\n" + text, "x.yaml")
    assert str(err.value) == message


def test_a_custom_event_type_may_be_a_number():
    program = parse_program(
        "program: T\ncurrency: EUR\nearn: {per_currency_unit: 1}\nbonuses: {2026: 10}\n"
    )
    assert program.bonus_for("2026").points == 10


def test_a_syntax_error_far_below_an_unclosed_quote_names_its_line():
    """`program: "Demo` runs on to the next quote, 40 lines below, where PyYAML
    reports the error: the message names line 1 too."""
    text = (Path(__file__).parent / "data" / "design-example.yaml").read_text()
    broken = text.replace("program: ", 'program: "', 1)
    with pytest.raises(ProgramError) as err:
        parse_program(broken, "x.yaml")
    assert str(err.value).endswith("(the quote opened on line 1 is not closed on that line)")
    assert str(err.value).startswith("x.yaml:42: YAML syntax error: ")


@pytest.mark.parametrize(
    "value", ["0", '"0"', "86400", "1767225600", '"1767225600"', '"2026-01-05T00:00:00"',
              "2026-01-05 10:00:00", "0x0"],
)  # fmt: skip
def test_a_number_or_a_timestamp_is_no_date(value):
    """pydantic took 0 or a Unix timestamp as a day of 1970 or later: `date_from: 0`
    turned a campaign on for all history, `effective_from: 0` put a version at 1970."""

    def text(day: str) -> str:
        return (
            f"program: X\ncurrency: EUR\neffective_from: {day}\nearn: {{per_currency_unit: 1}}\n"
            f"rules:\n  - {{id: r, when: {{date_from: {day}, date_to: 2026-12-31}}, multiplier: 2}}\n"
            f"rewards:\n  - {{id: a, name: A, cost: 1, value: 1, active: {{from: {day}}}}}\n"
        )

    err = fail(text(value))
    assert [(e.line, e.field, e.message) for e in err.errors] == [
        (3, "effective_from", "must be a date like 2026-01-31"),
        (6, "rules[0].when.date_from", "must be a date like 2026-01-31"),
        (8, "rewards[0].active.from", "must be a date like 2026-01-31"),
    ]
    if value != "2026-01-05 10:00:00":  # (never taken: not midnight)
        # A version stored before the rule still loads.
        stored = parse_program(text(value), source="program version 1", stored=True)
        assert stored.rules[0].when.date_to == dt.date(2026, 12, 31)
    quoted = parse_program(text('"2026-01-05"'), "p.yaml")
    assert quoted.effective_from == quoted.rules[0].when.date_from == dt.date(2026, 1, 5)


def test_a_money_value_of_thousands_of_digits_is_quoted_by_its_start():
    err = fail(MINIMAL.replace("{per_currency_unit: 1}", "{per_currency_unit: 1, min_order: "
                               + "1" * 5000 + ".5}"))  # fmt: skip
    assert err.errors[0].message == (
        "1111111111111111… (5,002 characters) is too large (at most 1000000000000)"
    )


def test_a_long_numeric_code_stored_before_the_digit_rule_still_loads():
    text = MINIMAL + "rules:\n  - {id: r, when: {sku: " + "1" * 150 + "}, bonus: 2}\n"
    assert fail(text).errors[0].message == (
        "a number of 150 digits is too long (quote it if it is a code)"
    )
    stored = parse_program(text, source="program version 1", stored=True)
    assert stored.rules[0].when.sku == ["1" * 150]
