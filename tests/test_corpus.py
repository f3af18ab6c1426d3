"""Hostile input: every file in tests/corpus/ with its expected outcome, plus
hypothesis fuzzing of the CSV reader and the program loader.

The rule under test (DESIGN "Bad input gets a clear error"): a bad file exits 2
with one sentence naming the file; a bad row is rejected (exit 3) with line,
field and reason; nothing ever ends in a traceback or an "internal error".
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty_cli import db
from loyalty_cli.programs_store import apply_program

CORPUS = Path(__file__).resolve().parent / "corpus"
PROGRAM = "program: Corpus\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"

# file -> (command, extra args, exit code, expected text). For exit 3 the text is
# looked for in the rejects as "line:field:reason"; for exit 1/2 in stderr; for
# exit 0 in the JSON result ('"inserted": 1') or the validate message.
CASES: dict[str, tuple[str, tuple[str, ...], int, str]] = {
    # encodings
    "latin1.csv": ("purchases", (), 2, "latin1.csv:3: cannot be read as utf-8-sig (byte b'\\xe9')"),
    "latin1.csv+enc": ("purchases", ("--encoding", "latin-1"), 0, '"inserted": 2'),
    "cp1252_quotes.csv": ("purchases", (), 2, ":3: cannot be read as utf-8-sig (byte b'\\x93')"),
    # Excel's "Unicode Text": the hint names utf-16, not latin-1 (which then failed as
    # a file ending its lines with CR only).
    "utf16.csv": (
        "purchases",
        (),
        2,
        "(--encoding), utf-16: it starts with the UTF-16 byte order mark",
    ),
    "utf16.csv+enc": ("purchases", ("--encoding", "utf-16"), 0, '"inserted"'),
    "bom.csv": ("purchases", (), 0, '"inserted": 1'),
    "binary.csv": ("purchases", (), 2, "binary.csv:1: cannot be read as utf-8-sig"),
    # delimiters and shape
    "semicolon.csv": ("purchases", (), 0, '"inserted": 1'),
    "tab.csv": ("purchases", (), 0, '"inserted": 1'),
    "mixed_delimiter.csv": ("purchases", (), 3, "3:None:the row has 1 fields, the header has 4"),
    "ragged.csv": ("purchases", (), 3, "4:None:the row has 5 fields, the header has 4"),
    "unterminated_quote.csv": (
        "purchases",
        (),
        3,
        "3:None:a quote opened on line 3 is never closed: "
        "lines 3-4 were read as one row of 2 fields",
    ),
    # In the last column the row has the header's width: the rows after it were
    # lost inside its sku without a word.
    "unterminated_quote_last_column.csv": (
        "purchases",
        (),
        3,
        "3:None:a quote opened on line 3 is never closed: "
        "lines 3-5 were read as one row of 5 fields",
    ),
    # Inside a quote never closed, quotes come in pairs: the row does not end one.
    "unterminated_quote_doubled_quotes.csv": (
        "purchases",
        (),
        3,
        "2:None:a quote opened on line 2 is never closed: "
        "lines 2-3 were read as one row of 6 fields",
    ),
    # A closed multi-line field with spaces after its quote, beside a 5" mark: read.
    "closed_multiline_trailing_space.csv": ("purchases", (), 0, '"inserted": 2'),
    "crlf.csv": ("purchases", (), 0, '"inserted": 1'),
    "cr_only.csv": ("purchases", (), 2, "cr_only.csv:1: the file ends its lines with CR only"),
    "quoted_newline.csv": ("purchases", (), 3, "4:amount:not an amount: 'abc'"),
    "empty.csv": ("purchases", (), 2, "empty.csv: the file is empty; expected a header line"),
    "blank_lines.csv": ("purchases", (), 2, "the file is empty; expected a header line"),
    "header_only.csv": ("purchases", (), 0, '"rows": 0'),
    "header_only_no_newline.csv": ("purchases", (), 0, '"rows": 0'),
    "header_case_spaces.csv": ("purchases", (), 0, '"inserted": 1'),
    "duplicate_header.csv": ("purchases", (), 2, ":1: column 'amount' appears twice in the header"),
    "duplicate_header_case.csv": (
        "purchases",
        (),
        2,
        ":1: column 'amount' appears twice in the header (as 'Amount' and 'AMOUNT')",
    ),
    "missing_column.csv": ("purchases", (), 2, ":1: column 'amount' not found"),
    "header_newline.csv": ("purchases", (), 2, "the file has 'transaction_id', 'customer\\nid'"),
    "nul_byte.csv": ("purchases", (), 3, "3:customer_id:'C\\x002' contains a control character"),
    # cells
    "formula.csv": ("purchases", (), 0, '"inserted": 2'),  # text is data; exports neutralise
    "feb31_iso.csv": ("purchases", (), 3, "2:date:'2026-02-31' is not a valid date"),
    "feb31_dotted.csv": ("purchases", (), 3, "2:date:'31.02.2026' is not a date in the format"),
    "feb31_dotted.csv+fmt": (
        "purchases",
        ("--date-format", "%d.%m.%Y"),
        3,
        "2:date:'31.02.2026' is not a valid date (day is out of range for month)",
    ),
    "amount_1e400.csv": ("purchases", (), 3, "2:amount:not an amount: '1e400' is not a number"),
    "amount_nan.csv": ("purchases", (), 3, "2:amount:not an amount: 'NaN' is not a number"),
    "amount_inf.csv": ("purchases", (), 3, "2:amount:not an amount: 'Infinity' is not a number"),
    "amount_double_minus.csv": ("purchases", (), 3, "2:amount:not an amount: '--5'"),
    "amount_three_decimals.csv": ("purchases", (), 3, "2:amount:not an amount: '10.005' has more"),
    "amount_huge.csv": ("purchases", (), 3, "is out of range"),
    # Beyond the 4,300 digits int() takes: an internal error that stopped the import.
    "amount_5000_digits.csv": (
        "purchases",
        (),
        3,
        "2:amount:not an amount: 9999999999999999… (5,000 characters) is out of range",
    ),
    "line_no_5000_digits.csv": (
        "purchases",
        (),
        3,
        "2:line_no:'1111111111111111… (5,000 characters)' is not a whole number of 1 or more",
    ),
    "field_11k.csv": ("purchases", (), 3, "3:customer_id:longer than 10000 characters"),
    "long_id.csv": ("purchases", (), 3, "2:customer_id:longer than 64 characters"),
    "bad_line_no.csv": ("purchases", (), 3, "3:line_no:'-1' is not a whole number of 1 or more"),
    "empty_required.csv": ("purchases", (), 3, "3:transaction_id:empty; a value is required"),
    "key_conflict.csv": ("purchases", (), 3, "3:amount:conflict: transaction_id 'T1'"),
    "exact_duplicate.csv": ("purchases", (), 0, '"duplicates": 1'),
    "other_currency.csv": ("purchases", (), 3, "2:currency:currency 'USD' is not the program's"),
    "unicode_ids.csv": ("purchases", (), 0, '"inserted": 1'),
    "events_unknown_customer.csv": ("events", (), 3, "2:customer_id:unknown customer 'NOBODY'"),
    "customers_bad_birthday.csv": ("customers", (), 3, "2:birthday:'1990-02-30' is not a valid"),
    # Thousands of leading zeros: the bound passed, then int() refused the text.
    "balances_5000_leading_zeros.csv": ("balances", (), 0, '"inserted": 2'),
    # program YAML (`program validate`)
    "billion_laughs.yaml": ("validate", (), 2, "the document is too large"),
    "billion_laughs_bonuses.yaml": ("validate", (), 2, "bonuses.f: the document is too large"),
    "anchors_merge.yaml": ("validate", (), 0, "is a valid program (Anchors)"),
    "anchors_earn_merge.yaml": ("validate", (), 2, "anchors_earn_merge.yaml:3: defaults: unknown"),
    "python_object.yaml": (
        "validate",
        (),
        2,
        "python_object.yaml:1: the YAML tag '!!python/object/apply:os.system' is not allowed",
    ),
    "python_name.yaml": ("validate", (), 2, ":2: the YAML tag '!!python/name:os.getcwd'"),
    "yaml_syntax.yaml": ("validate", (), 2, "yaml_syntax.yaml:5: YAML syntax error"),
    "yaml_tabs.yaml": ("validate", (), 2, "yaml_tabs.yaml:4: YAML syntax error"),
    "yaml_duplicate_key.yaml": ("validate", (), 2, ":3: currency: duplicate key 'currency'"),
    "yaml_empty.yaml": ("validate", (), 2, "yaml_empty.yaml:1: the file is empty"),
    "yaml_list.yaml": ("validate", (), 2, ":1: a program must be a set of keys"),
    "yaml_point_value_1e400.yaml": ("validate", (), 2, "point_value: must be at most 1000"),
    "yaml_int_5000_digits.yaml": (
        "validate",
        (),
        2,
        ":4: a number of 5,000 digits is too long (quote it if it is a code)",
    ),
    "yaml_deep.yaml": ("validate", (), 2, "yaml_deep.yaml: the YAML is nested too deeply"),
    "yaml_binary.yaml": ("validate", (), 2, "yaml_binary.yaml:1: the file is not UTF-8 text"),
}
# Known importer gaps (reported): these cases state the right outcome and
# are expected to fail until the importer handles them.
XFAIL: dict[str, str] = {}  # corpus cases the importer gets wrong (none now)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with the program applied, made once and copied per test."""
    base = tmp_path_factory.mktemp("corpus")
    (base / "program.yaml").write_text(PROGRAM)
    path = base / "template.db"
    conn = db.connect(path)
    try:
        apply_program(conn, base / "program.yaml")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return path


@pytest.fixture
def program(template: Path, db_file: Path) -> None:
    shutil.copy(template, db_file)


def outcome(cli, command: str, path: Path, extra: tuple[str, ...]) -> tuple[int, str]:
    """(exit code, the text the expectation is matched against)."""
    if command == "validate":
        result = cli("program", "validate", path)
        return result.exit_code, result.stdout + result.stderr
    result = cli("import", command, path, "--format", "json", *extra)
    text = result.stdout + result.stderr
    if result.exit_code == 3:
        rejects = json.loads(cli("import", "rejects", "--format", "json").stdout)
        text += "\n".join(f"{r['line']}:{r['field']}:{r['reason']}" for r in rejects)
    return result.exit_code, text


def test_the_corpus_is_big_enough_and_every_file_has_an_expectation():
    files = {p.name for p in CORPUS.iterdir()}
    named = {case.split("+")[0] for case in CASES}
    assert files == named
    assert len(files) >= 30


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=XFAIL[c], strict=True)) if c in XFAIL else c
        for c in CASES
    ],
)
def test_corpus_file(case: str, cli, program):
    command, extra, code, expected = CASES[case]
    exit_code, text = outcome(cli, command, CORPUS / case.split("+")[0], extra)
    assert "internal error" not in text and "Traceback" not in text
    if command != "validate" and exit_code in (1, 2):
        assert text.count("\n") == 1, text  # one sentence on one line
    assert exit_code == code, text
    assert expected in text


def test_python_tags_are_never_executed(cli, tmp_path):
    marker = Path("/tmp/loyalty-pwned")
    marker.unlink(missing_ok=True)
    cli("program", "validate", CORPUS / "python_object.yaml")
    assert not marker.exists()


def test_a_100_mb_single_field_is_a_rejected_row(cli, program, tmp_path):
    """Generated at test time (streaming write, ~0.1 s); the row is rejected and
    the rest of the file still goes in."""
    path = tmp_path / "huge.csv"
    with open(path, "w") as fh:
        fh.write("transaction_id,customer_id,date,amount\nT1,C1,2026-11-01,")
        chunk = "9" * (1 << 20)
        for _ in range(100):
            fh.write(chunk)
        fh.write("\nT2,C2,2026-11-01,5.00\n")
    exit_code, text = outcome(cli, "purchases", path, ())
    assert exit_code == 3, text
    assert "2:None:a field is longer than 10000 characters" in text
    assert '"inserted": 1' in text


# --- fuzzing ---------------------------------------------------------------------

FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COLUMNS = ["transaction_id", "customer_id", "date", "amount", "line_no", "refund_of", "tax"]
CELLS = st.one_of(
    st.sampled_from(["T1", "C1", "2026-11-01", "10.00", "-5", "1", "", "31.02.2026", "1e400"]),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12),
    st.text(alphabet=',;"\t\r\n =+-@.0123456789', max_size=8),
)


@st.composite
def csv_texts(draw) -> str:
    columns = draw(st.permutations(COLUMNS))
    header = columns[: draw(st.integers(0, 7))]
    delim = draw(st.sampled_from([",", ";", "\t", "|"]))
    rows = draw(st.lists(st.lists(CELLS, max_size=8), max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return end.join([delim.join(header)] + [delim.join(r) for r in rows]) + end


def assert_clean_import(cli, path: Path) -> None:
    result = cli("import", "purchases", path)
    text = result.stdout + result.stderr
    assert result.exit_code in (0, 1, 2, 3), text
    assert "internal error" not in text and "Traceback" not in text, text
    if result.exit_code in (1, 2):
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1, text


@FUZZ
@given(data=csv_texts())
def test_fuzz_csv_structured(cli, program, tmp_path, data: str):
    path = tmp_path / "fuzz.csv"
    path.write_text(data, newline="")
    assert_clean_import(cli, path)


@FUZZ
@given(data=st.binary(max_size=600))
def test_fuzz_csv_bytes(cli, program, tmp_path, data: bytes):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"transaction_id,customer_id,date,amount\n" + data)
    assert_clean_import(cli, path)


PROGRAM_KEYS = [
    "program",
    "currency",
    "earn",
    "per_currency_unit",
    "rounding",
    "tiers",
    "levels",
    "rewards",
    "bonuses",
    "expiry",
    "min",
    "id",
    "cost",
    "value",
    "<<",
    "x",
]
YAML_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.sampled_from(["EUR", "floor", "1e400", "NaN", "-.inf", "2026-02-31", "*a"]),
        st.text(max_size=10),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(PROGRAM_KEYS), inner, max_size=5),
    ),
    max_leaves=20,
)
YAML_JUNK = st.text(alphabet="abc:-[]{}&*!|>'\"# \t\n01.%@`", max_size=80)


def assert_clean_validate(cli, path: Path) -> None:
    result = cli("program", "validate", path)
    text = result.stdout + result.stderr
    assert result.exit_code in (0, 2), text
    if result.exit_code == 2:
        # One sentence per problem, each naming the file and the line.
        where = re.escape(str(path))
        assert re.fullmatch(
            rf"Error: {where}:\d+: [^\n]+\n({where}:\d+: [^\n]+\n)*", result.stderr
        ), text


@FUZZ
@given(doc=st.dictionaries(st.sampled_from(PROGRAM_KEYS), YAML_VALUES, max_size=6))
def test_fuzz_program_structured(cli, tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    base = {"program": "Fuzz", "currency": "EUR", "earn": {"per_currency_unit": 1}}
    path.write_text(yaml.safe_dump({**base, **doc}, allow_unicode=True))
    assert_clean_validate(cli, path)


@FUZZ
@given(text=YAML_JUNK)
def test_fuzz_program_text(cli, tmp_path, text):
    path = tmp_path / "fuzz.yaml"
    path.write_text(text)
    assert_clean_validate(cli, path)
