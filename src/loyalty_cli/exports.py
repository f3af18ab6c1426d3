"""CSV exports an accountant posts or a data person loads (see docs/reports.md).

Each export is a function returning `Export(header, rows)`; `write()` puts it
out as UTF-8 CSV with the csv module. Money cells are Decimal (plain, dot
decimal), points and counts int, dates ISO text. Text cells that a spreadsheet
would run as a formula (starting =, +, -, @, tab, CR) are prefixed with a
single quote; numbers are never touched, negative ones included.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from loyalty_cli import reports
from loyalty_cli.errors import LoyaltyError, UsageError
from loyalty_cli.money import from_minor, round_money
from loyalty_cli.render import to_json, utf8, write_csv

LEDGER_HEADER = [
    "entry_id", "date", "customer_id", "kind", "points", "value",
    "source_type", "source_id", "rule_id", "program_version",
]  # fmt: skip
BALANCES_HEADER = ["customer_id", "tier", "available", "pending", "value"]
JOURNAL_HEADER = [
    "period", "opening_points", "earned", "clawed_back", "redeemed", "redemption_reversed",
    "expired", "adjusted", "closing_points", "closing_value", "closing_liability",
]  # fmt: skip
REDEMPTIONS_HEADER = [
    "redemption_id", "date", "customer_id", "reward_id", "points", "value", "status",
]  # fmt: skip
OFFERS_HEADER = ["customer_id", "name", "email", "segment", "offer_id", "detail"]
RFM_HEADER = ["customer_id", "frequency", "recency", "T", "monetary_value"]


@dataclass
class Export:
    header: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.header, row, strict=True)) for row in self.rows]


def write(export: Export, out: IO[str] | str | Path | None = None, fmt: str = "csv") -> None:
    """CSV (header first) or JSON (a list of objects keyed by the CSV header) to a
    stream (default stdout) or a file path, UTF-8."""
    if isinstance(out, (str, Path)):
        try:
            with open(out, "w", encoding="utf-8", newline="") as fh:
                _write(export, fh, fmt)
        except OSError as exc:
            raise LoyaltyError(f"{out}: cannot write the export: {exc.strerror or exc}") from None
    else:
        # Exports are UTF-8 wherever they go, a terminal too.
        _write(export, out if out is not None else utf8(sys.stdout), fmt)


def _write(export: Export, out: IO[str] | None, fmt: str) -> None:
    if fmt == "json":
        (out if out is not None else sys.stdout).write(to_json(export.as_dicts()) + "\n")
    else:
        write_csv(export.header, export.rows, out)


def _currency(conn: sqlite3.Connection, on: dt.date) -> tuple[str, Decimal, Any]:
    program = reports.program_on(conn, on)
    return program.currency, Decimal(program.point_value), program


def _money(minor: int | None, currency: str) -> Decimal | None:
    return None if minor is None else from_minor(minor, currency)


# --- ledger --------------------------------------------------------------------


def ledger_export(
    conn: sqlite3.Connection, start: dt.date | None = None, end: dt.date | None = None
) -> Export:
    """Every ledger entry dated in [start, end] (either side open), in entry order."""
    if start is not None and end is not None:
        reports.check_period(start, end)
    currency = _currency_or_default(conn, end)
    rows = conn.execute(
        "SELECT entry_id, date, customer_id, kind, points, value, source_type, source_id, "
        "rule_id, program_version FROM ledger WHERE date >= ? AND date <= ? ORDER BY entry_id",
        ((start or dt.date.min).isoformat(), (end or dt.date.max).isoformat()),
    )
    return Export(
        LEDGER_HEADER,
        [[*r[:5], from_minor(r[5], currency), *r[6:]] for r in rows],
    )


def _currency_or_default(conn: sqlite3.Connection, on: dt.date | None) -> str:
    program = reports.program_or_none(conn, on or dt.date.today())
    return program.currency if program is not None else "EUR"


# --- balances --------------------------------------------------------------------


def balances_export(conn: sqlite3.Connection, on: dt.date) -> Export:
    """Per member at the end of `on`: tier, available, pending, value = available x point_value."""
    currency, point_value, _ = _currency(conn, on)
    people = reports.known_customers(conn, on)
    bal = reports.balances(conn, on, list(people))
    tiers = reports.tiers_on(conn, on)
    rows = []
    for cid in sorted(people):
        available, pending = bal.get(cid, (0, 0))
        value = round_money(Decimal(available) * point_value, currency)
        rows.append([cid, tiers.get(cid), available, pending, from_minor(value, currency)])
    return Export(BALANCES_HEADER, rows)


# --- journal ---------------------------------------------------------------------


def periods(start: dt.date, end: dt.date, by: str) -> Iterator[tuple[str, dt.date, dt.date]]:
    """(label, first day, last day) of each day or calendar month, clipped to [start, end]."""
    if by not in ("day", "month"):
        raise UsageError(f"must be day or month, not '{by}'", field="--by")
    day = start
    while day <= end:
        if by == "day":
            yield day.isoformat(), day, day
            day += dt.timedelta(days=1)
        else:
            nxt = reports.add_months(day.replace(day=1), 1)
            last = min(end, nxt - dt.timedelta(days=1))
            yield day.strftime("%Y-%m"), day, last
            day = nxt


_JOURNAL_KINDS = {
    "earn": "earned",
    "bonus": "earned",
    "clawback": "clawed_back",
    "redeem": "redeemed",
    "redemption_reversed": "redemption_reversed",
    "expire": "expired",
    "adjust": "adjusted",
    "reversal": "adjusted",
}
# Movements shown as positive numbers (the rest keep their sign).
_OUTGOING = {"clawed_back", "redeemed", "expired"}


def journal_export(
    conn: sqlite3.Connection,
    start: dt.date | None,
    end: dt.date,
    by: str = "month",
) -> Export:
    """The points journal: one row per day or month of [start, end], contiguous.

    opening + earned − clawed_back − redeemed + redemption_reversed − expired
    + adjusted = closing, and each closing is the next opening. --from defaults
    to the first ledger date (or --to when the ledger is empty).
    """
    if start is None:
        first = conn.execute("SELECT MIN(date) FROM ledger").fetchone()[0]
        start = min(dt.date.fromisoformat(first), end) if first else end
    reports.check_period(start, end)
    spans = list(periods(start, end, by))
    from loyalty_cli.program import versions_timeline

    timeline = versions_timeline(conn)
    if not len(timeline):
        reports.program_on(conn, end)  # raises NoProgramError
    opening = conn.execute(
        "SELECT COALESCE(SUM(points), 0) FROM ledger WHERE date < ?", (start.isoformat(),)
    ).fetchone()[0]
    moves: dict[str, dict[str, int]] = {}
    for day, kind, points in conn.execute(
        "SELECT date, kind, SUM(points) FROM ledger WHERE date >= ? AND date <= ? "
        "GROUP BY date, kind",
        (start.isoformat(), end.isoformat()),
    ):
        label = day if by == "day" else day[:7]
        bucket = moves.setdefault(label, {})
        column = _JOURNAL_KINDS[kind]
        bucket[column] = bucket.get(column, 0) + points
    # Historical breakage needs expired and redeemed up to each period's end.
    history = _cumulative_flows(conn, end)
    rows = []
    for label, _first, last in spans:
        got = moves.get(label, {})
        cols = {
            name: (-got.get(name, 0) if name in _OUTGOING else got.get(name, 0))
            for name in ("earned", "clawed_back", "redeemed", "redemption_reversed",
                         "expired", "adjusted")
        }  # fmt: skip
        closing = (
            opening
            + cols["earned"]
            - cols["clawed_back"]
            - cols["redeemed"]
            + cols["redemption_reversed"]
            - cols["expired"]
            + cols["adjusted"]
        )
        version = timeline.get(last) or next(iter(timeline))
        program = version.program
        currency, point_value = program.currency, Decimal(program.point_value)
        brk = _breakage_at(program, history, last)
        value = round_money(Decimal(closing) * point_value, currency)
        liability = reports.liability_minor(closing, point_value, brk, currency)
        rows.append(
            [
                label,
                opening,
                *cols.values(),
                closing,
                from_minor(value, currency),
                from_minor(liability, currency),
            ]
        )
        opening = closing
    return Export(JOURNAL_HEADER, rows)


def _cumulative_flows(conn: sqlite3.Connection, end: dt.date) -> list[tuple[str, int, int]]:
    """(date, expired so far, net redeemed so far) at each date with such an entry."""
    out: list[tuple[str, int, int]] = []
    expired = redeemed = 0
    for day, exp, red in conn.execute(
        """
        SELECT date,
               COALESCE(SUM(CASE WHEN kind = 'expire' THEN -points END), 0),
               COALESCE(SUM(CASE WHEN kind = 'redeem' THEN -points
                                 WHEN kind = 'redemption_reversed' THEN -points END), 0)
        FROM ledger WHERE date <= ? AND kind IN ('expire', 'redeem', 'redemption_reversed')
        GROUP BY date ORDER BY date
        """,
        (end.isoformat(),),
    ):
        expired += exp
        redeemed += red
        out.append((day, expired, redeemed))
    return out


def _breakage_at(program: Any, history: list[tuple[str, int, int]], on: dt.date) -> Decimal:
    fixed = program.accounting.breakage
    if fixed is not None:
        return Decimal(fixed)
    day = on.isoformat()
    expired = redeemed = 0
    for d, exp, red in history:
        if d > day:
            break
        expired, redeemed = exp, red
    total = expired + redeemed
    return Decimal(expired) / Decimal(total) if total else Decimal(0)


# --- redemptions, offers -----------------------------------------------------------


def redemptions_export(
    conn: sqlite3.Connection, start: dt.date | None = None, end: dt.date | None = None
) -> Export:
    """Every redemption (punch-card vouchers used included) dated in [start, end]."""
    if start is not None and end is not None:
        reports.check_period(start, end)
    currency = _currency_or_default(conn, end)
    rows = conn.execute(
        "SELECT redemption_id, date, customer_id, reward_id, points, value, status "
        "FROM redemptions WHERE date >= ? AND date <= ? ORDER BY date, redemption_id",
        ((start or dt.date.min).isoformat(), (end or dt.date.max).isoformat()),
    )
    return Export(
        REDEMPTIONS_HEADER,
        [[*r[:5], from_minor(r[5], currency), r[6]] for r in rows],
    )


def offers_export(conn: sqlite3.Connection, on: dt.date) -> Export:
    """`export offers`: the same rows as `report offers`."""
    rows = reports.offers(conn, on)
    return Export(OFFERS_HEADER, [[r[c] for c in OFFERS_HEADER] for r in rows])


# --- rfm ---------------------------------------------------------------------------


def rfm_export(conn: sqlite3.Connection, on: dt.date) -> Export:
    """frequency, recency, T, monetary_value per member (lifetimes convention), as of `on`.

    Member rows dated <= on are collapsed to days (net spend per day: sales
    minus refunds of that day). A purchase day is a day with a sale receipt (total 0
    or more); a day with only refund receipts is not one (a CLV model wants purchases, and its
    monetary value must not go negative). frequency = purchase days − 1;
    recency = last day − first day; T = on − first day; monetary_value = mean
    daily net spend over the repeat days (all but the first), 0 without any.
    """
    currency = _currency_or_default(conn, on)
    day = on.isoformat()
    # Rows straight from the covering member index, already in (customer, date) order.
    hint = "INDEXED BY purchases_member"
    cur = conn.cursor()
    cur.row_factory = None
    # A day is a purchase day when one of its receipts is a sale (total 0 or more),
    # as for every other report: a receipt's lines are summed first.
    rows = cur.execute(
        f"""
        SELECT customer_id, date, SUM(total), MAX(total >= 0) FROM (
          SELECT customer_id, date, SUM(amount) AS total FROM purchases {hint}
          WHERE undone = 0 AND date <= ? AND customer_id IS NOT NULL
            AND transaction_id NOT IN (SELECT transaction_id FROM claims)
          GROUP BY customer_id, date, transaction_id)
        GROUP BY customer_id, date ORDER BY customer_id, date
        """,
        (day,),
    ).fetchall()
    claimed = cur.execute(
        """
        SELECT customer_id, date, SUM(total), MAX(total >= 0) FROM (
          SELECT c.customer_id, p.date, SUM(p.amount) AS total
          FROM claims c JOIN purchases p ON p.transaction_id = c.transaction_id
          WHERE p.undone = 0 AND p.date <= ?
          GROUP BY c.customer_id, p.date, p.transaction_id)
        GROUP BY customer_id, date
        """,
        (day,),
    ).fetchall()
    if claimed:
        # A claimed receipt's rows count for the claimant, merged into their days.
        merged: dict[tuple[str, str], tuple[int, int]] = {}
        for cid, date, net, sale in [*rows, *claimed]:
            before, had_sale = merged.get((cid, date), (0, 0))
            merged[(cid, date)] = (before + net, max(had_sale, sale))
        rows = [(cid, date, net, sale) for (cid, date), (net, sale) in sorted(merged.items())]
    per: dict[str, list[tuple[dt.date, int]]] = {}
    dates: dict[str, dt.date] = {}
    for cid, date, net, sale in rows:
        if not sale:
            continue
        parsed = dates.get(date)
        if parsed is None:
            parsed = dates[date] = dt.date.fromisoformat(date)
        per.setdefault(cid, []).append((parsed, net))
    out = []
    for cid, days in per.items():
        first, last = days[0][0], days[-1][0]
        repeat = [net for _, net in days[1:]]
        mean = (
            round_money(from_minor(sum(repeat), currency) / len(repeat), currency) if repeat else 0
        )
        out.append(
            [
                cid,
                len(days) - 1,
                (last - first).days,
                (on - first).days,
                from_minor(mean, currency),
            ]
        )
    return Export(RFM_HEADER, out)
