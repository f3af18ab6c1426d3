"""Exact money and rate arithmetic: integer minor units, Decimal for rates.

Floats never touch an amount. Parsing accepts the locale forms a till export
uses (decimal comma, thousands grouped by space, no-break space, narrow no-break
space or dot; with a decimal point, grouping by comma).
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

ROUNDINGS = {"floor": ROUND_FLOOR, "round_half_up": ROUND_HALF_UP, "ceil": ROUND_CEILING}

# Decimal places of the ISO 4217 currencies that do not have 2. Amounts are stored
# in minor units with no record of the decimals they were read with, so a code's
# entry can never change. The units of account with 4 (CLF, UYW), which no till
# prices in, and the codes without a minor unit (the X-codes) are read with 2.
_EXPONENTS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0, "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
}  # fmt: skip

# ISO 4217 codes (active, plus a few withdrawn recently, such as HRK, that old exports
# still carry, and the X-codes for metals and testing): a program's currency must be
# one, so a typo (EUE) is an error, not a currency with two decimals.
ISO_4217 = frozenset(
    (
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD",
        "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP",
        "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU",
        "CRC", "CUC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB",
        "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
        "HNL", "HRK", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
        "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP",
        "LKR", "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU",
        "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
        "NZD", "OMR", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD",
        "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SLL", "SOS",
        "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TND", "TOP", "TRY",
        "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS", "VED",
        "VES", "VND", "VUV", "WST", "XAF", "XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XCD",
        "XCG", "XDR", "XOF", "XPD", "XPF", "XPT", "XSU", "XTS", "XUA", "XXX", "YER", "ZAR",
        "ZMW", "ZWG", "ZWL",
    )
)  # fmt: skip

# Sanity bounds far inside int64. A program's money (a tier's spend, a reward's
# value) may be as large as the program validation allows.
MAX_PROGRAM_MINOR = 10**15
# A CSV cell, one receipt line, is beyond any real one above 10 billion EUR:
# millions of such lines still sum inside SQLite's int64 (`report kpi`; lines of
# 10**15 overflowed there).
MAX_ABS_MINOR = 10**12
_SPACES = " \u00a0\u202f"
_DIGITS = re.compile(r"[0-9]+")
# Characters that may group thousands, by decimal separator (DESIGN.md, `csv:`).
_GROUPING = {",": frozenset(_SPACES + "."), ".": frozenset(",")}


class AmountError(ValueError):
    """An amount that cannot be read exactly."""


def exponent(currency: str) -> int:
    """Decimal places of a currency's minor unit (EUR 2, JPY 0, KWD 3)."""
    return _EXPONENTS.get(currency.upper(), 2)


def parse_decimal(text: str, decimal: str = ".") -> Decimal:
    """Read a locale-formatted number exactly. Raises AmountError with the reason.

    ASCII digits only; an optional sign or parentheses (negative); the integer
    part plain or grouped by threes with one separator (with a decimal comma: a
    space, no-break space, narrow no-break space or dot; with a decimal point: a
    comma); the fraction plain digits. Anything else (`1 2.50`, `1.5,000`,
    `12,5.000`, `1 23,00`) is refused rather than guessed. How many decimals a
    money amount may have is `parse_minor`'s check.
    """
    s = text.strip()
    if not s:
        raise AmountError("empty amount")
    if s.startswith("(") and s.endswith(")"):
        s = "-" + s[1:-1].strip()
    sign = ""
    if s[:1] in ("+", "-"):
        sign, s = s[0], s[1:]
    whole, point, fraction = s.partition(decimal)
    if point and not _DIGITS.fullmatch(fraction):
        raise AmountError(f"'{abbreviated(text)}' is not a number")
    if not _DIGITS.fullmatch(whole):
        whole = _ungrouped(whole, text, decimal)
    return Decimal(f"{sign}{whole}.{fraction}" if point else f"{sign}{whole}")


def _ungrouped(whole: str, text: str, decimal: str) -> str:
    """The digits of a thousands-grouped integer part (`1 234 567`, `1.234`, `1,234`)."""
    separators = {ch for ch in whole if not ("0" <= ch <= "9")}
    allowed = _GROUPING[decimal]
    if len(separators) != 1 or not separators <= allowed:
        raise AmountError(f"'{abbreviated(text)}' is not a number")
    groups = whole.split(separators.pop())
    # A first group of 0 (`0,500`, `00.500`) is no grouped number: most likely the
    # other decimal separator (0.50), never guessed as 500.
    if (
        not 1 <= len(groups[0]) <= 3
        or groups[0].startswith("0")
        or any(len(g) != 3 for g in groups[1:])
    ):
        name = "decimal comma" if decimal == "," else "decimal point"
        raise AmountError(f"'{abbreviated(text)}' is not a number with {name}")
    return "".join(groups)


def to_minor(value: Decimal, currency: str = "EUR", bound: int = MAX_PROGRAM_MINOR) -> int:
    """Decimal major units -> integer minor units; refuses sub-minor precision and
    a value beyond `bound`."""
    exp = exponent(currency)
    scaled = value.scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise AmountError(f"{value} has more than {exp} decimals")
    minor = int(scaled)
    if abs(minor) > bound:
        raise AmountError(f"{abbreviated(str(value))} is out of range")
    return minor


def abbreviated(text: str, keep: int = 24) -> str:
    """`text`, or its start and length when longer than `keep` (a reject quoting a
    cell of thousands of digits in full would bury the reason)."""
    if len(text) <= keep:
        return text
    return f"{text[: keep - 8]}… ({len(text):,} characters)"


def parse_minor(text: str, currency: str = "EUR", decimal: str = ".") -> int:
    """Text as found in a CSV cell -> integer minor units."""
    exp = _EXPONENTS.get(currency.upper(), 2)
    # Fast path (imports read millions of these): plain ASCII "123.45", "-3.5",
    # "+7" with at most `exp` decimals, by integer arithmetic on the digits.
    # Anything else (grouping, parentheses, spaces, more decimals, other
    # digits) takes the exact general path below, which also words the errors.
    s = text.strip()
    whole, dot, frac = s.partition(decimal)
    sign = 1
    if whole[:1] in ("-", "+"):
        sign = -1 if whole[0] == "-" else 1
        whole = whole[1:]
    if (
        whole.isascii()
        and whole.isdigit()
        and len(whole) <= 18  # int() of thousands of digits is refused (and no amount)
        and len(frac) <= exp
        and (not dot or (frac.isascii() and frac.isdigit()))
    ):
        minor = sign * (int(whole) * 10**exp + (int(frac) * 10 ** (exp - len(frac)) if dot else 0))
        if abs(minor) <= MAX_ABS_MINOR:
            return minor
    value = parse_decimal(text, decimal)
    places = -int(value.as_tuple().exponent)
    if places > exp:  # "10.000" is ten thousand to half of Europe: never guessed
        raise AmountError(f"'{abbreviated(text.strip())}' has more than {exp} decimals")
    return to_minor(value, currency, MAX_ABS_MINOR)


def from_minor(minor: int, currency: str = "EUR") -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def format_minor(minor: int, currency: str = "EUR") -> str:
    """Integer minor units -> the contract's decimal string ("450.00")."""
    exp = exponent(currency)
    return f"{from_minor(minor, currency):.{exp}f}"


def round_points(value: Decimal, rounding: str) -> int:
    """Round an exact Decimal number of points to an integer by the program's rule."""
    return int(value.to_integral_value(rounding=ROUNDINGS[rounding]))


def round_money(value: Decimal, currency: str = "EUR") -> int:
    """Exact Decimal major units -> minor units, half up (reports and liability)."""
    exp = exponent(currency)
    return int(value.scaleb(exp).to_integral_value(rounding=ROUND_HALF_UP))
