"""The program's `csv:` section is the till's dialect; a file whose header is in
the standard dialect instead (customers and events from elsewhere, a standard
export) is read in that, as DESIGN.md's example program is applied as is."""

from __future__ import annotations

from pathlib import Path

import pytest

from loyalty_cli import program
from loyalty_cli.errors import InputFileError
from loyalty_cli.importing import DialectOverrides, import_files

EXAMPLE = Path(__file__).parent / "data" / "design-example.yaml"


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


def test_import_flags_name_the_dialect_exactly(shop, write):
    standard = write("p.csv", "transaction_id,customer_id,date,amount\nT1,C1,2026-02-01,10.00\n")
    with pytest.raises(InputFileError, match="not found"):
        import_files(shop, "purchases", [standard], overrides=DialectOverrides(delimiter=";"))
