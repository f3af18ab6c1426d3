"""How a file looks: delimiter, decimal separator, date format, encoding,
column names, and the program facts a row is checked against.

Precedence: import flags > the applied program's `csv:` section > defaults
(delimiter sniffed among , ; tab |, decimal ".", ISO dates, utf-8-sig).
"""

from __future__ import annotations

import bisect
import datetime as dt
import sqlite3
from dataclasses import dataclass, field, replace

from loyalty_cli.encodings import is_text_encoding
from loyalty_cli.engine.dates import is_date_format
from loyalty_cli.errors import UsageError

DELIMITERS = (",", ";", "\t", "|")
DEFAULT_ENCODING = "utf-8-sig"
DEFAULT_DATE_FORMAT = "%Y-%m-%d"
DEFAULT_CURRENCY = "EUR"
_DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


@dataclass(frozen=True)
class DialectOverrides:
    """The import flags; None means "not given"."""

    delimiter: str | None = None
    decimal: str | None = None
    date_format: str | None = None
    encoding: str | None = None
    columns: dict[str, str] | None = None


@dataclass(frozen=True)
class Dialect:
    """Everything the reader and the row parsers need to know about a file."""

    delimiter: str | None = None  # None: sniff from the header line
    decimal: str = "."
    date_format: str = DEFAULT_DATE_FORMAT
    encoding: str = DEFAULT_ENCODING
    columns: dict[str, str] = field(default_factory=dict)  # standard name -> header
    currency: str = DEFAULT_CURRENCY
    check_currency: bool = False  # only when a program is applied
    # (effective_from ISO, store -> partner id or None: no coalition) per program
    # version, in force order; a row is checked against the version of its date.
    partner_versions: tuple[tuple[str, dict[str, str] | None], ...] = ()
    # When the program has a `csv:` section: the standard dialect (with the import
    # flags), for a file whose header is in it instead (importing.service.dialect_for).
    standard: Dialect | None = None

    def stores_on(self, day: str) -> dict[str, str] | None:
        """store -> partner id under the version in force on `day` (ISO); before the
        first version, the first; None when that version has no `partners:`."""
        versions = self.partner_versions
        if not versions:
            return None
        at = bisect.bisect_right(versions, day, key=lambda v: v[0]) - 1
        return versions[max(at, 0)][1]


def parse_columns(text: str | None) -> dict[str, str] | None:
    """`--columns "amount=Summa,date=Pvm"` -> {"amount": "Summa", "date": "Pvm"}."""
    if text is None:
        return None
    columns: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, header = part.partition("=")
        if not sep or not name.strip() or not header.strip():
            raise UsageError(
                f"--columns: '{part.strip()}' is not STANDARD=HEADER "
                '(example: --columns "amount=Summa,date=Pvm")'
            )
        if name.strip() in columns:  # which of the two holds it would be a guess
            raise UsageError(
                f"--columns: {name.strip()} is given twice "
                f"('{columns[name.strip()]}' and '{header.strip()}'); name one header for it"
            )
        columns[name.strip()] = header.strip()
    return columns


def normalise_delimiter(value: str) -> str:
    value = _DELIMITER_WORDS.get(value.lower(), value)
    if len(value) != 1 or value in '"\r\n':
        raise UsageError(f"--delimiter: '{value}' must be one character (or 'tab')")
    return value


def resolve(
    conn: sqlite3.Connection,
    overrides: DialectOverrides | None = None,
    today: dt.date | None = None,
) -> Dialect:
    """The dialect for an import: program `csv:` section overridden by flags."""
    from loyalty_cli import program as program_mod  # program.py owns the model

    # One read of the versions: today's gives the csv: section and currency (before
    # the first one starts, the first: the shop's export and currency all the same);
    # all of them, in force order, the partner stores by row date.
    timeline = program_mod.versions_timeline(conn)
    version = timeline.get(today or dt.date.today()) or next(iter(timeline), None)
    prog = version.program if version is not None else None
    o = overrides or DialectOverrides()
    csv_cfg = getattr(prog, "csv", None) if prog is not None else None

    def pick(flag: str | None, name: str, default: str | None) -> str | None:
        if flag is not None:
            return flag
        if csv_cfg is None:
            return default
        explicit = getattr(csv_cfg, "model_fields_set", None)
        if explicit is not None and name not in explicit:
            return default  # a model default (e.g. ","), not the shop's choice: sniff
        value = getattr(csv_cfg, name, None)
        return value if value is not None else default

    delimiter = pick(o.delimiter, "delimiter", None)
    decimal = pick(o.decimal, "decimal", ".")
    date_format = pick(o.date_format, "date_format", DEFAULT_DATE_FORMAT)
    encoding = pick(o.encoding, "encoding", DEFAULT_ENCODING)
    if delimiter is not None:
        delimiter = normalise_delimiter(delimiter)
    if decimal not in (".", ","):
        raise UsageError(f"--decimal: '{decimal}' must be '.' or ','")
    if o.date_format is not None and not is_date_format(o.date_format):
        raise UsageError(
            f"--date-format: '{o.date_format}' is not a date format with day, month and "
            "year, such as %d.%m.%Y"
        )
    if not is_text_encoding(str(encoding)):
        raise UsageError(
            f"--encoding: '{encoding}' is not a known text encoding (e.g. utf-8, cp1252)"
        )
    columns = dict(getattr(csv_cfg, "columns", None) or {}) if csv_cfg is not None else {}
    columns.update(o.columns or {})

    partner_versions = []
    for each in timeline:  # in force order: (effective_from, version)
        partners = each.program.partners
        stores = (
            {str(store): partner.id for partner in partners for store in partner.stores}
            if partners
            else None
        )
        partner_versions.append((each.effective_from.isoformat(), stores))

    dialect = Dialect(
        delimiter=delimiter,
        decimal=decimal,  # type: ignore[arg-type]
        date_format=date_format,  # type: ignore[arg-type]
        encoding=encoding,  # type: ignore[arg-type]
        columns=columns,
        currency=(prog.currency if prog is not None else DEFAULT_CURRENCY).upper(),
        check_currency=prog is not None,
        # No version with partners: no store check at all (`stores_on` is None
        # for every day; per row it cost a tenth of a 1M-line import).
        partner_versions=(
            tuple(partner_versions) if any(s is not None for _, s in partner_versions) else ()
        ),
    )
    if csv_cfg is None:
        return dialect
    # The standard dialect with the flags on top (an --encoding the error advised
    # must not switch the standard reading off).
    plain = replace(
        dialect,
        delimiter=normalise_delimiter(o.delimiter) if o.delimiter is not None else None,
        decimal=o.decimal if o.decimal is not None else ".",
        date_format=o.date_format if o.date_format is not None else DEFAULT_DATE_FORMAT,
        encoding=o.encoding if o.encoding is not None else DEFAULT_ENCODING,
        columns=dict(o.columns or {}),
    )
    return dialect if plain == dialect else replace(dialect, standard=plain)
