"""The import's fast paths give exactly what the general code gives.

Purchases are parsed by `parse_fields` (falling back to `parse_cells`), money by
an integer fast path in `parse_minor`, ISO dates by `date.fromisoformat`, and
duplicates/conflicts are looked up once per chunk of rows (`prepare`) instead
of one SELECT per row. Each is compared here with the general path.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loyalty_cli import money
from loyalty_cli.engine.dates import in_range
from loyalty_cli.importing import import_files, list_rejects, undo_import
from loyalty_cli.importing.dialect import Dialect
from loyalty_cli.importing.kinds import ImportContext
from loyalty_cli.importing.parsing import CellFormat, Cells, RowRejected, parse_date
from loyalty_cli.importing.purchases import PurchasesKind

COLUMNS = PurchasesKind.columns


def _handler(dialect: Dialect) -> PurchasesKind:
    return PurchasesKind(ImportContext(None, 1, dialect, "f.csv", dt.date(2026, 1, 1)))  # type: ignore[arg-type]


def _outcome(fn, cells_factory):
    try:
        return fn(cells_factory())
    except RowRejected as rej:
        return ("rejected", rej.field, rej.reason)


def _both(handler: PurchasesKind, header: list[str], row: list[str], fmt: CellFormat):
    index = {c: header.index(c) for c in COLUMNS if c in header}
    fast = _outcome(handler.parse, lambda: Cells(index, list(row), fmt))
    slow = _outcome(handler.parse_cells, lambda: Cells(index, list(row), fmt))
    return fast, slow


def test_fast_parse_is_taken_for_a_plain_row():
    handler = _handler(Dialect(check_currency=True))
    header = list(COLUMNS)
    row = ["R1", " C1 ", "2026-01-05", "12.50", "2", "SKU", "cat", "1.5", "S1", "eur", "1.2", ""]
    index = {c: i for i, c in enumerate(header)}
    handler.use_columns(index)
    record = handler.parse_fields(row)
    assert dict(zip(PurchasesKind.insert_fields, record, strict=True)) == {
        "transaction_id": "R1", "line_no": 2, "customer_id": "C1", "date": "2026-01-05",
        "amount": 1250, "tax": 120, "sku": "SKU", "category": "cat", "quantity": "1.5",
        "store": "S1", "currency": "EUR", "refund_of": None,
    }  # fmt: skip
    assert record == handler.parse_cells(Cells(index, row, CellFormat()))


CELL = st.sampled_from(
    ["", " ", "R1", "C1", "x" * 65, "x" * 64, "0", "1", "007", "-1", "1234567890", "123456789",
     "１", "²", "2026-01-05", "2026-02-30", "2026-2-5", "20260105", "0000-01-01", " 2026-01-05 ",
     "2026-W01-1", "05.01.2026", "31.02.2026", "12.50", "12.5", "12.505", "1,234.50", "1.234,50",
     "(5.00)", "-3.10", "+4", "5.", ".5", "1e3", "nan", "١٢", "1 000,00", "99999999999999999",
     "10000000000.00", "-0.00", "EUR", "eur", "USD", "JPY", "KWD", "S1", "S9", "1.230"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    row=st.lists(CELL, min_size=len(COLUMNS), max_size=len(COLUMNS)),
    present=st.lists(st.booleans(), min_size=len(COLUMNS), max_size=len(COLUMNS)),
    check_currency=st.booleans(),
    partners=st.booleans(),
    comma=st.booleans(),
    dotted=st.booleans(),
)
def test_fast_parse_equals_general(row, present, check_currency, partners, comma, dotted):
    required = set(PurchasesKind.required)
    header = [c for c, p in zip(COLUMNS, present, strict=True) if p or c in required]
    cells = [v for c, v in zip(COLUMNS, row, strict=True) if c in header]
    date_format = "%d.%m.%Y" if dotted else "%Y-%m-%d"
    dialect = Dialect(
        decimal="," if comma else ".",
        date_format=date_format,
        check_currency=check_currency,
        partner_versions=(("0001-01-01", {"S1": "P1"}),) if partners else (),
    )
    fmt = CellFormat(dialect.decimal, date_format, dialect.currency)
    fast, slow = _both(_handler(dialect), header, cells, fmt)
    assert fast == slow


TEXT = st.one_of(
    st.from_regex(r"\A[ +\-(]?[0-9]{0,18}([.,][0-9]{0,4})?[)]?\Z"),
    st.text(alphabet="0123456789.,-+ ()\u00a0١²e", max_size=12),
)


def _general_minor(text: str, currency: str, decimal: str) -> object:
    try:
        value = money.parse_decimal(text, decimal)
        if -value.as_tuple().exponent > money.exponent(currency):
            return f"'{text.strip()}' has more than {money.exponent(currency)} decimals"
        return money.to_minor(value, currency, money.MAX_ABS_MINOR)
    except money.AmountError as exc:
        return str(exc)


@settings(max_examples=1000, deadline=None)
@given(text=TEXT, currency=st.sampled_from(["EUR", "JPY", "KWD", "eur"]), comma=st.booleans())
def test_parse_minor_fast_path_is_exact(text, currency, comma):
    decimal = "," if comma else "."
    try:
        got: object = money.parse_minor(text, currency, decimal)
    except money.AmountError as exc:
        got = str(exc)
    assert got == _general_minor(text, currency, decimal)


def test_parse_minor_examples():
    assert money.parse_minor("123.45") == 12345
    assert money.parse_minor("-3.5") == -350
    assert money.parse_minor("+7") == 700
    assert money.parse_minor("0012.10") == 1210
    with pytest.raises(money.AmountError, match="'1.230' has more than 2 decimals"):
        money.parse_minor("1.230")  # ten thousand and thirty to a decimal-comma eye: refused
    assert money.parse_minor("5", "JPY") == 5
    assert money.parse_minor("1.234", "KWD") == 1234
    assert money.parse_minor("12,5", decimal=",") == 1250
    assert isinstance(money.parse_minor("-0.00"), int)
    assert money.parse_minor("10000000000.00") == money.MAX_ABS_MINOR
    assert money.parse_minor("-10000000000") == -money.MAX_ABS_MINOR
    for bad in ("12.345", "5.", ".5", "1e3", "10000000000.01", "-10000000001"):
        with pytest.raises(money.AmountError):
            money.parse_minor(bad)
    assert money.from_minor(money.parse_minor("450.00")) == Decimal("450.00")


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.dates().map(lambda d: d.isoformat()),
        st.from_regex(r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}\Z"),
        st.text(alphabet="0123456789-W ", max_size=11),
    )
)
def test_iso_date_fast_path_matches_strptime(text):
    def general() -> object:
        try:
            day = dt.datetime.strptime(text, "%Y-%m-%d").date()
        except ValueError:
            return "error"
        return day if in_range(day) else "error"

    try:
        got: object = parse_date(text, "%Y-%m-%d", "date")
    except RowRejected:
        got = "error"
    assert got == general()


HEAD = "transaction_id,customer_id,date,amount,line_no,tax\n"
FIRST = (
    "T1,C1,2026-01-05,1.00,1,\nT1,C1,2026-01-05,2.00,2,\nT2,C2,2026-01-06,3.00,1,\n"
    "T3,,2026-01-06,4.00,3,\nT3,,2026-01-06,4.00,2,\n"
)
SECOND = (
    "T10,C1,2026-01-05,1.00,1,\nT10,C1,2026-01-05,2.00,1,\n"  # conflict in the batch
    "T1,C1,2026-01-05,1.00,1,\n"  # duplicate of import 1
    "T1,C1,2026-01-05,1.00,3,\n"  # a new line of import 1's receipt
    "T1,C1,2026-01-05,9.00,2,\n"  # conflict with import 1
    "T1,C9,2026-01-05,1.00,5,\n"  # receipt conflict (customer) with import 1
    "T3,,2026-01-07,1.00,1,\n"  # receipt conflict (date) with the lowest stored line
    "T4,C4,2026-01-08,1.00,1,\nT4,C4,2026-01-08,1.00,1,\nT4,C4,2026-01-08,2.00,1,\n"
    "T4,C5,2026-01-08,1.00,2,\nT5,C5,2026-01-09,1.00,1,\nT6,C6,2026-01-09,1.00,1,\n"
    "T5,C5,2026-01-09,1.00,1,\nT5,C5,2026-01-09,7.00,1,\nT5,C6,2026-01-09,1.00,4,\n"
    "T7,C7,2026-01-10,1.00,1,\nbad,C7,2026-02-30,1.00,1,\nT6,C6,2026-01-09,1.00,1,1\n"
    "T8,C8,2026-01-11,1.00,1,\nT2,C2,2026-01-06,3.00,1,\nT2,C2,2026-01-06,3.00,2,\n"
    "T6,C6,2026-01-10,1.00,2,\nT8,C8,2026-01-11,1.00,1,\n"
    "T1,C7,2026-01-05,1.00,7,\n"  # the receipt's lowest stored line is import 1's
)


def _run(conn, write, monkeypatch, chunk_rows: int, batched: bool, lookup=500, bulk=False):
    """Import FIRST, SECOND, undo FIRST, SECOND again; the tables and rejects."""
    from loyalty_cli.importing import purchases

    monkeypatch.setattr(PurchasesKind, "batch_size", 2)
    monkeypatch.setattr(PurchasesKind, "chunk_rows", chunk_rows)
    monkeypatch.setattr(purchases, "_LOOKUP", lookup)
    if bulk:  # every file counts as large: indexes set aside and rebuilt each time
        monkeypatch.setattr(purchases, "_BULK_MIN_BYTES", 0)
        monkeypatch.setattr(purchases, "_BYTES_PER_LINE", 1)
    if not batched:  # the reference: one SELECT per row, as before batching
        monkeypatch.setattr(PurchasesKind, "prepare", lambda self, records: None)
    first = write("first.csv", HEAD + FIRST)
    second = write("second.csv", HEAD + SECOND)
    again = write("again.csv", HEAD + SECOND + "T9,C9,2026-01-12,1.00,1,\n")
    results = [r.as_json() for r in import_files(conn, "purchases", [first, second])]
    undo_import(conn, 1, dt.date(2026, 2, 1))
    results += [r.as_json() for r in import_files(conn, "purchases", [again])]
    rows = conn.execute("SELECT * FROM purchases ORDER BY id").fetchall()
    return results, [tuple(r) for r in rows], list_rejects(conn)


def _indexes(conn) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'purchases' "
        "ORDER BY name"
    ).fetchall()


def _fork_every_file(monkeypatch) -> list[object]:
    """Every file of a kind that may be read aside is read by a forked process;
    returns the list of processes started (to check the fork happened)."""
    from loyalty_cli import workers
    from loyalty_cli.importing import service

    started: list[object] = []
    real = workers.start
    monkeypatch.setattr(service, "_READER_PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    monkeypatch.setattr(workers, "start", lambda *a: started.append(real(*a)) or started[-1])
    return started


@pytest.mark.parametrize(
    ("chunk_rows", "lookup", "bulk", "forked"),
    [
        (1, 500, False, False),
        (3, 500, False, False),
        (10_000, 500, False, False),
        (10_000, 2, False, False),
        (3, 2, True, False),
        (3, 2, True, True),
        (10_000, 500, False, True),
    ],
)
def test_chunked_lookups_equal_one_select_per_row(
    conn, write, monkeypatch, tmp_path, chunk_rows, lookup, bulk, forked
):
    from loyalty_cli import db

    reference_conn = db.connect(tmp_path / "reference.db")
    with monkeypatch.context() as m:
        reference = _run(reference_conn, write, m, 1, batched=False)
    reference_conn.close()
    indexes = [tuple(r) for r in _indexes(conn)]
    started = _fork_every_file(monkeypatch) if forked else []
    got = _run(conn, write, monkeypatch, chunk_rows, True, lookup, bulk)
    assert len(started) == (3 if forked else 0)  # one reader per file
    assert got == reference
    assert [tuple(r) for r in _indexes(conn)] == indexes
    reasons = [r["reason"] for r in reference[2]]
    # the messages the lookups produce, so the comparison covers them
    assert any("was imported by import 1" in r for r in reasons)
    assert any("by an earlier line of this file" in r for r in reasons)
    assert any("was imported by line 2 of this file" in r for r in reasons)
    assert any("on another line (import 1)" in r for r in reasons)
    assert any("on another line (an earlier line of this file)" in r for r in reasons)
    assert any("on another line (line" in r for r in reasons)


def test_a_bulk_load_sets_indexes_aside_only_inside_its_transaction(conn, write, monkeypatch):
    """A large file into a small table drops the secondary indexes and rebuilds
    them; a rejected --strict file rolls the drop back with everything else."""
    from loyalty_cli.importing import purchases
    from loyalty_cli.importing.service import StrictImportError

    monkeypatch.setattr(purchases, "_BULK_MIN_BYTES", 0)
    before = [tuple(r) for r in _indexes(conn)]
    dropped: list[tuple[str, ...]] = []
    real = purchases.db.set_aside_indexes
    monkeypatch.setattr(
        purchases.db,
        "set_aside_indexes",
        lambda c, names: dropped.append(names) or real(c, names),
    )
    bad = write("bad.csv", HEAD + "T1,C1,2026-01-05,1.00,1,\nT2,C1,x,1,1,\n")
    with pytest.raises(StrictImportError):
        import_files(conn, "purchases", [bad], strict=True)
    assert dropped == [purchases._BULK_INDEXES]
    assert [tuple(r) for r in _indexes(conn)] == before
    good = write("good.csv", HEAD + FIRST)
    import_files(conn, "purchases", [good])
    assert len(dropped) == 2
    assert [tuple(r) for r in _indexes(conn)] == before
    # the stored history now outweighs a small file: indexes stay in place
    monkeypatch.setattr(purchases, "_BYTES_PER_LINE", 10_000)
    import_files(conn, "purchases", [write("more.csv", HEAD + "T9,C9,2026-01-12,1.00,1,\n")])
    assert len(dropped) == 2


def test_strict_names_the_first_bad_line_of_a_chunk(conn, write):
    from loyalty_cli.importing.service import StrictImportError

    # line 3 conflicts (found by the chunk's lookup), line 4 fails to parse
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00,1,\nT1,C2,2026-01-05,1.00,2,\nT2,C1,x,1,1,\n")
    with pytest.raises(StrictImportError) as err:
        import_files(conn, "purchases", [p], strict=True)
    assert err.value.line == 3
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0


def test_a_decoding_error_comes_after_the_rows_before_it(conn, tmp_path):
    from loyalty_cli.errors import InputFileError
    from loyalty_cli.importing.service import StrictImportError

    p = tmp_path / "p.csv"
    p.write_bytes((HEAD + "T1,C1,2026-01-05,1.00,1,\nT2,C1,bad,1,1,\nT3,\xe9,2026-01-05,1,1,\n")
                  .encode("latin-1"))  # fmt: skip
    with pytest.raises(StrictImportError) as err:  # line 3 is rejected before line 4 is read
        import_files(conn, "purchases", [p], strict=True)
    assert err.value.line == 3
    with pytest.raises(InputFileError) as err2:
        import_files(conn, "purchases", [p])
    assert err2.value.line == 4


READER_CASES = {
    "plain": b"T1,C1,2026-01-05,1.00,1,\nT2,C1,2026-01-05,x,1,\nT3,C1,2026-01-05,1,1,\n",
    "quoted newline": b'T1,C1,2026-01-05,1.00,1,\n"T\n2",C1,2026-01-05,"1\n\nx",1,\nT3,C1,x,1,1,\n',
    "crlf and blanks": b"\r\nT1,C1,2026-01-05,1.00,1,\r\n,,,,,\r\n\r\nT2,C1,bad,1.00,1,\r\n",
    "bad byte late": b"T1,C1,2026-01-05,1.00,1,\n" * 9 + b"T2,C\xe9,2026-01-05,1,1,\n",
    "no final newline": b"T1,C1,2026-01-05,1.00,1,\nT2,C1,2026-01-05,y,1,",
    "unterminated quote": b'T1,C1,2026-01-05,1.00,1,\n"T2,C1,2026-01-05,1.00,1,\nT3,C1\n',
    "truncated utf-8 at the end": b"T1,C1,2026-01-05,1.00,1,\nT2,C1,2026-01-05,1,1\xc3",
}


def _import_outcome(conn, path, strict: bool = False):
    from loyalty_cli.errors import LoyaltyError

    try:
        results = [r.as_json() for r in import_files(conn, "purchases", [path], strict=strict)]
    except LoyaltyError as exc:
        results = [type(exc).__name__, exc.message, exc.line]
    rows = [tuple(r) for r in conn.execute("SELECT * FROM purchases ORDER BY id")]
    return results, rows, [dict(r) for r in list_rejects(conn)]


@pytest.mark.parametrize("case", sorted(READER_CASES))
@pytest.mark.parametrize("strict", [False, True])
def test_reader_blocks_do_not_change_lines_or_raw_text(tmp_path, monkeypatch, case, strict):
    """Decoding in blocks of 1 MiB or of a few bytes: the same rows, line numbers,
    raw text of rejects and decoding errors."""
    from loyalty_cli import db
    from loyalty_cli.importing import reader

    outcomes = []
    path = tmp_path / "p.csv"
    path.write_bytes(HEAD.encode() + READER_CASES[case])
    for block in (1 << 20, 7, 1):
        monkeypatch.setattr(reader, "BLOCK", block)
        conn = db.connect(tmp_path / f"{block}.db")
        outcomes.append(_import_outcome(conn, path, strict))
        conn.close()
    assert outcomes[1] == outcomes[0]
    assert outcomes[2] == outcomes[0]
    # read and parsed by a forked process (as a large file is): the same again,
    # failures included, and the process is gone afterwards
    monkeypatch.setattr(reader, "BLOCK", 7)
    monkeypatch.setattr(PurchasesKind, "chunk_rows", 2)
    started = _fork_every_file(monkeypatch)
    conn = db.connect(tmp_path / "forked.db")
    assert _import_outcome(conn, path, strict) == outcomes[0]
    conn.close()
    assert len(started) == 1
    assert not multiprocessing.active_children()


def test_a_reader_process_that_dies_fails_the_file_and_imports_nothing(conn, write, monkeypatch):
    import os

    from loyalty_cli.importing import service

    started = _fork_every_file(monkeypatch)
    monkeypatch.setattr(service, "_read_aside", lambda *a: os._exit(1))
    p = write("p.csv", HEAD + FIRST)
    from loyalty_cli.errors import LoyaltyError

    with pytest.raises(LoyaltyError, match="process reading the file ended unexpectedly") as err:
        import_files(conn, "purchases", [p])
    assert err.value.file == str(p)
    assert len(started) == 1
    assert conn.execute("SELECT COUNT(*) FROM purchases").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0
    assert not multiprocessing.active_children()


def test_reader_keeps_the_raw_text_of_a_multiline_row(conn, write, monkeypatch):
    from loyalty_cli.importing import reader

    monkeypatch.setattr(reader, "BLOCK", 3)
    p = write("p.csv", HEAD + 'T1,C1,2026-01-05,"1\n.\n5",1,\nT2,C1,2026-01-05,2,1,\n')
    [res] = import_files(conn, "purchases", [p])
    assert (res.inserted, res.rejected) == (1, 1)
    [rej] = list_rejects(conn)
    assert (rej["line"], rej["raw"]) == (2, 'T1,C1,2026-01-05,"1\n.\n5",1,')


def test_reader_names_the_line_of_a_bad_byte_past_the_first_block(conn, tmp_path, monkeypatch):
    from loyalty_cli.errors import InputFileError
    from loyalty_cli.importing import reader

    monkeypatch.setattr(reader, "BLOCK", 100)
    p = tmp_path / "p.csv"
    p.write_bytes(HEAD.encode() + b"T1,C1,2026-01-05,1.00,1,\n" * 30 + b"T2,\xff,2026-01-05,1,1,\n")
    with pytest.raises(InputFileError) as err:
        import_files(conn, "purchases", [p])
    assert err.value.line == 32
    assert "cannot be read as utf-8-sig (byte b'\\xff')" in err.value.message


@pytest.mark.parametrize(
    ("text", "decimal", "reason"),
    [
        ("10.000", ".", "'10.000' has more than 2 decimals"),  # ten thousand, or ten?
        ("10,000", ",", "'10,000' has more than 2 decimals"),
        ("1 2.50", ".", "'1 2.50' is not a number"),  # a space groups only with a comma
        ("1.5,000", ".", "'1.5,000' is not a number"),  # grouping after the point
        ("12,5.000", ",", "'12,5.000' is not a number"),
        ("\u0661\u0662\u0663", ".", "'\u0661\u0662\u0663' is not a number"),  # ASCII digits only
        ("1 2 3,00", ",", "'1 2 3,00' is not a number with decimal comma"),
        ("1 23,00", ",", "'1 23,00' is not a number with decimal comma"),
        ("12 34 567,00", ",", "'12 34 567,00' is not a number with decimal comma"),
        ("1 234.567,00", ",", "'1 234.567,00' is not a number"),  # two kinds of grouping
    ],
)
def test_malformed_amounts_are_refused(text, decimal, reason):
    with pytest.raises(money.AmountError) as err:
        money.parse_minor(text, "EUR", decimal)
    assert str(err.value) == reason


@pytest.mark.parametrize(
    ("text", "decimal", "minor"),
    [
        ("1 234,50", ",", 123450),
        ("1\u00a0234\u00a0567,5", ",", 123456750),
        ("1\u202f234,50", ",", 123450),
        ("1.234,50", ",", 123450),
        ("1,234,567.00", ".", 123456700),
        ("(1,234.50)", ".", -123450),
        ("-1 234", ",", -123400),
    ],
)
def test_grouped_amounts_are_read_exactly(text, decimal, minor):
    assert money.parse_minor(text, "EUR", decimal) == minor


@pytest.mark.parametrize(
    ("text", "decimal"),
    [("0,500", "."), ("0.500", ","), ("00.500", ","), ("0 001,00", ","), ("0,500.00", ".")],
)
def test_a_first_group_of_zero_is_not_a_grouped_number(text, decimal):
    """`0,500` is 0.50 written with the other decimal separator, not 500.00 (it was
    read as 500.00: a thousand times the amount)."""
    with pytest.raises(money.AmountError, match="is not a number with decimal"):
        money.parse_minor(text, "EUR", decimal)


def test_a_failure_inside_the_reader_process_is_raised_by_the_import(conn, write, monkeypatch):
    started = _fork_every_file(monkeypatch)

    def boom(self, row):
        raise ValueError("boom in the reader")

    monkeypatch.setattr(PurchasesKind, "parse_fields", boom)
    p = write("p.csv", HEAD + FIRST)
    with pytest.raises(ValueError, match="boom in the reader"):
        import_files(conn, "purchases", [p])
    assert len(started) == 1
    assert conn.execute("SELECT COUNT(*) FROM imports").fetchone()[0] == 0
    assert not multiprocessing.active_children()


def test_an_amount_beyond_ten_billion_is_out_of_range(conn, write, cli):
    """10**15 minor units per line were accepted, and 10,000 such lines made
    `report kpi` fail with an integer overflow."""
    assert money.parse_minor("10000000000.00") == 10**12
    with pytest.raises(money.AmountError, match="out of range"):
        money.parse_minor("10000000000.01")
    # A program's money keeps the bound its validation has (a tier nobody reaches).
    assert money.to_minor(money.Decimal("999999999999"), "EUR") == 99999999999900
    program = write("p.yaml", "program: P\ncurrency: EUR\nearn: {per_currency_unit: 1}\n")
    assert cli("program", "apply", program, "--effective", "2026-01-01").exit_code == 0
    rows = "".join(f"T{n},C{n % 7},2026-01-05,10000000000.00\n" for n in range(10_000))
    path = write("big.csv", "transaction_id,customer_id,date,amount\n" + rows)
    assert cli("import", "purchases", path, "--quiet").exit_code == 0
    result = cli("report", "kpi", "--from", "2026-01-01", "--to", "2026-01-31", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["revenue_net"] == "100000000000000.00"
