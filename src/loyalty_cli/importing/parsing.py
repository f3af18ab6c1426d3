"""Typed cells: one CSV row's text -> the values a kind stores.

Every problem raises `RowRejected(field, reason)`; the framework turns it into
a rejected row with the file's physical line.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from loyalty_cli import money
from loyalty_cli.engine.dates import OUT_OF_RANGE, in_range, is_iso_date

MAX_FIELD = 10_000  # any cell longer than this is a rejected row
MAX_ID = 64  # customer ids (and other ids) longer than this are rejected
ISO_FORMAT = "%Y-%m-%d"


class RowRejected(Exception):
    """A row that cannot be imported; `field` is the standard column name."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by the forked reader (service.py)
        return (RowRejected, (self.field, self.reason))


@dataclass(frozen=True)
class CellFormat:
    """What the cells of one file look like (from the resolved dialect)."""

    decimal: str = "."
    date_format: str = "%Y-%m-%d"
    currency: str = "EUR"


class Cells:
    """One row's cells by standard column name (absent column = empty text)."""

    __slots__ = ("_index", "_row", "fmt")

    def __init__(self, index: dict[str, int], row: list[str], fmt: CellFormat) -> None:
        self._index = index
        self._row = row
        self.fmt = fmt

    @property
    def row(self) -> list[str]:
        """The row's raw cells, in header order (fast paths read them directly)."""
        return self._row

    @property
    def index(self) -> dict[str, int]:
        """Standard column name -> position in `row` (the same dict for a whole file)."""
        return self._index

    def has(self, name: str) -> bool:
        return name in self._index

    def text(self, name: str) -> str | None:
        """Stripped text, None when empty or the column is absent."""
        i = self._index.get(name)
        if i is None:
            return None
        value = self._row[i].strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.text(name)
        if value is None:
            raise RowRejected(name, "empty; a value is required")
        return value

    def ident(self, name: str, *, required: bool = True) -> str | None:
        """An id (customer, transaction, event): at most MAX_ID characters, none of
        them a control character (a NUL or a line break in an id is a broken file)."""
        value = self.required(name) if required else self.text(name)
        if value is not None and len(value) > MAX_ID:
            raise RowRejected(name, f"longer than {MAX_ID} characters")
        if value is not None and _CONTROL.search(value):
            raise RowRejected(name, f"{value!r} contains a control character")
        return value

    def date(self, name: str, *, required: bool = True) -> dt.date | None:
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        return parse_date(value, self.fmt.date_format, name)

    def amount(self, name: str, *, required: bool = True) -> int | None:
        """Money in minor units of the file's currency."""
        value = self.required(name) if required else self.text(name)
        if value is None:
            return None
        try:
            return money.parse_minor(value, self.fmt.currency, self.fmt.decimal)
        except money.AmountError as exc:
            raise RowRejected(name, f"not an amount: {exc}") from None

    def number(self, name: str) -> str | None:
        """A decimal quantity, normalised to plain text ("1.5")."""
        value = self.text(name)
        if value is None:
            return None
        try:
            return str(money.parse_decimal(value, self.fmt.decimal))
        except money.AmountError as exc:
            raise RowRejected(name, f"not a number: {exc}") from None

    def positive_int(self, name: str, default: int) -> int:
        value = self.text(name)
        if value is None:
            return default
        # The length first: int() refuses thousands of digits.
        if not value.isascii() or not value.isdigit() or len(value) > 9 or int(value) < 1:
            raise RowRejected(
                name, f"'{money.abbreviated(value)}' is not a whole number of 1 or more"
            )
        return int(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def parse_date(value: str, fmt: str, field: str) -> dt.date:
    """Text in the dialect's date format -> date; 31.02.2026 is rejected, and so
    is a year outside 1900-2999 (engine.dates.in_range)."""
    if fmt == ISO_FORMAT and is_iso_date(value):
        try:
            day = dt.date.fromisoformat(value)  # ~20 x faster than strptime
        except ValueError:
            pass  # strptime words the reason
        else:
            return _in_range(day, value, field)
    try:
        return _in_range(dt.datetime.strptime(value, fmt).date(), value, field)
    except ValueError as exc:
        reason = str(exc)
        if "does not match format" in reason or "unconverted data" in reason:
            raise RowRejected(field, f"'{value}' is not a date in the format {fmt}") from None
        raise RowRejected(field, f"'{value}' is not a valid date ({reason})") from None


def _in_range(day: dt.date, value: str, field: str) -> dt.date:
    if not in_range(day):
        raise RowRejected(field, f"'{value}' {OUT_OF_RANGE}")
    return day
