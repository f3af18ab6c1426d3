import json
from pathlib import Path

from loyalty_cli.program import load_program, parse_program
from loyalty_cli.program_diff import diff_programs

BOUTIQUE = Path(__file__).parents[1] / "programs" / "boutique.yaml"


def test_same_program_has_no_changes():
    program = load_program(BOUTIQUE)
    assert diff_programs(program, program) == []


def test_changes_are_named_in_words_and_lists_match_by_id():
    old = load_program(BOUTIQUE)
    text = BOUTIQUE.read_text()
    text = text.replace("per_currency_unit: 1 ", "per_currency_unit: 2 ")
    text = text.replace(
        "{id: coffee, name: Free coffee, cost: 100,", "{id: coffee, name: Free coffee, cost: 120,"
    )
    text = text.replace("  - {id: big-basket, when: {min_amount: 100.00}, bonus: 50}\n", "")
    text = text.replace("min: 1000,", "min: 1500,")
    text = text.replace(
        "rules:",
        "rules:\n  - {id: june-pastry, when: {category: pastry, date_from: 2026-06-01,"
        " date_to: 2026-06-30}, multiplier: 2}",
    )
    new = parse_program(text)
    assert diff_programs(old, new) == [
        "earn.per_currency_unit: 1 -> 2",
        "rule 'june-pastry' added: when category [pastry], date_from 2026-06-01, "
        "date_to 2026-06-30, multiplier 2",
        "rule 'big-basket' removed (was when min_amount 100.00, bonus 50)",
        "tier level 'gold' changed: min: 1000 -> 1500",
        "reward 'coffee' changed: cost: 100 -> 120",
    ]


def test_fields_and_values_read_as_in_the_yaml():
    old = load_program(BOUTIQUE)
    text = BOUTIQUE.read_text().replace("active: {from: 2026-01-01,", "active: {from: 2026-02-01,")
    text = text.replace("favourite_category: true", "favourite_category: false")
    assert "from: 2026-02-01" in text and "favourite_category: false" in text
    changes = diff_programs(old, parse_program(text))
    assert "reward 'ten-off' changed: active.from: 2026-01-01 -> 2026-02-01" in changes
    assert "offer 'winback' changed: favourite_category: true -> false" in changes


def test_the_same_number_written_otherwise_is_not_a_change_and_weekdays_are_names():
    base = "program: D\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
    old = parse_program(base + "segments: {at_risk_factor: 2}\n")
    same = parse_program(
        base.replace("unit: 1", "unit: 1.0") + "segments: {at_risk_factor: '2.00'}\n"
    )
    assert diff_programs(old, same) == []
    new = parse_program(
        base + "segments: {at_risk_factor: 1e1}\n"
        "rules: [{id: we, when: {weekday: [Sunday, sat]}, multiplier: 2}]\n"
    )
    assert diff_programs(old, new) == [
        "rule 'we' added: when weekday [sat, sun], multiplier 2",
        "segments.at_risk_factor: 2 -> 10",
    ]


def test_effective_date_alone_is_not_a_change():
    old = load_program(BOUTIQUE)
    new = parse_program(
        BOUTIQUE.read_text().replace("effective_from: 2026-01-01", "effective_from: 2027-01-01")
    )
    assert diff_programs(old, new) == []


def test_cli_diff_against_the_version_in_force(cli, write):
    assert cli("program", "apply", BOUTIQUE).exit_code == 0
    proposed = write("p.yaml", BOUTIQUE.read_text().replace("pending_days: 14", "pending_days: 30"))
    result = cli("program", "diff", proposed)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "pending_days: 14 -> 30"
    result = cli("program", "diff", proposed, "--format", "json")
    assert json.loads(result.stdout) == {
        "file": str(proposed),
        "changes": ["pending_days: 14 -> 30"],
    }
    moved = write("m.yaml", BOUTIQUE.read_text().replace("2026-01-01", "2026-02-01", 1))
    assert cli("program", "diff", moved).stdout == "no changes to the rules\n"


def test_cli_diff_of_an_invalid_file_exits_2(cli, write):
    bad = write("bad.yaml", "program: X\ncurrency: EUR\n")
    result = cli("program", "diff", bad)
    assert result.exit_code == 2
    assert "earn" in result.stderr


def test_changed_items_come_in_the_files_order_whatever_the_hash_seed():
    """They came in set order, which moves with PYTHONHASHSEED: json and csv are
    stable (DESIGN)."""
    import os
    import subprocess
    import sys

    script = (
        "from pathlib import Path\n"
        "from loyalty_cli.program import load_program, parse_program\n"
        "from loyalty_cli.program_diff import diff_programs\n"
        f"path = Path({str(BOUTIQUE)!r})\n"
        "text = path.read_text()\n"
        "for rid in ('coffee', 'ten-off'):\n"
        "    text = text.replace('{id: ' + rid + ', name: ', '{id: ' + rid + ', name: X')\n"
        "print(diff_programs(load_program(path), parse_program(text)))\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout
        for seed in range(6)
    }  # fmt: skip
    assert len(outs) == 1
    out = outs.pop()
    assert out.index("reward 'coffee' changed") < out.index("reward 'ten-off' changed")


BASE = "program: Shop\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"


def test_offers_order_is_a_change_and_code_order_or_bonus_form_is_not():
    """Offers are picked first match first: their order changes who gets which.
    A list of codes is a set, and `signup: 50` is `signup: {points: 50}`."""
    offers = (
        "offers:\n  - {id: ten, discount_percent: 10}\n  - {id: twenty, discount_percent: 20}\n"
    )
    swapped = (
        "offers:\n  - {id: twenty, discount_percent: 20}\n  - {id: ten, discount_percent: 10}\n"
    )
    assert diff_programs(parse_program(BASE + offers), parse_program(BASE + swapped)) == [
        "offers: order [ten, twenty] -> [twenty, ten] (each customer gets the first that matches)"
    ]
    ahead = "offers:\n  - {id: five, discount_percent: 5}\n" + offers.removeprefix("offers:\n")
    assert diff_programs(parse_program(BASE + offers), parse_program(BASE + ahead)) == [
        "offers: order [ten, twenty] -> [five, ten, twenty] (each customer gets the first "
        "that matches)",
        "offer 'five' added: favourite_category false, discount_percent 5",
    ]
    behind = BASE + offers + "  - {id: five, discount_percent: 5}\n"
    assert diff_programs(parse_program(BASE + offers), parse_program(behind)) == [
        "offer 'five' added: favourite_category false, discount_percent 5"
    ]
    before = (
        BASE + "bonuses: {signup: 50}\nrules:\n  - {id: r, when: {store: [S1, S2]}, bonus: 5}\n"
    )
    after = before.replace("{signup: 50}", "{signup: {points: 50}}").replace("S1, S2", "S2, S1")
    assert diff_programs(parse_program(before), parse_program(after)) == []
    more = after.replace("{points: 50}", "{points: 60}")
    assert diff_programs(parse_program(before), parse_program(more)) == [
        "bonuses.signup.points: 50 -> 60"
    ]


def test_a_tab_delimiter_is_shown_as_written(cli, write):
    tabbed = parse_program(BASE + 'csv: {delimiter: "\\t"}\n')
    assert diff_programs(parse_program(BASE), tabbed) == ['csv.delimiter: , -> "\\t"']
    named = parse_program(BASE + 'csv: {columns: {sku: "Tuote\\u00a0é"}}\n')
    assert diff_programs(parse_program(BASE), named) == ['csv.columns.sku: added ("Tuote\\u00a0é")']


def test_cli_diff_csv_without_changes_has_the_change_header(cli, write):
    path = write("p.yaml", BASE)
    assert cli("program", "apply", path).exit_code == 0
    assert cli("program", "diff", path, "--format", "csv").stdout == "change\n"
