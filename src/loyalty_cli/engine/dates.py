"""Calendar arithmetic the engine needs: months that clamp, periods for limits."""

from __future__ import annotations

import calendar
import datetime as dt

# The dates a shop's data and commands may name: far enough back for any
# birthday, far enough ahead that every expiry and window computed from them
# stays a real date (9999-12-31 plus months is none).
EARLIEST = dt.date(1900, 1, 1)
LATEST = dt.date(2999, 12, 31)
OUT_OF_RANGE = f"is outside the years {EARLIEST.year}-{LATEST.year}"


def is_iso_date(value: str) -> bool:
    """Exactly YYYY-MM-DD in ASCII digits: the text strptime("%Y-%m-%d") and
    date.fromisoformat read alike (fromisoformat alone also takes 20261123,
    2026-W47-1, ...; strptime also takes 2026-1-5)."""
    return (
        len(value) == 10
        and value[4] == "-"
        and value[7] == "-"
        and value.isascii()
        and value[:4].isdigit()
        and value[5:7].isdigit()
        and value[8:].isdigit()
    )


def in_range(day: dt.date) -> bool:
    return EARLIEST <= day <= LATEST


def is_date_format(value: str) -> bool:
    """Whether a strftime format writes and reads back day, month and year (%d.%m.%Y)."""
    probe = dt.date(2026, 12, 31)
    try:
        return dt.datetime.strptime(probe.strftime(value), value).date() == probe
    except ValueError:
        return False


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` plus whole months, clamped to the month's end (Jan 31 + 1 = Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(day.day, last))


def birthday_in(year: int, birthday: dt.date) -> dt.date:
    """The birthday celebrated in `year` (29 Feb -> 28 Feb in a non-leap year)."""
    if birthday.month == 2 and birthday.day == 29 and not calendar.isleap(year):
        return dt.date(year, 2, 28)
    return dt.date(year, birthday.month, birthday.day)


def period_key(day: dt.date, per: str) -> tuple[int, ...]:
    """The calendar day, ISO week, calendar month or calendar year `day` falls in."""
    if per == "day":
        return (day.year, day.month, day.day)
    if per == "week":
        iso = day.isocalendar()
        return (iso.year, iso.week)
    if per == "month":
        return (day.year, day.month)
    return (day.year,)


def parse(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None
