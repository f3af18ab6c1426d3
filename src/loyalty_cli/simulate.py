"""`loyalty simulate`: replay the stored history under a proposed program.

The real database is only read. Its content is copied (SQLite backup API) into
a scratch database in memory; there everything the engine derived (ledger,
scored receipts, tiers, vouchers, redemptions) is cleared, the proposed program
becomes the only version, and the history is posted again: purchases and
events by `run`, and the redemptions, cancellations and manual adjustments as
they happened, each on its own date. A redemption the proposed program cannot
afford (points, tier, limit, reward gone) is skipped and counted.

"Current" is the real ledger as it stands; "proposed" is the replay; both are
measured by the same KPI queries over [from, to].
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from loyalty_cli import db, workers
from loyalty_cli.errors import LoyaltyError, UsageError
from loyalty_cli.program import FIRST_DAY, Program, parse_program, read_program_file
from loyalty_cli.programs_store import list_versions, same_currency
from loyalty_cli.snapshots import one_state

# KPI keys compared side by side (points are ints, money decimal strings).
POINT_KEYS = (
    "points_issued",
    "points_redeemed",
    "points_expired",
    "points_clawed_back",
    "outstanding_points",
)
# Every money key of `report kpi` (DESIGN: "the report kpi point and money keys"); the
# revenue ones do not change between programs but a side-by-side report shows them.
MONEY_KEYS = (
    "revenue_net",
    "member_revenue",
    "aov",
    "member_aov",
    "non_member_aov",
    "clv_historical",
    "liability",
    "reward_cost",
)
RATE_KEYS = ("redemption_rate", "reward_cost_share")

# Input the shop gave us; every other table is derived by the engine or the
# counter and starts empty in the replay.
_INPUT = {"imports", "rejects", "customers", "purchases", "claims", "events", "program_versions"}


@dataclass(frozen=True)
class _Action:
    date: dt.date
    order: int
    kind: str  # redeem | cancel | adjust | balance
    row: dict[str, Any]


def simulate(
    conn: sqlite3.Connection,
    proposed: str | Path,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    today: dt.date | None = None,
) -> dict[str, Any]:
    """Side by side KPIs of the real ledger and of a replay under the program file,
    from the first purchase (or `date_from`) to today (or `date_to`; the last run's
    as-of date when it is later than today)."""
    yaml_text, raw = read_program_file(proposed)
    program = parse_program(yaml_text, source=str(proposed))
    # One read transaction: the copy, the history and the real side are one state of
    # the shop, whatever the till writes meanwhile.
    with one_state(conn):
        # The history's amounts are in the shop's currency: another one would read 100.00
        # EUR as 10000 JPY (exit 2, as `program apply` refuses it).
        same_currency(list_versions(conn), program, yaml_text, str(proposed))
        horizon = _horizon(conn)
        if horizon is None:
            raise LoyaltyError("nothing to simulate: no purchases imported yet")
        first_day, last_run = horizon
        if date_from is None and date_to is not None and date_to < first_day:
            raise UsageError(f"--to {date_to} is before the first purchase, on {first_day}")
        date_from = date_from or first_day
        today = today or dt.date.today()
        date_to = date_to or max(today, last_run or today)
        if date_from > date_to:
            raise UsageError(f"--from {date_from} is after --to {date_to}")
        if last_run is None:
            # No real run yet (a history imported to choose a program): the real side is
            # empty, and the proposal is posted up to --to (today at the latest).
            last_run = min(date_to, today)

        scratch = _scratch_copy(conn)
        try:
            actions = _history_actions(conn)
            measured = _measure_aside(conn, date_from, date_to)
            _reset(scratch, program, yaml_text, hashlib.sha256(raw).hexdigest())
            skipped = _replay(scratch, actions, last_run, date_to, date_from)
            simulated = _measure(scratch, date_from, date_to)
            after = _balances(scratch, date_to)
            current, before = measured()
            movers = _balance_changes(before, after)
        finally:
            scratch.close()
        return {
            "from": date_from.isoformat(),
            "to": date_to.isoformat(),
            "current": current,
            "proposed": simulated,
            "delta": _delta(current, simulated),
            "redemptions_skipped": skipped,
            "top_changes": movers,
        }


def _horizon(conn: sqlite3.Connection) -> tuple[dt.date, dt.date | None] | None:
    """(first purchase day, the as-of of the last real run: None before any)."""
    row = conn.execute("SELECT MIN(date) FROM purchases WHERE undone = 0").fetchone()
    if row[0] is None:
        return None
    last_run = conn.execute("SELECT MAX(as_of) FROM runs").fetchone()[0]
    return dt.date.fromisoformat(row[0]), dt.date.fromisoformat(last_run) if last_run else None


def _scratch_copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    scratch = sqlite3.connect(":memory:", isolation_level=None)
    conn.backup(scratch)
    scratch.row_factory = sqlite3.Row
    return scratch


def _history_actions(conn: sqlite3.Connection) -> list[_Action]:
    """What happened at the counter, in the order it happened: by date, and within
    a day in the order the ledger got it (an adjustment that paid for a redemption
    the same day comes first). A punch-card redemption posts no entry; it keeps
    its place among the redemptions by creation."""
    actions: list[_Action] = []
    posted = """(SELECT MIN(l.entry_id) FROM ledger l WHERE l.source_type = 'redemption'
                 AND l.source_id = r.redemption_id AND l.kind = ?)"""
    rows = conn.execute(
        f"SELECT r.*, {posted} AS _redeemed, {posted} AS _reversed FROM redemptions r "
        "ORDER BY r.created_at, r.redemption_id",
        ("redeem", "redemption_reversed"),
    )
    last = 0
    for r in rows:
        row = dict(r)
        last = row.pop("_redeemed") or last  # no entry: just after the one before it
        reversed_at = row.pop("_reversed")
        actions.append(_Action(dt.date.fromisoformat(row["date"]), last, "redeem", row))
        if row["status"] == "cancelled" and row["cancelled_on"]:
            on = dt.date.fromisoformat(row["cancelled_on"])
            actions.append(_Action(on, reversed_at or last, "cancel", row))
    from loyalty_cli.rewards.adjust import lot_expiry

    # Opening balances of an undone import count nowhere: not replayed (nor is their
    # reversal, which is not an adjustment).
    adjusts = conn.execute(
        "SELECT * FROM ledger a WHERE kind = 'adjust' AND NOT EXISTS (SELECT 1 FROM ledger r "
        "WHERE r.kind = 'reversal' AND r.source_type = a.source_type "
        "AND r.source_id = a.source_id AND r.customer_id = a.customer_id) ORDER BY entry_id"
    )
    # The real program's expiry of a lot made on a day (a migration opens every
    # customer's balance on one day: looked up once).
    real_expiry: dict[dt.date, str | None] = {}
    # When the program really started: the clock of a lot dated before it (a migrated
    # balance) starts then in the replay too, whose one version covers all history.
    started = conn.execute("SELECT MIN(effective_from) FROM program_versions").fetchone()[0]
    for r in adjusts:
        row = dict(r)
        kind = "adjust" if row["source_type"] == "adjustment" else "balance"
        day = dt.date.fromisoformat(row["date"])
        if day not in real_expiry:
            real_expiry[day] = _iso(lot_expiry(conn, day))
        # A lot's expiry the real program gave it (not one a balances file named) is
        # the proposed program's to give in the replay.
        row["_program_expiry"] = row["points"] > 0 and (
            kind == "adjust" or row["expires_on"] == real_expiry[day]
        )
        row["_clock_from"] = started
        actions.append(_Action(day, row["entry_id"], kind, row))
    # Stable: equal keys (a punch card after a redemption) keep the order above.
    return sorted(actions, key=lambda a: (a.date, a.order))


def _reset(scratch: sqlite3.Connection, program: Program, yaml_text: str, sha: str) -> None:
    """Clear what the engine derived and make `program` the only version."""
    tables = [
        row[0]
        for row in scratch.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    with db.transaction(scratch):
        for table in tables:
            if table not in _INPUT:
                scratch.execute(f'DELETE FROM "{table}"')
        scratch.execute("DELETE FROM program_versions")
        scratch.execute(
            "INSERT INTO program_versions (version, name, effective_from, applied_at, "
            "source_file, sha256, yaml) VALUES (1, ?, ?, ?, 'simulate', ?, ?)",
            (
                program.name,
                FIRST_DAY.isoformat(),
                dt.datetime.now(dt.UTC).isoformat(),
                sha,
                yaml_text,
            ),
        )


def _replay(
    scratch: sqlite3.Connection,
    actions: list[_Action],
    last_run: dt.date,
    until: dt.date,
    since: dt.date,
) -> int:
    """Post the history again: runs up to the last real run's date (what the
    real ledger holds), the counter's actions up to the later of that and `until`
    (a redemption at the till after the last run is in the real ledger too);
    returns how many redemptions dated in [since, until] could not be made."""
    from loyalty_cli import ledger, rewards
    from loyalty_cli.engine.run import run

    skipped = 0
    made: set[str] = set()
    for action in actions:
        if action.date > max(until, last_run):
            break
        run(scratch, min(action.date, last_run))
        row = action.row
        if action.kind == "redeem":
            try:
                rewards.redeem(
                    scratch,
                    row["customer_id"],
                    row["reward_id"],
                    action.date,
                    redemption_id=row["redemption_id"],
                )
                made.add(row["redemption_id"])
            except LoyaltyError:
                skipped += since <= action.date <= until
        elif action.kind == "cancel":
            if row["redemption_id"] in made:
                rewards.cancel_redemption(scratch, row["redemption_id"], action.date)
        else:
            from loyalty_cli.rewards.adjust import taken_parts

            entry = _repost(scratch, row)
            # A negative adjustment takes the replayed lots as `adjust` would: what
            # the available points do not cover from pending ones (a part aimed at a
            # pending lot names an id of the real ledger: it is split again too).
            with db.transaction(scratch):
                ledger.post(scratch, taken_parts(scratch, entry) if entry.points < 0 else [entry])
    run(scratch, last_run)
    return skipped


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day is not None else None


def _repost(scratch: sqlite3.Connection, row: dict[str, Any]) -> Any:
    from loyalty_cli.ledger import NewEntry
    from loyalty_cli.rewards.adjust import lot_expiry

    def day(value: str | None) -> dt.date | None:
        return dt.date.fromisoformat(value) if value else None

    expires = day(row["expires_on"])
    if row["_program_expiry"]:
        expires = lot_expiry(scratch, dt.date.fromisoformat(row["date"]), day(row["_clock_from"]))
    return NewEntry(
        date=dt.date.fromisoformat(row["date"]),
        customer_id=row["customer_id"],
        kind=row["kind"],
        points=row["points"],
        value=row["value"],
        source_type=row["source_type"],
        source_id=row["source_id"],
        rule_id=row["rule_id"],
        program_version=1,
        available_on=day(row["available_on"]),
        expires_on=expires,
        note=row["note"],
    )


def _measure(conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date) -> dict[str, Any]:
    from loyalty_cli import reports

    kpi = reports.kpi_report(conn, date_from, date_to)
    out: dict[str, Any] = {key: kpi[key] for key in (*POINT_KEYS, *MONEY_KEYS, *RATE_KEYS)}
    out["tiers"] = {row["tier"]: row["customers"] for row in reports.tier_report(conn, date_to)}
    out["vouchers_issued"] = conn.execute(
        "SELECT COUNT(*) FROM vouchers WHERE issued BETWEEN ? AND ?",
        (date_from.isoformat(), date_to.isoformat()),
    ).fetchone()[0]
    return out


def _measure_aside(
    conn: sqlite3.Connection, date_from: dt.date, date_to: dt.date
) -> Callable[[], tuple[dict[str, Any], dict[str, int]]]:
    """`_measure` and `_balances` of the real database, done by a forked process while the replay
    runs (it reads the file through its own connection); the returned function
    gives the result. Where there is no fork or no file, or the process fails, or
    it read another state of the shop than `conn`'s (a till wrote in between), the
    measure is taken here instead, in `conn`'s read transaction."""
    path = conn.execute("PRAGMA database_list").fetchone()[2]

    def here() -> tuple[dict[str, Any], dict[str, int]]:
        return _measure(conn, date_from, date_to), _balances(conn, date_to)

    if not path or not workers.can_fork():
        return here
    mark = _state_mark(conn)
    receive, send = workers.pipe()
    worker = workers.start(_measure_file, path, date_from, date_to, send)
    send.close()

    def result() -> tuple[dict[str, Any], dict[str, int]]:
        try:
            seen, answer = receive.recv()
        except EOFError:
            seen, answer = None, None
        finally:
            receive.close()
            worker.join()
        return answer if answer is not None and seen == mark else here()

    return result


def _measure_file(path: str, date_from: dt.date, date_to: dt.date, send: Any) -> None:
    seen, answer = None, None
    try:
        conn = db.connect(path)
        try:
            conn.execute("BEGIN")  # one state for the mark and the measure
            seen = _state_mark(conn)
            answer = (_measure(conn, date_from, date_to), _balances(conn, date_to))
        finally:
            conn.close()
    except Exception:  # noqa: BLE001, S110 - the parent measures again and raises it there
        pass
    with contextlib.suppress(OSError):  # the parent is gone
        send.send((seen, answer))


def _state_mark(conn: sqlite3.Connection) -> tuple[Any, ...]:
    """What any write simulate could see changes: ids only grow, and an undo or a
    cancellation (which may post no entry) changes a count. Two snapshots with the
    same mark hold the same shop for what simulate reads."""
    return tuple(
        conn.execute(
            "SELECT (SELECT MAX(entry_id) FROM ledger), (SELECT MAX(id) FROM purchases), "
            "(SELECT MAX(id) FROM events), (SELECT MAX(import_id) FROM imports), "
            "(SELECT COUNT(*) FROM imports WHERE status = 'undone'), "
            "(SELECT MAX(rowid) FROM redemptions), "
            "(SELECT COUNT(*) FROM redemptions WHERE status = 'cancelled'), "
            "(SELECT MAX(version) FROM program_versions), (SELECT MAX(rowid) FROM claims), "
            "(SELECT MAX(run_id) FROM runs)"
        ).fetchone()
    )


def _delta(current: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    delta: dict[str, Any] = {}
    for key in (*POINT_KEYS, "vouchers_issued"):
        delta[key] = proposed[key] - current[key]
    for key in MONEY_KEYS:
        a, b = current[key], proposed[key]
        # An AOV with no receipts is null on either side: its change is undefined too.
        # Both sides have the currency's decimals, and so has their difference.
        delta[key] = None if a is None or b is None else format(Decimal(b) - Decimal(a), "f")
    for key in RATE_KEYS:
        a, b = current[key], proposed[key]
        # Unrounded like the rates themselves, without float noise (0.3 - 0.1).
        delta[key] = None if a is None or b is None else float(Decimal(repr(b)) - Decimal(repr(a)))
    # Lowest level first, as `report tiers` lists them.
    tiers = [*current["tiers"], *(t for t in proposed["tiers"] if t not in current["tiers"])]
    delta["tiers"] = {t: proposed["tiers"].get(t, 0) - current["tiers"].get(t, 0) for t in tiers}
    return delta


def _balances(conn: sqlite3.Connection, on: dt.date) -> dict[str, int]:
    """Each customer's balance on `on` as the statement and outstanding points count
    it (available + pending): the ledger's sum, less points whose lot reached its
    fixed expiry by `on` without a run posting it yet."""
    from loyalty_cli.reports import unposted_expiry

    sql = "SELECT customer_id, SUM(points) FROM ledger WHERE date <= ? GROUP BY customer_id"
    balances = dict(conn.execute(sql, (on.isoformat(),)).fetchall())
    for cid, held in unposted_expiry(conn, on).items():
        balances[cid] -= held
    return balances


def _balance_changes(
    before: dict[str, int], after: dict[str, int], top: int = 10
) -> list[dict[str, Any]]:
    """The customers whose balance differs most between the two ledgers."""
    rows = [
        {
            "customer_id": cid,
            "current": before.get(cid, 0),
            "proposed": after.get(cid, 0),
            "change": after.get(cid, 0) - before.get(cid, 0),
        }
        for cid in set(before) | set(after)
    ]
    rows = [r for r in rows if r["change"]]
    rows.sort(key=lambda r: (-abs(r["change"]), r["customer_id"]))
    return rows[:top]
