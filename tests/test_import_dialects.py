"""The program's `csv:` section is the till's dialect; a file whose header is in
the standard dialect instead (customers and events from elsewhere, a standard
export) is read in that, as DESIGN.md's example program is applied as is."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from loyalty_cli import program
from loyalty_cli.errors import InputFileError
from loyalty_cli.importing import DialectOverrides, import_files

EXAMPLE = Path(__file__).parent / "data" / "design-example.yaml"


def _apply(conn, tmp_path: Path, csv: str) -> None:
    """A small program in EUR with this `csv:` line."""
    path = tmp_path / "p.yaml"
    path.write_text(f"program: P\ncurrency: EUR\nearn: {{per_currency_unit: 1}}\n{csv}\n")
    program.apply_program(conn, path)


@pytest.fixture
def shop(conn):
    program.apply_program(conn, EXAMPLE)  # csv: ";", ",", %d.%m.%Y, Kuitti/Asiakas/Pvm/Summa
    return conn


def test_standard_files_beside_the_tills_own(shop, write):
    files = {
        "customers": write("c.csv", "customer_id,name,birthday\nC1,Anna,1990-03-01\n"),
        "events": write("e.csv", "event_id,customer_id,type,date\nE1,C1,signup,2026-01-02\n"),
        "purchases": write(
            "p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-02-01,10.00\n"
        ),
    }
    for kind, path in files.items():
        [result] = import_files(shop, kind, [path])
        assert (result.inserted, result.rejected) == (1, 0), kind
    till = write("f.csv", "Kuitti;Asiakas;Pvm;Summa\nK1;C1;02.02.2026;1 234,50\n")
    [result] = import_files(shop, "purchases", [till])
    assert result.inserted == 1
    amounts = dict(shop.execute("SELECT transaction_id, amount FROM purchases").fetchall())
    assert amounts == {"T1": 1000, "K1": 123450}
    assert shop.execute("SELECT birthday FROM customers").fetchone()[0] == "1990-03-01"


def test_a_file_in_neither_dialect_gets_the_tills_error(shop, write):
    bad = write("bad.csv", "Kuitti;Asiakas;Pvm\nK2;C1;02.02.2026\n")
    with pytest.raises(InputFileError, match="column 'amount' \\(mapped to 'Summa'\\) not found"):
        import_files(shop, "purchases", [bad])


def test_a_delimiter_flag_applies_to_the_standard_reading_too(shop, write):
    standard = write("p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-02-01,10.00\n")
    with pytest.raises(InputFileError, match="not found"):
        import_files(shop, "purchases", [standard], overrides=DialectOverrides(delimiter=";"))


def test_nightly_reads_a_standard_till_redemptions_file_after_the_days_run(shop, db_file, tmp_path):
    from loyalty_cli.nightly import nightly

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "2026-03-01.csv").write_text("Kuitti;Asiakas;Pvm;Summa\nK1;C1;01.03.2026;500,00\n")
    (inbox / "redemptions-1.csv").write_text(
        "redemption_id,customer_id,reward_id,date\nR1,C1,coffee,2026-03-20\n"
    )
    result = nightly(db_file, inbox, dt.date(2026, 3, 25), wait=0, quiet=True)
    assert result.exit_code == 0, result.error
    assert shop.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1


def test_a_till_file_saved_in_another_encoding_is_not_read_as_standard(conn, write, tmp_path):
    # Same delimiter, decimal ',': the standard reading would misread 12,50 as 1250.00.
    _apply(conn, tmp_path, 'csv: {delimiter: ";", decimal: ",", encoding: cp1252}')
    till = tmp_path / "till.csv"
    till.write_text("transaction_id;customer_id;date;amount\nT1;C1;2026-03-01;12,50\n", "utf-8-sig")
    with pytest.raises(InputFileError, match="column 'transaction_id' not found"):
        import_files(conn, "purchases", [till])
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0


def test_an_encoding_flag_keeps_the_standard_reading(shop, tmp_path):
    people = tmp_path / "c.csv"
    people.write_bytes("customer_id,name\nC1,Mäkelä\n".encode("latin-1"))
    with pytest.raises(InputFileError, match="set the right one in the program"):
        import_files(shop, "customers", [people])
    [result] = import_files(
        shop, "customers", [people], overrides=DialectOverrides(encoding="latin-1")
    )
    assert result.inserted == 1
    assert shop.execute("SELECT name FROM customers").fetchone()[0] == "Mäkelä"


def test_a_utf16_section_and_a_standard_utf8_file(conn, write, tmp_path):
    _apply(conn, tmp_path, 'csv: {delimiter: "\\t", encoding: utf-16}')
    standard = write("p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-02-01,10.00\n")
    [result] = import_files(conn, "purchases", [standard])
    assert result.inserted == 1


def test_a_mapped_column_the_file_lacks_is_said(conn, write, tmp_path, cli):
    """`Myymälä` garbled by a wrong encoding, or renamed by the till: every row's
    store was left empty without a word."""
    _apply(conn, tmp_path, "csv: {columns: {store: Myymälä, category: Ryhmä}}")
    path = write("p.csv", "transaction_id,customer_id,date,amount,Ryhmä\nT1,C1,2026-02-01,1.00,x\n")
    [result] = import_files(conn, "purchases", [path])
    assert result.notes == [
        "column 'Myymälä' (mapped to store) is not in the file: store is empty on every row"
    ]
    assert "notes" not in result.as_json()
    again = write("q.csv", "transaction_id,customer_id,date,amount\nT2,C1,2026-02-01,1.00\n")
    shown = cli("import", "purchases", again, "--quiet")
    assert shown.exit_code == 0
    assert shown.stderr.splitlines() == [
        f"Warning: {again}: column 'Myymälä' (mapped to store) is not in the file: store is "
        "empty on every row",
        f"Warning: {again}: column 'Ryhmä' (mapped to category) is not in the file: category "
        "is empty on every row",
    ]


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("tax=Summa,amount=Summa", "column 'Summa' would be read as both amount and tax"),
        ("customer_id=Kuitti", "column 'Kuitti' would be read as both transaction_id and "
         "customer_id"),
    ],
)  # fmt: skip
def test_columns_may_not_read_one_column_twice(shop, write, cli, flag, message):
    """The program's own map refuses it; with --columns on top it was read twice
    (tax = the amount), or as two ids."""
    till = write("f.csv", "Kuitti;Asiakas;Pvm;Summa\nK1;C1;02.02.2026;1 234,50\n")
    result = cli("import", "purchases", till, "--columns", flag)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {till}:1: {message}; map one of them")
    assert shop.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0


def test_a_column_of_another_kind_may_share_a_header(shop, write, cli):
    """Events keyed by the receipt number: transaction_id's `Kuitti` is no column of
    an events file (the check was over every standard column and refused it)."""
    events = write("e.csv", "Kuitti;Asiakas;type;Pvm\nE1;C1;review;01.02.2026\n")
    result = cli("import", "events", events, "--columns", "event_id=Kuitti", "--dry-run")
    assert result.exit_code == 3  # read: its one row names a customer not known yet
    assert "unknown customer 'C1'" in result.stderr


def test_a_standard_column_and_a_mapped_one_may_not_meet(conn, write, cli, tmp_path):
    _apply(conn, tmp_path, "")
    path = write("p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-01-01,5.00\n")
    result = cli("import", "purchases", path, "--columns", "tax=AMOUNT")
    assert result.exit_code == 2
    assert "column 'amount' would be read as both amount and tax" in result.stderr


def test_a_standard_file_with_a_column_the_map_gives_away_is_read_standard(conn, write, tmp_path):
    """The till's `customer_id` is in its `email` column: a standard customers file,
    which has both, is read in the standard dialect (not customer_id = the e-mail)."""
    _apply(conn, tmp_path, "csv: {columns: {customer_id: email}}")
    path = write("c.csv", "customer_id,name,email\nC1,Anna,anna@example.com\n")
    [result] = import_files(conn, "customers", [path])
    assert (result.inserted, result.rejected) == (1, 0)
    row = conn.execute("SELECT customer_id, email FROM customers").fetchone()
    assert tuple(row) == ("C1", "anna@example.com")


@pytest.mark.parametrize("name", ["klingon", "hex", "rot13", "zlib"])
def test_an_encoding_flag_must_name_a_text_encoding(shop, write, cli, name):
    """hex, rot13 and zlib are codecs but not text encodings: the import failed
    half-way as an internal error."""
    path = write("p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-01-01,5.00\n")
    result = cli("import", "purchases", path, "--encoding", name)
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: --encoding: '{name}' is not a known text encoding (e.g. utf-8, cp1252)\n"
    )


def test_a_utf8_bom_read_in_latin_1_is_told_as_an_encoding_to_set(conn, tmp_path):
    """A till that switched its export to UTF-8: the header's first name starts with
    the mark as latin-1 reads it; remapping columns (the general advice) cannot help."""
    path = tmp_path / "bom.csv"
    path.write_bytes(
        b"\xef\xbb\xbftransaction_id,customer_id,date,amount\r\nO1,A1,2026-01-05,10.00\r\n"
    )
    with pytest.raises(InputFileError) as err:
        import_files(conn, "purchases", [path], overrides=DialectOverrides(encoding="latin-1"))
    assert str(err.value).endswith(
        "the file starts with a UTF-8 byte order mark read in another encoding: give the "
        "encoding as utf-8-sig (csv.encoding in the program, or --encoding utf-8-sig)"
    )


def test_a_bom_header_mapped_on_purpose_gets_the_usual_message(conn, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfKuitti,customer_id,date,Summa\nR1,C1,2026-05-01,18.50\n")
    mapped = DialectOverrides(
        encoding="latin-1", columns={"transaction_id": "\u00ef\u00bb\u00bfKuitti", "amount": "Sum"}
    )
    with pytest.raises(InputFileError) as err:
        import_files(conn, "purchases", [path], overrides=mapped)
    assert "column 'amount' (mapped to 'Sum') not found; the file has" in str(err.value)


def test_columns_naming_one_standard_column_twice_is_a_usage_error():
    from loyalty_cli.errors import UsageError
    from loyalty_cli.importing.dialect import parse_columns

    with pytest.raises(UsageError, match="amount is given twice \\('Summa' and 'Total'\\)"):
        parse_columns("amount=Summa,amount=Total")


def test_a_program_mapping_two_columns_to_one_header_in_another_case_is_refused():
    from loyalty_cli.errors import ProgramError

    text = (
        "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "csv:\n  columns: {amount: X, tax: x}\n"
    )
    with pytest.raises(ProgramError, match="csv.columns.tax: header 'x' is already mapped to"):
        program.parse_program(text, "p.yaml")


def test_a_stored_version_mapping_two_columns_to_one_header_in_another_case_still_loads():
    """The rule came later: a version applied before it loads (its ledger stands),
    or every command of the shop failed."""
    text = (
        "program: X\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
        "csv:\n  columns: {amount: X, tax: x}\n"
    )
    stored = program.parse_program(text, "program version 1", stored=True)
    assert stored.csv.columns == {"amount": "X", "tax": "x"}
