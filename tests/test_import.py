"""CSV imports through the library: keys, duplicates, rejects, dialects, undo."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from loyalty_cli.errors import ConflictError, FileReadError, InputFileError, NotFoundError
from loyalty_cli.importing import (
    DialectOverrides,
    import_files,
    list_imports,
    list_rejects,
    undo_import,
)
from loyalty_cli.importing.service import StrictImportError
from loyalty_cli.program import apply_program

DATA = Path(__file__).parent / "data"
HEAD = "transaction_id,customer_id,date,amount,line_no\n"


def count(conn, sql: str = "SELECT COUNT(*) FROM purchases WHERE undone = 0") -> int:
    return conn.execute(sql).fetchone()[0]


def rejects(conn, import_id=None):
    return [(r["line"], r["field"], r["reason"]) for r in list_rejects(conn, import_id)]


def test_import_stores_rows_and_bare_customers(conn, write):
    p = write(
        "p.csv", HEAD + "T1,C1,2026-01-05,12.50,1\nT1,C1,2026-01-05,1.00,2\nT2,,2026-01-06,3,\n"
    )
    [res] = import_files(conn, "purchases", [p])
    assert res.as_json() == {
        "import_id": 1, "file": str(p), "rows": 3, "inserted": 3, "duplicates": 0,
        "rejected": 0, "skipped_file": False,
    }  # fmt: skip
    rows = conn.execute(
        "SELECT transaction_id, line_no, customer_id, date, amount, currency FROM purchases "
        "ORDER BY id"
    ).fetchall()
    assert [tuple(r) for r in rows] == [
        ("T1", 1, "C1", "2026-01-05", 1250, "EUR"),
        ("T1", 2, "C1", "2026-01-05", 100, "EUR"),
        ("T2", 1, None, "2026-01-06", 300, "EUR"),
    ]
    # the purchase made C1 known; the anonymous sale made nobody
    assert [r[0] for r in conn.execute("SELECT customer_id FROM customers")] == ["C1"]


def test_same_file_again_is_skipped(conn, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,12.50,1\n")
    import_files(conn, "purchases", [p])
    [again] = import_files(conn, "purchases", [p])
    assert again.as_json() == {
        "import_id": 1, "file": str(p), "rows": 0, "inserted": 0, "duplicates": 0,
        "rejected": 0, "skipped_file": True,
    }  # fmt: skip
    assert count(conn, "SELECT COUNT(*) FROM imports") == 1
    assert count(conn) == 1


def test_overlapping_files_dedupe(conn, write):
    a = write("a.csv", HEAD + "T1,C1,2026-01-05,1.00,1\nT2,C1,2026-01-06,2.00,1\n")
    b = write("b.csv", HEAD + "T2,C1,2026-01-06,2.00,1\nT3,C2,2026-01-07,3.00,1\n")
    ra, rb = import_files(conn, "purchases", [a, b])
    assert (ra.inserted, ra.duplicates) == (2, 0)
    assert (rb.rows, rb.inserted, rb.duplicates, rb.rejected) == (2, 1, 1, 0)
    assert count(conn) == 3


def test_duplicate_and_conflict_inside_one_file(conn, write):
    p = write(
        "p.csv",
        HEAD + "T1,C1,2026-01-05,1.00,1\nT1,C1,2026-01-05,1.00,1\nT1,C1,2026-01-05,9.00,1\n",
    )
    [res] = import_files(conn, "purchases", [p])
    assert (res.inserted, res.duplicates, res.rejected) == (1, 1, 1)
    assert rejects(conn) == [
        (
            4,
            "amount",
            "conflict: transaction_id 'T1' line_no '1' was imported by line 2 of this file "
            "with amount 1.00, this row has 9.00",
        )
    ]


def test_conflict_names_the_existing_import(conn, write):
    import_files(conn, "purchases", [write("a.csv", HEAD + "T1,C1,2026-01-05,1.00,1\n")])
    b = write("b.csv", HEAD + "T1,C1,2026-01-05,2.00,1\nT9,C1,2026-01-05,2.00,1\n")
    [res] = import_files(conn, "purchases", [b])
    assert (res.inserted, res.rejected) == (1, 1)
    [(line, field, reason)] = rejects(conn, res.import_id)
    assert (line, field) == (2, "amount")
    assert "was imported by import 1 with amount 1.00, this row has 2.00" in reason


def test_receipt_lines_must_agree_on_customer_and_date(conn, write):
    p = write(
        "p.csv",
        HEAD + "T1,C1,2026-01-05,1.00,1\nT1,C2,2026-01-05,1.00,2\nT1,C1,2026-01-06,1.00,3\n",
    )
    import_files(conn, "purchases", [p])
    assert rejects(conn) == [
        (3, "customer_id", "conflict: receipt 'T1' has customer_id 'C1' on another line "
         "(line 2 of this file), this row has 'C2'"),
        (4, "date", "conflict: receipt 'T1' has date '2026-01-05' on another line "
         "(line 2 of this file), this row has '2026-01-06'"),
    ]  # fmt: skip


def test_bad_rows_rejected_with_physical_line_and_field(conn, write):
    long_id = "C" * 65
    huge = "x" * 10_001
    text = (
        "transaction_id,customer_id,date,amount,category\n"  # line 1
        'T1,C1,2026-01-05,1.00,"two\nlines"\n'  # lines 2-3
        "T2,C1,2026-01-05,1e400,\n"  # 4
        "T3,C1,2026-01-05,NaN,\n"  # 5
        "T4,C1,2026-01-05,--5,\n"  # 6
        'T5,C1,2026-01-05,"12,3,4",\n'  # 7
        "T6,C1,2026-02-31,1.00,\n"  # 8
        f"T7,{long_id},2026-01-05,1.00,\n"  # 9
        "T8,C1,2026-01-05,,\n"  # 10
        f"T9,C1,2026-01-05,1.00,{huge}\n"  # 11
        "T10,C1,2026-01-05\n"  # 12
        ",C1,2026-01-05,1.00,\n"  # 13
        "T11,C1,2026-01-05,1.005,\n"  # 14
        "T12,C1,2026-01-05,1.00,ok\n"  # 15
    )
    [res] = import_files(conn, "purchases", [write("p.csv", text)])
    assert (res.rows, res.inserted, res.rejected) == (13, 2, 11)
    got = rejects(conn)
    assert [(line, field) for line, field, _ in got] == [
        (4, "amount"), (5, "amount"), (6, "amount"), (7, "amount"), (8, "date"),
        (9, "customer_id"), (10, "amount"), (11, "category"), (12, None),
        (13, "transaction_id"), (14, "amount"),
    ]  # fmt: skip
    reasons = {line: reason for line, _, reason in got}
    assert reasons[4] == "not an amount: '1e400' is not a number"
    assert reasons[8] == "'2026-02-31' is not a valid date (day is out of range for month)"
    assert reasons[9] == "longer than 64 characters"
    assert reasons[10] == "empty; a value is required"
    assert reasons[11] == "longer than 10000 characters"
    assert reasons[12] == "the row has 3 fields, the header has 5"
    assert reasons[14] == "not an amount: '1.005' has more than 2 decimals"
    raw = {r["line"]: r["raw"] for r in list_rejects(conn)}
    assert raw[6] == "T4,C1,2026-01-05,--5,"
    assert raw[7] == 'T5,C1,2026-01-05,"12,3,4",'
    stored = conn.execute("SELECT category FROM purchases ORDER BY id").fetchall()
    assert [r[0] for r in stored] == ["two\nlines", "ok"]


def test_an_unclosed_quote_is_named_with_the_lines_it_swallowed(conn, write):
    p = write(
        "q.csv",
        HEAD
        + 'Q1,C1,2026-01-05,1,\nQ2,C1,"2026-01-05,1,\nQ3,C1,2026-01-05,1,\nQ4,C1,2026-01-05,1,\n',
    )
    [res] = import_files(conn, "purchases", [p])
    assert (res.inserted, res.rejected) == (1, 1)
    assert rejects(conn) == [
        (
            3,
            None,
            "a quote opened on line 3 is never closed: lines 3-5 were read as one row of 3 fields",
        )
    ]
    inch = write("i.csv", HEAD + 'Q9,C1,2026-02-01,1,5" bag,"x\ny"\nQ10,C1,2026-02-01,1,\n')
    [res] = import_files(conn, "purchases", [inch])
    assert res.inserted == 1
    assert rejects(conn, res.import_id) == [(2, None, "the row has 6 fields, the header has 5")]


def test_header_errors_name_the_header_line_after_blank_lines(conn, tmp_path):
    missing = tmp_path / "m.csv"
    missing.write_text("\n\ntransaction_id,customer,date,amount\nT1,C1,2026-01-01,1\n")
    with pytest.raises(InputFileError, match=r"m.csv:3: column 'customer_id' not found"):
        import_files(conn, "purchases", [missing])
    twice = tmp_path / "t.csv"
    twice.write_text("\n\ntransaction_id,customer_id,date,amount,amount\n")
    with pytest.raises(InputFileError, match=r"t.csv:3: column 'amount' appears twice"):
        import_files(conn, "purchases", [twice])


def test_strict_writes_nothing(conn, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00,1\nT2,C1,2026-01-05,x,1\n")
    with pytest.raises(StrictImportError) as exc:
        import_files(conn, "purchases", [p], strict=True)
    assert str(exc.value) == (
        f"{p}:3: amount: not an amount: 'x' is not a number "
        "(--strict: nothing was imported from this file)"
    )
    assert exc.value.exit_code == 1
    assert count(conn) == 0
    assert count(conn, "SELECT COUNT(*) FROM imports") == 0
    assert count(conn, "SELECT COUNT(*) FROM rejects") == 0
    assert count(conn, "SELECT COUNT(*) FROM customers") == 0


def test_dry_run_writes_nothing_but_reports(conn, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00,1\nT1,C1,2026-01-05,1.00,1\nT2,,x,1,1\n")
    [res] = import_files(conn, "purchases", [p], dry_run=True)
    assert res.as_json() == {
        "import_id": None, "file": str(p), "rows": 3, "inserted": 1, "duplicates": 1,
        "rejected": 1, "skipped_file": False,
    }  # fmt: skip
    assert res.sample[0]["line"] == 4 and res.sample[0]["field"] == "date"
    for table in ("purchases", "imports", "rejects", "customers"):
        assert count(conn, f"SELECT COUNT(*) FROM {table}") == 0
    # and the real import afterwards is not "already imported"
    [real] = import_files(conn, "purchases", [p])
    assert (real.skipped_file, real.inserted) == (False, 1)


STORED = "SELECT transaction_id, line_no, customer_id, date, amount, tax, category FROM purchases"


def _stored(conn) -> list[tuple]:
    return [tuple(r) for r in conn.execute(STORED + " ORDER BY transaction_id, line_no")]


def test_finnish_file_via_flags_equals_standard(conn, db_file, tmp_path):
    import_files(conn, "purchases", [DATA / "purchases-standard.csv"])
    standard = _stored(conn)
    assert standard[0] == ("R1", 1, "C1", "2026-03-01", 123450, 0, "bread")
    assert standard[2] == ("R2", 1, None, "2026-03-02", -1200, -100, "gifts")
    undo_import(conn, 1, dt.date(2026, 3, 5))
    fi = DialectOverrides(
        delimiter=";",
        decimal=",",
        date_format="%d.%m.%Y",
        columns={
            "transaction_id": "Kuitti", "customer_id": "Asiakas", "date": "Pvm",
            "amount": "Summa", "line_no": "Rivi", "category": "Tuoteryhmä", "tax": "ALV",
        },
    )  # fmt: skip
    [res] = import_files(conn, "purchases", [DATA / "purchases-fi.csv"], overrides=fi)
    assert (res.inserted, res.rejected) == (4, 0)
    live = [tuple(r) for r in conn.execute(STORED + " WHERE undone = 0 ORDER BY 1, 2")]
    assert live == standard


def test_finnish_file_via_program_csv_section(conn):
    apply_program(conn, Path(__file__).parents[1] / "programs" / "fi-pos.yaml")
    [res] = import_files(conn, "purchases", [DATA / "purchases-fi.csv"])
    assert (res.rows, res.inserted, res.rejected) == (4, 4, 0)
    assert _stored(conn)[0] == ("R1", 1, "C1", "2026-03-01", 123450, 0, "bread")


def test_missing_column_names_the_columns_the_file_has(conn, write):
    p = write("p.csv", "transaction_id;customer_id;Pvm;Summa €\nT1;C1;2026-01-01;1\n")
    with pytest.raises(InputFileError) as exc:
        import_files(conn, "purchases", [p])
    assert str(exc.value) == (
        f"{p}:1: column 'date' not found; the file has 'transaction_id', 'customer_id', "
        "'Pvm', 'Summa €'; map it in the program (csv.columns.date) or for one import "
        "(--columns date=...)"
    )
    assert exc.value.exit_code == 2
    assert count(conn, "SELECT COUNT(*) FROM imports") == 0


def test_encoding_error_names_line(conn, tmp_path):
    p = tmp_path / "latin.csv"
    p.write_bytes((HEAD + "T1,C1,2026-01-05,1.00,1\nT2,Äijä,2026-01-05,1.00,1\n").encode("latin-1"))
    with pytest.raises(InputFileError) as exc:
        import_files(conn, "purchases", [p])
    assert str(exc.value) == (
        f"{p}:3: cannot be read as utf-8-sig (byte b'\\xc4'); "
        "set the right one in the program (csv.encoding) or for one import (--encoding), "
        "e.g. latin-1"
    )
    assert count(conn) == 0
    [res] = import_files(conn, "purchases", [p], overrides=DialectOverrides(encoding="latin-1"))
    assert res.inserted == 2
    assert (
        conn.execute("SELECT customer_id FROM purchases WHERE transaction_id = 'T2'").fetchone()[0]
        == "Äijä"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty; expected a header line"),
        ("\n\n", "the file is empty; expected a header line"),
        ("a,b,a\n1,2,3\n", "column 'a' appears twice in the header"),
    ],
)
def test_unreadable_files(conn, write, text, message):
    p = write("p.csv", "x")
    p.write_text(text)
    with pytest.raises(InputFileError) as exc:
        import_files(conn, "purchases", [p])
    assert exc.value.message == message


def test_missing_file_fails_before_anything(conn, write, tmp_path):
    good = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00,1\n")
    with pytest.raises(InputFileError, match="no such file"):
        import_files(conn, "purchases", [good, tmp_path / "nope.csv"])
    assert count(conn) == 0


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_read_error_names_the_file(conn, tmp_path):
    # /proc/self/mem is a regular file whose first bytes cannot be read (EIO): the
    # error came without the file's name.
    link = tmp_path / "till.csv"
    link.symlink_to("/proc/self/mem")
    with pytest.raises(FileReadError) as err:
        import_files(conn, "purchases", [link])
    assert str(err.value) == f"{link}: cannot read: Input/output error"
    assert err.value.exit_code == 1  # a failure, not an invalid file
    assert count(conn) == 0


@pytest.mark.parametrize("size", [1, 3 << 20])  # read here / by the forked reader
def test_a_read_error_in_the_middle_of_a_file_names_it(conn, write, monkeypatch, size):
    import errno
    import io

    from loyalty_cli.importing import reader

    body = "transaction_id,customer_id,date,amount\n"
    line = "T{},C1,2026-01-05,1.00\n"
    rows = max(1, size // len(line.format(0)))
    path = write("big.csv", body + "".join(line.format(i) for i in range(rows)))

    class Failing(io.FileIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise OSError(errno.EIO, "Input/output error")
            return super().read(min(n, 64) if n and n > 0 else 64)

    monkeypatch.setattr(reader, "open", lambda p, mode: Failing(p, "r"), raising=False)
    with pytest.raises(FileReadError) as err:
        import_files(conn, "purchases", [path])
    assert str(err.value) == f"{path}: cannot read: Input/output error"
    assert count(conn) == 0


def test_a_pipe_is_not_called_a_missing_file(conn, write, tmp_path):
    fifo = tmp_path / "export.csv"
    os.mkfifo(fifo)
    with pytest.raises(InputFileError, match="not a regular file .* save it to a file first"):
        import_files(conn, "purchases", [fifo])
    assert count(conn) == 0


def test_sniffed_delimiters(conn, write):
    p = write("p.csv", "transaction_id|customer_id|date|amount\nT1|C1|2026-01-05|1,234.50\n")
    [res] = import_files(conn, "purchases", [p])
    assert res.inserted == 1
    assert count(conn, "SELECT amount FROM purchases") == 123450


PLAIN = "program: Plain\ncurrency: EUR\nearn: {per_currency_unit: 1}\n"
PROGRAM = """\
program: Coalition
currency: EUR
earn: {per_currency_unit: 1}
partners:
  - {id: cafe, name: Cafe, stores: [S1, S2]}
  - {id: bakery, name: Bakery, stores: [B1], multiplier: 2}
"""


def test_currency_and_partner_store_checked_against_program(conn, write):
    apply_program(conn, write("p.yaml", PROGRAM), effective=dt.date(2020, 1, 1))
    p = write(
        "p.csv",
        "transaction_id,customer_id,date,amount,store,currency\n"
        "T1,C1,2026-01-05,1.00,S1,EUR\n"
        "T2,C1,2026-01-05,1.00,B1,\n"
        "T3,C1,2026-01-05,1.00,S1,USD\n"
        "T4,C1,2026-01-05,1.00,X9,eur\n"
        "T5,C1,2026-01-05,1.00,,eur\n",
    )
    [res] = import_files(conn, "purchases", [p])
    assert (res.inserted, res.rejected) == (2, 3)
    assert rejects(conn) == [
        (4, "currency", "currency 'USD' is not the program's currency EUR"),
        (5, "store", "store 'X9' belongs to no partner"),
        (6, "store", "store '' belongs to no partner"),
    ]


def test_currency_checked_before_the_first_version_starts(conn, write):
    """A program applied ahead of its date already says the shop's export and currency."""
    later = PLAIN.replace(
        "currency: EUR", "currency: EUR\ncsv: {delimiter: ';', columns: {amount: Summa}}"
    )
    apply_program(conn, write("p.yaml", later), effective=dt.date(2027, 1, 1))
    p = write(
        "p.csv",
        "transaction_id;customer_id;date;Summa;currency\n"
        "U1;C1;2027-01-05;10.00;USD\nU2;C1;2027-01-05;10.00;EUR\n",
    )
    [res] = import_files(conn, "purchases", [p], today=dt.date(2026, 12, 6))
    assert (res.inserted, res.rejected) == (1, 1)
    assert rejects(conn) == [(2, "currency", "currency 'USD' is not the program's currency EUR")]


def test_a_currencys_decimals_never_change_under_stored_amounts():
    """Minor units are stored without the decimals they were read with: a code's
    exponent is fixed for good (CLF's 4 in ISO 4217 would shrink a shop's history
    a hundredfold). The units of account and the X-codes are read with 2."""
    from loyalty_cli import money

    fixed = {"EUR": 2, "JPY": 0, "KWD": 3, "CLP": 0, "BHD": 3, "CLF": 2, "UYW": 2, "XAU": 2}
    assert {code: money.exponent(code) for code in fixed} == fixed


@pytest.mark.parametrize(
    ("rows", "program_currency", "refused"),
    [
        ("U1,C1,2026-01-05,10.005,KWD\n", "EUR", "KWD"),  # named in the file
        ("U1,C1,2026-01-05,1000,\n", "JPY", "EUR"),  # read as EUR cents: 100 x off
        ("U1,C1,2026-01-05,10.00,\n", "SEK", None),  # the default, same decimals
        ("U1,C1,2026-01-05,10.00,sek\n", "SEK", None),
    ],
)
def test_first_program_must_count_the_purchases_imported_before_it(
    conn, write, rows, program_currency, refused
):
    p = write("p.csv", "transaction_id,customer_id,date,amount,currency\n" + rows)
    import_files(conn, "purchases", [p])
    yaml = write("p.yaml", PLAIN.replace("currency: EUR", f"currency: {program_currency}"))
    if refused is None:
        assert apply_program(conn, yaml).version == 1
        return
    with pytest.raises(ConflictError) as err:
        apply_program(conn, yaml)
    assert str(err.value) == (
        f"{yaml}: currency: purchases in {refused} were imported before any program (import 1) "
        f"and cannot be counted in {program_currency}: undo that import (loyalty import undo 1), "
        "apply the program, then import the file again"
    )
    assert count(conn, "SELECT COUNT(*) FROM program_versions") == 0
    undo_import(conn, 1, on=dt.date(2026, 2, 1))
    assert apply_program(conn, yaml).version == 1


def test_tax_is_a_share_of_the_amount_with_its_sign(conn, write):
    apply_program(conn, write("p.yaml", PLAIN))
    p = write(
        "p.csv",
        "transaction_id,customer_id,date,amount,tax\n"
        "X1,C9,2026-02-05,10.00,20.00\n"
        "X2,C9,2026-02-05,10.00,-5.00\n"
        "X3,C9,2026-02-05,-10.00,2.00\n"
        "X4,C9,2026-02-05,-10.00,-2.00\n"
        "X5,C9,2026-02-05,10.00,2.00\n"
        "X6,C9,2026-02-05,0.00,0.01\n"
        "X7,C9,2026-02-05,-1.00,-1.50\n"
        "X8,C9,2026-02-05,-5.00,6.00\n",
    )
    [res] = import_files(conn, "purchases", [p])
    assert rejects(conn) == [
        (2, "tax", "tax 20.00 is more than the amount 10.00, which includes it"),
        (3, "tax", "tax -5.00 is negative on a sale"),
        (7, "tax", "tax 0.01 is more than the amount 0.00, which includes it"),
        (8, "tax", "tax -1.50 is more than the amount -1.00, which includes it"),
        (9, "tax", "tax 6.00 is more than the amount -5.00, which includes it"),
    ]
    stored = conn.execute("SELECT transaction_id, amount, tax FROM purchases ORDER BY id")
    assert [tuple(r) for r in stored] == [
        ("X3", -1000, -200),
        ("X4", -1000, -200),
        ("X5", 1000, 200),
    ]


def test_undo_marks_rows_and_twice_fails(conn, write):
    p = write("p.csv", HEAD + "T1,C1,2026-01-05,1.00,1\nT2,C1,2026-01-06,2.00,1\n")
    import_files(conn, "purchases", [p])
    res = undo_import(conn, 1, dt.date(2026, 2, 1))
    assert res.as_json() == {
        "import_id": 1, "kind": "purchases", "file": str(p), "rows": 2,
        "undone_on": "2026-02-01",
    }  # fmt: skip
    assert count(conn, "SELECT COUNT(*) FROM purchases WHERE undone = 1") == 2
    [imp] = list_imports(conn)
    assert (imp["status"], imp["undone_on"]) == ("undone", "2026-02-01")
    with pytest.raises(ConflictError, match="import 1 was already undone on 2026-02-01"):
        undo_import(conn, 1, dt.date(2026, 2, 2))
    with pytest.raises(NotFoundError, match="unknown import 7"):
        undo_import(conn, 7, dt.date(2026, 2, 2))
    # the same file may come in again after an undo
    [again] = import_files(conn, "purchases", [p])
    assert (again.import_id, again.skipped_file, again.inserted) == (2, False, 2)
    assert count(conn) == 2


def test_undo_reverses_points_of_the_import(conn, write):
    from loyalty_cli import ledger

    import_files(conn, "purchases", [write("p.csv", HEAD + "T1,C1,2026-01-05,10.00,1\n")])
    ledger.post(
        conn,
        [
            ledger.NewEntry(
                date=dt.date(2026, 1, 5),
                customer_id="C1",
                kind="earn",
                points=10,
                source_type="purchase",
                source_id="T1",
            )  # fmt: skip
        ],
    )
    undo_import(conn, 1, dt.date(2026, 2, 1))
    rows = conn.execute("SELECT kind, points, date FROM ledger ORDER BY entry_id").fetchall()
    assert [tuple(r) for r in rows] == [("earn", 10, "2026-01-05"), ("reversal", -10, "2026-02-01")]


def test_customers_upsert_and_duplicates(conn, write):
    a = write(
        "c.csv",
        "customer_id,name,email,birthday,joined_on,referred_by\n"
        "C1,Aino,aino@example.com,1990-05-01,2025-01-01,\n"
        "C2,Bo,,,2025-02-01,C1\n"
        "C3,,not-an-email,,,\n"
        "C4,,,,,C4\n",
    )
    [ra] = import_files(conn, "customers", [a])
    assert (ra.inserted, ra.rejected) == (2, 2)
    assert rejects(conn) == [
        (4, "email", "'not-an-email' is not an e-mail address"),
        (5, "referred_by", "a customer cannot refer themselves"),
    ]
    b = write(
        "c2.csv",
        "customer_id,name,email\nC1,Aino,\nC2,,bo@example.com\nC2,,bo@example.com\nC5,Eve,\n",
    )
    [rb] = import_files(conn, "customers", [b])
    assert (rb.rows, rb.inserted, rb.duplicates) == (4, 2, 2)
    c2 = conn.execute("SELECT name, email, joined_on, referred_by FROM customers "
                      "WHERE customer_id = 'C2'").fetchone()  # fmt: skip
    assert tuple(c2) == ("Bo", "bo@example.com", "2025-02-01", "C1")
    # undoing a customers import keeps the customers (master data)
    undo_import(conn, rb.import_id, dt.date(2026, 1, 1))
    assert count(conn, "SELECT COUNT(*) FROM customers") == 3


def test_events_need_a_known_customer(conn, write):
    import_files(conn, "customers", [write("c.csv", "customer_id\nC1\n")])
    p = write(
        "e.csv",
        "event_id,customer_id,type,date\n"
        "E1,C1,signup,2026-01-01\nE1,C1,signup,2026-01-01\nE2,C9,review,2026-01-02\n"
        "E1,C1,review,2026-01-01\n",
    )
    [res] = import_files(conn, "events", [p])
    assert (res.rows, res.inserted, res.duplicates, res.rejected) == (4, 1, 1, 2)
    assert rejects(conn) == [
        (4, "customer_id", "unknown customer 'C9'"),
        (5, "type", "conflict: event_id 'E1' was imported by line 2 of this file "
         "with type 'signup', this row has 'review'"),
    ]  # fmt: skip
    undo_import(conn, res.import_id, dt.date(2026, 2, 1))
    assert count(conn, "SELECT COUNT(*) FROM events WHERE undone = 0") == 0


def test_batches_see_earlier_batches_of_the_same_file(conn, write, monkeypatch):
    from loyalty_cli.importing.purchases import PurchasesKind

    monkeypatch.setattr(PurchasesKind, "batch_size", 2)
    rows = "".join(f"T{i},C1,2026-01-05,1.00,1\n" for i in range(5))
    p = write("p.csv", HEAD + rows + "T0,C1,2026-01-05,1.00,1\nT1,C1,2026-01-05,5.00,1\n")
    [res] = import_files(conn, "purchases", [p])
    assert (res.inserted, res.duplicates, res.rejected) == (5, 1, 1)
    [(line, field, reason)] = rejects(conn)
    assert (line, field) == (8, "amount")
    assert "was imported by an earlier line of this file" in reason
